"""One verdict from the strongest evidence (migrate.report.verdict), and the gates that read it.

Evidence is computed for real (``stats.paired`` on per-query values whose direction is
known by construction; the known-item guard on hand-made vectors), then ``decide`` must
pick the strongest and word it as one of the four verdicts; gates ``verdict == worse``,
``knownitem == regression`` and ``judged.ndcg@10 < old`` are checked on a report made by
``engine.compare`` and serialised to JSON.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from migrate.errors import ConfigError, EmbeddingError, GateFailed
from migrate.report.data import Query
from migrate.report.engine import CompareConfig, compare
from migrate.report.evidence import BETTER, NO_DIFFERENCE, NO_EVIDENCE, NO_REGRESSION, WORSE
from migrate.report.gates import evaluate_gates, parse_gate, raise_if_failed
from migrate.report.judged import judge_pooled
from migrate.report.knownitem import GuardSide, KnownItem, KnownItemSample, guard_side, run_guard
from migrate.report.side import Side, VectorStore
from migrate.report.stats import paired
from migrate.report.verdict import decide

RNG = np.random.default_rng(3)
BASE = RNG.uniform(0.2, 0.8, 80)


def stats_for(shift: float, noise: float = 0.05):
    """Per-query values of new = old + shift + noise: the direction is known by construction."""
    return paired(BASE, np.clip(BASE + shift + RNG.normal(0, noise, BASE.size), 0, 1))


def guard(regression: bool, skipped: bool = False):
    n = 40
    rng = np.random.default_rng(1)
    good = rng.normal(size=(n, 8)).astype(np.float32)
    table = {f"q{i}": good[i] for i in range(n)} | {f"r{i}": good[i] + 0.05 * rng.normal(size=8) for i in range(n)}
    ids = [f"d{i}" for i in range(n)]

    def enc(texts):
        return np.stack([table[t] for t in texts]).astype(np.float32)

    def lost(texts):
        return np.stack([np.random.default_rng(abs(hash(t)) % 2**32).normal(size=8) for t in texts]).astype(np.float32)

    sample = KnownItemSample([KnownItem(ids[i], f"q{i}", f"r{i}", "sentence") for i in range(n)], 0, n, "auto", n)
    old = GuardSide("old", VectorStore("o", ids, good), enc, enc)
    if skipped:
        return run_guard(sample, old, guard_side("new", None, None, query_task="none", doc_task="none",
                                                 why_not="new: no model"))
    new = (GuardSide("new", VectorStore("n", ids, rng.normal(size=(n, 8)).astype(np.float32)), lost, lost)
           if regression else GuardSide("new", VectorStore("n", ids, good), enc, enc))
    return run_guard(sample, old, new)


def test_qrels_decide_by_the_paired_test():
    assert decide(qrels=stats_for(+0.1)).verdict == BETTER
    assert decide(qrels=stats_for(-0.1)).verdict == WORSE
    v = decide(qrels=stats_for(0.0, noise=0.02))
    assert v.verdict == NO_DIFFERENCE and v.more and v.evidence.startswith("human relevance judgments")
    assert v.sentence.startswith("no reliable difference: human relevance judgments (qrels), nDCG@10")
    assert "Known limit:" in v.sentence and "80 queries" in v.sentence


def test_the_strongest_evidence_wins_and_weaker_disagreement_is_a_warning():
    regression = guard(regression=True)
    assert regression.code == "regression"
    v = decide(qrels=stats_for(+0.1), knownitem=regression)
    assert v.verdict == BETTER and v.evidence == "human relevance judgments (qrels)"
    assert any("known-item guard fired" in w for w in v.warnings)
    alone = decide(knownitem=regression)
    assert alone.verdict == WORSE and alone.evidence.startswith("known-item guard") and alone.code == "worse"
    fine = decide(knownitem=guard(regression=False))
    assert fine.verdict == NO_REGRESSION == "no regression detected (not evidence of improvement)"
    assert fine.code == "no_regression" and "cannot show that one good model is better" in fine.sentence
    skipped = decide(knownitem=guard(regression=False, skipped=True))
    assert skipped.verdict == NO_EVIDENCE and "new: no model" in skipped.sentence
    assert decide().verdict == NO_EVIDENCE


class Table:
    """A judge answering grades from a table (the test's stand-in for a model)."""

    spec, listwise, thresholds, tokens = "test:table", False, None, 0

    def __init__(self, grades):
        self.grades = grades

    def identity(self):
        return "table"

    def describe(self):
        return "a table"

    def families(self):
        return {"jina"}

    def grade(self, s):
        return int(s)

    def score(self, requests):
        return [[float(self.grades[d]) for d in docs] for _, docs in requests]

    def close(self):
        pass


def small_report(tmp_path):
    """A real comparison (engine.compare) of two tiny in-memory sides; new finds the relevant document later."""
    ids = ["a", "b", "c"]
    vec = np.eye(3, dtype=np.float32)
    qv = {"q1": np.array([1, 0.5, 0], np.float32), "q2": np.array([0, 1, 0.5], np.float32)}

    def old_enc(texts):
        return np.stack([qv[t] for t in texts])

    def new_enc(texts):
        return np.stack([qv[t][[1, 0, 2]] for t in texts])  # new swaps a and b

    old = Side.from_vectors("old", ids, vec, old_enc)
    new = Side.from_vectors("new", ids, vec, new_enc)
    queries = [Query("q1", "q1"), Query("q2", "q2")]
    rep = compare(old, new, queries, None, CompareConfig(k=2, depth=3), doc_text={i: f"text {i}" for i in ids})
    lists = {"old": {"q1": ["a", "b"], "q2": ["a", "c"]}, "new": {"q1": ["b", "a"], "q2": ["c", "b"]}}
    pool = judge_pooled(queries, lists, {i: f"text {i}" for i in ids}, Table({"text a": 3, "text b": 0, "text c": 1}),
                        k=2, side_models={"old": ["jina-embeddings-v2-base-en"], "new": ["jina-embeddings-v3"]})
    return rep, pool


def test_gates_read_the_verdict_the_guard_and_the_judge(tmp_path):
    rep, pool = small_report(tmp_path)
    rep.judged = pool.result
    rep.knownitem = guard(regression=True)
    rep.verdict = decide(judged=rep.judged, knownitem=rep.knownitem)
    assert rep.verdict.evidence.startswith("judge test:table") and any("jina" in w for w in rep.verdict.warnings)
    old_ndcg, new_ndcg = rep.judged.means["old"]["ndcg@10"], rep.judged.means["new"]["ndcg@10"]
    assert new_ndcg < old_ndcg  # new puts the grade-3 document second (q1) or drops it (q2)
    results = evaluate_gates(rep, ["judged.ndcg@10 < old", "knownitem == regression", f"verdict == {rep.verdict.code}",
                                   "verdict != worse", "judged.mrr@10 < 0"])
    assert [r.failed for r in results] == [True, True, True, rep.verdict.code != "worse", False]
    assert results[1].message == "FAILED: knownitem is regression (== regression)"
    with pytest.raises(GateFailed) as e:
        raise_if_failed(results)
    assert e.value.exit_code == 7 and "knownitem == regression" in str(e.value)
    d = rep.to_dict()
    text = json.dumps(d)
    assert d["verdict"]["code"] == rep.verdict.code and d["knownitem"]["code"] == "regression"
    assert d["judged"]["judge"] == "test:table" and d["ppi"] is None and "gates" in d
    evidence = json.dumps([d["judged"], d["knownitem"], d["verdict"]])
    assert "text a" not in evidence and "q1" in evidence  # ids only: no document text in the evidence sections
    assert json.loads(text)["verdict"]["verdict"] == rep.verdict.verdict


def test_gates_without_their_evidence_are_errors_never_silent_passes(tmp_path):
    rep, _ = small_report(tmp_path)
    with pytest.raises(ConfigError, match="needs a judge"):
        evaluate_gates(rep, ["judged.ndcg@10 < old"])
    with pytest.raises(ConfigError, match="no verdict"):
        evaluate_gates(rep, ["verdict == worse"])
    with pytest.raises(ConfigError, match="did not run"):
        evaluate_gates(rep, ["knownitem == regression"])
    rep.knownitem = guard(regression=False, skipped=True)
    with pytest.raises(ConfigError, match="skipped"):
        evaluate_gates(rep, ["knownitem == regression"])
    for bad, words in (("verdict < worse", "== or !="), ("verdict == great", "not a state of verdict"),
                       ("knownitem == better", "not a state of knownitem")):
        with pytest.raises(ConfigError, match=words):
            parse_gate(bad, {"old", "new"})


class Short(Table):
    """A judge that drops one score, or answers NaN (a broken model or server)."""

    def __init__(self, grades, mode):
        super().__init__(grades)
        self.mode = mode

    def score(self, requests):
        out = super().score(requests)
        return [o[:-1] for o in out] if self.mode == "short" else [[float("nan")] * len(o) for o in out]


def test_a_judge_with_wrong_counts_or_nan_is_one_clear_error():
    queries = [Query("q1", "q1")]
    lists = {"old": {"q1": ["a", "b"]}, "new": {"q1": ["b", "c"]}}
    texts = {i: f"text {i}" for i in "abc"}
    grades = {"text a": 3, "text b": 0, "text c": 1}
    with pytest.raises(EmbeddingError, match="returned 2 scores for the 3 documents of query 'q1'"):
        judge_pooled(queries, lists, texts, Short(grades, "short"), k=2)
    with pytest.raises(EmbeddingError, match="not a number"):
        judge_pooled(queries, lists, texts, Short(grades, "nan"), k=2)
