"""An embedding backend from outside the package, found through its distribution's entry point.

The plugin is a real distribution on the child's path (a package and its ``.dist-info`` with
``entry_points.txt``, the files ``pip install`` writes), not something the test registers in the
process: ``jina-migrate run --model wrapped:...`` finds it by the ``jina_migrate.backends`` group,
embeds with it, and the output verifies. A broken plugin and an unknown prefix are one error line.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
from support.verdictcli import SCRIPT, one_line_error

from conftest import REPO, SAMPLE

pytest.importorskip("static_model")

PLUGIN = textwrap.dedent('''
    """A third-party backend: the local static stand-in, served under the name ``wrapped``."""
    from dataclasses import replace

    from migrate.embed import local

    def _make(model, options):
        return local.BACKEND.factory("standin:static", options)

    BACKEND = replace(local.BACKEND, name="wrapped", factory=_make, description="a plugin wrapping the static stand-in")
    NOT_A_BACKEND = 42
''')


def _install(root: Path, entry: str) -> dict[str, str]:
    """The files an installed distribution has: its package, and its metadata naming the entry point."""
    (root / "jm_plugin_demo").mkdir(parents=True)
    (root / "jm_plugin_demo" / "__init__.py").write_text(PLUGIN)
    info = root / "jm_plugin_demo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: jm-plugin-demo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[jina_migrate.backends]\n{entry}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("JINA_API_KEY", "JINA_API_BASE_URL")}
    env.update(PYTHONPATH=str(root), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


def _jm(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=600)


def _docs(tmp_path: Path, n: int = 24) -> Path:
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join((SAMPLE / "docs.jsonl").read_text().splitlines()[:n]) + "\n")
    return path


def test_a_plugin_backend_runs_end_to_end_through_its_entry_point(tmp_path):
    env = _install(tmp_path / "site", "wrapped = jm_plugin_demo:BACKEND")
    out = tmp_path / "out"
    run = _jm("run", "--docs", str(_docs(tmp_path)), "--model", "wrapped:anything", "--out", str(out), "--json",
              env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["state"] == "complete" and manifest["config"]["model"] == "wrapped:anything"
    assert manifest["result"]["rows"] == 24
    check = _jm("verify", "--out", str(out), env=env)
    assert check.returncode == 0, check.stderr[-3000:]
    # the same vectors as the stand-in it wraps, built-in: the plugin changed where the backend comes from, not what
    ref = tmp_path / "ref"
    base = _jm("run", "--docs", str(_docs(tmp_path)), "--model", "local:standin:static", "--out", str(ref), env=env)
    assert base.returncode == 0, base.stderr[-3000:]
    import pyarrow.parquet as pq

    a = pq.read_table(out / "embeddings.parquet").sort_by("id")
    b = pq.read_table(ref / "embeddings.parquet").sort_by("id")
    assert a.column("id").to_pylist() == b.column("id").to_pylist()
    assert a.column("vector").to_pylist() == b.column("vector").to_pylist()


def test_a_broken_plugin_and_an_unknown_backend_are_one_error_line(tmp_path):
    env = _install(tmp_path / "site", "wrapped = jm_plugin_demo:NOT_A_BACKEND")
    docs = _docs(tmp_path, 8)
    bad = _jm("run", "--docs", str(docs), "--model", "wrapped:x", "--out", str(tmp_path / "o1"), env=env)
    one_line_error(bad, "'wrapped'", "not a BackendType", code=2)
    unknown = _jm("run", "--docs", str(docs), "--model", "nosuch:x", "--out", str(tmp_path / "o2"), env=env)
    line = one_line_error(unknown, "unknown embedding backend 'nosuch'", code=2)
    assert "wrapped:..." in line, line  # the known list names the plugin too
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()
