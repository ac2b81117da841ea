"""Client-side request pacing: requests/minute, tokens/minute and concurrent requests.

What: an asyncio limiter that every API request passes through before it is sent.
Why: the Jina API limits each key by RPM, TPM and concurrency (jina-spec §1.5); a
migration that ignores them spends its time in 429s and retries, one that respects
them too timidly wastes the budget. This limiter paces sends so the long-run rate sits
just under the configured limits, and adapts when the server says otherwise:

* **Token buckets** (one for requests, one for tokens) refill at ``limit/60`` per
  second times ``headroom``. A request waits until the bucket holds its cost (or the
  whole capacity, for a request bigger than the bucket; it then goes into debt, so the
  long-run rate still holds). Waiting is FIFO: a big request is not starved by small ones.
* **Settling**: the token cost of a request is an estimate until the response's
  ``usage.total_tokens`` arrives; ``Permit.settle`` books the difference.
* **Server headers**: ``X-RateLimit-Remaining-Tokens`` / ``-Requests`` can only make
  the limiter *more* careful (the bucket is clamped down to what the server says is
  left, minus what was sent since), never exceed the configured limits.
* **429s**: a 429 that the headers show to be a real exhaustion (or that carries no
  headers) pauses all sends for ``Retry-After`` and lowers the pace by 10 %; the pace
  recovers by 1 % per successful response. A 429 while the server reports budget left
  is treated as a transient error of that request only.

Limits come from a tier preset (``TIERS``) or explicit numbers; the default is the
conservative preset suggested by jina-spec §1.5.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from migrate.errors import ConfigError


@dataclass(frozen=True)
class RateLimits:
    """Per-key limits: requests/minute, tokens/minute, requests in flight."""

    rpm: int
    tpm: int
    concurrency: int

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm", "concurrency"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"rate limit {name} must be positive, got {getattr(self, name)}")


#: Presets. "conservative" is the default (jina-spec §1.5: when in doubt 100 RPM / 100k TPM / 2).
#: free/tier1/tier2 follow the current openapi description quoted in jina-spec §1.5.
TIERS: dict[str, RateLimits] = {
    "conservative": RateLimits(rpm=100, tpm=100_000, concurrency=2),
    "free": RateLimits(rpm=500, tpm=1_000_000, concurrency=5),
    "tier1": RateLimits(rpm=500, tpm=10_000_000, concurrency=50),
    "tier2": RateLimits(rpm=5_000, tpm=100_000_000, concurrency=500),
}
DEFAULT_TIER = "conservative"


def resolve_limits(
    tier: str | None = None, *, rpm: int | None = None, tpm: int | None = None, concurrency: int | None = None
) -> RateLimits:
    """A tier preset with any explicit number taking precedence."""
    name = tier or DEFAULT_TIER
    if name not in TIERS:
        raise ConfigError(f"unknown rate-limit tier {name!r}", hint=f"choose one of {', '.join(TIERS)}")
    base = TIERS[name]
    return RateLimits(
        rpm=int(rpm) if rpm else base.rpm,
        tpm=int(tpm) if tpm else base.tpm,
        concurrency=int(concurrency) if concurrency else base.concurrency,
    )


def request_token_budget(limits: RateLimits) -> int:
    """Default tokens per request: a quarter second of the TPM budget, so a request is
    always much smaller than the server's bucket (then arrival jitter cannot cause 429s
    while the long-run pace sits at the limit), but at least 2x TPM/RPM so the RPM limit
    is never the one that binds, and at most 131,072."""
    quarter_second = limits.tpm / 60.0 * 0.25
    rpm_floor = 2.0 * limits.tpm / limits.rpm
    return int(min(131_072, max(512, quarter_second, rpm_floor)))


class TokenBucket:
    """A bucket of ``capacity`` that refills at ``rate`` per second and may go into debt.

    The one bucket of the project: the API client paces with it, and the bundled
    server (``migrate.rehearsal.limits``) enforces its RPM/TPM limits with it.
    """

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.capacity = capacity
        self.level = capacity
        self._clock = clock
        self._t = clock()

    def refill(self, rate_factor: float = 1.0) -> None:
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self._t) * self.rate * rate_factor)
        self._t = now

    def wait_for(self, cost: float, rate_factor: float = 1.0) -> float:
        """Seconds until ``min(cost, capacity)`` is available (0 if it is now)."""
        self.refill(rate_factor)
        need = min(cost, self.capacity)
        if self.level >= need:
            return 0.0
        return (need - self.level) / (self.rate * rate_factor)

    def take(self, cost: float) -> None:
        """Spend ``cost`` (a negative cost is a refund, capped at the capacity)."""
        self.refill()
        self.level = min(self.capacity, self.level - cost)

    def clamp(self, at_most: float) -> None:
        self.refill()
        self.level = min(self.level, at_most)


@dataclass
class LimiterStats:
    """Counters for reports and benchmarks."""

    acquired: int = 0
    waited_s: float = 0.0
    rate_limited: int = 0
    paused_s: float = 0.0
    header_clamps: int = 0
    transient_429: int = 0


@dataclass(eq=False)
class Permit:
    """One admitted request. ``settle`` the real token count, ``release`` when done."""

    limiter: AsyncRateLimiter
    tokens: int
    seq: int
    released: bool = False
    answered: bool = False
    extra: dict = field(default_factory=dict)

    def settle(self, actual_tokens: int) -> None:
        """Book the billed tokens instead of the estimate."""
        self.limiter._settle(self, int(actual_tokens))

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.limiter._release(self)


class AsyncRateLimiter:
    """RPM + TPM + concurrency limiter for one event loop (see module docstring)."""

    def __init__(
        self,
        limits: RateLimits,
        *,
        headroom: float = 0.98,
        burst_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < headroom <= 1:
            raise ConfigError(f"rate-limit headroom must be in (0, 1], got {headroom}")
        self.limits = limits
        self.headroom = headroom
        self._clock = clock
        r_req = limits.rpm / 60.0 * headroom
        r_tok = limits.tpm / 60.0 * headroom
        self.requests = TokenBucket(r_req, max(1.0, r_req * burst_s), clock)
        self.tokens = TokenBucket(r_tok, max(1.0, r_tok * burst_s), clock)
        self.rate_factor = 1.0
        self.pause_until = 0.0
        self.stats = LimiterStats()
        self._sem: asyncio.Semaphore | None = None
        self._order: asyncio.Lock | None = None
        self._seq = 0
        self._inflight: dict[int, Permit] = {}

    # ----------------------------------------------------------------- acquire/release

    def _ensure_loop_objects(self) -> None:
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.limits.concurrency)
            self._order = asyncio.Lock()

    async def acquire(self, tokens: int) -> Permit:
        """Wait for a concurrency slot and for room in both buckets, then book ``tokens``."""
        self._ensure_loop_objects()
        assert self._sem is not None and self._order is not None
        t0 = self._clock()
        await self._sem.acquire()
        try:
            async with self._order:  # FIFO: the head of the queue waits, the rest queue behind it
                while True:
                    now = self._clock()
                    wait = max(
                        self.pause_until - now,
                        self.requests.wait_for(1, self.rate_factor),
                        self.tokens.wait_for(tokens, self.rate_factor),
                    )
                    if wait <= 0:
                        break
                    await asyncio.sleep(min(wait, 5.0))
                self.requests.take(1)
                self.tokens.take(tokens)
                self._seq += 1
                permit = Permit(self, tokens=int(tokens), seq=self._seq)
                self._inflight[permit.seq] = permit
        except BaseException:
            self._sem.release()
            raise
        self.stats.acquired += 1
        self.stats.waited_s += self._clock() - t0
        return permit

    def _release(self, permit: Permit) -> None:
        self._inflight.pop(permit.seq, None)
        assert self._sem is not None
        self._sem.release()

    def _settle(self, permit: Permit, actual: int) -> None:
        diff = actual - permit.tokens
        if diff:
            self.tokens.take(diff)  # negative diff gives tokens back
        permit.tokens = actual

    # ----------------------------------------------------------------- feedback

    def _sent_after(self, permit: Permit, field_name: str) -> float:
        later = [p for s, p in self._inflight.items() if s > permit.seq and not p.answered]
        return float(len(later)) if field_name == "requests" else float(sum(p.tokens for p in later))

    def observe(self, permit: Permit, *, remaining_requests: int | None, remaining_tokens: int | None) -> None:
        """A response (any status) arrived for ``permit`` with these rate-limit headers."""
        permit.answered = True
        if remaining_tokens is not None:
            allowed = remaining_tokens - self._sent_after(permit, "tokens")
            if allowed < self.tokens.level:
                self.tokens.clamp(allowed)
                self.stats.header_clamps += 1
        if remaining_requests is not None:
            allowed = remaining_requests - self._sent_after(permit, "requests")
            if allowed < self.requests.level:
                self.requests.clamp(allowed)
                self.stats.header_clamps += 1

    def succeeded(self) -> None:
        """A request succeeded: let the pace recover toward the configured limit."""
        self.rate_factor = min(1.0, self.rate_factor + 0.01)

    def rate_limited(
        self, retry_after_s: float, *, remaining_requests: int | None, remaining_tokens: int | None, needed_tokens: int
    ) -> bool:
        """A 429 arrived. Returns True if it looks like real exhaustion (then all sends pause).

        With headers that show budget left for this request, the 429 is treated as a
        transient error of this request (only it backs off), so random 429s do not
        throttle the whole run.
        """
        exhausted = (
            (remaining_tokens is None and remaining_requests is None)
            or (remaining_tokens is not None and remaining_tokens < needed_tokens)
            or (remaining_requests is not None and remaining_requests < 1)
        )
        if not exhausted:
            self.stats.transient_429 += 1
            return False
        self.stats.rate_limited += 1
        now = self._clock()
        until = now + max(0.0, retry_after_s)
        if until > self.pause_until:
            self.stats.paused_s += until - max(now, self.pause_until)
            self.pause_until = until
        self.rate_factor = max(0.5, self.rate_factor * 0.9)
        return True
