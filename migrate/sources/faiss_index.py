"""Read an existing FAISS index: size, dimension, metric, ids, and (where possible) vectors.

Flat, IDMap/IDMap2, HNSW and IVF indexes are understood. Vectors are reconstructed
when the index stores them (flat, HNSW-flat, IVF-flat: exact; PQ/SQ codes: approximate,
flagged ``lossy``); otherwise ``vectors`` is None and ``why_no_vectors`` says why.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from migrate.errors import InputError

METRICS = {0: "ip", 1: "l2"}  # faiss.METRIC_INNER_PRODUCT, faiss.METRIC_L2


@dataclass
class FaissInfo:
    path: Path
    kind: str  # class name of the innermost index, e.g. IndexFlatIP, IndexHNSWFlat
    ntotal: int
    dim: int
    metric: str
    faiss_ids: np.ndarray | None  # int64 ids when the index has an id map, else None (= row order)
    vectors: np.ndarray | None
    lossy: bool = False
    why_no_vectors: str | None = None


def _downcast(index):
    import faiss

    return faiss.downcast_index(index)


@contextlib.contextmanager
def _memory_bounded_by(file_size: int) -> Iterator[None]:
    """Cap this process's address space while faiss parses a file.

    faiss sizes its buffers from counts in the file header and zero-fills them before reading, so a
    corrupt count makes it allocate (and touch) up to terabytes. A readable index never needs much
    more memory than its file size, so the cap turns that into a ``MemoryError`` (Linux only).
    """
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        with open("/proc/self/status", encoding="ascii") as fh:
            vm = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
    except (ImportError, OSError, StopIteration, ValueError):
        yield
        return
    cap = vm + 4 * file_size + (2 << 30)
    if soft != resource.RLIM_INFINITY and soft <= cap or hard != resource.RLIM_INFINITY and hard < cap:
        yield
        return
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def read_faiss(path: str | Path, reconstruct: bool = True, *, check_finite: bool = False) -> FaissInfo:
    """Read a FAISS file. ``reconstruct``: return its vectors; ``check_finite``: without keeping them, refuse
    NaN/inf vectors (checked in chunks, where the index can reconstruct them)."""
    import faiss

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    try:
        with _memory_bounded_by(path.stat().st_size):
            raw = faiss.read_index(str(path))
    except MemoryError:
        raise InputError(f"{path}: not a readable FAISS index (its header asks for an impossible amount of memory)",
                         hint="check that the file is complete and was written by faiss.write_index") from None
    except RuntimeError as exc:
        msg = str(exc).strip().splitlines()
        detail = next((m for m in msg if "Error" in m or "error" in m), msg[-1] if msg else "unreadable")
        # faiss prefixes its message with the C++ function and source line; keep the reason after it.
        detail = detail.split("Error: ", 1)[-1] if "Error: " in detail else detail.rsplit(": ", 1)[-1]
        raise InputError(f"{path}: not a readable FAISS index ({detail.strip()[:160]})",
                         hint="check that the file is complete and was written by faiss.write_index") from None
    # Keep ``raw`` alive: downcast proxies do not own the C++ object, and the inner index of an
    # IDMap is freed with its owner.
    index = _downcast(raw)
    faiss_ids = None
    inner = index
    if isinstance(index, (faiss.IndexIDMap, faiss.IndexIDMap2)):
        faiss_ids = faiss.vector_to_array(index.id_map).astype(np.int64)
        inner = _downcast(index.index)
        if inner.d != index.d or inner.ntotal != index.ntotal or len(faiss_ids) != index.ntotal:
            raise InputError(f"{path}: not a readable FAISS index (id map header says {index.ntotal} x {index.d}, "
                             f"the index inside holds {inner.ntotal} x {inner.d})",
                             hint="check that the file is complete and was written by faiss.write_index")
    info = FaissInfo(path=path, kind=type(inner).__name__, ntotal=int(index.ntotal), dim=int(index.d),
                     metric=METRICS.get(int(index.metric_type), f"metric-{index.metric_type}"),
                     faiss_ids=faiss_ids, vectors=None)
    if faiss_ids is not None and len(np.unique(faiss_ids)) != len(faiss_ids):
        vals, counts = np.unique(faiss_ids, return_counts=True)
        raise InputError(f"{path}: duplicate ids in the index id map: {vals[counts > 1][:5].tolist()}")
    if reconstruct and info.ntotal:
        info.vectors, info.lossy, info.why_no_vectors = _reconstruct(inner, info.ntotal)
        if info.vectors is not None and info.vectors.shape != (info.ntotal, info.dim):
            raise InputError(f"{path}: not a readable FAISS index (holds {info.vectors.shape} vectors, header says "
                             f"{info.ntotal} x {info.dim})")
        if info.vectors is not None and not np.isfinite(info.vectors).all():
            bad = np.nonzero(~np.isfinite(info.vectors).all(axis=1))[0][:5].tolist()
            raise InputError(f"{path}: vectors at rows {bad} hold NaN or infinite values",
                             hint="rebuild those vectors, or remove them from the index")
    elif not info.ntotal:
        info.vectors = np.zeros((0, info.dim), np.float32)
    elif check_finite:
        _check_finite(path, inner, info.ntotal)
    del index, inner, raw
    return info


def _check_finite(path: Path, inner, n: int, chunk: int = 65_536) -> None:
    import faiss

    if isinstance(inner, faiss.IndexIVF):
        inner.make_direct_map()
    for start in range(0, n, chunk):
        try:
            vecs = inner.reconstruct_n(start, min(chunk, n - start))
        except RuntimeError:
            return  # an index that cannot reconstruct its vectors has nothing to check
        finite = np.isfinite(vecs).all(axis=1)
        if not finite.all():
            bad = [start + int(i) for i in np.nonzero(~finite)[0][:5]]
            raise InputError(f"{path}: vectors at rows {bad} hold NaN or infinite values",
                             hint="rebuild those vectors, or remove them from the index")


def _reconstruct(inner, n: int) -> tuple[np.ndarray | None, bool, str | None]:
    import faiss

    lossy = False
    if isinstance(inner, faiss.IndexIVF):
        inner.make_direct_map()
        lossy = not isinstance(inner, faiss.IndexIVFFlat)
    elif isinstance(inner, (faiss.IndexPQ, faiss.IndexScalarQuantizer, faiss.IndexLSH)):
        lossy = True
    elif isinstance(inner, faiss.IndexHNSW):
        storage = _downcast(inner.storage)
        lossy = not isinstance(storage, faiss.IndexFlat)
    try:
        vecs = inner.reconstruct_n(0, n)
    except RuntimeError as exc:
        return None, False, f"{type(inner).__name__} cannot reconstruct vectors ({str(exc).strip().splitlines()[-1][:120]})"
    return np.ascontiguousarray(vecs, dtype=np.float32), lossy, None
