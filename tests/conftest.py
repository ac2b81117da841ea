"""Shared pytest set-up.

* ``--slow`` runs the long suites (full crash test, SciFact checks); they are
  deselected otherwise, and reported as deselected, never as passed.
* The hub is never contacted: HF_HUB_OFFLINE is forced before any test imports.
* Each test module leaves the session as it found it: no process it started still running, no
  environment variable, Ctrl-C handler or working directory changed (``_module_leaves_nothing_behind``).
  A later test must not depend on what an earlier one left (issue 20: a leftover can turn a timing
  margin into a failure that only shows in the whole suite).
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", default=False, help="also run tests marked slow")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long-running test, only with --slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--slow"):
        return
    keep, drop = [], []
    for item in items:
        (drop if item.get_closest_marker("slow") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


# --------------------------------------------------------------------------- shared fixtures

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "fixtures" / "sample"


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLE


def cli(*args: str, env: dict | None = None, timeout: float = 600, check: bool = False) -> subprocess.CompletedProcess:
    """Run ``python -m migrate ARGS`` as a user would, in a child process."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "migrate", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=REPO)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


@pytest.fixture
def small_docs(tmp_path: Path) -> Path:
    """The first 96 sample documents as JSONL (title joined by the tests that want it)."""
    lines = (SAMPLE / "docs.jsonl").read_text().splitlines()[:96]
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


# --------------------------------------------------------------------------- nothing left behind

import signal  # noqa: E402
import time  # noqa: E402


def _descendants(root: int) -> dict[int, str]:
    """Live (not zombie) descendants of process ``root``: pid -> command line, from Linux ``/proc``."""
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z":
            parent[int(d.name)] = int(fields[1])
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parent.items() if ppid in frontier} - found
        found |= frontier
    names = {}
    for pid in found:
        try:
            names[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:160]
        except OSError:
            pass
    return names


def _stop(pids: list[int]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(p in _descendants(os.getpid()) for p in pids):
            time.sleep(0.1)


#: Variables the tool or its tests read: a module must not leave one added. (Others appear when a
#: library is first imported, e.g. torch's KMP_* and TORCHINDUCTOR_CACHE_DIR: the same whichever
#: module imports it first, so they are not counted; a changed or removed variable always is.)
_WATCHED = ("JINA_", "HF_", "TRANSFORMERS_", "TOKENIZERS_", "PG", "QDRANT_", "MILVUS_", "RAY_", "GITHUB_", "CI",
            "SERVE_")


def _environment() -> dict[str, str]:
    """``os.environ`` without the variable pytest itself sets for each test phase."""
    return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}


def _env_changes(before: dict[str, str]) -> list[str]:
    """Names of variables changed or removed since ``before``, or added with a watched prefix."""
    now = _environment()
    return sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k)
                  and (k in before or k.startswith(_WATCHED)))


@pytest.fixture(scope="module", autouse=True)
def _module_leaves_nothing_behind():
    """Fail the module whose fixtures or tests leave a process running or the session changed.

    Checked after the module's own fixtures are torn down (an autouse module fixture is set up
    first, so it is torn down last). What is found is also undone (processes stopped, variables
    and handlers restored) so that later modules start clean. Variable values are never printed:
    they may hold keys.
    """
    if not Path("/proc/self/stat").exists():  # the process check reads Linux /proc
        yield
        return
    env, sigint, cwd = _environment(), signal.getsignal(signal.SIGINT), os.getcwd()
    before = set(_descendants(os.getpid()))
    yield
    problems = []
    if changed := _env_changes(env):
        for k in changed:
            if k in env:
                os.environ[k] = env[k]
            else:
                del os.environ[k]
        problems.append(f"environment variables changed and not restored: {', '.join(changed)}")
    if signal.getsignal(signal.SIGINT) is not sigint:
        problems.append(f"the Ctrl-C (SIGINT) handler was changed to {signal.getsignal(signal.SIGINT)!r} (if "
                        "ignored, every child started later inherits that and cannot be interrupted)")
        signal.signal(signal.SIGINT, sigint)
    if os.getcwd() != cwd:
        problems.append(f"the working directory was changed to {os.getcwd()}")
        os.chdir(cwd)
    deadline = time.monotonic() + 10  # a process told to stop may take a moment to go
    while (left := {p: c for p, c in _descendants(os.getpid()).items() if p not in before}) \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    if left:
        _stop(list(left))
        problems.append("processes still running after the module's teardown (now stopped): "
                        + "; ".join(f"{p} {c}" for p, c in sorted(left.items())))
    if problems:
        pytest.fail("this test module left the session changed:\n  " + "\n  ".join(problems), pytrace=False)
