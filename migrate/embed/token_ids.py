"""Token ids made once, and the seam that lets a backend make them ahead of its model.

What:
* ``TokenIds``: the token ids of n inputs, exactly as the model will read them, in one flat
  int32 array plus offsets (~4 bytes a token; a Python list of ints costs ~36).
* ``Preparing``: an embedder whose CPU-side work (cutting long texts, tokenizing, counting)
  can be done by ``prepare`` in another thread, ahead of ``embed_prepared`` (the model).
  ``embed(texts)`` of such a backend is ``embed_prepared(prepare(texts))``.

Why: counting tokens to pack batches and tokenizing again inside the model did the work
twice on the main thread, and a fast model then waited for it. The shard step
(``migrate.step``) prepares the next shard while the model runs the current one.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from migrate.embed.base import EmbedResult


@dataclass(frozen=True)
class TokenIds:
    """Token ids of ``len(self)`` inputs: input ``i`` is ``flat[offsets[i]:offsets[i + 1]]``."""

    flat: np.ndarray  # int32
    offsets: np.ndarray  # int64, len(inputs) + 1, starts at 0

    @classmethod
    def from_lists(cls, rows: Sequence[Sequence[int]]) -> TokenIds:
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int32, count=int(offsets[-1]))
        return cls(flat, offsets)

    @classmethod
    def concat(cls, parts: Iterable[TokenIds]) -> TokenIds:
        parts = list(parts)
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return cls(np.zeros(0, np.int32), np.zeros(1, np.int64))
        flat = np.concatenate([p.flat for p in parts])
        starts = np.cumsum([0] + [int(p.offsets[-1]) for p in parts[:-1]])
        offsets = np.concatenate([np.zeros(1, np.int64)] + [p.offsets[1:] + s for p, s in zip(parts, starts)])
        return cls(flat, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def row(self, i: int) -> np.ndarray:
        return self.flat[self.offsets[i]:self.offsets[i + 1]]


@runtime_checkable
class Preparing(Protocol):
    """An embedder whose CPU-side work can run ahead of its model (in another thread).

    ``prepare`` must not touch the model; ``embed_prepared`` runs it. Both are safe to call
    from different threads at the same time (one preparing the next batch while the other runs).
    """

    def prepare(self, texts: Sequence[str], *, task: str) -> Any: ...

    def embed_prepared(self, prepared: Any) -> EmbedResult: ...
