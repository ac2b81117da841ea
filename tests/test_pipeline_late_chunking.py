"""`run --late-chunking`: one vector per chunk, each embedded in its document's context."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq

from conftest import REPO, cli, json_lines
from migrate.embed.chunking import chunk_document
from migrate.embed.registry import get_embedder

MINILM = "local:standin:minilm"


def test_late_chunked_run_matches_the_embedder_and_verifies(tmp_path):
    lines = (REPO / "fixtures/sample/docs.jsonl").read_text().splitlines()[:12]
    docs = tmp_path / "docs.jsonl"
    docs.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    args = ["run", "--docs", str(docs), "--model", MINILM, "--late-chunking", "--chunker", "sentences:2",
            "--shard-size", "5", "--out", str(out), "--json"]
    summary = json_lines(cli(*args, check=True).stdout)[-1]
    assert summary["state"] == "complete" and summary["embedded"] == 12
    assert cli("verify", "--out", str(out)).returncode == 0

    table = pq.read_table(out / "embeddings.parquet").to_pydict()
    first = json.loads(lines[0])
    chunks = chunk_document(first["text"], "sentences:2")
    assert len(chunks) > 1
    rows = [i for i, d in enumerate(table["id"]) if d == first["id"]]
    assert [table["chunk"][i] for i in rows] == list(range(len(chunks)))
    direct = get_embedder(MINILM).embed(chunks, task="text-matching", late_chunking=True).vectors
    stored = np.asarray([table["vector"][i] for i in rows], dtype=np.float32)
    assert np.allclose(stored, direct, atol=1e-5)
    # Late chunking is not the same as embedding each chunk on its own.
    alone = get_embedder(MINILM).embed(chunks, task="text-matching").vectors
    assert not np.allclose(stored, alone, atol=1e-3)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["late_chunking"] is True and manifest["config"]["chunker"] == "sentences:2"
    assert manifest["result"]["chunked"] and manifest["result"]["documents"] == 12

    # Another chunker is another configuration: refused without --restart.
    other = cli("run", "--docs", str(docs), "--model", MINILM, "--late-chunking", "--chunker", "sentences:3",
                "--out", str(out))
    assert other.returncode == 3 and "chunker" in other.stderr

    # A new document: only it is embedded, the other documents' chunks come from the cache.
    lines.insert(2, json.dumps({"id": "new-1", "text": "One. Two sentences here. And a third one."}))
    docs.write_text("\n".join(lines) + "\n")
    again = json_lines(cli(*args, check=True).stdout)[-1]
    assert again["embedded"] == 1 and again["cached"] >= 1
