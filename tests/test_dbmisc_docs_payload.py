"""A documents file migrated into a database keeps all its fields (issue 18, item 18).

The destination holds every column of the documents (title, topic, numbers, lists, structs, JSON,
timestamps...) with its type, and the text exactly as the file holds it: `--title-field` joins the
title into what is embedded only. Read back with each engine's own client (qdrant_client, lancedb).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.engines import assert_same_rows, sample_rows

pytest.importorskip("static_model")

REPO = Path(__file__).resolve().parents[1]
EXE = REPO / ".venv" / "bin" / "jina-migrate"
DOCS = REPO / "fixtures" / "sample" / "docs.jsonl"
ENV = {k: v for k, v in os.environ.items() if not k.startswith("JINA_MIGRATE_")} | {
    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _run(tmp_path: Path, docs: Path, sink: str, *extra: str) -> dict:
    proc = subprocess.run([str(EXE), "run", "--docs", str(docs), "--title-field", "title", "--sink", sink,
                           "--model", "local:standin:static", "--shard-size", "100", "--out", str(tmp_path / "out"),
                           "--json", *extra], env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    finish = json.loads(proc.stdout.splitlines()[-1])
    assert finish["state"] == "complete"
    return finish


def test_jsonl_fields_into_qdrant(tmp_path):
    pytest.importorskip("qdrant_client")
    from qdrant_client import QdrantClient

    docs = [json.loads(line) for line in DOCS.read_text().splitlines()]
    assert all(d["title"] and d["title"] not in d["text"][: len(d["title"])] for d in docs[:5])
    path = tmp_path / "qdrant"
    finish = _run(tmp_path, DOCS, f"qdrant://{path}?collection=kb_v3")
    assert finish["outputs"]["destinations"][0]["upserted"] == len(docs)
    client = QdrantClient(path=str(path))
    try:
        points, offset = [], None
        while True:
            page, offset = client.scroll("kb_v3", limit=256, offset=offset, with_payload=True)
            points += page
            if offset is None:
                break
    finally:
        client.close()
    # The point ids are derived from the document ids; compare the payload as a multiset of records: the
    # text as it was (not "title text"), and every other field beside it.
    fields = ("title", "text", "topic")
    got = sorted(tuple(p.payload.get(f) for f in fields) for p in points)
    assert got == sorted(tuple(d[f] for f in fields) for d in docs)


def test_parquet_columns_and_types_into_lancedb(tmp_path):
    lancedb = pytest.importorskip("lancedb")
    rows = sample_rows().drop_columns(["vector"])  # id, title, text, and payload of many types (some null)
    pq.write_table(rows, tmp_path / "docs.parquet")
    path = tmp_path / "lance"
    _run(tmp_path, tmp_path / "docs.parquet", f"lancedb://{path}?table=kb_v3")
    got = lancedb.connect(str(path)).open_table("kb_v3").to_arrow()
    assert got.num_rows == rows.num_rows
    assert_same_rows(got.drop_columns(["vector"]), rows)  # every column, with its type, values unchanged
    assert got.schema.field("text").type == pa.string()
