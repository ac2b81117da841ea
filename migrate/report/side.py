"""One side of a comparison (the old index or the new one), as plain data.

A side is: document ids, their float32 vectors, a function that embeds query texts
into the same space, and a description of *how* both were embedded (model, task,
prefix, dims, normalisation, backend, stand-in or real) so a report can be reproduced.

A side may be *chunked*: several vectors per document (``vector_doc[i]`` is the
document index of row ``i``); a document's score is then the max over its chunks,
the way late-chunking retrieval ranks documents. A side may also carry a built
ANN index (e.g. the migration's ``index.faiss``) whose recall is measured against
exact search.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from migrate.embed.base import truncate_and_normalize
from migrate.errors import InputError

QueryEncoder = Callable[[Sequence[str]], np.ndarray]


@dataclass
class AnnIndex:
    """A searchable approximate index: ``search(queries, k) -> (scores, doc_index)``.

    ``doc_index`` holds positions into the side's ``doc_ids`` (-1 for an empty slot).
    """

    search: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]
    description: dict[str, Any] = field(default_factory=dict)


@dataclass
class Side:
    """Everything ``compare`` needs about one index."""

    name: str
    doc_ids: list[str]
    vectors: np.ndarray
    encode_queries: QueryEncoder
    description: dict[str, Any] = field(default_factory=dict)
    vector_doc: np.ndarray | None = None  # chunked: row -> document position
    ann: AnnIndex | None = None

    def __post_init__(self) -> None:
        v = np.asarray(self.vectors)
        if v.ndim != 2:
            raise InputError(f"{self.name}: vectors must be a 2-D matrix, got shape {v.shape}",
                             hint="one row per document (or chunk)")
        if not np.all(np.isfinite(v)):
            raise InputError(f"{self.name}: vectors contain NaN or infinity", hint="re-embed the affected documents")
        # Cosine scores: make every row unit length (a no-op for normalised indexes).
        self.vectors = truncate_and_normalize(v, None)
        if self.vector_doc is None:
            if len(self.doc_ids) != v.shape[0]:
                raise InputError(f"{self.name}: {len(self.doc_ids)} ids but {v.shape[0]} vectors",
                                 hint="ids and vectors must line up one to one")
        else:
            vd = np.asarray(self.vector_doc, dtype=np.int64)
            if vd.shape != (v.shape[0],) or (vd.size and (vd.min() < 0 or vd.max() >= len(self.doc_ids))):
                raise InputError(f"{self.name}: chunk-to-document map does not match the vectors",
                                 hint="vector_doc[i] must be a document position for every row")
            order = np.argsort(vd, kind="stable")
            self.vectors = np.ascontiguousarray(self.vectors[order])
            self.vector_doc = vd[order]
            if np.unique(self.vector_doc).size != len(self.doc_ids):
                raise InputError(f"{self.name}: some documents have no chunk vector",
                                 hint="every document needs at least one vector")
        if len(set(self.doc_ids)) != len(self.doc_ids):
            raise InputError(f"{self.name}: duplicate document ids", hint="document ids must be unique")

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def chunked(self) -> bool:
        return self.vector_doc is not None
