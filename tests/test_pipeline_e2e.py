"""End to end: the bundled sample index migrated with a real model, then verified."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import cli, json_lines

MINILM = "local:standin:minilm"


@pytest.fixture(scope="module")
def migrated(tmp_path_factory, sample_dir):
    out = tmp_path_factory.mktemp("e2e") / "out"
    proc = cli("run", "--docs", str(sample_dir / "docs.jsonl"), "--title-field", "title",
               "--old-index", str(sample_dir / "old_index.faiss"), "--id-map", str(sample_dir / "id_map.csv"),
               "--model", MINILM, "--shard-size", "100", "--out", str(out), "--json", check=True)
    return out, json_lines(proc.stdout)


def test_run_writes_a_verified_index(migrated, sample_dir):
    out, events = migrated
    finish = events[-1]
    assert finish["event"] == "finish" and finish["state"] == "complete"
    assert finish["rows"] == 320 and finish["embedded"] == 320 and finish["shards_total"] == 4
    assert [e["event"] for e in events].count("shard_done") == 4
    proc = cli("verify", "--out", str(out), "--json")
    result = json.loads(proc.stdout)
    assert proc.returncode == 0 and result["ok"], result
    assert result["checks"]["rows"] == 320 and result["checks"]["index_ntotal"] == 320


def test_new_index_keeps_the_old_int64_ids(migrated, sample_dir):
    out, _ = migrated
    index = faiss.read_index(str(out / "index.faiss"))
    old = faiss.read_index(str(sample_dir / "old_index.faiss"))
    new_ids = faiss.vector_to_array(faiss.downcast_index(index).id_map)
    old_ids = faiss.vector_to_array(faiss.downcast_index(old).id_map)
    assert sorted(new_ids.tolist()) == sorted(old_ids.tolist())
    idmap = pq.read_table(out / "id_map.parquet").to_pydict()
    assert dict(zip(idmap["faiss_id"], idmap["id"]))[1001] == "kb-0001"


def test_vectors_are_the_models_vectors(migrated, sample_dir):
    """Same text through the model directly gives the stored vector (title + ' ' + text, unit norm)."""
    from migrate.embed.registry import get_embedder

    out, _ = migrated
    emb = pq.read_table(out / "embeddings.parquet").to_pydict()
    first = json.loads((sample_dir / "docs.jsonl").read_text().splitlines()[0])
    direct = get_embedder(MINILM).embed([first["title"] + " " + first["text"]], task="text-matching").vectors[0]
    stored = np.asarray(emb["vector"][emb["id"].index(first["id"])], dtype=np.float32)
    assert np.allclose(stored, direct, atol=1e-5)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["state"] == "complete"
    assert manifest["config"]["task"] == "text-matching"
    assert manifest["embedder"]["backend"] == "local"
    assert manifest["sources"][0]["sha256"]


def test_rerun_is_a_no_op(migrated):
    out, _ = migrated
    proc = cli("run", "--docs", "fixtures/sample/docs.jsonl", "--title-field", "title",
               "--old-index", "fixtures/sample/old_index.faiss", "--id-map", "fixtures/sample/id_map.csv",
               "--model", MINILM, "--shard-size", "100", "--out", str(out), "--json", check=True)
    finish = json_lines(proc.stdout)[-1]
    assert finish["shards_run"] == 0 and finish["shards_skipped"] == 4 and finish["embedded"] == 0


def test_other_configuration_is_refused_without_restart(migrated):
    out, _ = migrated
    args = ["run", "--docs", "fixtures/sample/docs.jsonl", "--title-field", "title", "--model", MINILM,
            "--shard-size", "100", "--out", str(out), "--task", "retrieval.passage", "--json"]
    proc = cli(*args)
    assert proc.returncode == 3
    assert "another configuration" in proc.stderr and "task" in proc.stderr and "Traceback" not in proc.stderr


def test_search_side_by_side(migrated, sample_dir):
    out, _ = migrated
    proc = cli("search", "how do I wash a down sleeping bag", "--out", str(out), "--old-index",
               str(sample_dir / "old_index.faiss"), "--id-map", str(sample_dir / "id_map.csv"),
               "--old-model", MINILM, "--docs", str(sample_dir / "docs.jsonl"), "-k", "3", "--json", check=True)
    res = json.loads(proc.stdout)
    assert len(res["new"]) == 3 and len(res["old"]) == 3
    assert "sleeping" in res["new"][0]["text"].lower() or "down" in res["new"][0]["text"].lower()
