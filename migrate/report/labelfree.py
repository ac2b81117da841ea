"""Gather a comparison's label-free evidence and draw its one verdict (what ``compare`` wires together).

What: given the two built sides, the queries, the ranked lists ``engine.compare`` produced and
the documents, this module runs

* the known-item regression guard (``knownitem``) on each side's own model and tasks (``Side.embedder``,
  ``query_task``, ``doc_task``) over documents whose titles are kept apart from their text
  (``guard_documents``: a documents file read with its title column, or the collection's rows);
* a judge over both sides' pooled top-k (``judged.judge_pooled``), cached by content in one
  SQLite file (``scorecache``) so an interrupted run resumes and nothing is paid twice;
* human labels (``data.read_labels``) combined with the judge by prediction-powered inference
  (``ppi``), or, without a judge, alone (the same estimator with the judge's term at zero: an
  unbiased Horvitz-Thompson estimate from a uniform random sample of the pooled pairs);

and ``verdict.decide`` picks the strongest. ``write_pool`` / ``read_pool`` keep the pooled pairs
(with their text: a private working file, never a report) for ``jina-migrate label``.
Why here: ``commands/compare.py`` stays a thin CLI, and every step is callable from tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migrate.errors import ConfigError, InputError
from migrate.report.data import HIDDEN_QUERY, Corpus, Query
from migrate.report.evidence import SKIPPED, JudgedResult, KnownItemResult, PPIResult, Verdict
from migrate.report.judged import JudgedPool, judge_pooled, pool_of
from migrate.report.knownitem import (DEFAULT_MARGIN, DEFAULT_SAMPLE, LIMIT, GuardSide, SourceDoc, guard_side,
                                      run_guard, sample_items)
from migrate.report.scorecache import ScoreCache
from migrate.report.side import Side

#: The file of one comparison's cached judge scores and re-embedded known-item vectors, in the cache folder.
CACHE_FILE = "label-free.sqlite"
#: A judged comparison needs at least this many queries: a paired interval needs two.
MIN_JUDGED_QUERIES = 2


def score_cache(folder: Path) -> ScoreCache:
    return ScoreCache(Path(folder) / CACHE_FILE)


# --------------------------------------------------------------------------- documents for the guard


def collection_documents(store: Any, title_field: str | None = None) -> Iterator[SourceDoc]:
    """Every row of a collection side as a ``SourceDoc`` (text field by the sources' rule; ``title_field``, when
    given, a payload field holding the title), streamed with the engine's own scan."""
    from migrate.report.collection import text_field_of

    field = text_field_of(store.engine, store.info)
    if field is None:
        raise InputError(f"{store.engine.address}: the collection holds no text field for the known-item guard",
                         hint="pass --docs with the documents the index was built from, or name the field with &text=")
    names = {f.name for f in store.info.payload}
    if title_field is not None and title_field not in names:
        raise InputError(f"--title-field {title_field}: {store.engine.address} has no field {title_field!r}",
                         hint=f"fields: {', '.join(sorted(names)) or 'none'}")
    for batch in store.engine.scan(store.collection, with_vectors=False):
        ids = batch.column("id").to_pylist()
        texts = batch.column(field).to_pylist()
        titles = batch.column(title_field).to_pylist() if title_field else [None] * len(ids)
        for i, t, title in zip(ids, texts, titles):
            yield SourceDoc(str(i), "" if t is None else str(t), None if title in (None, "") else str(title))


def guard_documents(corpus: Corpus | None, sides: Sequence[Side], title_field: str | None) -> Iterable[SourceDoc] | None:
    """The documents the guard samples from: the ``--docs`` corpus, else the first collection side's rows; None
    when neither holds text."""
    from migrate.report.collection import CollectionStore

    if corpus is not None:
        return corpus.source_docs()
    for side in sides:
        if isinstance(side.docs, CollectionStore):
            return collection_documents(side.docs, title_field)
    return None


# --------------------------------------------------------------------------- the guard


def _guard_view(side: Side) -> GuardSide:
    return guard_side(side.name, side.docs, side.embedder, query_task=side.query_task or "none",
                      doc_task=side.doc_task,
                      why_not=f"{side.name}: no model to re-embed its documents with (pass --{side.name}-model)")


def known_item(old: Side, new: Side, docs: Iterable[SourceDoc] | None, *, sample: int = DEFAULT_SAMPLE, seed: int = 0,
               kind: str = "auto", margin: float = DEFAULT_MARGIN, cache: ScoreCache | None = None,
               required: bool = False) -> KnownItemResult:
    """The known-item guard of ``new`` against ``old`` (``knownitem.run_guard``).

    Without documents, or when none makes a query, the result is *skipped* with the reason; with
    ``required`` (``--known-item`` given explicitly) that is an ``InputError`` instead.
    """
    def skipped(reason: str) -> KnownItemResult:
        if required:
            raise InputError(f"--known-item: {reason}", hint="pass --docs (with --title-field when the documents have "
                                                              "titles), or drop --known-item")
        return KnownItemResult(SKIPPED, reason, 10, seed, sample, 0, {}, margin, LIMIT)

    if docs is None:
        return skipped("no document text to make known-item queries from (pass --docs)")
    try:
        items = sample_items(docs, sample=sample, seed=seed, kind=kind)
    except InputError as exc:
        return skipped(exc.message)
    return run_guard(items, _guard_view(old), _guard_view(new), margin=margin, cache=cache)


# --------------------------------------------------------------------------- judge and labels


def side_models(sides: Sequence[Side]) -> dict[str, list[str | None]]:
    """Side name -> the model and stand-in names that made it (for the judge's family warnings)."""
    out: dict[str, list[str | None]] = {}
    for s in sides:
        d = s.final_description()
        names = [d.model, d.stand_in]
        if d.docs is not None:
            names += [d.docs.model, d.docs.stand_in]
        out[s.name] = names
    return out


def judge(queries: Sequence[Query], lists: Mapping[str, Mapping[str, Sequence[str]]], doc_text: Mapping[str, str],
          judge: Any, *, old: Side, new: Side, k: int, cache: ScoreCache | None) -> JudgedPool:
    """Both sides' pooled top-``k`` graded by ``judge`` (``judged.judge_pooled``).

    When every score came from the cache an HTTP judge has not spoken to its server, so it cannot know
    whether a stand-in answers (the server says so in a header): one pair is then sent again, so the
    report never hides that its judge was a stand-in."""
    from migrate.report.judges import family_warnings

    models = side_models([old, new])
    pool = judge_pooled(queries, lists, doc_text, judge, old=old.name, new=new.name, k=k, cache=cache,
                        side_models=models)
    first = next(((q, pool.pools[q.id][0]) for q in queries if pool.pools.get(q.id)), None)
    if pool.result.n_scored == 0 and hasattr(judge, "stand_in") and judge.stand_in is None and first is not None:
        judge.score([(first[0].text, [doc_text[first[1]]])])
        kept = [w for w in pool.result.warnings if w.startswith("the judge found nothing")]
        pool.result.description = judge.describe()
        pool.result.warnings = family_warnings(judge, models) + kept
        pool.result.tokens = int(judge.tokens)
    return pool


def label_pool(queries: Sequence[Query], lists: Mapping[str, Mapping[str, Sequence[str]]], *, old: str, new: str,
               k: int) -> JudgedPool:
    """The pooled pairs with every judge grade 0: with ``ppi`` it gives the labels-alone estimate."""
    top = {s: {q.id: list(lists[s][q.id])[:k] for q in queries} for s in (old, new)}
    pools = {q.id: pool_of([top[old][q.id], top[new][q.id]], k) for q in queries}
    zero = {qid: {d: 0 for d in docs} for qid, docs in pools.items()}
    result = JudgedResult(judge="none", description="no judge", warnings=[], k=k, n_queries=len(queries),
                          n_pairs=sum(len(v) for v in pools.values()), n_scored=0, n_cached=0, thresholds=None,
                          grades={}, n_with_relevant=0, means={}, stats={})
    return JudgedPool(result, pools, {qid: {d: 0.0 for d in docs} for qid, docs in pools.items()}, zero, top)


def combine_labels(pool: JudgedPool, labels: Mapping[tuple[str, str], int], *, old: str, new: str,
                   labels_path: Path | str) -> PPIResult:
    """Prediction-powered difference of ``labels`` with the pool's judge grades (``ppi.ppi_difference``);
    a label on a pair this comparison did not pool is one ``InputError`` naming the labels file."""
    from migrate.report.ppi import ppi_difference

    try:
        return ppi_difference(pool, labels, old=old, new=new)
    except InputError as exc:
        raise InputError(f"--labels {labels_path}: {exc.message}", hint=exc.hint) from None


# --------------------------------------------------------------------------- the verdict and the report


def verdict(report: Any, *, ppi: PPIResult | None = None, labels_only: bool = False) -> Verdict:
    """The report's one verdict from the strongest evidence it holds (``verdict.decide``)."""
    from migrate.report.verdict import decide

    qrels = report.metrics.headline if report.metrics is not None else None
    judged: JudgedResult | None = report.judged
    guard = report.knownitem
    return decide(qrels=qrels, ppi=ppi, judged=judged, knownitem=guard, labels_only=labels_only)


def hide_query_text(report: Any) -> None:
    """Replace every logged query's text in the report by ``HIDDEN_QUERY`` (a shareable report holds ids only)."""
    for row in report.per_query:
        row.text = HIDDEN_QUERY
    for ex in report.examples:
        ex.text = HIDDEN_QUERY


# --------------------------------------------------------------------------- the pool file (for ``label``)

POOL_VERSION = 1


@dataclass(frozen=True)
class PoolPair:
    """One pooled (query, document) pair as ``label`` shows it."""

    qid: str
    query: str
    doc_id: str
    text: str
    ranks: dict[str, int | None]  # side -> 1-based rank in its top-k (None: not there)


def write_pool(path: Path, queries: Sequence[Query], lists: Mapping[str, Mapping[str, Sequence[str]]],
               doc_text: Mapping[str, str], *, old: str, new: str, k: int) -> int:
    """The pooled top-``k`` pairs with their query and document text, one JSON object a line (a private
    working file for ``jina-migrate label``: it holds text, so it is never part of a report). Returns pairs."""
    from migrate.atomic import write_text

    lines = [json.dumps({"pool_version": POOL_VERSION, "k": k, "sides": [old, new]})]
    n = 0
    for q in queries:
        top = {s: list(lists[s][q.id])[:k] for s in (old, new)}
        for d in pool_of([top[old], top[new]], k):
            try:
                text = doc_text[d]
            except KeyError:
                raise InputError(f"document {d!r} (a top result for query {q.id!r}) has no text to label",
                                 hint="pass --docs with the documents' text") from None
            ranks = {s: (top[s].index(d) + 1 if d in top[s] else None) for s in (old, new)}
            lines.append(json.dumps({"qid": q.id, "query": q.text, "doc_id": d, "text": text, "ranks": ranks},
                                    ensure_ascii=False))
            n += 1
    write_text(path, "\n".join(lines) + "\n")
    return n


def read_pool(path: Path) -> list[PoolPair]:
    """The pairs of a pool file (``write_pool``); one ``InputError`` naming the line for anything else."""
    from migrate.report.data import read_text

    if not path.is_file():
        raise InputError(f"{path}: pool file not found",
                         hint="write one with: jina-migrate compare ... --pool-out FILE")
    out: list[PoolPair] = []
    seen: set[tuple[str, str]] = set()
    for n, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            raise InputError(f"{path}:{n}: not a JSON line", hint="give the file compare --pool-out wrote") from None
        if n == 1:
            if not isinstance(obj, dict) or obj.get("pool_version") != POOL_VERSION:
                raise InputError(f"{path}: not a pool file of this version (its first line has no pool_version "
                                 f"{POOL_VERSION})", hint="write it again with: jina-migrate compare ... --pool-out FILE")
            continue
        try:
            pair = PoolPair(str(obj["qid"]), str(obj["query"]), str(obj["doc_id"]), str(obj["text"]),
                            dict(obj.get("ranks") or {}))
        except (KeyError, TypeError):
            raise InputError(f"{path}:{n}: a pair needs qid, query, doc_id and text",
                             hint="give the file compare --pool-out wrote") from None
        if (pair.qid, pair.doc_id) in seen:
            raise InputError(f"{path}:{n}: the pair ({pair.qid}, {pair.doc_id}) appears twice",
                             hint="give the file compare --pool-out wrote")
        seen.add((pair.qid, pair.doc_id))
        out.append(pair)
    if not out:
        raise InputError(f"{path}: the pool holds no pairs", hint="compare found no results to pool")
    return out


def check_judged_queries(n: int, spec: str) -> None:
    if n < MIN_JUDGED_QUERIES:
        raise InputError(f"--judge {spec}: {n} quer{'y' if n == 1 else 'ies'} to judge; a judged comparison needs at "
                         f"least {MIN_JUDGED_QUERIES} (a paired interval needs two, a decision usually 100+)",
                         hint="pass a longer query log (--queries)")


def check_not_both(qrels: Any, labels: Any) -> None:
    if qrels is not None and labels is not None:
        raise ConfigError("--labels with --qrels: the relevance judgments already decide",
                          hint="drop --labels, or drop --qrels to combine the labels with a judge")
