"""What the rehearsal server's endpoints share: its settings, the per-key accounting, the JSON answer, the
dropped-connection fault, and the server surface an endpoint module (:mod:`migrate.rehearsal.rerank`) works
against (:class:`ServerState`, kept by :class:`migrate.rehearsal.server.JinaCompatServer`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from migrate.embed.jina_wire import MAX_INPUTS_PER_REQUEST, MAX_LATE_CHUNKING_TOKENS, MAX_TOKENS_PER_INPUT
from migrate.rehearsal.faults import FAULT_KINDS, FaultConfig, FaultInjector
from migrate.rehearsal.limits import KeyLimiter, ServerLimits
from migrate.rehearsal.models import ServedModel, default_model_map
from migrate.rehearsal.runtimes import RuntimePool


@dataclass
class ServerConfig:
    """Everything the server needs; ``api_keys`` are never logged or returned.

    ``long_context``: embed texts past the stand-in's own input limit in overlapping
    windows (an emulation of an 8192-token model) instead of the stand-in's own cut.
    """

    api_keys: frozenset[str]
    models: dict[str, ServedModel] = field(default_factory=default_model_map)
    limits: ServerLimits = field(default_factory=ServerLimits)
    faults: FaultConfig = field(default_factory=FaultConfig)
    balance_tokens: int | None = None  # per key; None = unlimited
    balance_status: int = 402  # jina-spec §1.4 [CONFLICT]: 402 or 403
    default_normalized: bool = False  # Jina's schema default (jina-spec §1.2)
    long_context: bool = False
    max_inputs: int = MAX_INPUTS_PER_REQUEST
    max_tokens: int = MAX_TOKENS_PER_INPUT
    late_chunking_max_tokens: int = MAX_LATE_CHUNKING_TOKENS



@dataclass
class KeyUsage:
    """The server's own accounting for one key."""

    total_tokens: int = 0
    requests: int = 0
    requests_ok: int = 0
    rate_limited: int = 0
    status: Counter = field(default_factory=Counter)
    faults: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"object": "usage", "total_tokens": self.total_tokens, "requests": self.requests,
                "requests_ok": self.requests_ok, "rate_limited": self.rate_limited,
                "status": {str(k): v for k, v in sorted(self.status.items())},
                "faults": {k: self.faults.get(k, 0) for k in FAULT_KINDS}}



def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(payload, status_code=status, headers=headers)


class DroppedResponse(Response):
    """Sends the headers and part of the body, then closes the connection."""

    def __init__(self, body: bytes, headers: dict[str, str]) -> None:
        super().__init__(content=body, status_code=200, headers=headers, media_type="application/json")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body[: len(self.body) // 3], "more_body": True})
        # Returning without the rest makes the server abort the connection.


class ServerState(Protocol):
    """The server as an endpoint module sees it: settings, per-key state, authentication and retry headers."""

    config: ServerConfig
    runtimes: RuntimePool
    limiter: KeyLimiter
    faults: FaultInjector
    unauthenticated: int
    balance: dict[str, int]

    def key_usage(self, kid: str) -> KeyUsage: ...

    def _auth(self, request: Request) -> str: ...

    def _retry_after(self, seconds: float) -> dict[str, str]: ...

    def _retry_headers(self, kid: str, seconds: float) -> dict[str, str]: ...
