"""The old (v2) index as the rest of the package sees it, whatever kind read it: where it is
(:class:`OldIndexSpec`), which documents it holds (:class:`OldKeys`, planning) and the same with its
vectors (:class:`OldIndex`, compare and search). Every source kind (:mod:`migrate.sources.old_index`,
:mod:`migrate.sources.database`, each format of :mod:`migrate.sources.formats`) returns these."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa


@dataclass(frozen=True)
class OldIndexSpec:
    """Where the old index is and how its ids map to documents (picklable)."""

    path: str
    id_map: str | None = None
    id_map_faiss_field: str | None = None
    id_map_id_field: str | None = None
    id_field: str | None = None
    vector_field: str | None = None


@dataclass
class OldKeys:
    """Which documents the old index holds, one entry per stored vector, in index order."""

    path: Path  # or the collection's Address
    kind: str  # FAISS class name of the innermost index, "dataset" or "collection"
    ntotal: int
    dim: int
    metric: str = "ip"
    faiss_ids: np.ndarray | None = None  # int64 ids stored in the index; None: row order (vector i = row i)
    ids: pa.Array | None = None  # document id (string) of each vector; None for a row-order index
    id_source: str = "dataset"  # id-map | faiss-ids | dataset | row-order | a format's name (its own ids)
    id_map: Path | None = None
    notes: list[str] = field(default_factory=list)
    format: str | None = None  # a framework format (migrate.sources.formats) that saved the index
    findings: list[dict[str, str]] = field(default_factory=list)  # what the plan must say (code, severity, ...)

    def __len__(self) -> int:
        return self.ntotal

    @property
    def is_faiss(self) -> bool:
        """A FAISS file whose ids (or rows) are the join key; a framework's store joins by its own ids."""
        return self.format is None and self.kind not in ("dataset", "collection")


@dataclass
class OldIndex:
    """The old index with its vectors (for compare and search)."""

    path: Path
    ids: list[str]  # document id of each stored vector, in index order
    faiss_ids: np.ndarray | None  # int64 ids stored in the FAISS index (None: row order)
    vectors: np.ndarray | None
    dim: int
    metric: str = "ip"
    kind: str = "dataset"
    lossy: bool = False
    why_no_vectors: str | None = None
    texts: list[str] | None = None  # only for datasets that carry text
    notes: list[str] = field(default_factory=list)
    format: str | None = None  # a framework format (migrate.sources.formats) that saved the index

    def __len__(self) -> int:
        return len(self.ids)
