"""Token-budget batching: sort by length, pack batches up to a padded-token budget.

Sorting by length means each batch pads to a similar length, so little compute is
spent on padding; ``order`` lets the caller put results back in input order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class Batch:
    positions: np.ndarray  # indices into the caller's input list
    max_len: int


def plan_batches(lengths: Sequence[int] | np.ndarray, token_budget: int = 16384, max_batch: int = 256,
                 sort: bool = True) -> list[Batch]:
    """Group inputs so that ``len(batch) * longest_in_batch <= token_budget``.

    ``sort=False`` keeps input order (the baseline the benchmark compares against).
    A single input longer than the budget still gets a batch of its own.
    """
    lens = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lens, kind="stable") if sort else np.arange(len(lens))
    batches: list[Batch] = []
    current: list[int] = []
    longest = 0
    for pos in order.tolist():
        n = int(lens[pos])
        new_longest = max(longest, n)
        if current and (new_longest * (len(current) + 1) > token_budget or len(current) >= max_batch):
            batches.append(Batch(np.array(current, dtype=np.int64), longest))
            current, new_longest = [], n
        current.append(pos)
        longest = new_longest
    if current:
        batches.append(Batch(np.array(current, dtype=np.int64), longest))
    return batches


def fixed_batches(n: int, batch_size: int) -> list[Batch]:
    """Fixed-size batches in input order (what a plain loop does)."""
    return [Batch(np.arange(s, min(s + batch_size, n), dtype=np.int64), 0) for s in range(0, n, batch_size)]
