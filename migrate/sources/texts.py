"""The planned documents' texts, read from the source on demand (never all in memory).

``PlannedTexts`` behaves like a read-only sequence of strings in plan order: ``len``,
iteration (streamed in batches), slices and ``take(indices)`` (one batched read). The
planning report counts tokens over it exactly as over a list.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from migrate.sources.scan import DocumentSource

BATCH = 16_384


class PlannedTexts(Sequence[str]):
    def __init__(self, source: DocumentSource, locs: np.ndarray, ids) -> None:
        self.source = source
        self.locs = np.asarray(locs, dtype=np.int64)
        self.ids = ids  # pyarrow string array, in plan order

    def __len__(self) -> int:
        return len(self.locs)

    def iter_batches(self, size: int = BATCH) -> Iterator[list[str]]:
        """The texts in plan order, ``size`` at a time (one pass over the source)."""
        want = self.locs
        pos = 0
        buf: list[str] = []
        for batch in self.source.scan():
            if pos >= len(want):
                break
            hit = np.isin(batch.locs, want[pos:pos + len(batch.locs)])
            for i in np.nonzero(hit)[0].tolist():
                buf.append(batch.texts[i])
            pos += int(hit.sum())
            while len(buf) >= size:
                yield buf[:size]
                buf = buf[size:]
        if buf:
            yield buf

    def __iter__(self) -> Iterator[str]:
        for batch in self.iter_batches():
            yield from batch

    def take(self, indices: Sequence[int] | np.ndarray) -> list[str]:
        """Texts at plan positions ``indices`` (read in one batched pass, returned in the given order)."""
        idx = np.asarray(indices, dtype=np.int64)
        if not len(idx):
            return []
        order = np.argsort(idx, kind="stable")
        sel = idx[order]
        texts = self.source.read(self.locs[sel], self.ids.take(sel).to_pylist())
        out: list[str] = [""] * len(idx)
        for o, t in zip(order.tolist(), texts):
            out[o] = t
        return out

    def __getitem__(self, key):
        if isinstance(key, slice):
            return self.take(np.arange(len(self))[key])
        return self.take([int(key)])[0]
