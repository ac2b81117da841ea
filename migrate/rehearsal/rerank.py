"""``POST /v1/rerank`` in the bundled server: Jina's rerank wire format, answered by a named stand-in.

What: the request and response of Jina's reranker API (``../shared/docs/evaluation.md``):
``{"model", "query", "documents": [str | {"text": str}], "top_n", "return_documents"}`` ->
``{"model", "usage": {"total_tokens"}, "results": [{"index", "relevance_score",
"document": {"text"}}]}``, results sorted by score, best first, cut to ``top_n``. The same
key check, per-key usage, balance, rate limits and seeded faults as ``/v1/embeddings``
(``wrong_count`` drops one result).

The scorer is a stand-in, and says so: no reranker's weights install from PyPI, so the
score is a real computation with the server's embedding stand-in (the model that serves
``jina-embeddings-v3``: ``e5-small``, or ``static`` with ``--fast``):
``relevance_score = (1 + cos(query, document)) / 2``, the cosine of the stand-in's
embeddings (with e5's own ``query: `` / ``passage: `` prompts when the stand-in is e5-small),
mapped into [0, 1] like a reranker's probability. Every answer carries the header
``X-Jina-Migrate-Stand-In`` and ``/v1/models`` lists each reranker name with its stand-in
and this rule. It exercises a judge's wiring (requests, limits, retries, caching); as a
judge of quality it is an embedding model judging, which favours its own family: never
evidence.

Billing (a stand-in rule; Jina's own is not published): every document is billed with the
query, ``Σ_d tokens(query) + tokens(d)``, counted by the stand-in's tokenizer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from migrate.embed.jina_wire import STAND_IN_HEADER
from migrate.rehearsal.models import ServedModel
from migrate.rehearsal.requests import Reject, invalid
from migrate.rehearsal.state import DroppedResponse, KeyUsage, ServerState, json_response

if TYPE_CHECKING:
    from migrate.rehearsal.runtimes import Runtime

#: Jina's reranker names (evaluation.md); jina-reranker-v3 is listwise, up to 64 documents.
RERANKER_NAMES = ("jina-reranker-v2-base-multilingual", "jina-reranker-v3", "jina-reranker-m0", "jina-colbert-v2")
LISTWISE_MAX_DOCUMENTS = {"jina-reranker-v3": 64}
MAX_DOCUMENTS = 2048
#: Stand-ins trained with query/passage prompts (e5's "query: " / "passage: "): the others get none.
PROMPTED_STAND_INS = frozenset({"e5-small"})
SCORE_RULE = "(1 + cosine of the stand-in's query and document embeddings) / 2"


@dataclass
class RerankRequest:
    model: str
    query: str
    documents: list[str]
    top_n: int
    return_documents: bool


def parse_rerank(obj: Any) -> RerankRequest:
    """Validate a rerank body the way the embeddings body is validated (422 for malformed fields)."""
    if not isinstance(obj, dict):
        raise invalid("body", "request body must be a JSON object")
    model = obj.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model", "field required: a reranker name string")
    query = obj.get("query")
    if isinstance(query, dict) and isinstance(query.get("text"), str):
        query = query["text"]
    if not isinstance(query, str) or not query.strip():
        raise invalid("query", "field required: a non-empty string")
    raw = obj.get("documents")
    if not isinstance(raw, list) or not raw:
        raise invalid("documents", "field required: a non-empty array of strings or {\"text\": ...} objects")
    docs: list[str] = []
    for i, item in enumerate(raw):
        if isinstance(item, dict) and isinstance(item.get("text"), str):
            docs.append(item["text"])
        elif isinstance(item, str):
            docs.append(item)
        else:
            raise invalid("documents", f"documents[{i}] must be a string or an object with a 'text' string")
    limit = LISTWISE_MAX_DOCUMENTS.get(model, MAX_DOCUMENTS)
    if len(docs) > limit:
        raise Reject(400, f"documents length {len(docs)} is larger than the largest allowed size {limit} for {model}")
    top_n = obj.get("top_n", len(docs))
    if top_n is None:
        top_n = len(docs)
    if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1:
        raise invalid("top_n", "must be a positive integer")
    ret = obj.get("return_documents", True)
    if ret is None:
        ret = True
    if not isinstance(ret, bool):
        raise invalid("return_documents", "must be a boolean")
    return RerankRequest(model, query, docs, min(top_n, len(docs)), ret)


def rerank_stand_in(models: dict[str, ServedModel]) -> ServedModel | None:
    """The embedding entry whose stand-in scores reranking: the one serving jina-embeddings-v3, else the first."""
    return models.get("jina-embeddings-v3") or next(iter(models.values()), None)


def scores(rt: Runtime, model: ServedModel, query: str, documents: list[str]) -> np.ndarray:
    """``(1 + cos) / 2`` of the stand-in's embeddings of the query and each document (see the module docstring)."""
    prompted = model.stand_in in PROMPTED_STAND_INS
    q = rt.embed([query], model.prefix_for("retrieval.query") if prompted else "")
    d = rt.embed(documents, model.prefix_for("retrieval.passage") if prompted else "")

    def unit(v: np.ndarray) -> np.ndarray:
        n = np.linalg.norm(v, axis=1, keepdims=True)
        n[n == 0] = 1.0
        return v / n

    cos = (unit(d) @ unit(q)[0]).astype(np.float64)
    return np.clip((1.0 + cos) / 2.0, 0.0, 1.0)


def describe(name: str, model: ServedModel, rt: Runtime) -> dict[str, Any]:
    """A ``/v1/models`` entry for a reranker name."""
    return {
        "id": name, "object": "model", "owned_by": "jina-migrate local stand-in (not Jina AI)",
        "type": "reranker", "endpoint": "/v1/rerank", "stand_in": model.stand_in, "stand_in_model": model.describe(),
        "note": (f"{name} is answered by a stand-in scorer: {SCORE_RULE}; scores are NOT {name}'s, and an embedding "
                 f"model judging favours its own family: use it to rehearse, never as evidence"),
        "relevance_score": SCORE_RULE,
        "max_documents": LISTWISE_MAX_DOCUMENTS.get(name, MAX_DOCUMENTS),
        "listwise": name in LISTWISE_MAX_DOCUMENTS,
        "billing": "sum over documents of tokens(query) + tokens(document), stand-in tokenizer",
    }


async def handle(server: ServerState, request: Request) -> Response:
    """``POST /v1/rerank``: authenticate, count, limit, inject faults, score, answer."""
    try:
        kid = server._auth(request)
    except Reject as rej:
        server.unauthenticated += 1
        return json_response(rej.status, {"detail": rej.detail}, rej.headers)
    usage = server.key_usage(kid)
    usage.requests += 1
    try:
        response = await _rerank(server, request, kid, usage)
    except Reject as rej:
        response = json_response(rej.status, {"detail": rej.detail}, rej.headers)
    usage.status[response.status_code] += 1
    return response


async def _rerank(server: ServerState, request: Request, kid: str, usage: KeyUsage) -> Response:
    cfg = server.config
    body = await request.body()
    try:
        obj = json.loads(body)
    except ValueError:
        raise Reject(422, [{"loc": ["body"], "msg": "JSON decode error", "type": "json_invalid"}]) from None
    req = parse_rerank(obj)
    if req.model not in RERANKER_NAMES:
        raise Reject(400, f"Model '{req.model}' not found. Available rerankers: {', '.join(RERANKER_NAMES)}")
    model = rerank_stand_in(cfg.models)
    if model is None:
        raise Reject(400, "this server serves no embedding model to stand in for a reranker")
    rt = await run_in_threadpool(server.runtimes.get, model.stand_in)
    q_tokens = (await run_in_threadpool(rt.count_tokens, [req.query]))[0]
    d_tokens = await run_in_threadpool(rt.count_tokens, req.documents)
    billed = int(sum(q_tokens + n for n in d_tokens))
    if cfg.balance_tokens is not None:
        left = server.balance.setdefault(kid, cfg.balance_tokens)
        if billed > left:
            raise Reject(cfg.balance_status, f"Insufficient balance: this request needs {billed} tokens, {left} left "
                                             f"on this key")
    fault = server.faults.draw(body)
    if fault is not None:
        usage.faults[fault] += 1
    if fault == "429":
        usage.rate_limited += 1
        raise Reject(429, "Rate limit exceeded, please retry later", server._retry_headers(kid, cfg.faults.retry_after_s))
    if fault in ("500", "503"):
        raise Reject(int(fault), "Internal server error" if fault == "500" else "Service temporarily unavailable")
    decision = server.limiter.admit(kid, billed)
    if not decision.ok:
        usage.rate_limited += 1
        headers = dict(decision.headers or {})
        headers.update(server._retry_after(decision.retry_after_s))
        raise Reject(429, decision.reason, headers)
    try:
        values = await run_in_threadpool(scores, rt, model, req.query, req.documents)
    finally:
        server.limiter.done(kid)
    usage.total_tokens += billed
    usage.requests_ok += 1
    if cfg.balance_tokens is not None:
        server.balance[kid] -= billed
    return await _answer(server, kid, req, values, billed, fault, model.stand_in)


async def _answer(server: ServerState, kid: str, req: RerankRequest, values: np.ndarray, billed: int,
                  fault: str | None, stand_in: str) -> Response:
    import asyncio

    order = sorted(range(len(values)), key=lambda i: (-values[i], i))[: req.top_n]
    results = []
    for i in order:
        r: dict[str, Any] = {"index": i, "relevance_score": float(values[i])}
        if req.return_documents:
            r["document"] = {"text": req.documents[i]}
        results.append(r)
    if fault == "wrong_count":
        results = results[:-1]
    payload = {"model": req.model, "usage": {"total_tokens": billed}, "results": results}
    headers = server.limiter.headers(kid) if server.config.limits.active else {}
    headers[STAND_IN_HEADER] = stand_in
    raw = json.dumps(payload, separators=(",", ":")).encode()
    if fault == "slow":
        await asyncio.sleep(server.config.faults.slow_s)
    if fault == "truncated":
        return Response(raw[: len(raw) // 2], status_code=200, headers=headers, media_type="application/json")
    if fault == "drop":
        return DroppedResponse(raw, headers)
    return Response(raw, status_code=200, headers=headers, media_type="application/json")
