"""The comparison itself: same queries, two (or more) indexes, one result document.

``compare(old, new, queries, qrels, config)`` works on ``Side`` objects (a searchable
document store, a query encoder, a description), so it needs neither the pipeline nor a
model to be tested. It returns a typed ``schema.CompareReport`` that the HTML, Markdown
and JSON renderers turn into the report and that ``gates`` checks.

Sections (``None`` when not applicable):

* ``metrics``: with judgments, nDCG@10, Recall@10/@100, MRR@10, MAP@100 per query and
  overall (pytrec_eval), paired tests, bootstrap CIs, win/tie/loss, for new vs old and
  for every extra side (e.g. late-chunked) vs old.
* ``agreement``: overlap@k, RBO, rank shifts between old and new results (no labels).
* ``examples``: side-by-side result lists with cosine scores for the queries whose results
  changed most (plus the first few queries).
* ``matryoshka``: the same measures for each requested truncation of the new vectors.
* ``ann``: recall of each side's built ANN index against exact search, and its metrics.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from migrate.embed.base import truncate_and_normalize
from migrate.errors import ConfigError, InputError
from migrate.report import metrics as M
from migrate.report.data import Query
from migrate.report.overlap import overlap_at_k, rank_shift, rbo
from migrate.report.schema import (
    Agreement,
    AnnCheck,
    CompareReport,
    Example,
    JudgedMetrics,
    MetricsRow,
    QueryRow,
    ResultRow,
    SideInfo,
    Sides,
    Sweep,
    SweepRow,
)
from migrate.report.search import Ranking
from migrate.report.side import Side
from migrate.report.stats import paired


@dataclass
class CompareConfig:
    """Knobs of one comparison."""

    k: int = 10  # cut-off of overlap@k, rank shifts and the shown result lists
    depth: int = M.RUN_DEPTH  # results kept per query (Recall@100 and MAP@100 need 100)
    rbo_p: float = 0.9
    dims: list[int] = field(default_factory=list)  # Matryoshka sweep of the new side
    precisions: list[str] = field(default_factory=list)  # and the storage precisions swept at each size
    ann: bool = False  # also evaluate each side's built ANN index
    examples: int = 8  # queries shown side by side
    snippet_chars: int = 240
    query_batch: int = 256
    title: str = "jina-migrate: before/after retrieval comparison"

    def check(self) -> None:
        if self.k < 1 or self.depth < self.k:
            raise ConfigError(f"-k {self.k} must be >= 1 and <= depth {self.depth}", hint="e.g. -k 10")
        if not 0 < self.rbo_p < 1:
            raise ConfigError(f"RBO persistence {self.rbo_p} must be in (0, 1)", hint="e.g. 0.9")
        if any(d < 1 for d in self.dims):
            raise ConfigError(f"Matryoshka dimensions {self.dims} must be positive", hint="e.g. --dims 512,256,128")


@dataclass
class _Evaluated:
    side: Side
    qvecs: np.ndarray
    ranking: Ranking
    lists: dict[str, list[str]]  # qid -> ranked doc ids (depth)
    run: M.Run
    encode_s: float
    search_s: float


def _encode(side: Side, texts: list[str], batch: int) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    parts = [np.asarray(side.encode_queries(texts[i:i + batch]), dtype=np.float32) for i in range(0, len(texts), batch)]
    q = np.concatenate(parts) if parts else np.zeros((0, side.dim), np.float32)
    if q.ndim != 2 or q.shape[0] != len(texts):
        raise InputError(f"{side.name}: query encoder returned shape {q.shape} for {len(texts)} queries",
                         hint="the encoder must return one vector per query")
    if q.shape[1] != side.dim:
        raise ConfigError(f"{side.name}: queries embed to {q.shape[1]} dims but the index has {side.dim}",
                          hint="use the same model (and --dimensions) that built this index")
    return truncate_and_normalize(q, None), time.perf_counter() - t0


def _lists(side: Side, ranking: Ranking, qids: list[str]) -> tuple[dict[str, list[str]], M.Run]:
    lists: dict[str, list[str]] = {}
    run: M.Run = {}
    for qi, qid in enumerate(qids):
        idx, sc = ranking.doc_index[qi], ranking.scores[qi]
        keep = idx >= 0
        ids = side.docs.ids_at(idx[keep])
        lists[qid] = ids
        run[qid] = {d: float(s) for d, s in zip(ids, sc[keep])}
    return lists, run


def _evaluated(side: Side, queries: list[Query], ranking: Ranking, qvecs: np.ndarray, encode_s: float,
               search_s: float) -> _Evaluated:
    lists, run = _lists(side, ranking, [q.id for q in queries])
    return _Evaluated(side, qvecs, ranking, lists, run, encode_s, search_s)


def _evaluate_side(side: Side, queries: list[Query], cfg: CompareConfig) -> _Evaluated:
    qvecs, encode_s = _encode(side, [q.text for q in queries], cfg.query_batch)
    t0 = time.perf_counter()
    ranking = side.docs.search(qvecs, cfg.depth)
    return _evaluated(side, queries, ranking, qvecs, encode_s, time.perf_counter() - t0)


def _side_info(side: Side) -> SideInfo:
    return SideInfo(name=side.name, description=side.final_description(), n_docs=side.docs.n_docs,
                    n_vectors=side.docs.n_vectors, dim=side.dim, chunked=side.chunked,
                    ann=side.ann.description if side.ann else None)


def _metric_block(old_pq: dict, new_pq: dict) -> dict:
    qids = sorted(old_pq)
    return {m: paired(np.array([old_pq[q][m] for q in qids]), np.array([new_pq[q][m] for q in qids]))
            for m in M.METRICS}


def _agreement(old: _Evaluated, new: _Evaluated, qids: list[str], cfg: CompareConfig) -> tuple[Agreement, list[dict]]:
    rows: list[dict] = []
    for qid in qids:
        a, b = old.lists[qid], new.lists[qid]
        sh = rank_shift(a, b, cfg.k)
        rows.append({
            "qid": qid,
            "overlap": overlap_at_k(a, b, cfg.k),
            "rbo": rbo(a, b, cfg.rbo_p, cfg.depth),
            "mean_abs_shift": None if math.isnan(sh.mean_abs_shift) else sh.mean_abs_shift,
            "dropped": sh.dropped,
            "top1_kept": sh.top1_kept,
        })
    hist = {str(i): 0 for i in range(cfg.k + 1)}
    for r in rows:
        hist[str(round(r["overlap"] * cfg.k))] += 1
    shifts = [r["mean_abs_shift"] for r in rows if r["mean_abs_shift"] is not None]
    summary = Agreement(
        k=cfg.k, rbo_p=cfg.rbo_p, rbo_depth=cfg.depth,
        overlap_mean=float(np.mean([r["overlap"] for r in rows])) if rows else 0.0,
        rbo_mean=float(np.mean([r["rbo"] for r in rows])) if rows else 0.0,
        mean_abs_rank_shift=float(np.mean(shifts)) if shifts else None,
        dropped_mean=float(np.mean([r["dropped"] for r in rows])) if rows else 0.0,
        top1_kept_rate=float(np.mean([r["top1_kept"] for r in rows])) if rows else 0.0,
        overlap_histogram=hist,
    )
    return summary, rows


def _result_rows(ev: _Evaluated, qi: int, qid: str, other: set[str], qrels: M.Qrels | None,
                 text: Mapping[str, str] | None, cfg: CompareConfig) -> list[ResultRow]:
    rows = []
    ids = ev.lists[qid]
    for rank in range(min(cfg.k, len(ids))):
        did = ids[rank]
        snippet = None
        if text is not None and did in text:
            t = text[did]
            snippet = t if len(t) <= cfg.snippet_chars else t[:cfg.snippet_chars].rstrip() + "…"
        rows.append(ResultRow(rank=rank + 1, id=did, score=float(ev.run[qid][did]),
                              rel=(qrels.get(qid, {}).get(did, 0) if qrels is not None else None),
                              in_other=did in other, text=snippet))
    return rows


def _matryoshka(new_ev: _Evaluated, old_ev: _Evaluated, queries: list[Query], qrels: M.Qrels | None,
                cfg: CompareConfig) -> Sweep:
    new = new_ev.side
    qids = [q.id for q in queries]
    smaller = sorted({d for d in cfg.dims if d < new.dim}, reverse=True)
    t0 = time.perf_counter()
    rankings = new.docs.sweep(new_ev.qvecs, smaller, cfg.depth) if smaller else {}
    each_s = (time.perf_counter() - t0) / max(1, len(smaller))
    reduced = [p for p in cfg.precisions if p != "float32"]
    by_precision: dict[tuple[int, str], Ranking] = {}
    if reduced:
        from migrate.report import precision_sweep

        t0 = time.perf_counter()
        by_precision = precision_sweep.sweep(precision_sweep.batches_of(new.docs), new_ev.qvecs,
                                             [new.dim, *smaller], reduced, cfg.depth)
        each_p = (time.perf_counter() - t0) / max(1, len(by_precision))
    rows = []
    for d in [new.dim, *smaller]:
        for precision in ["float32", *reduced]:
            if precision != "float32":
                ev = _evaluated(new, queries, by_precision[(d, precision)], new_ev.qvecs, 0.0, each_p)
            elif d == new.dim:
                ev = new_ev
            else:
                ev = _evaluated(new, queries, rankings[d], new_ev.qvecs, 0.0, each_s)
            rows.append(_sweep_row(d, precision, d == new.dim, ev, new_ev, old_ev, qids, qrels, cfg))
    skipped = [d for d in cfg.dims if d > new.dim]
    return Sweep(rows, skipped, f"larger than the new index's {new.dim} dimensions" if skipped else None)


def _sweep_row(d: int, precision: str, full: bool, ev: _Evaluated, new_ev: _Evaluated, old_ev: _Evaluated,
               qids: list[str], qrels: M.Qrels | None, cfg: CompareConfig) -> SweepRow:
    from migrate.report.precision_sweep import stored_bytes

    metrics = None
    if qrels is not None:
        pq = M.evaluate(ev.run, qrels)
        metrics = {m: M.mean(pq, m) for m in M.METRICS}
    return SweepRow(
        dims=d, full=full, bytes_float32=4 * d, bytes_int8=d, bytes_binary=math.ceil(d / 8),
        overlap_vs_old=float(np.mean([overlap_at_k(old_ev.lists[q], ev.lists[q], cfg.k) for q in qids])),
        overlap_vs_full=float(np.mean([overlap_at_k(new_ev.lists[q], ev.lists[q], cfg.k) for q in qids])),
        rbo_vs_full=float(np.mean([rbo(new_ev.lists[q], ev.lists[q], cfg.rbo_p, cfg.depth) for q in qids])),
        search_s=ev.search_s, metrics=metrics, precision=precision, bytes=stored_bytes(precision, d))


def _ann(ev: _Evaluated, queries: list[Query], qrels: M.Qrels | None, cfg: CompareConfig) -> AnnCheck | None:
    side = ev.side
    if side.ann is None:
        return None
    t0 = time.perf_counter()
    _, idx = side.ann.search(ev.qvecs, cfg.depth)
    search_s = time.perf_counter() - t0
    run: M.Run = {}
    rec_k, rec_depth = [], []
    for qi, q in enumerate(queries):
        ids = side.docs.ids_at(idx[qi][idx[qi] >= 0])
        # ANN scores may be distances: rank-based scores keep the ANN's own order for trec_eval.
        run[q.id] = {d: float(len(ids) - r) for r, d in enumerate(ids)}
        exact = ev.lists[q.id]
        rec_k.append(len(set(ids[:cfg.k]) & set(exact[:cfg.k])) / max(1, min(cfg.k, len(exact))))
        rec_depth.append(len(set(ids) & set(exact)) / max(1, len(exact)))
    metrics = None
    if qrels is not None:
        pq = M.evaluate(run, qrels)
        metrics = {m: M.mean(pq, m) for m in M.METRICS}
    return AnnCheck(description=side.ann.description, k=cfg.k, depth=cfg.depth, recall_at_k=float(np.mean(rec_k)),
                    recall_at_depth=float(np.mean(rec_depth)), search_s=search_s, exact_search_s=ev.search_s,
                    metrics=metrics)


def _pick_examples(agree_rows: list[dict], qids: list[str], n: int) -> list[str]:
    """The ``n`` queries whose results changed most (lowest RBO), then the first queries."""
    most = [r["qid"] for r in sorted(agree_rows, key=lambda r: (r["rbo"], r["overlap"], r["qid"]))]
    picked = most[: max(0, n - min(2, n // 3))]
    for q in qids:
        if len(picked) >= n:
            break
        if q not in picked:
            picked.append(q)
    return picked


def compare(old: Side, new: Side, queries: Sequence[Query], qrels: M.Qrels | None = None,
            config: CompareConfig | None = None, *, extra: Sequence[Side] = (),
            doc_text: Mapping[str, str] | None = None, run_dir: Any = None,
            lists_out: dict[str, dict[str, list[str]]] | None = None) -> CompareReport:
    """Run ``queries`` against ``old``, ``new`` (and ``extra`` sides); return the typed report.

    ``qrels`` (``{qid: {doc_id: rel}}``) switches on the judged metrics; only judged
    queries are scored there, all queries count for agreement. ``doc_text`` (any mapping;
    one with a ``load(ids)`` method is asked once for every id shown) adds
    snippets to the side-by-side lists. ``run_dir`` (a path) also writes TREC run
    files (``<side>.run``) and ``qrels.txt`` so the numbers can be re-checked.
    ``lists_out`` (a dict), when given, receives every side's ranked document ids per query
    (``{side: {qid: [ids]}}``): the pooled top-k a judge grades (``judged.judge_pooled``).
    """
    cfg = config or CompareConfig()
    cfg.check()
    queries = list(queries)
    if not queries:
        raise InputError("no queries to compare", hint="pass --queries with at least one query")
    t_start = time.perf_counter()
    qids = [q.id for q in queries]
    names = [old.name, new.name] + [s.name for s in extra]
    if len(set(names)) != len(names):
        raise ConfigError(f"side names must differ, got {names}", hint="name each side uniquely")
    if qrels is not None:
        qset = set(qids)
        qrels = {q: r for q, r in qrels.items() if q in qset}
        if not qrels:
            raise InputError("none of the queries has a relevance judgment",
                             hint="check that query ids in --queries match those in --qrels (and the --split)")

    evals = [_evaluate_side(s, queries, cfg) for s in (old, new, *extra)]
    old_ev, new_ev = evals[0], evals[1]
    if lists_out is not None:
        lists_out.update({e.side.name: e.lists for e in evals})
    encode_s = {e.side.name: e.encode_s for e in evals}
    t_after_encode = time.perf_counter()

    judged: JudgedMetrics | None = None
    per_query = {q.id: QueryRow(qid=q.id, text=q.text) for q in queries}
    if qrels is not None:
        pqs = {e.side.name: M.evaluate(e.run, qrels) for e in evals}
        rows = [MetricsRow(e.side.name, old.name, _metric_block(pqs[old.name], pqs[e.side.name])) for e in evals[1:]]
        judged = JudgedMetrics(
            n_judged=len(qrels), names=list(M.METRICS),
            trec_eval_measures={**M._TREC, "mrr@10": "recip_rank (run cut to 10)"},
            means={name: {m: M.mean(pq, m) for m in M.METRICS} for name, pq in pqs.items()}, rows=rows)
        for qid in qrels:
            per_query[qid].metrics = {name: pq[qid] for name, pq in pqs.items()}
            per_query[qid].n_relevant = sum(1 for r in qrels[qid].values() if r > 0)

    agree, agree_rows = _agreement(old_ev, new_ev, qids, cfg)
    for r in agree_rows:
        row = per_query[r["qid"]]
        row.overlap, row.rbo, row.mean_abs_shift = r["overlap"], r["rbo"], r["mean_abs_shift"]
        row.dropped, row.top1_kept = r["dropped"], r["top1_kept"]
    extra_agreement = {e.side.name: _agreement(old_ev, e, qids, cfg)[0] for e in evals[2:]}

    examples = []
    qpos = {q: i for i, q in enumerate(qids)}
    shown = _pick_examples(agree_rows, qids, cfg.examples)
    load = getattr(doc_text, "load", None)
    if callable(load):  # texts fetched from a database: one request for every id the examples show
        load([d for qid in shown for e in evals[:2] for d in e.lists[qid][:cfg.k]])
    for qid in shown:
        qi = qpos[qid]
        sides = {}
        for e in evals[:2]:
            other = evals[1] if e is evals[0] else evals[0]
            sides[e.side.name] = _result_rows(e, qi, qid, set(other.lists[qid][:cfg.k]), qrels, doc_text, cfg)
        examples.append(Example(qid=qid, text=per_query[qid].text, overlap=per_query[qid].overlap,
                                rbo=per_query[qid].rbo, sides=sides, metrics=per_query[qid].metrics))

    sweep = _matryoshka(new_ev, old_ev, queries, qrels, cfg) if cfg.dims or cfg.precisions else None
    ann = {e.side.name: a for e in evals if (a := _ann(e, queries, qrels, cfg)) is not None} if cfg.ann else None
    if cfg.ann and not ann:
        raise ConfigError("--ann was given but neither side has a built ANN index",
                          hint="point --new at a finished migration output with index.faiss")

    if run_dir is not None:
        run_dir = Path(run_dir)
        for e in evals:
            M.write_run(run_dir / f"{e.side.name}.run", e.run, e.side.name)
        if qrels is not None:
            M.write_qrels(run_dir / "qrels.txt", qrels)

    t_end = time.perf_counter()
    return CompareReport(
        title=cfg.title,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        config=asdict(cfg),
        sides=Sides(_side_info(old), _side_info(new), [_side_info(s) for s in extra]),
        n_queries=len(queries),
        metrics=judged,
        agreement=agree,
        extra_agreement=extra_agreement or None,
        per_query=[per_query[q] for q in qids],
        examples=examples,
        matryoshka=sweep,
        ann=ann,
        timings={
            "encode_queries_s": encode_s,
            "search_s": {e.side.name: e.search_s for e in evals},
            "compare_excluding_encode_s": (t_end - t_start) - sum(encode_s.values()),
            "after_encode_s": t_end - t_after_encode,
        },
    )
