"""One rate-limit budget for every Ray worker that uses the same API key.

What: ``RateBudget`` is a small Ray actor that owns *the* limiter of a key (the very
``AsyncRateLimiter`` the API client uses in one process: token buckets for RPM and TPM,
a concurrency semaphore, 429 pauses, header clamps). ``SharedLimiterProxy`` stands in
for the client's own limiter inside each worker: every ``acquire`` is a call to the one
actor, and ``settle`` / ``release`` / ``observe`` / ``succeeded`` / ``rate_limited``
are forwarded to it.

Why: a key's RPM/TPM/concurrency limits hold across all its users. Ten workers with ten
private limiters would send ten times the allowed tokens and spend the run in 429s; with
one budget they send at the limit together, and a 429 seen by any worker pauses and
slows all of them.

The budget's token bucket holds a quarter of a second of TPM (``burst_s``), about the
size of one request (``jina_api.request_token_budget``), so even short windows never
see more than the limit. A worker that dies while holding permits does not leak them:
the driver calls ``release_owner`` for it.

Plugged in without changing the client: ``install(embedder, proxy)`` sets the
client's limiter slot, which the client only fills when it is empty.
"""

from __future__ import annotations

import time
from typing import Any

from migrate.embed.ratelimit import AsyncRateLimiter, LimiterStats, Permit, RateLimits

#: Token-bucket capacity of the shared budget, in seconds of the limit (see module docstring).
SHARED_BURST_S = 0.25


class RateBudget:
    """The shared budget (decorated with ``ray.remote`` by the executor; async actor)."""

    def __init__(self, rpm: int, tpm: int, concurrency: int, headroom: float = 0.98,
                 burst_s: float = SHARED_BURST_S) -> None:
        self.limiter = AsyncRateLimiter(RateLimits(rpm=rpm, tpm=tpm, concurrency=concurrency),
                                        headroom=headroom, burst_s=burst_s)
        self._permits: dict[int, tuple[Permit, str]] = {}
        self._dead: set[str] = set()
        self._seen: set[str] = set()
        self._t0 = time.monotonic()
        self._acquired_tokens = 0

    async def acquire(self, tokens: int, owner: str) -> int:
        """Wait for room in the key's budget; returns the permit's number (-1: the owner died meanwhile)."""
        self._seen.add(owner)
        permit = await self.limiter.acquire(int(tokens))
        if owner in self._dead:  # the worker died while it waited
            permit.settle(0)
            permit.release()
            return -1
        self._permits[permit.seq] = (permit, owner)
        self._acquired_tokens += int(tokens)
        return permit.seq

    def settle(self, seq: int, actual: int) -> None:
        entry = self._permits.get(seq)
        if entry is not None:
            entry[0].settle(int(actual))

    def release(self, seq: int) -> None:
        entry = self._permits.pop(seq, None)
        if entry is not None:
            entry[0].release()

    def observe(self, seq: int, remaining_requests: int | None, remaining_tokens: int | None) -> None:
        entry = self._permits.get(seq)
        if entry is not None:
            self.limiter.observe(entry[0], remaining_requests=remaining_requests, remaining_tokens=remaining_tokens)

    def succeeded(self) -> None:
        self.limiter.succeeded()

    def rate_limited(self, retry_after_s: float, remaining_requests: int | None, remaining_tokens: int | None,
                     needed_tokens: int) -> bool:
        return self.limiter.rate_limited(retry_after_s, remaining_requests=remaining_requests,
                                         remaining_tokens=remaining_tokens, needed_tokens=needed_tokens)

    def release_owner(self, worker: str) -> int:
        """Free every permit of a worker that died (its requests are not in flight any more).

        Owners are ``WORKER/PID``: a restarted worker (new process) is a new owner and
        keeps its permits.
        """
        gone = {o for o in self._seen if o.split("/", 1)[0] == worker}
        self._dead |= gone
        mine = [seq for seq, (_, o) in self._permits.items() if o in gone]
        for seq in mine:
            permit, _ = self._permits.pop(seq)
            permit.settle(0)
            permit.release()
        return len(mine)

    def stats(self) -> dict[str, Any]:
        s = self.limiter.stats
        return {"acquired": s.acquired, "waited_s": round(s.waited_s, 3), "rate_limited": s.rate_limited,
                "paused_s": round(s.paused_s, 3), "header_clamps": s.header_clamps,
                "transient_429": s.transient_429, "in_flight": len(self._permits),
                "rate_factor": round(self.limiter.rate_factor, 3), "acquired_tokens": self._acquired_tokens,
                "age_s": round(time.monotonic() - self._t0, 3)}


class SharedLimiterProxy:
    """The client-side face of ``RateBudget``: same methods as ``AsyncRateLimiter``.

    ``acquire`` awaits the actor (Ray object refs are awaitable in any event loop, here
    the client's own loop thread); everything else is sent without waiting, in order.
    """

    def __init__(self, handle: Any, owner: str, limits: RateLimits) -> None:
        self._h = handle
        self.owner = self._base_owner = owner
        self._generation = 0
        self.limits = limits
        self.stats = LimiterStats()
        self.rate_factor = 1.0

    async def acquire(self, tokens: int) -> Permit:
        t0 = time.monotonic()
        seq = await self._h.acquire.remote(int(tokens), self.owner)
        while seq < 0:  # the driver took this worker for dead (it was only unreachable): ask as a new owner
            self._generation += 1
            self.owner = f"{self._base_owner}.{self._generation}"
            seq = await self._h.acquire.remote(int(tokens), self.owner)
        self.stats.acquired += 1
        self.stats.waited_s += time.monotonic() - t0
        return Permit(self, tokens=int(tokens), seq=seq)  # type: ignore[arg-type]

    def _settle(self, permit: Permit, actual: int) -> None:
        if actual != permit.tokens:
            self._h.settle.remote(permit.seq, int(actual))
        permit.tokens = int(actual)

    def _release(self, permit: Permit) -> None:
        self._h.release.remote(permit.seq)

    def observe(self, permit: Permit, *, remaining_requests: int | None, remaining_tokens: int | None) -> None:
        permit.answered = True
        if remaining_requests is not None or remaining_tokens is not None:
            self._h.observe.remote(permit.seq, remaining_requests, remaining_tokens)

    def succeeded(self) -> None:
        self._h.succeeded.remote()

    def rate_limited(self, retry_after_s: float, *, remaining_requests: int | None, remaining_tokens: int | None,
                     needed_tokens: int) -> bool:
        """Forward the 429 to the shared budget (which pauses everyone if it is real exhaustion)."""
        self._h.rate_limited.remote(retry_after_s, remaining_requests, remaining_tokens, needed_tokens)
        self.stats.rate_limited += 1
        return True


def install(embedder: Any, proxy: SharedLimiterProxy) -> bool:
    """Make ``embedder`` (a ``JinaAPIEmbedder``) pace through ``proxy``; False if it has no limiter slot.

    The client creates its limiter lazily only while the slot is empty
    (``JinaAPIEmbedder._ensure_client``), so a filled slot is kept for every later request.
    """
    if not hasattr(embedder, "use_limiter") or not hasattr(embedder, "limits"):
        return False
    embedder.use_limiter(proxy)
    return True
