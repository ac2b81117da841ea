"""A destination's limits are checked before anything is embedded (issue 18, item 5), through the installed CLI.

The source is a LanceDB table an application made with ``lancedb.create_table``: one document of 70,000
characters (longer than a Milvus VARCHAR's 65,535 bytes) and a column named ``größe`` (not a Milvus field
name). Into Milvus Lite, ``plan`` reports both as error findings with their fix (exit 8), and ``run`` refuses
with one line before it embeds anything (exit 2): no output, no collection. Before, Milvus refused the long
text only at the end, after every vector was paid for (exit 3).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from support.engines import jina_migrate

LONG = "long " * 14_000  # 70,000 bytes


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> str:
    import lancedb

    root = tmp_path_factory.mktemp("lance") / "db"
    rng = np.random.default_rng(1)
    rows = []
    for i in range(12):
        v = rng.normal(size=16).astype(np.float32)
        rows.append({"id": f"d{i}", "text": LONG if i == 7 else f"document {i} about topic {i % 3}", "größe": i,
                     "vector": (v / np.linalg.norm(v)).tolist()})
    lancedb.connect(str(root)).create_table("docs", data=rows)
    return f"lancedb://{root}?table=docs"


def test_plan_reports_each_limit_the_destination_would_break(source, tmp_path):
    sink = f"milvus://{tmp_path / 'milvus.db'}?collection=docs_v3"
    plan = jina_migrate("plan", "--old-index", source, "--sink", sink, "--truncate", "--json", timeout=300)
    assert plan.returncode == 8, plan.stderr[-2000:]
    found = [f for f in json.loads(plan.stdout)["findings"] if f["code"] == "sink-limit"]
    assert len(found) == 2, found
    text = next(f for f in found if "'text'" in f["message"])
    assert "'d7'" in text["message"] and "70,000 bytes" in text["message"] and "65,535" in text["message"]
    assert "shorten or split" in text["fix"]
    name = next(f for f in found if "größe" in f["message"])
    assert "&payload=" in name["fix"]


def test_run_refuses_before_embedding(source, tmp_path):
    db = tmp_path / "milvus.db"
    out = tmp_path / "out"
    run = jina_migrate("run", "--old-index", f"{source}&payload=text", "--sink", f"milvus://{db}?collection=docs_v3",
                       "--model", "local:standin:static", "--truncate", "--out", str(out), "--yes", timeout=300)
    assert run.returncode == 2, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "'d7'" in errors[0] and "65,535 bytes" in errors[0], run.stderr[-2000:]
    assert not out.exists()  # nothing embedded, nothing written
    if db.exists():
        from pymilvus import MilvusClient

        client = MilvusClient(str(db))
        try:
            assert client.list_collections() == []
        finally:
            client.close()


def test_each_engine_declares_its_limits():
    """The declared numbers (engines' documentation), checked without a subprocess: v3 never exceeds them."""
    import pyarrow as pa

    from migrate.engines import parse_address
    from migrate.engines.limits import TextExtents, problems

    pg = parse_address("postgresql://localhost/db?table=docs_v3")
    assert problems(pg, dim=2000, payload=None) == []
    assert "at most 2000 dimensions" in problems(pg, dim=2001, payload=None)[0].message  # pgvector's HNSW
    assert problems(pg, dim=2001, payload=None, index_kind="flat") == []
    assert "at most 16000 dimensions" in problems(pg, dim=16001, payload=None, index_kind="flat")[0].message
    nul = TextExtents()
    nul.add({"body": pa.array(["fine", "a\x00b"])}, ["x1", "x2"])
    found = problems(pg, dim=64, payload=pa.schema([("body", pa.string())]), extents=nul)
    assert len(found) == 1 and "'body' of id 'x2'" in found[0].message and "U+0000" in found[0].message
    milvus = parse_address("milvus:///tmp/m.db?collection=docs_v3")
    many = pa.schema([(f"f{i}", pa.int64()) for i in range(63)])
    assert "at most 62 payload fields" in problems(milvus, dim=64, payload=many)[0].message
    assert "at most 32768 dimensions" in problems(milvus, dim=32769, payload=None)[0].message
    chroma = parse_address("chroma:///tmp/c?collection=docs-v3")
    found = problems(chroma, dim=64, payload=pa.schema([("text", pa.int64())]), text_field="text")
    assert len(found) == 1 and "string document" in found[0].message
    qdrant = parse_address("qdrant:///tmp/q?collection=docs_v3")
    assert problems(qdrant, dim=65536, payload=pa.schema([("größe", pa.string())])) == []
