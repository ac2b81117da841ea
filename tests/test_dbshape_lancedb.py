"""LanceDB tables as applications build them, through the installed ``jina-migrate`` (issue 18, items 2 and 20).

Every table is made with ``lancedb.create_table`` from Python rows, as an application does: a vector column
declared ``list<float>`` (no fixed size) migrates like LanceDB's own ``fixed_size_list``; a row whose vector
is NULL, holds NaN, or has another width is refused with one line naming the row's id: ``run`` exits 2
before anything is written, ``plan`` reports it as an error finding and exits 8 (the README's exit codes).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.engines import jina_migrate

N, DIM = 12, 16
MODEL = ["--model", "local:standin:static"]


def _rows() -> list[dict]:
    rng = np.random.default_rng(7)
    out = []
    for i in range(N):
        v = rng.normal(size=DIM).astype(np.float32)
        out.append({"id": f"d{i}", "text": f"document {i} is about topic {i % 3} and more",
                    "vector": (v / np.linalg.norm(v)).tolist()})
    return out


@pytest.fixture(scope="module")
def lance(tmp_path_factory) -> Path:
    """One LanceDB folder with a table per shape, each made with lancedb's own API."""
    import lancedb

    root = tmp_path_factory.mktemp("lance") / "db"
    db = lancedb.connect(str(root))
    listed = pa.schema([("id", pa.string()), ("text", pa.string()), ("vector", pa.list_(pa.float32()))])
    fixed = pa.schema([("id", pa.string()), ("text", pa.string()), ("vector", pa.list_(pa.float32(), DIM))])
    db.create_table("listvec", data=_rows(), schema=listed)
    # a table filled first, then a row added later: LanceDB's `add` keeps a NULL vector (both column types),
    # and NaN or another width in a list<float> column
    for name, schema, at, vector in [("nullvec", fixed, 5, None), ("nanvec", listed, 3, [float("nan")] * DIM),
                                     ("ragged", listed, 9, [0.25] * 8)]:
        rows = _rows()
        bad = dict(rows.pop(at), vector=vector)
        db.create_table(name, data=rows, schema=schema).add([bad])
    return root


def _error_line(proc) -> str:
    """The one ``error:`` line a refused command prints (no traceback)."""
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    return errors[0]


def test_list_float_vector_column_migrates(lance, tmp_path):
    """``list<float>`` (what ``create_table`` makes from a schema without a size) is read like a fixed size."""
    uri = f"lancedb://{lance}?table=listvec"
    plan = jina_migrate("plan", "--old-index", uri, "--json", timeout=300)
    assert plan.returncode == 0, plan.stderr[-2000:]
    old = json.loads(plan.stdout)["sources"]["old_index"]
    assert (old["vectors"], old["dim"]) == (N, DIM)
    out = tmp_path / "out"
    run = jina_migrate("run", "--old-index", uri, *MODEL, "--out", str(out), "--yes", timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    got = pq.read_table(out / "embeddings.parquet", columns=["id"]).column("id").to_pylist()
    assert sorted(got) == sorted(f"d{i}" for i in range(N))


@pytest.mark.parametrize("table, row, words", [
    ("nullvec", "d5", "no vector"),
    ("nanvec", "d3", "NaN"),
    ("ragged", "d9", "8 dimensions"),
])
def test_bad_vectors_are_one_line_and_a_plan_finding(lance, tmp_path, table, row, words):
    uri = f"lancedb://{lance}?table={table}"
    plan = jina_migrate("plan", "--old-index", uri, "--json", timeout=300)
    assert plan.returncode == 8, plan.stderr[-2000:]  # an error finding, not a crash or a usage error
    found = [f for f in json.loads(plan.stdout)["findings"] if f["severity"] == "error"]
    assert any(row in f["message"] and words in f["message"] for f in found), found
    if table != "nullvec":
        return  # `run` refuses the others the same way (one subprocess less each)
    out = tmp_path / "out"
    run = jina_migrate("run", "--old-index", uri, *MODEL, "--out", str(out), "--yes", timeout=300)
    assert run.returncode == 2
    line = _error_line(run)
    assert repr(row) in line and words in line and "dimensions" not in line, line  # not a width problem
    assert not out.exists()  # refused before anything was written
