"""FAISS indexes for each ``--precision`` (``migrate.precision``), and rescoring with the float32 vectors kept beside.

=========  ===============================================  ==============================================
precision  ``--index-type flat``                            ``--index-type hnsw``
=========  ===============================================  ==============================================
float32    ``IndexFlatIP``                                  ``IndexHNSWFlat`` (inner product)
float16    ``IndexScalarQuantizer(QT_fp16)``                ``IndexHNSWSQ(QT_fp16)``
int8       ``IndexScalarQuantizer(QT_8bit_uniform)``        ``IndexHNSWSQ(QT_8bit_uniform)``
binary     ``IndexBinaryFlat`` (Hamming)                    ``IndexBinaryHNSW``
=========  ===============================================  ==============================================

Every index is wrapped in an id map (``IndexIDMap2`` / ``IndexBinaryIDMap2``) keyed by the documents'
int64 ids. The int8 index holds exactly the codes of ``embeddings.parquet``: its uniform quantiser's
range is set, not trained, to ``[-128.5, 126.5]`` over 255 steps, so FAISS's byte ``b`` decodes to the
integer ``b - 128`` (the ``direct_signed`` type would say so more plainly, but its SIMD inner product
gave wrong scores from 32 dimensions up in faiss 1.15.1). Its inner products are ``q·code``;
:func:`search` multiplies them by the scale to give cosines, and turns binary Hamming distances into
``1 - 2·h/d``. IVF-PQ compresses by itself and takes float32 only (``precision_problem``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from migrate.precision import RESCORE_FACTOR, VectorFormat
from migrate.workspace.manifest import IndexSettings

RESCORE = "rescore.npy"


#: The int8 index's uniform range (vmin, vdiff): byte b decodes to vmin + (b + 0.5)·vdiff/255 = b - 128.
INT8_RANGE = (-128.5, 255.0)


def _qtype(fmt: VectorFormat) -> int:
    import faiss

    return faiss.ScalarQuantizer.QT_fp16 if fmt.precision == "float16" else faiss.ScalarQuantizer.QT_8bit_uniform


def _integer_grid(sq_index: Any) -> None:
    """Set an int8 scalar quantiser's range so that it stores the integers -127..127 exactly."""
    import faiss

    faiss.copy_array_to_vector(np.array(INT8_RANGE, dtype=np.float32), sq_index.sq.trained)
    sq_index.is_trained = True


def reduced_index(settings: IndexSettings, d: int, fmt: VectorFormat) -> Any:
    """The id-mapped index of a reduced precision (flat or HNSW, per ``settings``)."""
    import faiss

    m = int(settings.params.get("hnsw_m") or 32)
    ef = int(settings.params.get("hnsw_ef_construction") or 200)
    if fmt.precision == "binary":
        if settings.type == "hnsw":
            binary_hnsw = faiss.IndexBinaryHNSW(d, m)
            binary_hnsw.hnsw.efConstruction = ef
            return faiss.IndexBinaryIDMap2(binary_hnsw)
        return faiss.IndexBinaryIDMap2(faiss.IndexBinaryFlat(d))
    inner: faiss.Index
    if settings.type == "hnsw":
        # the faiss stub types IndexHNSWSQ's second argument as a ScalarQuantizer; the C++ constructor
        # takes a ScalarQuantizer::QuantizerType (an int, as for IndexScalarQuantizer)
        hnsw = faiss.IndexHNSWSQ(d, _qtype(fmt), m, faiss.METRIC_INNER_PRODUCT)  # type: ignore[arg-type]
        hnsw.hnsw.efConstruction = ef
        if fmt.precision == "int8":
            _integer_grid(faiss.downcast_index(hnsw.storage))
            hnsw.is_trained = True
        inner = hnsw
    else:
        flat = faiss.IndexScalarQuantizer(d, _qtype(fmt), faiss.METRIC_INNER_PRODUCT)
        if fmt.precision == "int8":
            _integer_grid(flat)
        inner = flat
    return faiss.IndexIDMap2(inner)


def add(index: Any, vectors: np.ndarray, ids: np.ndarray, fmt: VectorFormat) -> None:
    """Add float32 ``vectors`` in the index's precision (the codes ``embeddings.parquet`` stores)."""
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if fmt.precision == "float32" or fmt.precision == "float16":
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
    elif fmt.precision == "int8":
        index.add_with_ids(np.ascontiguousarray(fmt.encode(vectors), dtype=np.float32), ids)
    else:
        index.add_with_ids(np.ascontiguousarray(fmt.encode(vectors)), ids)


def is_binary(index: Any) -> bool:
    import faiss

    return isinstance(index, faiss.IndexBinary)


def write(index: Any, path: Path) -> None:
    import faiss

    (faiss.write_index_binary if is_binary(index) else faiss.write_index)(index, str(path))


def read(path: Path, fmt: VectorFormat, *, mmap: bool = False) -> Any:
    """The index of an output of format ``fmt`` (outputs of earlier versions: float32)."""
    import faiss

    if fmt.precision == "binary":
        return faiss.read_index_binary(str(path))
    if mmap:
        try:
            return faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        except RuntimeError:
            pass
    return faiss.read_index(str(path))


def search(index: Any, queries: np.ndarray, k: int, fmt: VectorFormat) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, labels)`` with cosine-like scores, higher = closer, whatever the precision."""
    q = np.ascontiguousarray(queries, dtype=np.float32)
    if fmt.precision == "binary":
        dist, labels = index.search(np.packbits(q > 0, axis=1), k)
        return (1.0 - 2.0 * dist.astype(np.float32) / index.d), labels
    scores, labels = index.search(q, k)
    if fmt.precision == "int8" and fmt.scale:
        scores = scores * np.float32(fmt.scale)
    return scores, labels


class Rescorer:
    """The float32 vectors kept beside a reduced output (``rescore.npy``, rows in ``id_map.parquet`` order),
    memory-mapped: re-ranks the candidates of a reduced index by the float inner product."""

    def __init__(self, path: Path, faiss_ids: np.ndarray) -> None:
        self.vectors = np.load(path, mmap_mode="r")
        self._order = np.argsort(faiss_ids, kind="stable")
        self._sorted = np.asarray(faiss_ids)[self._order]

    @staticmethod
    def candidates(k: int) -> int:
        return max(k * RESCORE_FACTOR, 100)

    def rows_of(self, labels: np.ndarray) -> np.ndarray:
        pos = np.clip(np.searchsorted(self._sorted, labels), 0, len(self._sorted) - 1)
        return np.where(labels >= 0, self._order[pos], -1)

    def rescore(self, queries: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``labels`` (candidates per query, -1 = none) re-ordered by the float score: ``(scores, labels)``."""
        rows = self.rows_of(labels)
        scores = np.full(labels.shape, -np.inf, dtype=np.float32)
        for qi in range(len(labels)):
            keep = rows[qi] >= 0
            if keep.any():
                scores[qi, keep] = np.asarray(self.vectors[rows[qi, keep]], dtype=np.float32) @ queries[qi]
        order = np.argsort(-scores, axis=1, kind="stable")
        return np.take_along_axis(scores, order, axis=1), np.take_along_axis(labels, order, axis=1)
