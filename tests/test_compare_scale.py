"""compare searches a finished output in place: index.faiss (flat, memory-mapped) or an exact
streamed pass over embeddings.parquet (ANN indexes, Matryoshka sweep), never the whole table in
RAM; and ``top_k`` / the running top-k give exactly the brute-force answer."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrate.errors import ConfigError, StateError
from migrate.report.output import OutputIndex, OutputManifest, index_type_of
from migrate.report.search import TopK, top_k
from migrate.report.side import OutputStore, VectorStore
from support.outputs import search_in_child, write_output

REPO = Path(__file__).resolve().parents[1]


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _brute(vectors: np.ndarray, row_doc: np.ndarray, n_docs: int, q: np.ndarray, depth: int):
    """Per-document best cosine, ranked: the definition the stores must meet."""
    best = np.full((len(q), n_docs), -np.inf, dtype=np.float32)
    sims = _unit(q) @ _unit(vectors).T
    for qi in range(len(q)):
        np.maximum.at(best[qi], row_doc, sims[qi])
    order = np.argsort(-best, axis=1, kind="stable")[:, :depth]
    return order, np.take_along_axis(best, order, axis=1)


def _chunked_data(rng, n_docs: int, dim: int):
    counts = rng.integers(1, 5, n_docs)
    row_doc = np.repeat(np.arange(n_docs), counts)
    vectors = _unit(rng.normal(size=(len(row_doc), dim)).astype(np.float32))
    return vectors, [f"doc-{i}" for i in row_doc], row_doc


# --------------------------------------------------------------------------- top_k and TopK

def test_top_k_over_vectors_and_a_faiss_index():
    rng = np.random.default_rng(0)
    v = _unit(rng.normal(size=(300, 16)).astype(np.float32))
    q = rng.normal(size=(5, 16)).astype(np.float32)
    scores, pos = top_k(v, q, 7)
    expect = np.argsort(-(_unit(q) @ v.T), axis=1)[:, :7]
    assert pos.shape == (5, 7) and np.array_equal(pos, expect)
    assert np.allclose(scores, np.take_along_axis(_unit(q) @ v.T, expect, axis=1), atol=1e-6)
    # one query as a vector; a FAISS IndexIDMap2 answers with its own ids
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(16))
    index.add_with_ids(v, np.arange(300, dtype=np.int64) * 10 + 5)
    s1, ids = top_k(index, q[0], 7)
    assert np.array_equal(ids[0], expect[0] * 10 + 5) and np.allclose(s1[0], scores[0], atol=1e-5)
    # fewer rows than k: padded with -1, like FAISS
    _, few = top_k(v[:3], q, 5)
    assert (few[:, 3:] == -1).all() and sorted(few[0, :3]) == [0, 1, 2]
    with pytest.raises(ConfigError, match="queries have 8 dims but the index has 16"):
        top_k(v, np.ones(8, np.float32), 3)
    with pytest.raises(ConfigError, match="queries have 8 dims"):
        top_k(index, np.ones((2, 8), np.float32), 3)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), batch=st.integers(1, 60), depth=st.integers(1, 30), grouped=st.booleans())
def test_running_top_k_equals_brute_force(seed, batch, depth, grouped):
    rng = np.random.default_rng(seed)
    n_docs, dim = 40, 8
    if grouped:  # chunks of one document may fall on both sides of a batch boundary
        vectors, _, row_doc = _chunked_data(rng, n_docs, dim)
    else:
        vectors, row_doc = _unit(rng.normal(size=(n_docs, dim)).astype(np.float32)), np.arange(n_docs)
    q = _unit(rng.normal(size=(4, dim)).astype(np.float32))
    top = TopK(len(q), min(depth, n_docs))
    for s in range(0, len(vectors), batch):
        top.add(q @ vectors[s:s + batch].T, row_doc[s:s + batch], grouped=grouped)
    got = top.ranking()
    order, best = _brute(vectors, row_doc, n_docs, q, min(depth, n_docs))
    assert np.array_equal(got.doc_index, order)
    assert np.allclose(got.scores, best, atol=1e-6)


# --------------------------------------------------------------------------- outputs searched in place

@pytest.mark.parametrize("index_type", ["flat", "hnsw"])
@pytest.mark.parametrize("chunked", [False, True])
def test_output_store_equals_exact_search(tmp_path, index_type, chunked):
    rng = np.random.default_rng(3)
    n_docs, dim = 700, 32
    if chunked:
        vectors, ids, row_doc = _chunked_data(rng, n_docs, dim)
        fids = np.arange(len(ids), dtype=np.int64)
    else:
        vectors = _unit(rng.normal(size=(n_docs, dim)).astype(np.float32))
        ids, row_doc = [f"doc-{i}" for i in range(n_docs)], np.arange(n_docs)
        fids = rng.permutation(n_docs).astype(np.int64) * 3 + 11  # custom int64 ids, not row numbers
    write_output(tmp_path / "out", vectors, ids, fids, index_type=index_type, row_group=128)
    store = OutputStore(OutputIndex(OutputManifest.load(tmp_path / "out")))
    assert store.index.exact == (index_type == "flat") and store.chunked == chunked
    assert store.n_docs == n_docs and store.n_vectors == len(ids)
    q = _unit(rng.normal(size=(9, dim)).astype(np.float32))
    got = store.search(q, 50)
    order, best = _brute(vectors, row_doc, n_docs, q, 50)
    names = [f"doc-{i}" for i in range(n_docs)]
    for qi in range(len(q)):
        assert store.ids_at(got.doc_index[qi]) == [names[i] for i in order[qi]]
    assert np.allclose(got.scores, best, atol=1e-5)
    # the Matryoshka sweep streams embeddings.parquet and equals the in-memory truncation
    mem = VectorStore("mem", names, vectors, row_doc if chunked else None)
    swept, ref = store.sweep(q, [16, 4], 20), mem.sweep(q, [16, 4], 20)
    for d in (16, 4):
        assert [store.ids_at(r) for r in swept[d].doc_index] == [mem.ids_at(r) for r in ref[d].doc_index]
        assert np.allclose(swept[d].scores, ref[d].scores, atol=1e-5)


def test_manifest_view_reads_the_index_type_where_the_manifest_holds_it(tmp_path):
    m = {"config": {"model": "jina-api:jina-embeddings-v3", "task": "retrieval.passage"},
         "index": {"type": "hnsw", "params": {"hnsw_m": 16}}, "state": "running"}
    assert index_type_of(m) == "hnsw" and OutputManifest.from_dict(m).index_type == "hnsw"
    m["result"] = {"index_type": "ivfpq", "rows": 10, "documents": 10, "dimensions": 4}
    view = OutputManifest.from_dict(m)
    assert view.index_type == "ivfpq" and view.index_params == {"hnsw_m": 16} and view.rows == 10
    assert index_type_of({"config": {}}) is None
    with pytest.raises(StateError, match="no model recorded"):
        OutputManifest.from_dict({"config": {}}, tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"tool": "jina-migrate", "version": "0.2.0", "plan": {}, "config_fingerprint": "f", **m}))
    with pytest.raises(StateError, match=r"not finished \(state: running\)"):
        OutputManifest.load(tmp_path)
    m["state"] = "complete"
    (tmp_path / "manifest.json").write_text(json.dumps({"tool": "jina-migrate", "version": "0.2.0", "plan": {}, "config_fingerprint": "f", **m}))
    with pytest.raises(StateError, match="not finished: index.faiss and id_map.parquet missing"):
        OutputManifest.load(tmp_path)


def test_a_real_hnsw_output_is_compared_exactly(tmp_path):
    """`run --index-type hnsw` (static stand-in) then the comparison side: exact, streamed, typed."""
    pytest.importorskip("static_model")
    from reliability_util import cli_inproc

    from migrate.report.build import side_from_output

    docs = [{"id": f"d{i}", "text": f"note {i} about {w}"} for i, w in
            enumerate(["solar", "heart", "lava", "bees", "rates", "gravity", "vaccines", "ice", "models", "coffee"] * 30)]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(x) + "\n" for x in docs))
    rc, _, err = cli_inproc("run", "--docs", tmp_path / "docs.jsonl", "--out", tmp_path / "out", "--model",
                            "local:standin:static", "--index-type", "hnsw", "--hnsw-m", "8", "--yes")
    assert rc == 0, err
    side = side_from_output(tmp_path / "out", ann=True)
    assert not side.docs.index.exact and "HNSW" in side.docs.index.faiss_type
    q = side.encode_queries(["solar power", "coffee and caffeine", "glacier ice"])
    t = pq.read_table(tmp_path / "out" / "embeddings.parquet")
    ref = VectorStore("ref", t.column("id").to_pylist(), np.stack(t.column("vector").to_numpy(zero_copy_only=False)))
    got, want = side.docs.search(q, 25), ref.search(q, 25)
    assert [side.docs.ids_at(r) for r in got.doc_index] == [ref.ids_at(r) for r in want.doc_index]
    desc = side.final_description()
    assert desc.index_type == "hnsw" and "streamed pass over embeddings.parquet" in desc.search
    assert desc.stand_in == "static" and desc.doc_task == "text-matching" and desc.dimensions == 64


def test_comparing_a_large_output_does_not_load_its_vectors(tmp_path):
    """Flat search, ids and a two-size Matryoshka sweep on outputs of 30,000 and 120,000 x 384
    float32 vectors (46 and 184 MB): the extra anonymous memory the larger one needs is a small
    fraction of its extra vectors (the flat index is memory-mapped, the sweep streams
    embeddings.parquet row group by row group)."""
    d = 384
    rng = np.random.default_rng(5)
    q = _unit(rng.standard_normal((20, d), dtype=np.float32))
    np.save(tmp_path / "q.npy", q)
    results = {}
    for n in (30_000, 120_000):
        vectors = _unit(rng.standard_normal((n, d), dtype=np.float32))
        write_output(tmp_path / f"out{n}", vectors, [f"doc-{i}" for i in range(n)],
                     np.arange(n, dtype=np.int64) * 2 + 1, row_group=8192)
        expect = np.argsort(-(q @ vectors.T), axis=1)[:, :10]
        del vectors
        res = search_in_child(tmp_path / f"out{n}", tmp_path / "q.npy")
        assert res["exact"] and res["top"] == [[f"doc-{i}" for i in row] for row in expect]
        results[n] = res["grew"]
    extra_vectors = (120_000 - 30_000) * d * 4
    extra_memory = results[120_000] - results[30_000]
    # Loading the vectors would add at least all of them (100 %); what streaming adds is the allocator's
    # caching of row-group buffers, measured at 6-30 % on 2 loaded cores, hence the margin.
    assert extra_memory < 0.4 * extra_vectors, (
        f"memory grew {extra_memory / 1e6:.0f} MB more for {extra_vectors / 1e6:.0f} MB more vectors; {results}")
