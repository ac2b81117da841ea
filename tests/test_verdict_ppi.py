"""Prediction-powered inference (migrate.report.ppi): human labels correct a biased judge.

A small pool whose answer is worked out by hand (every pair labelled: the estimate is the
human difference exactly), and a seeded simulation where the judge over-rates the new side by
construction: the judge alone is biased, the PPI interval covers the human truth, and it is
narrower than the labels alone give.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from migrate.errors import InputError
from migrate.report.data import Query
from migrate.report.judged import judge_pooled
from migrate.report.ppi import ppi_difference


class LookupJudge:
    """A judge that answers grades from a table (the test's stand-in for a model)."""

    spec, listwise, thresholds, tokens = "test:lookup", False, None, 0

    def __init__(self, grades: dict[tuple[str, str], int]) -> None:
        self.grades = grades
        self.by_text: dict[tuple[str, str], int] = {}

    def identity(self) -> str:
        return "lookup"

    def describe(self) -> str:
        return "a table of grades"

    def families(self) -> set[str]:
        return set()

    def grade(self, score: float) -> int:
        return int(round(score))

    def score(self, requests):
        return [[float(self.by_text[(q, d)]) for d in docs] for q, docs in requests]

    def close(self) -> None:
        pass


def pooled(lists_old, lists_new, judge_grades, k):
    queries = [Query(q, f"query {q}") for q in lists_old]
    texts = {d: f"text of {d}" for q in lists_old for d in lists_old[q] + lists_new[q]}
    judge = LookupJudge(judge_grades)
    judge.by_text = {(f"query {q}", f"text of {d}"): g for (q, d), g in judge_grades.items()}
    return judge_pooled(queries, {"old": lists_old, "new": lists_new}, texts, judge, k=k)


def test_every_pair_labelled_gives_the_human_difference_worked_out_by_hand():
    old = {"q1": ["a", "b"], "q2": ["c", "d"]}
    new = {"q1": ["b", "a"], "q2": ["d", "c"]}
    judge = {("q1", "a"): 2, ("q1", "b"): 1, ("q2", "c"): 1, ("q2", "d"): 1}
    human = {("q1", "a"): 3, ("q1", "b"): 0, ("q2", "c"): 1, ("q2", "d"): 2}
    res = ppi_difference(pooled(old, new, judge, 2), human)
    l3 = math.log2(3)
    z = 3 * (1 + 1 / l3)  # the DCG of two grade-3 results
    # q1: new ranks the grade-3 document second (worse); q2: new puts the grade-2 document first (better)
    truth = (((0 + 3 / l3) - (3 + 0 / l3)) + ((2 + 1 / l3) - (1 + 2 / l3))) / 2 / z
    judge_only = (((1 + 2 / l3) - (2 + 1 / l3)) + ((1 + 1 / l3) - (1 + 1 / l3))) / 2 / z
    assert res.estimate == pytest.approx(truth, abs=1e-12) and res.labels_only == pytest.approx(truth, abs=1e-12)
    assert res.judge_only == pytest.approx(judge_only, abs=1e-12)
    assert (res.n_queries, res.n_pairs, res.n_labels, res.inclusion) == (2, 4, 4, 1.0)
    assert res.metric == "sdcg@2" and not res.decided
    # every pair is labelled: more labels cannot help, only more queries
    assert res.labels_needed is None and res.queries_needed > 2 and "cannot decide" in res.advice


def _population(n_queries: int, k: int, seed: int):
    """Pools where new ranks relevant documents a little better, and the judge over-rates new's documents."""
    rng = np.random.default_rng(seed)
    old, new, human, judge = {}, {}, {}, {}
    for qi in range(n_queries):
        q = f"q{qi}"
        docs = [f"{q}-d{j}" for j in range(2 * k)]
        rel = {d: int(rng.choice(4, p=[0.5, 0.25, 0.15, 0.1])) for d in docs}
        old[q] = list(rng.permutation(docs))[:k]
        noisy = {d: rel[d] + rng.normal(0, 1.5) for d in docs}  # new sorts by a noisy view of relevance
        new[q] = sorted(docs, key=lambda d: -noisy[d])[:k]
        for d in sorted(set(old[q]) | set(new[q])):  # sorted: the same draws whatever the hash seed
            human[(q, d)] = rel[d]
            bump = 1 if d in new[q] and rng.random() < 0.5 else 0  # the judge's bias towards new
            judge[(q, d)] = int(min(3, max(0, rel[d] + bump + (rng.random() < 0.15) * rng.choice([-1, 1]))))
    return old, new, human, judge


def test_ppi_corrects_a_biased_judge_and_its_interval_covers_the_truth():
    old, new, human, judge = _population(150, 5, seed=11)
    pool = pooled(old, new, judge, 5)
    truth = ppi_difference(pool, human).estimate  # every pair labelled: the human difference itself
    pairs = list(human)
    covered, estimates, widths, label_widths = 0, [], [], []
    for s in range(150):
        rng = np.random.default_rng(1000 + s)
        pick = rng.choice(len(pairs), size=300, replace=False)
        r = ppi_difference(pool, {pairs[i]: human[pairs[i]] for i in pick})
        covered += r.ci[0] <= truth <= r.ci[1]
        estimates.append(r.estimate)
        widths.append(r.ci[1] - r.ci[0])
        label_widths.append(r.labels_only_ci[1] - r.labels_only_ci[0])
    assert r.judge_only - truth > 0.02  # the judge alone is biased towards new, by construction
    assert covered / 150 >= 0.9  # a valid 95 % interval (conservative: query sampling is inside it too)
    # λ is estimated from the same labels, so the estimate is unbiased only asymptotically: what remains of
    # the judge's bias over 150 label samples is under a tenth of it (seeds 11-15: 0.2-4 %)
    assert abs(np.mean(estimates) - truth) < 0.1 * (r.judge_only - truth)
    assert np.mean(widths) < np.mean(label_widths)  # the judge makes the interval narrower than labels alone


def test_more_labels_narrow_the_interval_and_the_advice_says_so():
    old, new, human, judge = _population(200, 5, seed=5)
    pool = pooled(old, new, judge, 5)
    pairs = list(human)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(pairs))
    few = ppi_difference(pool, {pairs[i]: human[pairs[i]] for i in order[:120]})
    many = ppi_difference(pool, {pairs[i]: human[pairs[i]] for i in order[:1200]})
    assert many.ci[1] - many.ci[0] < few.ci[1] - few.ci[0]
    for r in (few, many):
        if r.decided:
            assert r.labels_needed == 0 and r.advice.startswith("decided")
        elif r.labels_needed is not None:
            assert r.labels_needed > 0 and f"{r.labels_needed:,} more labelled pairs" in r.advice
        else:
            assert r.queries_needed and "cannot decide" in r.advice


def test_bad_labels_are_one_clear_error():
    old, new = {"q1": ["a", "b"], "q2": ["c"]}, {"q1": ["b"], "q2": ["c"]}
    judge = {("q1", "a"): 1, ("q1", "b"): 2, ("q2", "c"): 0}
    pool = pooled(old, new, judge, 2)
    for labels, words in (({}, "no human labels"), ({("q1", "a"): 4}, "is not 0, 1, 2 or 3"),
                          ({("q1", "a"): True}, "is not 0, 1, 2 or 3"), ({("q1", "a"): "2"}, "is not 0, 1, 2 or 3"),
                          ({("q1", "zz"): 1}, "not on a pooled pair"), ({("q9", "a"): 1}, "not on a pooled pair")):
        with pytest.raises(InputError, match=words):
            ppi_difference(pool, labels)
    one = pooled({"q1": ["a"]}, {"q1": ["a"]}, {("q1", "a"): 1}, 1)
    with pytest.raises(InputError, match="at least two queries"):
        ppi_difference(one, {("q1", "a"): 1})
