"""A local HTTP server that speaks the Jina Embeddings API wire format (jina-spec §1).

What: ``build_app(ServerConfig)`` returns a Starlette app with

* ``POST /v1/embeddings``: same request fields (``model``, ``input``, ``task``,
  ``dimensions``, ``late_chunking``, ``embedding_type`` with the ``encoding_type`` /
  ``encoding_format`` aliases older and OpenAI clients send, ``normalized``,
  ``truncate``), same response shape, same status codes: 401 missing/wrong key, 400 over
  2048 inputs / over 8192 tokens per input / over 8192 tokens in a late-chunking request
  / unknown model, 422 malformed fields and fields the model does not take
  (``requests.check_fields``), 402/403 balance exhausted (if a balance is set), 429 rate
  limits with ``Retry-After``.
* ``POST /v1/rerank``: Jina's reranker request and response shape, scored by a stand-in
  named as such (``rehearsal.rerank``: the cosine of the embedding stand-in's vectors).
* ``GET /v1/models``: each served name, the stand-in behind it, what it accepts and how
  it answers (widths, context, fields).
* ``GET /v1/usage`` (an extension, not Jina's; needs a key): that key's own billed
  tokens, requests, statuses and injected faults; nothing about other keys.
* ``GET /health``.

Every error, including unknown paths (404), wrong methods (405) and bad JSON (422), is
answered as JSON ``{"detail": ...}`` like the Jina API. Embeddings come from real
stand-in models (``runtimes``), and every embeddings response carries the header
``X-Jina-Migrate-Stand-In`` naming the stand-in, so reports made from it can say so.
Widths (``default_dimensions``, ``shape_vectors``): without ``dimensions`` a v3 name answers
in the real model's default width (1024), the stand-in's vector zero-padded; with it, in
exactly that size (narrower: the first N values, Matryoshka-style, re-normalised).

Why: the real API is not reachable here; this is the client's test bed, the offline
demo's engine, and a rehearsal target for users' CI.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from migrate.embed.jina_wire import STAND_IN_HEADER, encode_embedding
from migrate.rehearsal import rerank as rerank_api
from migrate.rehearsal.faults import FaultConfig, FaultInjector
from migrate.rehearsal.limits import KeyLimiter, ServerLimits
from migrate.rehearsal.models import ServedModel
from migrate.rehearsal.requests import ParsedRequest, Reject, check_fields, invalid, parse_request
from migrate.rehearsal.runtimes import Runtime, RuntimePool
from migrate.rehearsal.state import DroppedResponse as _DroppedResponse
from migrate.rehearsal.state import KeyUsage, ServerConfig
from migrate.rehearsal.state import json_response as _json


def key_id(key: str) -> str:
    """A short, non-reversible name for a key (internal accounting only, never shown)."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def default_dimensions(model: ServedModel, stand_in_width: int) -> int:
    """The width of an answer that asked no ``dimensions``, as the real API answers it.

    A Matryoshka (v3) name answers in the real model's default width (jina-spec §1.2: 1024 for
    jina-embeddings-v3), whatever the stand-in's width, so ``plan`` (which promises 1024) and a run
    agree. The stand-in's vector is zero-padded to that width (``shape_vectors``): the only
    mapping that is honest about what it is: norms, cosine similarities and rankings are exactly
    the stand-in's, the padding carries no information, and it keeps Matryoshka's rule that the
    first N values of the default answer, re-normalised, equal the answer asked with
    ``dimensions=N`` (a rotation or random projection into 1024 would break that and pretend to
    information that is not there). A fixed-width (v2) name answers in the stand-in's own width,
    so an index built with a v2 name's stand-in can be searched with the same name.
    """
    lo, hi = model.accepted_dimensions(stand_in_width)
    return hi if lo < hi else stand_in_width


def shape_vectors(v: np.ndarray, dimensions: int | None, normalized: bool) -> np.ndarray:
    """The stand-in's vectors in the asked size: narrower = first N (then normalised when
    asked), wider = zero-padded after normalising (norm and cosine unchanged)."""
    width = v.shape[1]
    if dimensions is not None and dimensions < width:
        v = v[:, :dimensions]
    if normalized:
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        v = v / norms
    if dimensions is not None and dimensions > width:
        v = np.pad(v, ((0, 0), (0, dimensions - width)))
    return np.ascontiguousarray(v, dtype=np.float32)


async def _http_error(request: Request, exc: Exception) -> Response:
    """404 / 405 (and any other HTTPException) as ``{"detail": ...}``, like the Jina API."""
    assert isinstance(exc, HTTPException)
    return _json(exc.status_code, {"detail": exc.detail}, dict(exc.headers or {}))


async def _server_error(request: Request, exc: Exception) -> Response:
    return _json(500, {"detail": "Internal server error"})


class JinaCompatServer:
    """Request handling and state; ``app`` is the Starlette application."""

    def __init__(self, config: ServerConfig) -> None:
        if not config.api_keys:
            raise ValueError("the server needs at least one API key")
        self.config = config
        self.runtimes = RuntimePool()
        self.limiter = KeyLimiter(config.limits)
        self.faults = FaultInjector(config.faults)
        self.usage: dict[str, KeyUsage] = {}
        self.unauthenticated = 0
        self.balance: dict[str, int] = {}
        self.app = Starlette(
            routes=[
                Route("/v1/embeddings", self.embeddings, methods=["POST"]),
                Route("/v1/rerank", self.rerank, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/v1/usage", self.usage_endpoint, methods=["GET"]),
                Route("/health", self.health, methods=["GET"]),
            ],
            exception_handlers={HTTPException: _http_error, 500: _server_error},
        )

    def set_faults(self, faults: FaultConfig) -> None:
        """Change fault injection on the running server (counts start again at zero)."""
        self.config.faults = faults
        self.faults = FaultInjector(faults)

    def set_limits(self, limits: ServerLimits) -> None:
        """Change rate limits on the running server (buckets start full)."""
        self.config.limits = limits
        self.limiter = KeyLimiter(limits)

    def key_usage(self, kid: str) -> KeyUsage:
        return self.usage.setdefault(kid, KeyUsage())

    # ----------------------------------------------------------------- small endpoints

    async def health(self, request: Request) -> Response:
        return _json(200, {"status": "ok"})

    async def models(self, request: Request) -> Response:
        data = []
        for name, m in self.config.models.items():
            rt = await run_in_threadpool(self.runtimes.get, m.stand_in)
            data.append(self._describe(name, m, rt))
        scorer = rerank_api.rerank_stand_in(self.config.models)
        if scorer is not None:  # the reranker names and the stand-in scorer behind them (rehearsal.rerank)
            rt = await run_in_threadpool(self.runtimes.get, scorer.stand_in)
            data += [rerank_api.describe(name, scorer, rt) for name in rerank_api.RERANKER_NAMES]
        return _json(200, {"object": "list", "long_context": self.config.long_context, "data": data})

    async def rerank(self, request: Request) -> Response:
        """``POST /v1/rerank`` (Jina's reranker wire format, a named stand-in scorer: ``rehearsal.rerank``)."""
        return await rerank_api.handle(self, request)

    def _describe(self, name: str, m: ServedModel, rt: Runtime) -> dict[str, Any]:
        lo, hi = m.accepted_dimensions(rt.dim)
        if self.config.long_context:
            context = {"mode": "long-context emulation", "stand_in_max_tokens": rt.max_length,
                       "rule": f"texts past the stand-in's positions are embedded in overlapping windows up to "
                               f"{m.max_tokens} tokens; vectors differ from the stand-in run locally"}
        else:
            context = {"mode": "stand-in", "stand_in_max_tokens": rt.max_length,
                       "rule": f"embeds the first {rt.max_length} tokens, exactly as local:standin:{m.stand_in}; "
                               f"usage bills every token and texts up to {m.max_tokens} tokens are accepted, as the API does"}
        return {
            "id": name, "object": "model", "owned_by": "jina-migrate local stand-in (not Jina AI)",
            "stand_in": m.stand_in, "stand_in_model": m.describe(), "task_prefixes": m.prefixes,
            "max_tokens": m.max_tokens,
            "note": f"{name} is served by a smaller real model; vectors are NOT {name}'s",
            "dimensions": {"stand_in_width": rt.dim, "default": default_dimensions(m, rt.dim), "accepted": [lo, hi],
                           "narrower": "the first N values, re-normalised when normalized=true",
                           "wider": "zero-padded (norm and cosine similarity unchanged)",
                           "without_dimensions": ("the model's default width, as the API answers: the stand-in's "
                                                  "vector zero-padded" if lo < hi else "the stand-in's own width")},
            "context": context,
            "fields": {"task": "accepted" if m.supports_task else "rejected (422): jina-embeddings-v3 only",
                       "late_chunking": "accepted" if m.late_chunking else "rejected (422): jina-embeddings-v3 only",
                       "dimensions": f"{lo}..{hi}" if lo < hi else f"only {hi} (the model's own width)"},
        }

    async def usage_endpoint(self, request: Request) -> Response:
        try:
            kid = self._auth(request)
        except Reject as rej:
            return _json(rej.status, {"detail": rej.detail})
        d = self.key_usage(kid).as_dict()
        if self.config.limits.active:
            d["rate_limit"] = {"capacity": self.limiter.capacity(), "levels": self.limiter.levels(kid)}
        return _json(200, d)

    # ----------------------------------------------------------------- embeddings

    def _auth(self, request: Request) -> str:
        header = request.headers.get("authorization")
        if not header:
            raise Reject(401, "Missing API key: send the header 'Authorization: Bearer <your key>'")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Reject(401, "Invalid authorization format: expected 'Authorization: Bearer <your key>'")
        if token.strip() not in self.config.api_keys:
            raise Reject(401, "Invalid API key")
        return key_id(token.strip())

    async def embeddings(self, request: Request) -> Response:
        try:
            kid = self._auth(request)
        except Reject as rej:
            self.unauthenticated += 1
            return _json(rej.status, {"detail": rej.detail}, rej.headers)
        usage = self.key_usage(kid)
        usage.requests += 1
        try:
            response = await self._embeddings(request, kid, usage)
        except Reject as rej:
            response = _json(rej.status, {"detail": rej.detail}, rej.headers)
        usage.status[response.status_code] += 1
        return response

    async def _embeddings(self, request: Request, kid: str, usage: KeyUsage) -> Response:
        cfg = self.config
        body = await request.body()
        try:
            obj = json.loads(body)
        except ValueError:
            raise Reject(422, [{"loc": ["body"], "msg": "JSON decode error", "type": "json_invalid"}]) from None
        req = parse_request(obj, default_normalized=cfg.default_normalized, max_inputs=cfg.max_inputs)
        model = cfg.models.get(req.model)
        if model is None:
            raise Reject(400, f"Model '{req.model}' not found. Available models: {', '.join(sorted(cfg.models))}")
        rt = await run_in_threadpool(self.runtimes.get, model.stand_in)
        check_fields(req, model, rt.dim)
        texts = req.texts
        limit = min(model.max_tokens, cfg.max_tokens)
        if req.truncate:
            texts = await run_in_threadpool(lambda: [rt.truncate(t, limit) for t in texts])
        counts = await run_in_threadpool(rt.count_tokens, texts)
        for n in counts:
            if n > limit:
                raise Reject(400, f"Single text cannot exceed {limit} tokens. {n} tokens given.")
        if req.late_chunking:
            billed = await run_in_threadpool(rt.joined_tokens, texts)
            if billed > cfg.late_chunking_max_tokens:
                raise Reject(400, f"With late_chunking, the inputs of one request together cannot exceed "
                                  f"{cfg.late_chunking_max_tokens} tokens. {billed} tokens given.")
        else:
            billed = int(sum(counts))
        if cfg.balance_tokens is not None:
            left = self.balance.setdefault(kid, cfg.balance_tokens)
            if billed > left:
                raise Reject(cfg.balance_status, f"Insufficient balance: this request needs {billed} tokens, {left} left on this key")

        fault = self.faults.draw(body)
        if fault is not None:
            usage.faults[fault] += 1
        if fault == "429":
            usage.rate_limited += 1
            raise Reject(429, "Rate limit exceeded, please retry later", self._retry_headers(kid, cfg.faults.retry_after_s))
        if fault in ("500", "503"):
            raise Reject(int(fault), "Internal server error" if fault == "500" else "Service temporarily unavailable")

        decision = self.limiter.admit(kid, billed)
        if not decision.ok:
            usage.rate_limited += 1
            headers = dict(decision.headers or {})
            headers.update(self._retry_after(decision.retry_after_s))
            raise Reject(429, decision.reason, headers)
        try:
            return await self._admitted(kid, usage, rt, texts, model, req, billed, fault)
        finally:
            self.limiter.done(kid)

    async def _admitted(self, kid: str, usage: KeyUsage, rt: Runtime, texts: list[str], model: ServedModel,
                        req: ParsedRequest, billed: int, fault: str | None) -> Response:
        """Compute, bill and answer an admitted request (its concurrency slot is held throughout)."""
        cfg = self.config
        prefix = model.prefix_for(req.task) if model.supports_task else ""
        dims = req.dimensions if req.dimensions is not None else default_dimensions(model, rt.dim)
        vectors = await run_in_threadpool(self._compute, rt, texts, prefix, req, dims)
        usage.total_tokens += billed
        usage.requests_ok += 1
        if cfg.balance_tokens is not None:
            self.balance[kid] -= billed

        data = []
        for i, v in enumerate(vectors):
            emb: Any = ({t: encode_embedding(v, t) for t in req.embedding_types} if req.type_is_list
                        else encode_embedding(v, req.embedding_types[0]))
            data.append({"object": "embedding", "index": i, "embedding": emb})
        if fault == "wrong_count":
            data = data[:-1]
        payload = {"model": req.model, "object": "list", "usage": {"total_tokens": billed, "prompt_tokens": billed},
                   "data": data}
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

    def _compute(self, rt: Runtime, texts: list[str], prefix: str, req: ParsedRequest, dims: int) -> np.ndarray:
        if req.late_chunking:
            v = rt.late_chunk(texts, prefix)
        elif self.config.long_context:
            v = rt.embed_long(texts, prefix)
        else:
            v = rt.embed(texts, prefix)
        return shape_vectors(v, dims, req.normalized)

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


__all__ = ["JinaCompatServer", "KeyUsage", "ServerConfig", "build_app", "default_dimensions", "invalid", "key_id",
           "shape_vectors"]
