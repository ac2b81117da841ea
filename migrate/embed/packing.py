"""Request packing for the Jina API: which inputs travel together, and who pays what.

What:
* ``pack_requests(token_counts, *, max_inputs, max_tokens)``: greedy, order-preserving
  split of a list of inputs into requests of at most ``max_inputs`` inputs and
  ``max_tokens`` estimated tokens (an input bigger than ``max_tokens`` gets a request of
  its own; the per-input limit is checked elsewhere).
* ``StreamPacker``: the same rule fed incrementally, so a big call can send its first
  request after counting one chunk of texts instead of all of them.
* ``spread_tokens``: a request's billed total spread over its inputs.
* ``halving_on_timeout``: a request that timed out is sent again as its two halves.

Why one module: the API client packs requests this way and the planner predicts the
number of requests with the very same rule (``pack_requests``); two copies would drift.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Batch:
    """Inputs ``[start, end)`` of one request and their estimated tokens."""

    start: int
    end: int
    tokens: int


class StreamPacker:
    """``pack_requests`` fed incrementally: ``feed`` returns each request as soon as it is full."""

    def __init__(self, max_inputs: int, max_tokens: int) -> None:
        self.max_inputs = max_inputs
        self.max_tokens = max_tokens
        self.pos = 0
        self.start = 0
        self.acc = 0

    def feed(self, counts: Sequence[int]) -> list[Batch]:
        out = []
        for n in counts:
            i = self.pos
            if i > self.start and (i - self.start >= self.max_inputs or self.acc + n > self.max_tokens):
                out.append(Batch(self.start, i, self.acc))
                self.start, self.acc = i, 0
            self.acc += int(n)
            self.pos += 1
        return out

    def close(self) -> list[Batch]:
        """The last, partly filled request (if any)."""
        return [Batch(self.start, self.pos, self.acc)] if self.pos > self.start else []


def pack_requests(token_counts: Sequence[int], *, max_inputs: int, max_tokens: int) -> list[Batch]:
    """Greedy, order-preserving packing: a request closes when the next input would
    exceed ``max_inputs`` or ``max_tokens``."""
    packer = StreamPacker(max_inputs, max_tokens)
    return packer.feed(token_counts) + packer.close()


def spread_tokens(estimates: Sequence[int], billed: int) -> list[int]:
    """Split a request's billed total over its inputs in proportion to the estimates
    (largest remainders), so the per-input numbers add up to exactly ``billed``."""
    total = sum(estimates)
    if not estimates:
        return []
    if total <= 0:
        base = [billed // len(estimates)] * len(estimates)
        base[0] += billed - sum(base)
        return base
    raw = [billed * e / total for e in estimates]
    out = [int(x) for x in raw]
    rest = billed - sum(out)
    order = sorted(range(len(raw)), key=lambda i: raw[i] - out[i], reverse=True)
    for i in order[:rest]:
        out[i] += 1
    return out


async def halving_on_timeout(request: Callable[[Batch, bool], Awaitable[tuple[np.ndarray, int]]], b: Batch, *,
                             splittable: bool, stats: Any) -> tuple[np.ndarray, int]:
    """``request(b, may_split)``; when it times out (``api_transport.TimedOut``) and ``b`` holds several inputs,
    the two halves instead, recursively (a loaded server answers smaller requests in time). Estimated tokens are
    shared in proportion; vectors come back in input order with the billed tokens summed."""
    from migrate.embed.api_transport import TimedOut

    n = b.end - b.start
    can_split = splittable and n > 1
    try:
        return await request(b, can_split)
    except TimedOut:
        if not can_split:
            raise
    stats.splits += 1
    mid = b.start + n // 2
    left_tokens = b.tokens * (mid - b.start) // n
    halves = (Batch(b.start, mid, left_tokens), Batch(mid, b.end, b.tokens - left_tokens))
    (v1, u1), (v2, u2) = await asyncio.gather(*(halving_on_timeout(request, h, splittable=splittable, stats=stats)
                                                for h in halves))
    return np.concatenate([v1, v2], axis=0), u1 + u2
