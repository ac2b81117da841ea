"""Shard plan stability, and the FAISS index builders."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from migrate.errors import ConfigError, StateError
from migrate.shards import ShardPlan
from migrate.sinks.faiss_dir import build_faiss
from migrate.sources import text_hash
from migrate.workspace import IndexSettings


def test_shard_plan_is_stable_and_local_to_changes():
    ids = [f"d{i}" for i in range(25)]
    hashes = [text_hash(f"text {i}") for i in range(25)]
    p1 = ShardPlan.build(ids, hashes, 10)
    p2 = ShardPlan.build(list(ids), list(hashes), 10)
    assert [s.name for s in p1.shards] == [s.name for s in p2.shards]
    assert [(s.start, s.stop) for s in p1.shards] == [(0, 10), (10, 20), (20, 25)]
    hashes[15] = text_hash("edited")
    p3 = ShardPlan.build(ids, hashes, 10)
    assert [a.name == b.name for a, b in zip(p1.shards, p3.shards)] == [True, False, True]
    assert {s.index for s in p1.for_worker(0, 2)} == {0, 2} and {s.index for s in p1.for_worker(1, 2)} == {1}
    with pytest.raises(StateError):
        ShardPlan.build(ids, hashes, 0)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_index_types_search_with_original_ids(kind):
    rng = np.random.default_rng(1)
    v = rng.standard_normal((2000, 32)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    ids = np.arange(10_000, 12_000, dtype=np.int64)
    params = {"ivfpq": {"ivf_nlist": 16, "pq_m": 8}}.get(kind, {})
    index = build_faiss(v, ids, IndexSettings(type=kind, params=params))
    assert index.ntotal == 2000
    if kind == "ivfpq":
        faiss.downcast_index(index.index).nprobe = 16
    _, found = index.search(v[:50], 1)
    hit = (found[:, 0] == ids[:50]).mean()
    assert hit >= (1.0 if kind == "flat" else 0.9)


def test_ivfpq_refuses_too_few_vectors():
    v = np.eye(16, dtype=np.float32)
    with pytest.raises(ConfigError, match="needs at least"):
        build_faiss(v, np.arange(16), IndexSettings(type="ivfpq"))
