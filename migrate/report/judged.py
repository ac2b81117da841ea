"""Judged evaluation of real queries: a judge grades both sides' pooled top-k, then nDCG@10 / MRR@10.

What: ``judge_pooled`` pools each query's top-``k`` of old and new (~20 pairs per query at
k = 10 when the sides differ), scores every pair once (``Judge.score``; pairs already in the
``ScoreCache`` are not sent again, and each batch of queries is cached as soon as it is
scored, so an interrupted run resumes), turns scores into graded labels (``Judge.grade``),
and evaluates each side against those labels with pytrec_eval (``metrics.evaluate``):
nDCG@10 and MRR@10 per query, paired tests and intervals new vs old (``stats.paired``).
Every document either side returned in its top-k is judged, so the judged metrics are
complete to depth k: no unjudged document counts as irrelevant.

Why pooled and paired: the judge sees exactly what each side shows a user, and both sides are
scored against the same labels. What it cannot fix: the judge is a model, and models favour
their own family (``judges.family_warnings``); the report names the judge and warns.

Cache keys are the judge's identity + query text + document text (+ for a listwise judge,
the whole list it was scored in): content, not ids, so a reordered corpus or another
source holding the same texts reuses them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from migrate.errors import EmbeddingError, InputError
from migrate.report import metrics as M
from migrate.report.data import Query
from migrate.report.evidence import JudgedResult
from migrate.report.judges import Judge, family_warnings
from migrate.report.scorecache import ScoreCache, content_key
from migrate.report.stats import paired

JUDGED_METRICS = ("ndcg@10", "mrr@10")
#: Queries sent to the judge (and cached) per step.
BATCH_QUERIES = 16


@dataclass
class JudgedPool:
    """The labels behind a ``JudgedResult`` (for prediction-powered inference): not for the report."""

    result: JudgedResult
    pools: dict[str, list[str]]  # qid -> pooled doc ids (old's and new's top-k, interleaved)
    scores: dict[str, dict[str, float]]  # qid -> doc -> judge score
    grades: dict[str, dict[str, int]]  # qid -> doc -> judge grade
    lists: dict[str, dict[str, list[str]]]  # side -> qid -> its top-k


def pool_of(lists: Sequence[Sequence[str]], k: int) -> list[str]:
    """The union of each list's first ``k`` ids, interleaved rank by rank (a stable, fair order)."""
    out: dict[str, None] = {}
    for rank in range(k):
        for lst in lists:
            if rank < len(lst):
                out.setdefault(lst[rank], None)
    return list(out)


def _check_inputs(queries: Sequence[Query], lists: Mapping[str, Mapping[str, Sequence[str]]], old: str,
                  new: str) -> None:
    if not queries:
        raise InputError("no queries to judge", hint="pass a query log with at least one query (--queries)")
    ids = [q.id for q in queries]
    if len(set(ids)) != len(ids):
        dup = next(i for i, c in Counter(ids).items() if c > 1)
        raise InputError(f"query id {dup!r} appears twice", hint="query ids must be unique")
    empty = next((q.id for q in queries if not q.text.strip()), None)
    if empty is not None:
        raise InputError(f"query {empty!r} has no text", hint="drop empty queries from the log")
    for side in (old, new):
        if side not in lists:
            raise InputError(f"no result lists for side {side!r}", hint=f"sides given: {', '.join(lists)}")
        missing = next((q for q in ids if q not in lists[side]), None)
        if missing is not None:
            raise InputError(f"side {side!r} has no results for query {missing!r}",
                             hint="search every query on both sides first")


def _texts_of(pool: list[str], doc_text: Mapping[str, str], qid: str) -> list[str]:
    out = []
    for d in pool:
        try:
            text = doc_text[d]
        except KeyError:
            text = None
        if not text or not str(text).strip():
            raise InputError(f"document {d!r} (a top result for query {qid!r}) has no text to show the judge",
                             hint="pass --docs with the documents' text, or use collections with a text field")
        out.append(str(text))
    return out


def judge_pooled(queries: Sequence[Query], lists: Mapping[str, Mapping[str, Sequence[str]]],
                 doc_text: Mapping[str, str], judge: Judge, *, old: str = "old", new: str = "new", k: int = 10,
                 cache: ScoreCache | None = None, side_models: Mapping[str, Sequence[str | None]] | None = None,
                 batch_queries: int = BATCH_QUERIES,
                 progress: Callable[[int, int], None] | None = None) -> JudgedPool:
    """Judge the pooled top-``k`` of ``lists[old]`` and ``lists[new]`` for every query (see the module docstring).

    ``side_models``: side name -> the model (and stand-in) names that made it, for the family
    warnings. Raises ``InputError`` for unusable inputs and ``EmbeddingError`` for a judge
    that fails or answers the wrong number of scores, before anything is half-recorded.
    """
    _check_inputs(queries, lists, old, new)
    if k < 1:
        raise InputError(f"k {k} must be at least 1", hint="e.g. -k 10")
    top = {s: {q.id: list(lists[s][q.id])[:k] for q in queries} for s in (old, new)}
    pools = {q.id: pool_of([top[old][q.id], top[new][q.id]], k) for q in queries}
    texts = {q.id: _texts_of(pools[q.id], doc_text, q.id) for q in queries}
    ident = judge.identity()

    def keys_of(q: Query) -> list[str]:
        ctx = content_key(*texts[q.id]) if judge.listwise else ""
        return [content_key("judge", ident, q.text, t, ctx) for t in texts[q.id]]

    keys = {q.id: keys_of(q) for q in queries}
    found = cache.get_scores([key for q in queries for key in keys[q.id]]) if cache is not None else {}
    n_cached = sum(1 for q in queries for key in keys[q.id] if key in found)
    scores: dict[str, dict[str, float]] = {q.id: {} for q in queries}
    todo: list[tuple[Query, list[int]]] = []
    for q in queries:
        missing = [i for i, key in enumerate(keys[q.id]) if key not in found]
        for i, key in enumerate(keys[q.id]):
            if key in found:
                scores[q.id][pools[q.id][i]] = found[key]
        if missing:  # a listwise judge scores the whole list again, so its scores stay comparable
            todo.append((q, list(range(len(pools[q.id]))) if judge.listwise else missing))
    n_scored = 0
    for b in range(0, len(todo), batch_queries):
        part = todo[b:b + batch_queries]
        requests = [(q.text, [texts[q.id][i] for i in idx]) for q, idx in part]
        answers = judge.score(requests)
        if len(answers) != len(requests):
            raise EmbeddingError(f"judge {judge.spec} answered {len(answers)} score lists for {len(requests)} queries",
                                 hint="the judge must answer every request")
        fresh: dict[str, float] = {}
        for (q, idx), got in zip(part, answers):
            vals = np.asarray(got, dtype=np.float64).reshape(-1)
            if vals.size != len(idx):
                raise EmbeddingError(f"judge {judge.spec} returned {vals.size} scores for the {len(idx)} documents "
                                     f"of query {q.id!r}", hint="the judge must score every document it is given")
            if not np.all(np.isfinite(vals)):
                raise EmbeddingError(f"judge {judge.spec} returned a score that is not a number for query {q.id!r}",
                                     hint="check the judge model")
            for i, v in zip(idx, vals):
                scores[q.id][pools[q.id][i]] = float(v)
                fresh[keys[q.id][i]] = float(v)
        if cache is not None:
            cache.put_scores(fresh)  # what is scored is kept, even if a later batch fails
        n_scored += len(fresh)
        if progress is not None:
            progress(min(b + batch_queries, len(todo)), len(todo))
    grades = {qid: {d: judge.grade(s) for d, s in ds.items()} for qid, ds in scores.items()}
    result = _evaluate(queries, top, grades, judge, old=old, new=new, k=k, n_cached=n_cached, n_scored=n_scored,
                       side_models=side_models)
    return JudgedPool(result, pools, scores, grades, top)


def _evaluate(queries: Sequence[Query], top: dict[str, dict[str, list[str]]], grades: dict[str, dict[str, int]],
              judge: Judge, *, old: str, new: str, k: int, n_cached: int, n_scored: int,
              side_models: Mapping[str, Sequence[str | None]] | None) -> JudgedResult:
    qids = [q.id for q in queries]
    per_side = {}
    for side in (old, new):
        run = {qid: {d: float(k - r) for r, d in enumerate(top[side][qid])} for qid in qids}
        per_side[side] = M.evaluate(run, grades)
    values = {side: {m: np.array([per_side[side][q][m] for q in qids]) for m in JUDGED_METRICS} for side in (old, new)}
    stats = {m: paired(values[old][m], values[new][m]) for m in JUDGED_METRICS}
    hist = Counter(g for ds in grades.values() for g in ds.values())
    with_rel = sum(1 for q in qids if any(g >= 1 for g in grades[q].values()))
    warnings = family_warnings(judge, side_models or {})
    if with_rel < len(qids):
        warnings.append(f"the judge found nothing relevant in either side's top {k} for {len(qids) - with_rel} of "
                        f"{len(qids)} queries (they score 0 on both sides)")
    return JudgedResult(
        judge=judge.spec, description=judge.describe(), warnings=warnings, k=k, n_queries=len(qids),
        n_pairs=sum(len(ds) for ds in grades.values()), n_scored=n_scored, n_cached=n_cached,
        thresholds=list(judge.thresholds) if judge.thresholds is not None else None,
        grades={str(g): int(hist.get(g, 0)) for g in range(4)}, n_with_relevant=with_rel,
        means={side: {m: float(values[side][m].mean()) for m in JUDGED_METRICS} for side in (old, new)},
        stats=stats, tokens=int(judge.tokens),
        per_query={q: {side: {m: float(per_side[side][q][m]) for m in JUDGED_METRICS} for side in (old, new)}
                   for q in qids})
