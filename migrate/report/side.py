"""One side of a comparison (the old index or the new one).

A side is: a searchable set of documents (``DocStore``), a function that embeds query
texts into the same space, and a description of *how* both were embedded (model, task,
prefix, dims, normalisation, backend, stand-in or real) so a report can be reproduced.

Two stores:

* ``VectorStore``: vectors in memory (an old index, a corpus embedded now, tests). It may
  be *chunked*: several vectors per document (``vector_doc[i]`` is the document of row
  ``i``); a document's score is then the max over its chunks, the way late-chunking
  retrieval ranks documents.
* ``OutputStore``: a finished migration output, searched through its ``index.faiss`` (or,
  for an ANN index, by an exact pass over ``embeddings.parquet``) without loading it.

A side may also carry a built ANN index whose recall is measured against exact search.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from migrate.embed.base import truncate_and_normalize
from migrate.errors import InputError
from migrate.report.schema import SideDescription
from migrate.report.search import Ranking, exact_search

QueryEncoder = Callable[[Sequence[str]], np.ndarray]


class DocStore(Protocol):
    """Documents a side can search; positions index its unique documents."""

    n_docs: int
    n_vectors: int
    dim: int
    chunked: bool
    search_kind: str  # how ``search`` answers, for the report

    def ids_at(self, positions: np.ndarray) -> list[str]: ...

    def search(self, queries: np.ndarray, depth: int) -> Ranking: ...

    def sweep(self, queries: np.ndarray, dims: Sequence[int], depth: int) -> dict[int, Ranking]:
        """Exact rankings with vectors and queries truncated to each of ``dims`` and re-normalised."""
        ...


class VectorStore:
    """Vectors held in memory, searched exactly (every row made unit length: cosine)."""

    search_kind = "exact search over the vectors in memory"

    def __init__(self, name: str, doc_ids: Sequence[str], vectors: np.ndarray,
                 vector_doc: np.ndarray | None = None) -> None:
        v = np.asarray(vectors)
        if v.ndim != 2:
            raise InputError(f"{name}: vectors must be a 2-D matrix, got shape {v.shape}",
                             hint="one row per document (or chunk)")
        if not np.all(np.isfinite(v)):
            raise InputError(f"{name}: vectors contain NaN or infinity", hint="re-embed the affected documents")
        self.doc_ids = [str(d) for d in doc_ids]
        self.vectors = truncate_and_normalize(v, None)
        self.vector_doc: np.ndarray | None = None
        if vector_doc is None:
            if len(self.doc_ids) != v.shape[0]:
                raise InputError(f"{name}: {len(self.doc_ids)} ids but {v.shape[0]} vectors",
                                 hint="ids and vectors must line up one to one")
        else:
            vd = np.asarray(vector_doc, dtype=np.int64)
            if vd.shape != (v.shape[0],) or (vd.size and (vd.min() < 0 or vd.max() >= len(self.doc_ids))):
                raise InputError(f"{name}: chunk-to-document map does not match the vectors",
                                 hint="vector_doc[i] must be a document position for every row")
            order = np.argsort(vd, kind="stable")
            self.vectors = np.ascontiguousarray(self.vectors[order])
            self.vector_doc = vd[order]
            if np.unique(self.vector_doc).size != len(self.doc_ids):
                raise InputError(f"{name}: some documents have no chunk vector",
                                 hint="every document needs at least one vector")
        if len(set(self.doc_ids)) != len(self.doc_ids):
            raise InputError(f"{name}: duplicate document ids", hint="document ids must be unique")
        self.n_docs = len(self.doc_ids)
        self.n_vectors = int(self.vectors.shape[0])
        self.dim = int(self.vectors.shape[1])
        self.chunked = self.vector_doc is not None

    def ids_at(self, positions: np.ndarray) -> list[str]:
        return [self.doc_ids[int(i)] for i in positions]

    def search(self, queries: np.ndarray, depth: int) -> Ranking:
        return exact_search(self.vectors, queries, depth, self.vector_doc, self.n_docs)

    def sweep(self, queries: np.ndarray, dims: Sequence[int], depth: int) -> dict[int, Ranking]:
        return {d: exact_search(truncate_and_normalize(self.vectors, d), truncate_and_normalize(queries, d), depth,
                                self.vector_doc, self.n_docs) for d in dims}


class OutputStore:
    """A finished migration output (``report.output.OutputIndex``), never loaded whole."""

    def __init__(self, index: Any) -> None:
        self.index = index
        self.n_docs = index.n_docs
        self.n_vectors = index.n_vectors
        self.dim = index.dim
        self.chunked = index.row_doc is not None
        if index.exact:
            self.search_kind = f"exact: {index.faiss_type} from index.faiss, memory-mapped"
        else:
            self.search_kind = (f"exact: a streamed pass over embeddings.parquet (index.faiss is an approximate "
                                f"{index.faiss_type}; --ann measures it)")

    def ids_at(self, positions: np.ndarray) -> list[str]:
        return self.index.ids_at(positions)

    def search(self, queries: np.ndarray, depth: int) -> Ranking:
        if self.index.exact:
            return self.index.search_index(queries, depth)
        return self.index.search_streaming({None: queries}, depth)[None]

    def sweep(self, queries: np.ndarray, dims: Sequence[int], depth: int) -> dict[int, Ranking]:
        """One streamed pass over ``embeddings.parquet`` for every size at once."""
        qs = {d: truncate_and_normalize(queries, d) for d in dims}
        return self.index.search_streaming(qs, depth)


@dataclass
class AnnIndex:
    """A searchable approximate index: ``search(queries, k) -> (scores, doc_index)``.

    ``doc_index`` holds positions into the side's documents (-1 for an empty slot).
    """

    search: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]
    description: dict[str, Any] = field(default_factory=dict)


@dataclass
class Side:
    """Everything ``compare`` needs about one index.

    ``describe``, when set, is called after the queries were embedded and replaces
    ``description``: an API backend only learns its dimensions and whether a stand-in
    answers (``X-Jina-Migrate-Stand-In``) from its first response.
    """

    name: str
    docs: DocStore
    encode_queries: QueryEncoder
    description: SideDescription = field(default_factory=SideDescription)
    ann: AnnIndex | None = None
    describe: Callable[[], SideDescription] | None = None
    #: The model behind the side and its tasks, kept for the known-item guard (it re-embeds shortened
    #: documents the way the index was built); None where not known.
    embedder: Any = None
    query_task: str | None = None
    doc_task: str | None = None

    @classmethod
    def from_vectors(cls, name: str, doc_ids: Sequence[str], vectors: np.ndarray, encode_queries: QueryEncoder,
                     description: SideDescription | None = None, vector_doc: np.ndarray | None = None,
                     ann: AnnIndex | None = None) -> Side:
        """A side over vectors in memory (``vector_doc`` makes it chunked)."""
        return cls(name, VectorStore(name, doc_ids, vectors, vector_doc), encode_queries,
                   description or SideDescription(), ann)

    @property
    def dim(self) -> int:
        return self.docs.dim

    @property
    def chunked(self) -> bool:
        return self.docs.chunked

    def final_description(self) -> SideDescription:
        if self.describe is not None:
            self.description = self.describe()
            self.describe = None
        self.description.search = self.docs.search_kind
        return self.description
