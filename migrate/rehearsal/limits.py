"""Server-side rate limits of the bundled Jina-compatible server: RPM, TPM, concurrency.

What: per API key, a request bucket and a token bucket that refill at ``limit / 60``
per second and hold at most ``limit * window_s / 60`` (so ``window_s=60`` allows a full
minute's budget at once, ``window_s=5`` a burst of five seconds' worth: a benchmark sees
steady-state behaviour within seconds instead of minutes), plus a cap on requests in
flight. A request is admitted when each bucket holds its cost (or is full, for a request
bigger than the bucket: it then goes into debt, so the long-run rate still holds).

Refused requests get 429 with ``Retry-After`` (whole seconds, at least 1, as RFC 9110
requires) and ``retry-after-ms`` (exact), and every response carries
``X-RateLimit-Limit-*`` / ``X-RateLimit-Remaining-*`` (jina-spec §1.4). The buckets are
the API client's own ``migrate.embed.ratelimit.TokenBucket``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from migrate.embed.ratelimit import TokenBucket


@dataclass(frozen=True)
class ServerLimits:
    """None means unlimited."""

    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None
    window_s: float = 60.0

    @property
    def active(self) -> bool:
        return bool(self.rpm or self.tpm or self.concurrency)


def _bucket(per_minute: int, window_s: float, clock: Callable[[], float]) -> TokenBucket:
    """Refills at ``per_minute / 60`` per second, holds ``window_s`` seconds of the limit (at least 1)."""
    return TokenBucket(per_minute / 60.0, max(1.0, per_minute * window_s / 60.0), clock)


@dataclass
class Decision:
    """Outcome of ``admit``: ``ok``, or the reason and how long to wait."""

    ok: bool
    reason: str = ""
    retry_after_s: float = 0.0
    headers: dict[str, str] | None = None


class KeyLimiter:
    """Buckets and in-flight counts per API key (thread-safe)."""

    def __init__(self, limits: ServerLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        self._req: dict[str, TokenBucket] = {}
        self._tok: dict[str, TokenBucket] = {}
        self._inflight: dict[str, int] = {}

    def _buckets(self, key: str) -> tuple[TokenBucket | None, TokenBucket | None]:
        lim = self.limits
        if lim.rpm and key not in self._req:
            self._req[key] = _bucket(lim.rpm, lim.window_s, self._clock)
        if lim.tpm and key not in self._tok:
            self._tok[key] = _bucket(lim.tpm, lim.window_s, self._clock)
        rb, tb = self._req.get(key), self._tok.get(key)
        for b in (rb, tb):
            if b is not None:
                b.refill()
        return rb, tb

    def headers(self, key: str) -> dict[str, str]:
        """Current ``X-RateLimit-*`` headers for ``key``."""
        with self._lock:
            return self._headers(*self._buckets(key))

    def _headers(self, rb: TokenBucket | None, tb: TokenBucket | None) -> dict[str, str]:
        h: dict[str, str] = {}
        if rb is not None:
            h["X-RateLimit-Limit-Requests"] = str(self.limits.rpm)
            h["X-RateLimit-Remaining-Requests"] = str(max(0, math.floor(rb.level)))
        if tb is not None:
            h["X-RateLimit-Limit-Tokens"] = str(self.limits.tpm)
            h["X-RateLimit-Remaining-Tokens"] = str(max(0, math.floor(tb.level)))
        return h

    def levels(self, key: str) -> dict[str, float | None]:
        """Current bucket levels of ``key`` (may be negative: debt), for accounting."""
        with self._lock:
            rb, tb = self._buckets(key)
            return {"requests": rb.level if rb else None, "tokens": tb.level if tb else None}

    def capacity(self) -> dict[str, float | None]:
        lim = self.limits
        return {
            "requests": max(1.0, lim.rpm * lim.window_s / 60.0) if lim.rpm else None,
            "tokens": max(1.0, lim.tpm * lim.window_s / 60.0) if lim.tpm else None,
        }

    def admit(self, key: str, tokens: int) -> Decision:
        """Take one request and ``tokens`` from ``key``'s budget, or say why not."""
        with self._lock:
            rb, tb = self._buckets(key)
            conc = self.limits.concurrency
            if conc and self._inflight.get(key, 0) >= conc:
                return Decision(False, f"Too many concurrent requests: at most {conc} at a time", 1.0, self._headers(rb, tb))
            wait_r = rb.wait_for(1) if rb else 0.0
            wait_t = tb.wait_for(tokens) if tb else 0.0
            if wait_r > 0 or wait_t > 0:
                if wait_t >= wait_r:
                    reason = f"Rate limit exceeded: {self.limits.tpm} tokens per minute"
                else:
                    reason = f"Rate limit exceeded: {self.limits.rpm} requests per minute"
                return Decision(False, reason, max(wait_r, wait_t), self._headers(rb, tb))
            if rb:
                rb.take(1)
            if tb:
                tb.take(tokens)
            self._inflight[key] = self._inflight.get(key, 0) + 1
            return Decision(True, headers=self._headers(rb, tb))

    def done(self, key: str) -> None:
        """The admitted request of ``key`` finished (any outcome)."""
        with self._lock:
            self._inflight[key] = max(0, self._inflight.get(key, 0) - 1)
