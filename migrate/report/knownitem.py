"""The known-item regression guard: does each index still find a document from a piece of it?

What, per seeded sample of documents (default 300):

1. ``sample_items``: a query per document (its title where it has one, otherwise one of its
   sentences), and the document's text with that query taken *out* (left in, the test
   measures string matching: Kendall tau 0.28 for titles, ``../shared/docs/evaluation.md``).
   Documents are ordered by a hash of (seed, id), so the sample depends on the seed and the
   ids only: not on the order a file or a database returns them, and mostly not on
   documents added since.
2. ``run_guard``: on each side, the queries and the shortened documents are embedded by
   that side's own model (``GuardSide``: the embedder the report already uses for the side,
   with the side's query and document tasks); each query is searched among the unchanged
   rest of the index with its own document replaced by the shortened one: the rank of that
   document is 1 + the number of *other* documents scoring above it (exact cosine, from one
   exact pass over the index: ``DocStore.sweep``; so a FAISS file and a pgvector table holding
   the same vectors give the same numbers, whatever index the engine built).
3. MRR@10 and Recall@10 per side with 95 % bootstrap intervals, paired over the same
   queries (``stats.paired``), and a verdict that is only ever "regression" or "no
   regression detected": known-item queries reward word overlap and reading the whole
   document, so they catch a clearly worse index and cannot show that one competitive
   model is better (``evaluation.md``: on short keyword queries they declared 5 of the 6
   pairs humans cannot separate significantly different).

The guard fires when the whole 95 % interval of the MRR@10 difference (new - old) lies below
``-margin`` (``DEFAULT_MARGIN``): the new index finds its own documents less often, by more
than the margin, with confidence. A side whose model cannot run (no embedder, a chunked
index whose chunker cannot be replayed here) is *skipped* with its reason: never guessed.
Re-embedded vectors are cached by content (``scorecache``), so a rerun pays nothing.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from migrate.embed.base import Embedder, truncate_and_normalize
from migrate.errors import ConfigError, InputError
from migrate.report.evidence import NO_REGRESSION_GUARD, REGRESSION, SKIPPED, KnownItemResult, SideKnownItem
from migrate.report.scorecache import ScoreCache, content_key
from migrate.report.sentences import remove_span, sentence_spans, word_chars
from migrate.report.stats import paired

DEFAULT_SAMPLE = 300
DEFAULT_SEED = 0
DEFAULT_K = 10
#: MRR@10 points; the guard fires when the 95 % interval of new - old lies wholly below -margin.
#: Calibrated with bench/label_free.py on SciFact (5,183 documents, 300 test queries, 300 known-item
#: queries, 6 systems, 30 ordered pairs; README "Is v3 better for us?"): at 0.10 the guard raised no
#: false alarm (it fired only where the human qrels say new is significantly worse) with title or
#: sentence queries, and caught all 5 clearly worse pairs (the static model, -0.39 to -0.53 nDCG@10)
#: and 4 of the MiniLM-at-64-tokens pairs; sentence queries raised a false alarm below 0.038 (BM25
#: over MiniLM-256, humans +0.017, p = 0.41). On the corpus with short keyword queries
#: (../shared/docs/evaluation.md) the known-item gap between two systems humans could not separate
#: reached 0.09 MRR (its interval's edge about 0.05 from 0): 0.10 stays clear of that too.
DEFAULT_MARGIN = 0.10
#: Fewer known-item queries than this and the guard does not judge (skipped, saying so): an
#: interval from a handful of queries is noise (evaluation.md: 25 queries agreed with human
#: verdicts on 9.4 of 15 system pairs, 100 on 13.1).
MIN_QUERIES = 20
KINDS = ("auto", "title", "sentence")
#: A sentence becomes a query only with this many letters or digits (about four words):
#: shorter ones ("Results.", "See Fig. 2.") identify nothing.
MIN_QUERY_CHARS = 20
#: A title becomes the query only with this many letters or digits (else, in auto, a sentence).
MIN_TITLE_CHARS = 3
#: What must remain of a document once its query is taken out.
MIN_REST_CHARS = 20
LIMIT = ("a known-item query (a title or sentence taken out of its own document) only checks that an index "
         "finds that document again: it catches a clearly worse index, but rewards word overlap and cannot "
         "show that one good model is better than another")

Encoder = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class SourceDoc:
    """A document as the index holds it: ``text`` is the body, ``title`` separate when there is one.

    The indexed text was ``title + " " + text`` (the rule of every source, ``sources.files``).
    """

    id: str
    text: str
    title: str | None = None


@dataclass(frozen=True)
class KnownItem:
    """One known-item query: ``query`` taken out of document ``doc_id``, leaving ``rest``."""

    doc_id: str
    query: str
    rest: str
    kind: str  # "title" | "sentence"


@dataclass
class KnownItemSample:
    """The queries made, and why examined documents made none."""

    items: list[KnownItem]
    seed: int
    sample: int
    kind: str
    documents: int  # documents read
    unusable: Counter = field(default_factory=Counter)  # reason -> documents examined that made no query

    @property
    def kinds(self) -> dict[str, int]:
        return dict(Counter(it.kind for it in self.items))


def _join_title(title: str | None, text: str) -> str:
    from migrate.sources.files import _join_title as join  # the one rule for title + text

    return join(title, text)


def _order(seed: int, doc_id: str, salt: str = "") -> int:
    digest = hashlib.blake2b(f"{seed}\0{salt}\0{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def make_item(doc: SourceDoc, *, kind: str = "auto", seed: int = DEFAULT_SEED) -> KnownItem | str:
    """The known-item query of ``doc``, or the reason it has none."""
    title = (doc.title or "").strip()
    body = doc.text or ""
    usable_title = word_chars(title) >= MIN_TITLE_CHARS
    if kind == "title" or (kind == "auto" and usable_title):
        if not usable_title:
            return "no title" if not title else "a title too short to be a query"
        if word_chars(body) < MIN_REST_CHARS:
            return "nothing but a title"
        return KnownItem(doc.id, title, body.strip(), "title")
    spans = [s for s in sentence_spans(body) if word_chars(body[s[0]:s[1]]) >= MIN_QUERY_CHARS]
    if not spans:
        return "no sentence long enough to be a query"
    # the sentence: drawn by the seed, among those whose removal leaves enough of the document
    for offset in range(len(spans)):
        span = spans[(_order(seed, doc.id, "sentence") + offset) % len(spans)]
        rest = _join_title(doc.title or None, remove_span(body, span))
        if word_chars(rest) >= MIN_REST_CHARS:
            return KnownItem(doc.id, body[span[0]:span[1]], rest, "sentence")
    return "a single sentence (nothing left once it is taken out)"


def sample_items(docs: Iterable[SourceDoc], *, sample: int = DEFAULT_SAMPLE, seed: int = DEFAULT_SEED,
                 kind: str = "auto") -> KnownItemSample:
    """Up to ``sample`` known-item queries from the documents whose (seed, id) hashes are smallest.

    Streams the documents once, holding ``sample`` candidates; only documents that could
    enter the sample are split into sentences. ``InputError`` when no document makes a query.
    """
    if kind not in KINDS:
        raise ConfigError(f"known-item query kind {kind!r} is not one of {', '.join(KINDS)}",
                          hint="auto: the title where there is one, else a sentence")
    if sample < 1:
        raise ConfigError(f"known-item sample {sample} must be at least 1", hint=f"the default is {DEFAULT_SAMPLE}")
    heap: list[tuple[int, str, KnownItem]] = []  # (-order, id, item): the largest order on top
    unusable: Counter = Counter()
    n = 0
    for doc in docs:
        n += 1
        order = _order(seed, doc.id)
        if len(heap) == sample and -heap[0][0] <= order:
            continue
        made = make_item(doc, kind=kind, seed=seed)
        if isinstance(made, str):
            unusable[made] += 1
            continue
        entry = (-order, doc.id, made)
        if len(heap) < sample:
            heapq.heappush(heap, entry)
        else:
            heapq.heapreplace(heap, entry)
    if not heap:
        if n == 0:
            raise InputError("the known-item guard got no documents", hint="pass the documents the index was built from "
                             "(--docs)")
        why = ", ".join(f"{c} {r}" for r, c in unusable.most_common())
        raise InputError(f"none of the {n} documents can make a known-item query ({why})",
                         hint=f"the guard needs documents with a title or with two or more sentences of "
                              f"{MIN_QUERY_CHARS}+ letters; use --qrels or a judge instead")
    items = [e[2] for e in sorted(heap, key=lambda e: -e[0])]
    return KnownItemSample(items, seed, sample, kind, n, unusable)


# --------------------------------------------------------------------------- one side


@dataclass
class GuardSide:
    """One index as the guard sees it: its documents, and its model to embed queries and documents.

    ``skip_reason`` set (or no encoders): the side cannot be re-embedded, and the guard says so.
    ``cache_id`` identifies the model and its settings for the vector cache (None: no caching).
    """

    name: str
    docs: Any = None  # a side.DocStore
    encode_queries: Encoder | None = None
    encode_docs: Encoder | None = None
    describe: Callable[[], str] = lambda: ""
    cache_id: str | None = None
    skip_reason: str | None = None

    @property
    def runnable(self) -> bool:
        return self.skip_reason is None and self.encode_queries is not None and self.encode_docs is not None


#: Embedder settings that do not change a vector (kept out of the cache identity). The base URL
#: stays in: a rehearsal server's stand-in vectors must never be served for the real API's.
_NOT_IDENTITY = ("device", "rate_limits", "paid", "token_estimate", "api_key_env", "api_key_file", "stand_in",
                 "shared_limiter")


def embedder_identity(embedder: Embedder) -> str:
    """What decides an embedder's vectors, as one JSON string (model, backend, sizes, settings)."""
    info = embedder.info().as_dict()
    return json.dumps({k: v for k, v in info.items() if k not in _NOT_IDENTITY}, sort_keys=True, default=str)


def guard_side(name: str, docs: Any, embedder: Embedder | None, *, query_task: str, doc_task: str | None,
               why_not: str | None = None) -> GuardSide:
    """The guard's view of a report side (``docs`` is its ``DocStore``): ``embedder`` embeds
    queries with ``query_task`` and documents with ``doc_task``, as the side's index was built.

    Skipped (with the reason) when there is no embedder (``why_not`` says why), when the
    document task is unknown, or when the index is chunked (one document, several vectors:
    the shortened document would need the run's chunker).
    """
    if embedder is None:
        return GuardSide(name, docs, skip_reason=why_not or f"{name}: no model to re-embed its documents with")
    if getattr(docs, "chunked", False):
        return GuardSide(name, docs, skip_reason=f"{name}: the index is chunked (several vectors per document); "
                                                 "re-embedding one document would need the run's chunker")
    if doc_task is None:
        return GuardSide(name, docs, skip_reason=f"{name}: how its documents were embedded (the task) is not "
                                                 "recorded; pass the document task")

    def encoder(task: str) -> Encoder:
        return lambda texts: embedder.embed(list(texts), task=task).vectors

    def describe() -> str:
        info = embedder.info()
        if info.stand_in:
            return f"stand-in '{info.stand_in}' answering for {info.model} ({info.backend})"
        return f"{info.model} via {info.backend}"

    return GuardSide(name, docs, encoder(query_task), encoder(doc_task), describe,
                     f"{embedder_identity(embedder)}\0{query_task}\0{doc_task}")


def _encode(side: GuardSide, what: str, texts: list[str], encode: Encoder, cache: ScoreCache | None,
            batch: int) -> np.ndarray:
    """``encode(texts)`` in batches, through the content cache when the side has an identity."""
    keys = [content_key("knownitem-vector", side.cache_id, what, t) for t in texts] if side.cache_id else None
    found = cache.get_vectors(keys) if cache is not None and keys is not None else {}
    todo = [i for i in range(len(texts)) if keys is None or keys[i] not in found]
    fresh: dict[int, np.ndarray] = {}
    for b in range(0, len(todo), batch):
        idx = todo[b:b + batch]
        v = np.asarray(encode([texts[i] for i in idx]), dtype=np.float32)
        if v.ndim != 2 or v.shape[0] != len(idx):
            raise InputError(f"{side.name}: the model returned {v.shape[0] if v.ndim else 0} vectors for "
                             f"{len(idx)} texts", hint="the embedder must return one vector per text")
        fresh.update(zip(idx, v))
        if cache is not None and keys is not None:
            cache.put_vectors((keys[i], fresh[i]) for i in idx)
    rows = [fresh[i] if i in fresh else found[keys[i]] for i in range(len(texts))]  # type: ignore[index]
    widths = {r.shape[0] for r in rows}
    if len(widths) != 1:
        raise InputError(f"{side.name}: vectors of different widths {sorted(widths)}",
                         hint="the cache or the model changed width: delete the cache and run again")
    return truncate_and_normalize(np.stack(rows), None)


def ranks(side: GuardSide, items: Sequence[KnownItem], *, k: int = DEFAULT_K, cache: ScoreCache | None = None,
          batch: int = 256) -> list[int | None]:
    """Rank (1-based) of each item's shortened document among the rest of ``side``'s index; None past ``k``."""
    assert side.encode_queries is not None and side.encode_docs is not None
    q = _encode(side, "query", [it.query for it in items], side.encode_queries, cache, batch)
    d = _encode(side, "document", [it.rest for it in items], side.encode_docs, cache, batch)
    store = side.docs
    if q.shape[1] != store.dim:
        raise ConfigError(f"{side.name}: the model embeds to {q.shape[1]} dims but the index has {store.dim}",
                          hint="re-embed with the model (and --dimensions) that built this index")
    own = np.einsum("ij,ij->i", q, d)  # cosine of each query with its own shortened document
    ranking = store.sweep(q, [store.dim], k + 1)[store.dim]
    out: list[int | None] = []
    for i, it in enumerate(items):
        pos = ranking.doc_index[i]
        keep = pos >= 0
        ids = store.ids_at(pos[keep])
        others = [float(s) for did, s in zip(ids, ranking.scores[i][keep]) if did != it.doc_id][:k]
        above = sum(1 for s in others if s > own[i])
        out.append(above + 1 if above < k else None)
    return out


# --------------------------------------------------------------------------- the guard


def _skipped(reason: str, sample: KnownItemSample, *, k: int, margin: float) -> KnownItemResult:
    return KnownItemResult(SKIPPED, reason, k, sample.seed, sample.sample, len(sample.items), sample.kinds, margin,
                           LIMIT)


def run_guard(sample: KnownItemSample, old: GuardSide, new: GuardSide, *, k: int = DEFAULT_K,
              margin: float = DEFAULT_MARGIN, cache: ScoreCache | None = None, batch: int = 256) -> KnownItemResult:
    """Both sides' known-item MRR@k / Recall@k on ``sample`` and the guard's verdict (see the module docstring)."""
    if k < 1:
        raise ConfigError(f"known-item k {k} must be at least 1", hint="e.g. 10")
    if margin < 0:
        raise ConfigError(f"known-item margin {margin} must be >= 0", hint=f"the default is {DEFAULT_MARGIN}")
    for side in (old, new):
        if not side.runnable:
            return _skipped(side.skip_reason or f"{side.name}: no model to re-embed with", sample, k=k,
                            margin=margin)
    items = sample.items
    if len(items) < MIN_QUERIES:
        return _skipped(f"only {len(items)} documents make known-item queries; the guard needs at least "
                        f"{MIN_QUERIES} to judge", sample, k=k, margin=margin)
    per_side = {}
    for side in (old, new):
        r = ranks(side, items, k=k, cache=cache, batch=batch)
        rr = np.array([1.0 / x if x is not None else 0.0 for x in r])
        hit = np.array([1.0 if x is not None else 0.0 for x in r])
        per_side[side.name] = (r, rr, hit)
    (r_old, rr_old, hit_old), (r_new, rr_new, hit_new) = per_side[old.name], per_side[new.name]
    mrr, recall = paired(rr_old, rr_new), paired(hit_old, hit_new)
    fired = mrr.delta_ci[1] < -margin
    reason = (f"new finds its own documents less often: MRR@{k} {mrr.old_mean:.3f} → {mrr.new_mean:.3f} "
              f"(95 % CI of the difference {mrr.delta_ci[0]:+.3f} to {mrr.delta_ci[1]:+.3f}, wholly below "
              f"-{margin:g})") if fired else None
    return KnownItemResult(
        REGRESSION if fired else NO_REGRESSION_GUARD, reason, k, sample.seed, sample.sample, len(items), sample.kinds,
        margin, LIMIT,
        old=SideKnownItem(old.name, old.describe(), mrr.old_mean, mrr.old_ci, recall.old_mean, recall.old_ci),
        new=SideKnownItem(new.name, new.describe(), mrr.new_mean, mrr.new_ci, recall.new_mean, recall.new_ci),
        mrr=mrr, recall=recall,
        per_query=[{"doc_id": it.doc_id, "kind": it.kind, f"rank_{old.name}": a, f"rank_{new.name}": b}
                   for it, a, b in zip(items, r_old, r_new)])
