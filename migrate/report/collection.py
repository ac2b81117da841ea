"""A vector-database collection as one side of a comparison, searched where it lives.

What: ``CollectionStore`` is a ``DocStore`` over a collection (``postgresql://...``,
``qdrant://...``, ``milvus://...``, ``lancedb://...``, ``chroma://...``): ``search`` asks the
engine itself (``Engine.search``, with the collection's own ANN index and metric), so no
vector is held in memory; the Matryoshka ``sweep`` and the exact reference that ``--ann``
measures the engine's index against stream the collection once (``Engine.scan``) through an
exact running top-k. ``side_from_collection`` builds the ``Side`` (queries embedded by the
model given); ``CollectionTexts`` fetches the text of the documents a report shows, by id.
Why: most v2 indexes live in a database; comparing must not need an export, and must measure
what the application really gets from that database.

Positions: the report addresses documents by position (``ids_at``). A collection has no
positions of its own, so the store numbers the ids it has returned, in the order it first
returned them; only ids that appear in some result list are ever held (never the whole id list).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from migrate.embed.base import Embedder, truncate_and_normalize
from migrate.errors import InputError
from migrate.report.schema import SideDescription
from migrate.report.search import Ranking, TopK
from migrate.report.side import AnnIndex, Side

#: a truncation size (None: the full width)
Size = TypeVar("Size", bound=int | None)

#: Rows per scan batch in a streamed exact pass (x 1024 dims x 4 bytes = 16 MB).
SCAN_ROWS = 4_096
#: Queries sent to the engine at a time.
QUERY_BATCH = 64


def _labels(info: Any) -> dict[str, str]:
    """What the report says about the collection (engine statistics, never a secret)."""
    out = {"collection rows (engine statistics)": f"{info.rows:,}" + ("" if info.rows_exact else " (estimate)"),
           "collection metric": str(info.metric or "unknown")}
    if info.created_by_run:
        out["collection created by"] = f"jina-migrate run {info.created_by_run}"
    if info.alias_of:
        out["collection is an alias of"] = str(info.alias_of)
    return out


class CollectionStore:
    """A collection searched by its engine (see the module docstring); ``exact=True`` makes
    ``search`` a streamed exact pass instead (the reference ``--ann`` measures the engine against)."""

    chunked = False

    def __init__(self, engine: Any, collection: str, *, exact: bool = False) -> None:
        self.engine = engine
        self.collection = collection
        self.info = engine.describe(collection)
        if not self.info.dim:
            raise InputError(f"{engine.address}: {collection!r} has no vector field to search",
                             hint="point the address at a collection with vectors (&vector=FIELD)")
        self.dim = int(self.info.dim)
        self.n_docs = self.n_vectors = int(engine.count(collection))
        if self.n_docs == 0:
            raise InputError(f"{engine.address}: {collection!r} is empty", hint="nothing to compare against")
        self.exact = exact
        self._ids: list[str] = []
        self._pos: dict[str, int] = {}
        if exact:
            self.search_kind = (f"exact: a streamed pass over {engine.address} (cosine); the engine's own index "
                                f"is measured against it")
        else:
            self.search_kind = f"the engine's own index: {self.info.index or 'exact scan'} in {engine.address}"

    # ------------------------------------------------------------------ positions

    def _position(self, doc_id: str) -> int:
        pos = self._pos.get(doc_id)
        if pos is None:
            pos = self._pos[doc_id] = len(self._ids)
            self._ids.append(doc_id)
        return pos

    def ids_at(self, positions: np.ndarray) -> list[str]:
        return [self._ids[int(i)] for i in positions]

    # ------------------------------------------------------------------ search

    def engine_search(self, queries: np.ndarray, depth: int) -> Ranking:
        """Top-``depth`` per query from the engine's own index; fewer hits leave -1 slots."""
        depth = min(depth, self.n_docs)
        nq = queries.shape[0]
        pos = np.full((nq, depth), -1, dtype=np.int64)
        sc = np.full((nq, depth), -np.inf, dtype=np.float32)
        for b in range(0, nq, QUERY_BATCH):
            answers = self.engine.search(self.collection, np.ascontiguousarray(queries[b:b + QUERY_BATCH]), depth)
            for qi, hits in enumerate(answers, start=b):
                for r, (doc_id, score) in enumerate(hits[:depth]):
                    pos[qi, r] = self._position(str(doc_id))
                    sc[qi, r] = score
        return Ranking(pos, sc)

    def search(self, queries: np.ndarray, depth: int) -> Ranking:
        if self.exact:
            return self._streamed({None: queries}, depth)[None]
        return self.engine_search(queries, depth)

    def sweep(self, queries: np.ndarray, dims: Sequence[int], depth: int) -> dict[int, Ranking]:
        """One streamed pass over the collection for every size at once (vectors truncated, re-normalised)."""
        return self._streamed({d: truncate_and_normalize(queries, d) for d in dims}, depth)

    def _batches(self) -> Iterator[tuple[list[str], np.ndarray]]:
        from migrate.engines.base import vectors_of

        for batch in self.engine.scan(self.collection, batch_rows=SCAN_ROWS, with_vectors=True):
            if batch.num_rows:
                yield batch.column("id").to_pylist(), vectors_of(batch.column("vector"))

    def _streamed(self, queries: dict[Size, np.ndarray], depth: int) -> dict[Size, Ranking]:
        """Exact cosine top-``depth`` for each query set (key: truncation size, None = full), one scan.

        Rows of the current batch get temporary negative positions; after each batch only the ids
        that made some top list are numbered, so memory is one batch plus the top lists.
        """
        depth = min(depth, self.n_docs)
        tops = {d: TopK(q.shape[0], depth) for d, q in queries.items()}
        for ids, vectors in self._batches():
            temp = -2 - np.arange(len(ids), dtype=np.int64)
            for d, q in queries.items():
                top = tops[d]
                top.add(q @ truncate_and_normalize(vectors, d).T, temp)
                fresh = top.pos <= -2
                if fresh.any():
                    top.pos[fresh] = [self._position(ids[-2 - int(t)]) for t in top.pos[fresh]]
        return {d: top.ranking() for d, top in tops.items()}


class CollectionTexts(Mapping):
    """Document texts fetched from a collection by id, for the report's result lists.

    ``load(ids)`` fetches many at once (the report calls it with every id it will show);
    a lookup of an id not loaded fetches that one id.
    """

    def __init__(self, engine: Any, collection: str, field: str) -> None:
        self.engine, self.collection, self.field = engine, collection, field
        self._cache: dict[str, str | None] = {}

    def load(self, ids: Sequence[str]) -> None:
        todo = [i for i in dict.fromkeys(ids) if i not in self._cache]
        for start in range(0, len(todo), 512):
            part = todo[start:start + 512]
            got = self.engine.fetch(self.collection, part, with_vectors=False)
            texts = got.column(self.field).cast(pa.string()).to_pylist() if got.num_rows else []
            found = dict(zip(got.column("id").to_pylist(), texts))
            for i in part:
                self._cache[i] = found.get(i)

    def __getitem__(self, doc_id: str) -> str:
        if doc_id not in self._cache:
            self.load([doc_id])
        text = self._cache[doc_id]
        if text is None:
            raise KeyError(doc_id)
        return text

    def __contains__(self, doc_id: object) -> bool:
        if not isinstance(doc_id, str):
            return False
        try:
            self[doc_id]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return (k for k, v in self._cache.items() if v is not None)

    def __len__(self) -> int:
        return sum(1 for v in self._cache.values() if v is not None)


def text_field_of(engine: Any, info: Any) -> str | None:
    """The string field holding the text, by the sources' rule (``&text=FIELD``, else the engine's own document
    text such as Chroma's ``documents``, else a usual name), or None."""
    from migrate.sources.database import pick_text_field

    strings = [f.name for f in info.payload if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    return pick_text_field(strings, engine.address.text_field, getattr(info, "text_field", None))


def open_collection(address: str, *, exact: bool = False) -> CollectionStore:
    """Connect to the collection at ``address`` and read its statistics (InputError when it does not exist)."""
    from migrate.engines import collection_address, open_engine

    addr = collection_address(address)
    assert addr.collection is not None  # collection_address refuses an address without one
    engine = open_engine(addr)
    try:
        return CollectionStore(engine, addr.collection, exact=exact)
    except BaseException:
        engine.close()
        raise


def side_from_collection(collection: str | CollectionStore, embedder: Embedder, *, name: str, query_task: str,
                         doc_task: str | None = None, ann: bool = False) -> Side:
    """A collection (an address, or one opened with ``open_collection``) searched with its engine's own
    index; queries embedded by ``embedder`` with ``query_task``.

    With ``ann`` the side's results come from an exact streamed pass and the engine's index is
    the ANN index whose recall the report measures. ``doc_task`` is how the documents were
    embedded when known (None: as stored, not recorded).
    """
    from migrate.report.build import describe, query_encoder

    store = collection if isinstance(collection, CollectionStore) else open_collection(collection, exact=ann)
    addr = store.engine.address
    ann_index = None
    if store.exact:
        def engine_ann(queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
            r = store.engine_search(queries, k)
            return r.scores, r.doc_index

        ann_index = AnnIndex(engine_ann, {"collection": str(addr), "engine": addr.engine,
                                          "index": store.info.index, "metric": store.info.metric,
                                          "ntotal": store.n_docs})
    side = Side(name, store, query_encoder(embedder, query_task), ann=ann_index)

    subject: list[dict[str, Any]] = []

    def describe_now() -> SideDescription:
        from migrate.report.gates import collection_subject

        d = describe(embedder, doc_task=doc_task, query_task=query_task, source=f"collection {addr}",
                     dim=store.dim, collection=str(addr), index_type=store.info.index)
        d.settings = {**_labels(store.info), **d.settings}
        if not subject:  # one checksum pass over the collection, however often the side is described
            subject.append(collection_subject(store.engine, store.info.name))
        d.subject = subject[0]
        return d

    side.describe = describe_now
    side.embedder, side.query_task, side.doc_task = embedder, query_task, doc_task
    return side


class TextsChain(Mapping[str, str]):
    """Texts from several collections (the first that holds an id wins); ``load`` asks each."""

    def __init__(self, *texts: CollectionTexts) -> None:
        self.texts = list(texts)

    def __getitem__(self, doc_id: str) -> str:
        for texts in self.texts:
            try:
                return texts[doc_id]
            except KeyError:
                pass
        raise KeyError(doc_id)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(doc_id for texts in self.texts for doc_id in texts))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def load(self, ids: Sequence[str]) -> None:
        for texts in self.texts:
            texts.load(ids)


def collection_texts(sides: Sequence[Side]) -> TextsChain | None:
    """The texts of the collection sides' documents, where their collections hold them (None: none do)."""
    found = []
    for side in sides:
        store = side.docs
        if isinstance(store, CollectionStore):
            field = text_field_of(store.engine, store.info)
            if field:
                found.append(CollectionTexts(store.engine, store.collection, field))
    return TextsChain(*found) if found else None


def close_side(side: Side) -> None:
    """Release a collection side's connection (other sides hold none)."""
    if isinstance(side.docs, CollectionStore):
        side.docs.engine.close()
