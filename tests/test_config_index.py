"""Configuration precedence, shard plan stability, and the index builders."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from migrate.config import load_config
from migrate.errors import ConfigError, StateError
from migrate.index import build_faiss
from migrate.shards import ShardPlan, text_hash


def test_flags_beat_toml_beat_environment(tmp_path):
    toml = tmp_path / "m.toml"
    toml.write_text('[migrate]\ntask = "retrieval.passage"\nshard-size = 50\ndimensions = 512\n')
    env = {"JINA_MIGRATE_TASK": "separation", "JINA_MIGRATE_SHARD_SIZE": "7", "JINA_MIGRATE_TPM": "12345"}
    cfg = load_config({"dimensions": 256}, toml, environ=env)
    assert cfg.dimensions == 256  # flag
    assert cfg.task == "retrieval.passage" and cfg.shard_size == 50  # file over environment
    assert cfg.tpm == 12345  # environment when nothing else sets it
    assert load_config({}, None, environ={}).task == "text-matching"  # default mimics v2


def test_bad_configuration_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("task = [unclosed\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config({}, bad, environ={})
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('colour = "blue"\n')
    with pytest.raises(ConfigError, match="unknown setting 'colour'"):
        load_config({}, unknown, environ={})
    with pytest.raises(ConfigError, match="needs --price-per-million"):
        load_config({"max_cost": 5.0}, None, environ={})
    with pytest.raises(ConfigError, match="I/N"):
        load_config({"shard": "x"}, None, environ={})


def test_embedding_fields_make_the_fingerprint():
    from migrate.runner import config_fingerprint

    a = load_config({"model": "local:x"}, None, environ={})
    b = load_config({"model": "local:x", "shard_size": 10, "tpm": 5}, None, environ={})
    c = load_config({"model": "local:x", "dimensions": 256}, None, environ={})
    assert config_fingerprint(a) == config_fingerprint(b) != config_fingerprint(c)


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
    index = build_faiss(v, ids, kind, ivf_nlist=16, pq_m=8)
    assert index.ntotal == 2000
    if kind == "ivfpq":
        faiss.downcast_index(index.index).nprobe = 16
    _, found = index.search(v[:50], 1)
    hit = (found[:, 0] == ids[:50]).mean()
    assert hit >= (1.0 if kind == "flat" else 0.9)


def test_ivfpq_refuses_too_few_vectors():
    v = np.eye(16, dtype=np.float32)
    with pytest.raises(StateError, match="needs more vectors"):
        build_faiss(v, np.arange(16), "ivfpq")


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path):
    from migrate.atomic import write_with

    target = tmp_path / "x.bin"
    target.write_bytes(b"old")

    def boom(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_with(target, boom)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]
