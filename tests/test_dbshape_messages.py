"""Messages about a source's shape, through the installed ``jina-migrate`` (issue 18, item 20).

* A PostgreSQL row whose pgvector ``embedding`` is NULL is reported as a row without a vector, naming its id
  (not as a width problem): ``plan`` makes it an error finding (exit 8), ``run`` refuses with one line (exit 2).
* An address of a scheme no adapter reads (``weaviate://``) given to ``--old-index`` is reported as an unknown
  scheme with the supported ones, showing the address as given (never its password), not "file not found".
* The files the README's worked example leaves in a checkout are ignored by git.
(NaN vectors: ``test_dbshape_lancedb.py``; an empty collection: ``test_dbshape_chroma.py``.)
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from support.engines import jina_migrate, postgres_server

REPO = Path(__file__).resolve().parents[1]


def _error_line(proc) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    return errors[0]


@pytest.fixture(scope="module")
def pg_source():
    """The application's table, made with psycopg + pgvector: one row's embedding was never filled in."""
    import psycopg
    from pgvector.psycopg import register_vector

    with postgres_server() as (_srv, uri):
        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            register_vector(conn)
            conn.execute("CREATE TABLE docs (doc_id text PRIMARY KEY, body text NOT NULL, embedding vector(8))")
            for i in range(6):
                vec = None if i == 2 else [float((i + j) % 5 + 1) for j in range(8)]
                conn.execute("INSERT INTO docs VALUES (%s, %s, %s)", (f"d{i}", f"document {i} about things", vec))
        yield f"{uri}&table=docs&id=doc_id&text=body"


def test_null_vector_is_not_a_width_problem(pg_source, tmp_path):
    plan = jina_migrate("plan", "--old-index", pg_source, "--json", timeout=300)
    assert plan.returncode == 8, plan.stderr[-2000:]
    found = [f for f in json.loads(plan.stdout)["findings"] if f["severity"] == "error"]
    assert any("'d2'" in f["message"] and "no vector" in f["message"] for f in found), found
    assert not any("dimensions" in f["message"] for f in found), found
    out = tmp_path / "out"
    run = jina_migrate("run", "--old-index", pg_source, "--model", "local:standin:static", "--out", str(out), "--yes",
                       timeout=300)
    assert run.returncode == 2
    line = _error_line(run)
    assert "'d2'" in line and "no vector" in line and "dimensions" not in line, line
    assert not out.exists()


@pytest.mark.parametrize("command", ["plan", "run"])
def test_unknown_scheme_is_named(command, small_docs, tmp_path):
    address = "weaviate://reader:s3cr3t-pw@localhost:8080/v1?collection=Docs"
    extra = ["--out", str(tmp_path / "out"), "--model", "local:standin:static", "--yes"] if command == "run" else []
    proc = jina_migrate(command, "--docs", str(small_docs), "--old-index", address, *extra, timeout=300)
    assert proc.returncode == 2
    line = _error_line(proc)
    assert "unknown database scheme 'weaviate'" in line and "weaviate://localhost:8080/v1" in line, line
    assert "qdrant" in line and "file not found" not in line, line
    assert "s3cr3t-pw" not in proc.stderr + proc.stdout
    assert not (tmp_path / "out").exists()


def test_worked_example_leftovers_are_ignored():
    names = ["key.txt", "plan.json", "plan.md"]
    proc = subprocess.run(["git", "check-ignore", *names], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.split() == names, proc.stdout + proc.stderr
