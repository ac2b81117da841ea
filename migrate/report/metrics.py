"""IR metrics with judgments, computed by pytrec_eval (trec_eval's own code).

Reported names and the trec_eval measure behind each:

=============  ===============  =====================================================
name           trec_eval        note
=============  ===============  =====================================================
ndcg@10        ndcg_cut_10
recall@10      recall_10
recall@100     recall_100
mrr@10         recip_rank       evaluated on the run cut to its top 10
map@100        map_cut_100
=============  ===============  =====================================================

Only queries that have judgments are scored (trec_eval's convention); a judged query
with no results scores 0. Runs are also written as TREC run files so anyone can
re-check the numbers with ``trec_eval`` (the tests do, with pytrec_eval's parsers).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytrec_eval

from migrate.atomic import write_text

Run = dict[str, dict[str, float]]
Qrels = dict[str, dict[str, int]]

METRICS: tuple[str, ...] = ("ndcg@10", "recall@10", "recall@100", "mrr@10", "map@100")
_TREC = {"ndcg@10": "ndcg_cut_10", "recall@10": "recall_10", "recall@100": "recall_100", "map@100": "map_cut_100"}
RUN_DEPTH = 100  # deepest cut any metric needs


def cut(run: Run, k: int) -> Run:
    """Keep each query's ``k`` best documents (by score; ties broken like trec_eval: doc id descending)."""
    out: Run = {}
    for qid, docs in run.items():
        ranked = sorted(docs.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)[:k]
        out[qid] = dict(ranked)
    return out


def evaluate(run: Run, qrels: Qrels) -> dict[str, dict[str, float]]:
    """Per-query metric values ``{qid: {metric: value}}`` for the judged queries."""
    judged = {q: r for q, r in qrels.items()}
    full = {q: run.get(q, {}) for q in judged}
    ev = pytrec_eval.RelevanceEvaluator(judged, set(_TREC.values()))
    res = ev.evaluate({q: d for q, d in full.items() if d})
    rr = pytrec_eval.RelevanceEvaluator(judged, {"recip_rank"}).evaluate(
        {q: d for q, d in cut(full, 10).items() if d})
    out: dict[str, dict[str, float]] = {}
    for q in judged:
        vals = {name: float(res.get(q, {}).get(trec, 0.0)) for name, trec in _TREC.items()}
        vals["mrr@10"] = float(rr.get(q, {}).get("recip_rank", 0.0))
        out[q] = {m: vals[m] for m in METRICS}
    return out


def mean(per_query: dict[str, dict[str, float]], metric: str, qids: Iterable[str] | None = None) -> float:
    qs = list(per_query) if qids is None else list(qids)
    if not qs:
        return 0.0
    return float(np.mean([per_query[q][metric] for q in qs]))


def write_run(path: Path | str, run: Run, tag: str) -> None:
    """TREC run file ``qid Q0 docid rank score tag``; scores are written exactly (round-trip repr)."""
    lines = []
    for qid in sorted(run):
        ranked = sorted(run[qid].items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
        for rank, (did, score) in enumerate(ranked, 1):
            lines.append(f"{qid} Q0 {did} {rank} {float(score)!r} {tag}")
    write_text(path, "\n".join(lines) + "\n")


def write_qrels(path: Path | str, qrels: Qrels) -> None:
    """TREC qrels file: ``qid 0 docid rel``."""
    lines = [f"{q} 0 {d} {r}" for q in sorted(qrels) for d, r in sorted(qrels[q].items())]
    write_text(path, "\n".join(lines) + "\n")
