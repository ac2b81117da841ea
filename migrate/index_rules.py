"""What a FAISS index's settings must satisfy: one home for the rule, used by the settings checks (before
anything is written) and by the FAISS sink (once the corpus size and the vectors' width are known)."""

from __future__ import annotations

import math
from dataclasses import dataclass

HNSW_M_MAX = 512


def default_nlist(n: int) -> int:
    """IVF lists for ``n`` vectors: about 4·√n, at most n/39 (FAISS wants 39 training points per list)."""
    return max(1, min(int(4 * math.sqrt(n)), n // 39 or 1))


def default_pq_m(d: int) -> int:
    """PQ sub-quantizers for width ``d``: the largest common choice that divides it, at most d/4."""
    return next(m for m in (64, 48, 32, 16, 8, 4, 2, 1) if d % m == 0 and m <= d // 4 or m == 1)


@dataclass(frozen=True)
class IndexProblem:
    setting: str  # the setting to name: pq_m, ivf_nlist, ...
    message: str  # what is wrong, without the setting's name
    hint: str


def index_problem(index_type: str, *, ivf_nlist: int | None = None, pq_m: int | None = None, pq_nbits: int = 8,
                  vectors: int | None = None, dims: int | None = None) -> IndexProblem | None:
    """The first problem with these settings (None when FAISS can build the index); ``vectors`` and ``dims``
    are checked when known. Ranges of single values (``--hnsw-m`` 2..512, ...) are the settings' own."""
    if index_type != "ivfpq":
        return None
    if dims is not None:
        m = pq_m or default_pq_m(dims)
        if m > dims or dims % m:
            divisors = [x for x in (4, 8, 16, 32, 48, 64, 96, 128) if x <= dims and dims % x == 0]
            return IndexProblem("pq_m", f"{m} does not divide the {dims} output dimensions",
                                f"choose a divisor of {dims}" + (f", e.g. {', '.join(map(str, divisors))}"
                                                                 if divisors else ""))
    if vectors is not None:
        nlist = ivf_nlist or default_nlist(vectors)
        need = max(nlist * 39, 2 ** pq_nbits)
        if vectors < need:
            return IndexProblem("ivf_nlist", f"IVF-PQ with nlist={nlist} and nbits={pq_nbits} needs at least {need} "
                                f"vectors to train; the plan has {vectors}",
                                "use --index-type flat or hnsw for small corpora, or lower --ivf-nlist/--pq-nbits")
    return None
