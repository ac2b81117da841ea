"""A local HTTP server that speaks the Jina Embeddings API wire format (jina-spec §1).

What: ``build_app(ServerConfig)`` returns a Starlette app with

* ``POST /v1/embeddings``: same request fields (``model``, ``input``, ``task``,
  ``dimensions``, ``late_chunking``, ``embedding_type`` with the ``encoding_type`` /
  ``encoding_format`` aliases older and OpenAI clients send, ``normalized``,
  ``truncate``), same response shape, same ``{"detail": ...}`` errors and status codes:
  401 missing/wrong key, 400 over 2048 inputs / over 8192 tokens per input / over 8192
  tokens in a late-chunking request / unknown model, 422 malformed fields, 402 balance
  exhausted (if a balance is set), 429 rate limits with ``Retry-After``.
* ``GET /v1/models``: the served names, each marked as a stand-in with the real model
  behind it.
* ``GET /v1/usage`` (an extension, not Jina's): the server's own count of billed
  tokens and requests, per key (keys appear only as a short hash), and injected faults.
* ``GET /health``.

Embeddings come from real models (``server_models``); every embeddings response
carries the header ``X-Jina-Migrate-Stand-In`` naming the stand-in, so reports made
from it can say so. Rate limits are ``server_limits``, faults ``faults``.

Why: the real API is not reachable here; this is the client's test bed, the offline
demo's engine, and a rehearsal target for users' CI.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from migrate.embed.base import V3_TASKS
from migrate.embed.jina_wire import (
    EMBEDDING_TYPES,
    MAX_INPUTS_PER_REQUEST,
    MAX_LATE_CHUNKING_TOKENS,
    MAX_TOKENS_PER_INPUT,
    STAND_IN_HEADER,
    encode_embedding,
)
from migrate.testing.faults import FaultConfig, FaultInjector
from migrate.testing.server_limits import KeyLimiter, ServerLimits
from migrate.testing.server_models import RuntimePool, ServedModel, default_model_map


@dataclass
class ServerConfig:
    """Everything the server needs; ``api_keys`` are never logged or returned."""

    api_keys: frozenset[str]
    models: dict[str, ServedModel] = field(default_factory=default_model_map)
    limits: ServerLimits = field(default_factory=ServerLimits)
    faults: FaultConfig = field(default_factory=FaultConfig)
    balance_tokens: int | None = None  # per key; None = unlimited
    balance_status: int = 402  # jina-spec §1.4 [CONFLICT]: 402 or 403
    default_normalized: bool = False  # Jina's schema default (jina-spec §1.2)
    max_inputs: int = MAX_INPUTS_PER_REQUEST
    max_tokens: int = MAX_TOKENS_PER_INPUT
    late_chunking_max_tokens: int = MAX_LATE_CHUNKING_TOKENS


def key_id(key: str) -> str:
    """A short, non-reversible name for a key (for usage reports)."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


@dataclass
class Usage:
    """The server's own accounting."""

    total_tokens: int = 0
    requests: int = 0
    requests_ok: int = 0
    status: Counter = field(default_factory=Counter)
    tokens_by_key: Counter = field(default_factory=Counter)
    rate_limited: int = 0

    def as_dict(self, faults: dict[str, int]) -> dict[str, Any]:
        return {
            "object": "usage",
            "total_tokens": self.total_tokens,
            "requests": self.requests,
            "requests_ok": self.requests_ok,
            "rate_limited": self.rate_limited,
            "status": {str(k): v for k, v in sorted(self.status.items())},
            "tokens_by_key": dict(self.tokens_by_key),
            "faults": dict(faults),
        }


class _Reject(Exception):
    def __init__(self, status: int, detail: Any, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def _invalid(field_name: str, msg: str) -> _Reject:
    return _Reject(422, [{"loc": ["body", field_name], "msg": msg, "type": "value_error"}])


@dataclass
class ParsedRequest:
    model: str
    texts: list[str]
    task: str | None
    dimensions: int | None
    late_chunking: bool
    embedding_types: list[str]
    type_is_list: bool
    normalized: bool
    truncate: bool


def parse_request(obj: Any, *, default_normalized: bool, max_inputs: int) -> ParsedRequest:
    """Validate a request body the way the API does (422 for malformed fields)."""
    if not isinstance(obj, dict):
        raise _invalid("body", "request body must be a JSON object")
    model = obj.get("model")
    if not isinstance(model, str) or not model:
        raise _invalid("model", "field required: a model name string")
    raw = obj.get("input")
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise _invalid("input", "field required: an array of strings or {\"text\": ...} objects")
    texts: list[str] = []
    for i, item in enumerate(raw):
        if isinstance(item, dict) and isinstance(item.get("text"), str):
            texts.append(item["text"])
        elif isinstance(item, str):
            texts.append(item)
        else:
            raise _invalid("input", f"input[{i}] must be a string or an object with a 'text' string")
    if not texts:
        raise _invalid("input", "input must contain at least one text")
    if len(texts) > max_inputs:
        raise _Reject(400, f"input length is larger than the largest allowed size {max_inputs}")
    etype: Any = "float"
    for alias in ("embedding_type", "encoding_type", "encoding_format"):
        if obj.get(alias) is not None:
            etype = obj[alias]
            break
    type_is_list = isinstance(etype, list)
    types = etype if type_is_list else [etype]
    if not types or any(t not in EMBEDDING_TYPES for t in types):
        raise _invalid("embedding_type", f"must be one of {', '.join(EMBEDDING_TYPES)} (or a list of them)")
    task = obj.get("task")
    if task is not None and task not in V3_TASKS:
        raise _invalid("task", f"must be one of {', '.join(V3_TASKS)}")
    dims = obj.get("dimensions")
    if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or dims < 1):
        raise _invalid("dimensions", "must be a positive integer")
    flags = {}
    for name, default in (("late_chunking", False), ("normalized", default_normalized), ("truncate", False)):
        v = obj.get(name, default)
        if v is None:
            v = default
        if not isinstance(v, bool):
            raise _invalid(name, "must be a boolean")
        flags[name] = v
    return ParsedRequest(
        model=model,
        texts=texts,
        task=task,
        dimensions=dims,
        late_chunking=flags["late_chunking"],
        embedding_types=list(types),
        type_is_list=type_is_list,
        normalized=flags["normalized"],
        truncate=flags["truncate"],
    )


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(payload, status_code=status, headers=headers)


class _DroppedResponse(Response):
    """Sends the headers and part of the body, then closes the connection."""

    def __init__(self, body: bytes, headers: dict[str, str]) -> None:
        super().__init__(content=body, status_code=200, headers=headers, media_type="application/json")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body[: len(self.body) // 3], "more_body": True})
        # Returning without the rest makes the server abort the connection.


class JinaCompatServer:
    """Request handling and state; ``app`` is the Starlette application."""

    def __init__(self, config: ServerConfig) -> None:
        if not config.api_keys:
            raise ValueError("the server needs at least one API key")
        self.config = config
        self.runtimes = RuntimePool()
        self.limiter = KeyLimiter(config.limits)
        self.faults = FaultInjector(config.faults)
        self.usage = Usage()
        self.balance: dict[str, int] = {}
        self.app = Starlette(
            routes=[
                Route("/v1/embeddings", self.embeddings, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/v1/usage", self.usage_endpoint, methods=["GET"]),
                Route("/health", self.health, methods=["GET"]),
            ]
        )

    def set_faults(self, faults: FaultConfig) -> None:
        """Change fault injection on the running server (counts start again at zero)."""
        self.config.faults = faults
        self.faults = FaultInjector(faults)

    def set_limits(self, limits: ServerLimits) -> None:
        """Change rate limits on the running server (buckets start full)."""
        self.config.limits = limits
        self.limiter = KeyLimiter(limits)

    # ----------------------------------------------------------------- small endpoints

    async def health(self, request: Request) -> Response:
        return _json(200, {"status": "ok"})

    async def models(self, request: Request) -> Response:
        data = []
        for name, m in self.config.models.items():
            data.append(
                {
                    "id": name,
                    "object": "model",
                    "owned_by": "jina-migrate local stand-in (not Jina AI)",
                    "stand_in": m.stand_in,
                    "stand_in_model": m.describe(),
                    "task_prefixes": m.prefixes,
                    "max_tokens": m.max_tokens,
                    "note": f"{name} is served by a smaller real model; vectors are NOT {name}'s",
                }
            )
        return _json(200, {"object": "list", "data": data})

    async def usage_endpoint(self, request: Request) -> Response:
        d = self.usage.as_dict(self.faults.counts)
        if self.config.limits.active:
            d["rate_limit"] = {"capacity": self.limiter.capacity(), "levels": self.limiter.levels()}
        return _json(200, d)

    # ----------------------------------------------------------------- embeddings

    def _auth(self, request: Request) -> str:
        header = request.headers.get("authorization")
        if not header:
            raise _Reject(401, "Missing API key: send the header 'Authorization: Bearer <your key>'")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _Reject(401, "Invalid authorization format: expected 'Authorization: Bearer <your key>'")
        if token.strip() not in self.config.api_keys:
            raise _Reject(401, "Invalid API key")
        return key_id(token.strip())

    async def embeddings(self, request: Request) -> Response:
        self.usage.requests += 1
        try:
            response = await self._embeddings(request)
        except _Reject as rej:
            response = _json(rej.status, {"detail": rej.detail}, rej.headers)
        self.usage.status[response.status_code] += 1
        return response

    async def _embeddings(self, request: Request) -> Response:
        cfg = self.config
        kid = self._auth(request)
        body = await request.body()
        try:
            obj = json.loads(body)
        except ValueError:
            raise _Reject(422, [{"loc": ["body"], "msg": "JSON decode error", "type": "json_invalid"}]) from None
        req = parse_request(obj, default_normalized=cfg.default_normalized, max_inputs=cfg.max_inputs)
        model = cfg.models.get(req.model)
        if model is None:
            raise _Reject(400, f"Model '{req.model}' not found. Available models: {', '.join(sorted(cfg.models))}")
        rt = await run_in_threadpool(self.runtimes.get, model.stand_in)
        if req.dimensions is not None and req.dimensions > rt.dim:
            raise _invalid(
                "dimensions",
                f"must be at most {rt.dim} for {req.model} (served by the {rt.dim}-d stand-in '{model.stand_in}')",
            )
        texts = req.texts
        limit = min(model.max_tokens, cfg.max_tokens)
        if req.truncate:
            texts = await run_in_threadpool(lambda: [rt.truncate(t, limit) for t in texts])
        counts = await run_in_threadpool(rt.count_tokens, texts)
        for n in counts:
            if n > limit:
                raise _Reject(400, f"Single text cannot exceed {limit} tokens. {n} tokens given.")
        if req.late_chunking:
            billed = await run_in_threadpool(rt.joined_tokens, texts)
            if billed > cfg.late_chunking_max_tokens:
                raise _Reject(
                    400,
                    f"With late_chunking, the inputs of one request together cannot exceed "
                    f"{cfg.late_chunking_max_tokens} tokens. {billed} tokens given.",
                )
        else:
            billed = int(sum(counts))
        if cfg.balance_tokens is not None:
            left = self.balance.setdefault(kid, cfg.balance_tokens)
            if billed > left:
                raise _Reject(
                    cfg.balance_status,
                    f"Insufficient balance: this request needs {billed} tokens, {left} left on this key",
                )

        fault = self.faults.draw(body)
        if fault == "429":
            self.usage.rate_limited += 1
            ra = cfg.faults.retry_after_s
            raise _Reject(429, "Rate limit exceeded, please retry later", self._retry_headers(kid, ra))
        if fault in ("500", "503"):
            raise _Reject(int(fault), "Internal server error" if fault == "500" else "Service temporarily unavailable")

        decision = self.limiter.admit(kid, billed)
        if not decision.ok:
            self.usage.rate_limited += 1
            headers = dict(decision.headers or {})
            headers.update(self._retry_after(decision.retry_after_s))
            raise _Reject(429, decision.reason, headers)
        try:
            return await self._admitted(kid, rt, texts, model, req, billed, fault)
        finally:
            self.limiter.done(kid)

    async def _admitted(
        self, kid: str, rt: Any, texts: list[str], model: ServedModel, req: ParsedRequest, billed: int, fault: str | None
    ) -> Response:
        """Compute, bill and answer an admitted request (its concurrency slot is held throughout)."""
        cfg = self.config
        prefix = model.prefix_for(req.task) if model.supports_task else ""
        vectors = await run_in_threadpool(self._compute, rt, texts, prefix, req)
        self.usage.total_tokens += billed
        self.usage.requests_ok += 1
        self.usage.tokens_by_key[kid] += billed
        if cfg.balance_tokens is not None:
            self.balance[kid] -= billed

        data = []
        for i, v in enumerate(vectors):
            if req.type_is_list:
                emb: Any = {t: encode_embedding(v, t) for t in req.embedding_types}
            else:
                emb = encode_embedding(v, req.embedding_types[0])
            data.append({"object": "embedding", "index": i, "embedding": emb})
        if fault == "wrong_count":
            data = data[:-1]
        payload = {
            "model": req.model,
            "object": "list",
            "usage": {"total_tokens": billed, "prompt_tokens": billed},
            "data": data,
        }
        headers = self.limiter.headers(kid) if cfg.limits.active else {}
        headers[STAND_IN_HEADER] = model.stand_in
        raw = json.dumps(payload, separators=(",", ":")).encode()
        if fault == "slow":
            await asyncio.sleep(cfg.faults.slow_s)
        if fault == "truncated":
            return Response(raw[: len(raw) // 2], status_code=200, headers=headers, media_type="application/json")
        if fault == "drop":
            return _DroppedResponse(raw, headers)
        return Response(raw, status_code=200, headers=headers, media_type="application/json")

    def _compute(self, rt: Any, texts: list[str], prefix: str, req: ParsedRequest) -> np.ndarray:
        v = rt.late_chunk(texts, prefix) if req.late_chunking else rt.embed(texts, prefix)
        if req.dimensions is not None:
            v = v[:, : req.dimensions]
        if req.normalized:
            norms = np.linalg.norm(v, axis=1, keepdims=True)
            norms[norms == 0] = 1.0
            v = v / norms
        return np.ascontiguousarray(v, dtype=np.float32)

    @staticmethod
    def _retry_after(seconds: float) -> dict[str, str]:
        return {"Retry-After": str(max(1, math.ceil(seconds))), "retry-after-ms": str(max(1, math.ceil(seconds * 1000)))}

    def _retry_headers(self, kid: str, seconds: float) -> dict[str, str]:
        h = self.limiter.headers(kid) if self.config.limits.active else {}
        h.update(self._retry_after(seconds))
        return h


def build_app(config: ServerConfig) -> Starlette:
    """The Starlette app for ``config`` (the server object is ``app.state.server``)."""
    server = JinaCompatServer(config)
    server.app.state.server = server
    return server.app
