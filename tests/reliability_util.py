"""Helpers shared by the reliability tests: run the CLI in this process, check a failure is clean.

``cli_inproc`` calls ``migrate.cli.main`` the way ``python -m migrate`` does (same error printing,
same exit codes) without paying a new interpreter per case. ``assert_clean_failure`` checks the
promise every hostile input must keep: non-zero exit, one ``error:`` line naming the problem, no
traceback, and nothing in the output directory marked complete.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest


def cli_inproc(*argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``jina-migrate ARGV`` run in this process."""
    from migrate.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in argv])
            rc = 0
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return rc, out.getvalue(), err.getvalue()


def complete_marks(out: Path) -> list[str]:
    """Everything in ``out`` that claims finished work: completion records, outputs, a complete manifest."""
    marks = []
    if (out / "shards").is_dir():
        marks += [p.name for p in (out / "shards").glob("*.done.json")]
    marks += [n for n in ("index.faiss", "embeddings.parquet", "id_map.parquet") if (out / n).exists()]
    m = out / "manifest.json"
    if m.exists():
        try:
            if json.loads(m.read_text()).get("state") == "complete":
                marks.append("manifest state complete")
        except ValueError:
            pass
    return marks


def assert_clean_failure(rc: int, stderr: str, out: Path | None, *, code: int | None = None,
                         match: str | None = None) -> str:
    """The failure is one clear line, non-zero, and left nothing marked complete; returns the line."""
    assert rc != 0, "expected a non-zero exit"
    if code is not None:
        assert rc == code, f"exit {rc}, expected {code}: {stderr}"
    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("{")]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1, f"expected exactly one error line, got: {stderr!r}"
    if match:
        assert match.lower() in errors[0].lower(), f"{match!r} not in {errors[0]!r}"
    if out is not None:
        assert complete_marks(out) == [], f"marked complete after a failure: {complete_marks(out)}"
    return errors[0]


def short(line: str, n: int = 110) -> str:
    """An error line cut for a table cell (paths shortened to their name)."""
    import re

    line = re.sub(r"/\S*/([^/\s:]+)", r"\1", line)
    return line if len(line) <= n else line[: n - 1] + "…"


needs_static = pytest.mark.skipif(
    not __import__("importlib").util.find_spec("static_model"), reason="tokenlearn-static-model not installed")


@contextlib.contextmanager
def fast_server_with_key():
    """A local Jina-compatible server (static model) whose key is in JINA_API_KEY while it runs."""
    import os

    from migrate.rehearsal.run import run_server

    old = os.environ.get("JINA_API_KEY")
    with run_server(fast=True) as h:
        os.environ["JINA_API_KEY"] = h.api_key
        try:
            yield h
        finally:
            os.environ.pop("JINA_API_KEY", None)
            if old is not None:
                os.environ["JINA_API_KEY"] = old
