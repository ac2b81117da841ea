"""Human labels on a sample of pooled pairs + a judge on all of them = a bias-corrected difference.

What: ``ppi_difference`` estimates how much better new ranks than old by prediction-powered
inference (Angelopoulos et al. 2023, "Prediction-powered inference"; ARES, Saad-Falcon et al.,
arXiv 2311.09476; the power-tuned form of PPI++, Angelopoulos, Duchi & Zrnic 2023): the
judge's labels on every pooled pair give a precise but possibly biased estimate, the human
labels on a random sample of the pairs measure that bias, and their combination is unbiased
with a valid interval, narrower than the labels alone give.

The measure must be *linear* in the labels for the correction to be unbiased, so it is the
scaled DCG@k difference: per query, sum over pooled documents of ``w(d) · label(d)``, with
``w(d) = (1/log2(1 + rank_new(d)) - 1/log2(1 + rank_old(d))) / Z`` (a term is 0 when the
document is outside that side's top-k) and ``Z`` the DCG of k grade-3 results, so it lies in
[-1, 1]. (nDCG divides by the ideal DCG, which depends on the labels: not linear.)

The estimator, per query q (``S_q``: its labelled pairs; ``π``: the probability a pooled
pair was labelled, n_labels / n_pairs, the labels being a uniform random sample as
``jina-migrate label`` draws them; skipped pairs are assumed skipped at random)::

    f_q = Σ_{d ∈ pool_q} w·judge(d)                   the judge's difference
    a_q = Σ_{d ∈ S_q} w·human(d) / π                  the labels' difference (Horvitz-Thompson)
    b_q = Σ_{d ∈ S_q} w·judge(d) / π                  the judge on the labelled pairs
    c_q = a_q + λ (f_q - b_q)                         unbiased for every λ

and the estimate is the mean of ``c_q`` with a Student-t interval (Q - 1 degrees of freedom;
PPI's normal interval is too narrow with few queries) from their spread over the queries
(query sampling and label sampling both inside it). λ minimises that spread, clipped
to [0, 1] (0: the labels alone; 1: classic PPI).

"How many more labels would decide it": the interval's variance splits into the part from
the queries (more labels cannot shrink it) and the part from which pairs were labelled,
which scales with (1 - π)/π; ``labels_needed`` is the smallest sample whose interval would
exclude 0 if the estimate stayed where it is (the usual assumption of a power analysis).
When the query part alone is too wide, no number of labels on these queries decides: more
queries are needed, and ``queries_needed`` says about how many.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy import stats as sps

from migrate.errors import InputError
from migrate.report.evidence import PPIResult
from migrate.report.judged import JudgedPool

GRADES = (0, 1, 2, 3)
METRIC = "sdcg@10"


def _weights(top_old: list[str], top_new: list[str], k: int) -> dict[str, float]:
    z = 3.0 * sum(1.0 / math.log2(i + 1) for i in range(1, k + 1))
    w: dict[str, float] = {}
    for sign, lst in ((-1.0, top_old), (1.0, top_new)):
        for r, d in enumerate(lst[:k], 1):
            w[d] = w.get(d, 0.0) + sign / math.log2(r + 1) / z
    return w


def check_labels(labels: Mapping[tuple[str, str], int], pool: JudgedPool) -> None:
    """Every label is 0-3 and on a pooled pair (``InputError`` naming the first that is not)."""
    if not labels:
        raise InputError("no human labels to combine with the judge",
                         hint="label a sample of pooled pairs first (jina-migrate label)")
    for (qid, did), y in labels.items():
        if isinstance(y, bool) or not isinstance(y, (int, np.integer)) or int(y) not in GRADES:
            raise InputError(f"label {y!r} for query {qid!r}, document {did!r} is not 0, 1, 2 or 3",
                             hint="grades: 0 not relevant, 1 related, 2 partly answers, 3 answers")
        if did not in pool.grades.get(qid, {}):
            raise InputError(f"the label for query {qid!r}, document {did!r} is not on a pooled pair of this "
                             f"comparison", hint="label the pairs this comparison pooled (same queries, same sides)")


def ppi_difference(pool: JudgedPool, labels: Mapping[tuple[str, str], int], *, old: str = "old", new: str = "new",
                   level: float = 0.95) -> PPIResult:
    """The bias-corrected scaled-DCG@k difference new - old (see the module docstring)."""
    check_labels(labels, pool)
    qids = list(pool.grades)
    if len(qids) < 2:
        raise InputError(f"{len(qids)} query: an interval needs at least two queries", hint="add queries")
    k = pool.result.k
    n_pairs = sum(len(v) for v in pool.grades.values())
    n_labels = len(labels)
    pi = n_labels / n_pairs
    f, a, b, var_part_a, var_part_ab = (np.zeros(len(qids)) for _ in range(5))
    cross = np.zeros(len(qids))
    for i, q in enumerate(qids):
        w = _weights(pool.lists[old][q], pool.lists[new][q], k)
        g = pool.grades[q]
        f[i] = sum(w.get(d, 0.0) * g[d] for d in g)
        for d in g:
            if (q, d) in labels:
                y, wd = float(labels[(q, d)]), w.get(d, 0.0)
                a[i] += wd * y / pi
                b[i] += wd * g[d] / pi
                # label-sampling variance terms of a_q - λ b_q, Bernoulli(π) design, estimated on the sample
                scale = (1 - pi) / pi**2
                var_part_a[i] += scale * (wd * y) ** 2
                var_part_ab[i] += scale * (wd * g[d]) ** 2
                cross[i] += scale * (wd * y) * (wd * g[d])
    lam = _lambda(a, f - b)
    c = a + lam * (f - b)
    # Student's t with Q - 1 degrees of freedom: the normal interval of PPI is too narrow with few queries
    z = float(sps.t.ppf(0.5 + level / 2, df=len(qids) - 1))
    est, se = float(c.mean()), float(c.std(ddof=1) / math.sqrt(len(qids)))
    a_se = float(a.std(ddof=1) / math.sqrt(len(qids)))
    label_var = float((var_part_a.sum() - 2 * lam * cross.sum() + lam**2 * var_part_ab.sum()) / len(qids) ** 2)
    ci = (est - z * se, est + z * se)
    decided = ci[0] > 0 or ci[1] < 0
    plan_z = float(sps.norm.ppf(0.5 + level / 2))  # projections are for larger samples: the normal quantile
    needed, queries, advice = _more(est, se**2, max(0.0, label_var), pi, n_pairs, n_labels, len(qids), plan_z,
                                    decided)
    return PPIResult(metric=f"sdcg@{k}", level=level, n_queries=len(qids), n_pairs=n_pairs, n_labels=n_labels,
                     inclusion=pi, estimate=est, ci=ci, lam=lam, judge_only=float(f.mean()),
                     labels_only=float(a.mean()), labels_only_ci=(float(a.mean()) - z * a_se, float(a.mean()) + z * a_se),
                     decided=decided, labels_needed=needed, queries_needed=queries, advice=advice)


def _lambda(a: np.ndarray, r: np.ndarray) -> float:
    """The weight of the judge that minimises the variance of ``a + λ r``, clipped to [0, 1]."""
    vr = float(np.var(r, ddof=1)) if r.size > 1 else 0.0
    if vr <= 1e-18:
        return 1.0  # the judge's term is constant (every pair labelled): λ changes nothing
    cov = float(np.cov(a, r, ddof=1)[0, 1])
    return float(min(1.0, max(0.0, -cov / vr)))


def _more(est: float, var_total: float, label_var: float, pi: float, n_pairs: int, n_labels: int, n_queries: int,
          z: float, decided: bool) -> tuple[int | None, int | None, str]:
    """(more labels needed, queries needed, advice) to make the interval exclude 0 (see the module docstring)."""
    if decided:
        return 0, None, "decided: the interval excludes 0"
    query_var = max(0.0, var_total - label_var)
    if est == 0.0 or z * z * query_var >= est * est:
        queries = None if est == 0.0 else math.ceil(n_queries * z * z * var_total / (est * est))
        what = (f"about {queries:,} queries labelled like these" if queries else
                "more queries (the estimate is 0: no number can be given)")
        return None, queries, (f"more labels on these {n_queries} queries cannot decide it (the difference is "
                               f"smaller than the spread between queries): {what}")
    room = est * est / (z * z) - query_var  # what the label part may still be
    rho_now = (1 - pi) / pi
    rho = rho_now * room / label_var if label_var > 0 else float("inf")
    pi_needed = 1.0 / (1.0 + rho)
    needed = max(0, math.ceil(pi_needed * n_pairs) - n_labels)
    return needed, None, (f"about {needed:,} more labelled pairs ({n_labels + needed:,} of {n_pairs:,}) would make "
                          f"the interval exclude 0, if the estimate stays at {est:+.4f}")
