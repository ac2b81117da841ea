"""Seeded fault injection for the local server.

What: decide, per request, whether the server misbehaves and how. Fault kinds:

* ``429``       rate-limit answer (with ``Retry-After`` and truthful remaining headers); not billed
* ``500``/``503`` server errors; not billed
* ``drop``      the connection is closed mid-response (headers sent, body cut); billed
* ``slow``      the answer is delayed by ``slow_s`` (client timeouts fire); billed
* ``truncated`` a 200 whose JSON body is cut short; billed
* ``wrong_count`` a 200 with one embedding missing; billed

"Billed" kinds happen after the model ran, as they would on a real server, so a
client that retries them pays twice for that request (and a test can see it).

Why seeded by content: requests arrive in a different order on every run when the
client works concurrently, so a shared random stream would hit different requests each
time. Instead the draw for a request is a hash of (seed, request body, how many times
this exact body was seen before), so the same run gives the same faults, and a
retried request gets a fresh draw.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field, fields

FAULT_KINDS = ("429", "500", "503", "drop", "slow", "truncated", "wrong_count")


@dataclass
class FaultConfig:
    """Probability of each fault kind per request (their sum must be <= 1)."""

    p429: float = 0.0
    p500: float = 0.0
    p503: float = 0.0
    drop: float = 0.0
    slow: float = 0.0
    truncated: float = 0.0
    wrong_count: float = 0.0
    slow_s: float = 2.0
    retry_after_s: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if any(p < 0 for p in self.probabilities()) or sum(self.probabilities()) > 1.0 + 1e-9:
            raise ValueError("fault probabilities must be >= 0 and sum to at most 1")

    def probabilities(self) -> list[float]:
        return [self.p429, self.p500, self.p503, self.drop, self.slow, self.truncated, self.wrong_count]

    @property
    def active(self) -> bool:
        return sum(self.probabilities()) > 0

    @classmethod
    def mixed(cls, rate: float, *, seed: int = 0, slow_s: float = 2.0, kinds: tuple[str, ...] = FAULT_KINDS) -> FaultConfig:
        """``rate`` split evenly over ``kinds``."""
        names = {"429": "p429", "500": "p500", "503": "p503"}
        each = rate / len(kinds)
        return cls(**{names.get(k, k): each for k in kinds}, seed=seed, slow_s=slow_s)

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class FaultInjector:
    """Draws faults for requests; counts what it injected."""

    config: FaultConfig
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAULT_KINDS, 0))
    _seen: dict[bytes, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def draw(self, body: bytes) -> str | None:
        """The fault kind for this request, or None."""
        if not self.config.active:
            return None
        digest = hashlib.sha256(body).digest()
        with self._lock:
            n = self._seen.get(digest, 0)
            self._seen[digest] = n + 1
        h = hashlib.sha256(f"{self.config.seed}:{n}:".encode() + digest).digest()
        u = int.from_bytes(h[:8], "big") / 2**64
        acc = 0.0
        for kind, p in zip(FAULT_KINDS, self.config.probabilities()):
            acc += p
            if u < acc:
                with self._lock:
                    self.counts[kind] += 1
                return kind
        return None
