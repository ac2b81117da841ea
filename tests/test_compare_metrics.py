"""compare's numbers: metrics against pytrec_eval on the written run files, RBO, stats, chunked search."""

from __future__ import annotations

import math

import numpy as np
import pytest
import pytrec_eval
from hypothesis import given, settings
from hypothesis import strategies as st

from migrate.report import metrics as M
from migrate.report.data import Query
from migrate.report.engine import CompareConfig, compare
from migrate.report.overlap import overlap_at_k, rank_shift, rbo
from migrate.report.schema import SideDescription
from migrate.report.search import exact_search
from migrate.report.side import Side
from migrate.report.stats import paired


def _synthetic(seed: int = 0, n_docs: int = 400, n_q: int = 60, dim: int = 32):
    """Two embedding spaces of the same documents: 'new' is the clean space, 'old' a noisy copy."""
    rng = np.random.default_rng(seed)
    docs = rng.normal(size=(n_docs, dim)).astype(np.float32)
    qv = rng.normal(size=(n_q, dim)).astype(np.float32)
    ids = [f"doc{i:04d}" for i in range(n_docs)]
    queries = [Query(f"q{i}", f"query number {i}") for i in range(n_q)]
    by_text = {q.text: v for q, v in zip(queries, qv)}
    old_docs = docs + 0.8 * rng.normal(size=docs.shape).astype(np.float32)
    # graded judgments: the 3 truly nearest docs, with grades 2,1,1, plus one random doc per query
    qrels: dict[str, dict[str, int]] = {}
    sims = (qv / np.linalg.norm(qv, axis=1, keepdims=True)) @ (docs / np.linalg.norm(docs, axis=1, keepdims=True)).T
    for i, q in enumerate(queries[:-5]):  # the last 5 queries are unjudged
        top = np.argsort(-sims[i])[:3]
        qrels[q.id] = {ids[top[0]]: 2, ids[top[1]]: 1, ids[top[2]]: 1, ids[int(rng.integers(n_docs))]: 1}
    qrels[queries[0].id][ids[-1]] = 0  # an explicit non-relevant judgment
    old = Side.from_vectors("old", ids, old_docs, lambda t: np.stack([by_text[x] for x in t]), SideDescription(model="noisy"))
    new = Side.from_vectors("new", ids, docs, lambda t: np.stack([by_text[x] for x in t]), SideDescription(model="clean"))
    return old, new, queries, qrels


def test_metrics_equal_pytrec_eval_on_written_run_files(tmp_path):
    old, new, queries, qrels = _synthetic()
    report = compare(old, new, queries, qrels, CompareConfig(), run_dir=tmp_path)
    with open(tmp_path / "qrels.txt") as fh:
        file_qrels = pytrec_eval.parse_qrel(fh)
    assert file_qrels == qrels
    measures = {"ndcg_cut_10", "recall_10", "recall_100", "map_cut_100"}
    for side in ("old", "new"):
        with open(tmp_path / f"{side}.run") as fh:
            run = pytrec_eval.parse_run(fh)
        assert len(run) == len(queries) and all(len(v) == 100 for v in run.values())
        ref = pytrec_eval.RelevanceEvaluator(file_qrels, measures).evaluate(run)
        # MRR@10: recip_rank of the run cut at rank 10 (trec_eval order: score desc, doc id desc)
        cut10 = {q: dict(sorted(d.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)[:10]) for q, d in run.items()}
        ref_rr = pytrec_eval.RelevanceEvaluator(file_qrels, {"recip_rank"}).evaluate(cut10)
        per_q = {r.qid: r.metrics[side] for r in report.per_query if r.metrics is not None}
        assert set(per_q) == set(qrels)
        for qid in qrels:
            assert per_q[qid]["ndcg@10"] == pytest.approx(ref[qid]["ndcg_cut_10"], abs=1e-6)
            assert per_q[qid]["recall@10"] == pytest.approx(ref[qid]["recall_10"], abs=1e-6)
            assert per_q[qid]["recall@100"] == pytest.approx(ref[qid]["recall_100"], abs=1e-6)
            assert per_q[qid]["map@100"] == pytest.approx(ref[qid]["map_cut_100"], abs=1e-6)
            assert per_q[qid]["mrr@10"] == pytest.approx(ref_rr[qid]["recip_rank"], abs=1e-6)
        means = report.metrics.means[side]
        assert means["ndcg@10"] == pytest.approx(np.mean([ref[q]["ndcg_cut_10"] for q in qrels]), abs=1e-6)
        assert means["map@100"] == pytest.approx(np.mean([ref[q]["map_cut_100"] for q in qrels]), abs=1e-6)
    # the clean space must actually win on its own nearest-neighbour judgments
    s = report.metrics.headline
    assert s.new_mean > s.old_mean and s.p_randomization < 0.05
    assert s.wins + s.ties + s.losses == len(qrels)


def test_mrr_is_cut_at_10_and_ndcg_matches_hand_computation():
    qrels = {"q": {"rel": 1}}
    run = {"q": {f"d{i:02d}": 1.0 - i * 0.01 for i in range(20)}}
    run["q"]["rel"] = 1.0 - 10.5 * 0.01  # rank 12 (11 docs above it)
    v = M.evaluate(run, qrels)["q"]
    assert v["mrr@10"] == 0.0 and v["recall@10"] == 0.0 and v["recall@100"] == 1.0
    run["q"]["rel"] = 1.0 - 2.5 * 0.01  # rank 4
    v = M.evaluate(run, qrels)["q"]
    assert v["mrr@10"] == pytest.approx(0.25)
    assert v["ndcg@10"] == pytest.approx(1 / math.log2(5))  # one relevant doc at rank 4
    # a judged query with no results scores 0 everywhere
    assert M.evaluate({}, qrels)["q"] == {m: 0.0 for m in M.METRICS}


def test_rbo_edge_values_and_hand_example():
    a = list("abcdefgh")
    assert rbo(a, a) == pytest.approx(1.0)
    assert rbo(a, list("ijklmnop")) == 0.0
    # hand computation, p=0.5, depth 3: A=[a,b,c], B=[b,a,d]; X1=0, X2=2, X3=2
    p = 0.5
    expect = (2 / 3) * p**3 + ((1 - p) / p) * (0 / 1 * p + 2 / 2 * p**2 + 2 / 3 * p**3)
    assert rbo(list("abc"), list("bad"), p=p) == pytest.approx(expect)
    assert overlap_at_k(list("abc"), list("bad"), 3) == pytest.approx(2 / 3)


@settings(max_examples=60, deadline=None)
@given(st.permutations(list(range(12))), st.permutations(list(range(12))), st.floats(0.5, 0.98))
def test_rbo_matches_direct_definition(x, y, p):
    a, b = [str(i) for i in x[:8]], [str(i) for i in y[:8]]
    k = 8
    direct = sum((len(set(a[:d]) & set(b[:d])) / d) * p**d for d in range(1, k + 1))
    xk = len(set(a) & set(b))
    expect = (xk / k) * p**k + ((1 - p) / p) * direct
    got = rbo(a, b, p=p)
    assert got == pytest.approx(expect) and 0.0 <= got <= 1.0 + 1e-12
    assert got == pytest.approx(rbo(b, a, p=p))


def test_rank_shift():
    s = rank_shift(list("abcd"), list("bacxyz"), 4)
    assert s.dropped == 1 and not s.top1_kept  # d left the top 4
    assert s.mean_abs_shift == pytest.approx((1 + 1 + 0) / 3)


def test_paired_stats():
    rng = np.random.default_rng(1)
    old = rng.uniform(size=200)
    same = paired(old, old.copy())
    assert same.p_ttest == 1.0 and same.ties == 200 and same.delta == 0.0
    better = paired(old, np.clip(old + 0.1 + rng.normal(0, 0.05, 200), 0, None))
    assert better.p_ttest < 1e-6 and better.p_randomization < 0.001
    assert better.delta_ci[0] < better.delta < better.delta_ci[1] and better.delta_ci[0] > 0
    assert better.old_ci[0] < better.old_mean < better.old_ci[1]
    assert better.wins > 150


def test_chunked_side_scores_documents_by_best_chunk():
    rng = np.random.default_rng(2)
    n_docs, dim = 50, 16
    chunks = rng.normal(size=(170, dim)).astype(np.float32)
    owner = np.r_[np.arange(n_docs), rng.integers(0, n_docs, 120)]  # every doc has >= 1 chunk
    perm = rng.permutation(len(owner))
    chunks, owner = chunks[perm], owner[perm]
    q = rng.normal(size=(7, dim)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    side = Side.from_vectors("chunked", [f"d{i}" for i in range(n_docs)], chunks, lambda t: q[: len(t)], vector_doc=owner)
    r = exact_search(side.docs.vectors, q, 10, side.docs.vector_doc, n_docs)
    unit = chunks / np.linalg.norm(chunks, axis=1, keepdims=True)
    for qi in range(len(q)):
        best = np.full(n_docs, -np.inf)
        np.maximum.at(best, owner, unit @ q[qi])
        expect = np.argsort(-best, kind="stable")[:10]
        assert list(r.doc_index[qi]) == list(expect)
        assert np.allclose(r.scores[qi], best[expect], atol=1e-5)


def test_matryoshka_sweep_full_row_equals_main_run():
    old, new, queries, qrels = _synthetic(seed=3)
    rep = compare(old, new, queries, qrels, CompareConfig(dims=[16, 8, 64]))
    rows = rep.matryoshka.rows
    full = next(r for r in rows if r.full)
    assert full.dims == 32 and full.metrics["ndcg@10"] == pytest.approx(rep.metrics.means["new"]["ndcg@10"])
    assert full.overlap_vs_full == 1.0 and full.rbo_vs_full == pytest.approx(1.0)
    r8 = next(r for r in rows if r.dims == 8)
    assert r8.bytes_float32 == 32 and r8.bytes_binary == 1 and r8.overlap_vs_full < 1.0
    assert r8.metrics["ndcg@10"] < full.metrics["ndcg@10"]
    assert rep.matryoshka.skipped == [64] and "larger" in rep.matryoshka.skipped_reason
    flat = rep.to_dict()["matryoshka"]  # the JSON keeps version 1's layout
    assert flat[0]["ndcg@10"] == full.metrics["ndcg@10"] and flat[-1]["dims"] == [64] and "skipped" in flat[-1]


def test_query_dimension_mismatch_is_a_config_error():
    from migrate.errors import ConfigError

    old, new, queries, _ = _synthetic()
    bad = Side("new", new.docs, lambda t: np.ones((len(t), 7), np.float32))
    with pytest.raises(ConfigError, match="7 dims"):
        compare(old, bad, queries)
