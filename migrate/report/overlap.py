"""Label-free agreement between two rankings of the same query (the common case: no qrels).

* overlap@k: |top-k(old) ∩ top-k(new)| / k.
* rank-biased overlap (Webber, Moffat & Zobel 2010, extrapolated form, eq. 32): top-weighted
  agreement in [0, 1]; persistence ``p`` = 0.9 puts ~86 % of the weight on the first 10 ranks.
* rank shift: for each document in old's top-k, how far it moved in new's list (absolute
  ranks), and how many left new's top-k.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def overlap_at_k(a: Sequence[str], b: Sequence[str], k: int) -> float:
    """Share of the first ``k`` items both lists have in common (``k`` in the denominator)."""
    if k <= 0:
        return 0.0
    return len(set(a[:k]) & set(b[:k])) / k


def rbo(a: Sequence[str], b: Sequence[str], p: float = 0.9, depth: int | None = None) -> float:
    """Extrapolated rank-biased overlap of two rankings (without duplicates).

    Lists are cut to ``depth`` (default: the shorter length). For equal, non-empty lists the
    value is 1; for disjoint lists it is 0.
    """
    if not 0.0 < p < 1.0:
        raise ValueError("rbo persistence p must be in (0, 1)")
    k = min(len(a), len(b)) if depth is None else min(depth, len(a), len(b))
    if k == 0:
        return 1.0 if len(a) == len(b) == 0 else 0.0
    seen_a: set[str] = set()
    seen_b: set[str] = set()
    x = 0  # overlap size at the current depth
    total = 0.0
    for d in range(1, k + 1):
        ia, ib = a[d - 1], b[d - 1]
        if ia == ib:
            x += 1
        else:
            x += (ia in seen_b) + (ib in seen_a)
        seen_a.add(ia)
        seen_b.add(ib)
        total += (x / d) * p**d
    return float((x / k) * p**k + ((1 - p) / p) * total)


@dataclass
class Shift:
    """How the old top-k moved in the new ranking of one query."""

    mean_abs_shift: float  # over documents still inside new's top-``depth``
    dropped: int  # old top-k documents that left new's top-k
    top1_kept: bool  # old rank-1 document is new rank-1


def rank_shift(old: Sequence[str], new: Sequence[str], k: int) -> Shift:
    """Rank movement of old's top-``k`` inside ``new`` (which may be deeper than k)."""
    pos_new = {d: i for i, d in enumerate(new)}
    moves = [abs(pos_new[d] - i) for i, d in enumerate(old[:k]) if d in pos_new]
    top_new = set(new[:k])
    dropped = sum(1 for d in old[:k] if d not in top_new)
    return Shift(
        mean_abs_shift=float(sum(moves) / len(moves)) if moves else float("nan"),
        dropped=dropped,
        top1_kept=bool(old and new and old[0] == new[0]),
    )
