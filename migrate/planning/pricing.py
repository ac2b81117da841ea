"""Requests, API wall time per rate-limit tier, and cost.

Requests are packed per shard by the API client's own packer (``pack_requests``) with the
client's own default token budget per request (``request_token_budget``); tiers are the
client's presets (``migrate.embed.ratelimit.TIERS``). So the plan predicts what the client
will send, not a re-implementation of it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from migrate.embed.packing import pack_requests
from migrate.embed.ratelimit import DEFAULT_TIER, TIERS, RateLimits, request_token_budget, resolve_limits
from migrate.planning.options import PlanOptions
from migrate.tokens import TokenCount


def requests_per_shard(tokens: np.ndarray, shard_size: int, max_inputs: int, budget: int, late: bool) -> np.ndarray:
    """Requests per shard, packed in order as the API client packs them. With late chunking
    every document (all of its chunks) is a request of its own."""
    out = []
    for start in range(0, len(tokens), shard_size):
        t = tokens[start:start + shard_size]
        out.append(len(t) if late else len(pack_requests(t.tolist(), max_inputs=max_inputs, max_tokens=budget)))
    return np.asarray(out, dtype=np.int64)


def api_time(requests: int, tokens: int, limits: RateLimits) -> dict[str, Any]:
    """Wall time at the pace the limits allow: whichever of RPM and TPM binds."""
    by_req = requests / limits.rpm * 60.0
    by_tok = tokens / limits.tpm * 60.0
    return {"rpm": limits.rpm, "tpm": limits.tpm, "concurrency": limits.concurrency,
            "seconds": round(max(by_req, by_tok), 1),
            "bound_by": "tokens per minute" if by_tok >= by_req else "requests per minute"}


def plan_requests(opts: PlanOptions, billed_per_doc: np.ndarray, billed: int) -> tuple[np.ndarray, dict[str, Any], dict[str, Any]]:
    """(requests per shard for the chosen limits, the ``requests`` section, the ``api_time`` section)."""
    chosen = resolve_limits(opts.tier, rpm=opts.rpm, tpm=opts.tpm, concurrency=opts.concurrency)
    packed: dict[int, np.ndarray] = {}  # the packing depends only on the token budget

    def pack(limits: RateLimits) -> tuple[np.ndarray, int]:
        budget = opts.request_tokens or request_token_budget(limits)
        if budget not in packed:
            packed[budget] = requests_per_shard(billed_per_doc, opts.shard_size, opts.inputs_per_request, budget,
                                                opts.late_chunking)
        return packed[budget], budget

    reqs, budget = pack(chosen)
    n_requests = int(reqs.sum())
    by_tier = {}
    for name, limits in TIERS.items():
        r, b = pack(limits)
        by_tier[name] = api_time(int(r.sum()), billed, limits) | {"requests": int(r.sum()), "request_tokens": b}
    custom = any(getattr(opts, k) for k in ("rpm", "tpm", "concurrency"))
    tier = opts.tier or DEFAULT_TIER
    api = {"tier": f"{tier}+custom" if custom else tier,
           "chosen": api_time(n_requests, billed, chosen) | {"requests": n_requests, "request_tokens": budget},
           "by_tier": by_tier}
    requests = {"total": n_requests, "inputs_per_request": opts.inputs_per_request, "request_tokens": budget,
                "late_chunking": opts.late_chunking,
                "packing": "in order per shard, closed at inputs_per_request inputs or request_tokens tokens "
                           "(late chunking: one request per document), as the API client packs"}
    return reqs, requests, api


def cost(count: TokenCount, price_per_million: float | None) -> dict[str, Any] | None:
    """Cost of the billed tokens, with the bounds of the count; None without a price."""
    if price_per_million is None:
        return None
    p = price_per_million
    ratio = count.billed / count.total if count.total else 1.0
    return {"price_per_million": p, "total": round(count.billed / 1e6 * p, 4),
            "low": round(count.low * ratio / 1e6 * p, 4), "high": round(count.high * ratio / 1e6 * p, 4)}


#: What ``compare`` pays for its label-free evidence (``report.knownitem``, ``report.judged``): the guard
#: re-embeds a sample of documents (each as a query + the rest of it) on every side whose model is an API;
#: a reranker judge is billed the query with every pooled document (the bundled server's rule, ``rehearsal.rerank``).
GUARD_SAMPLE = 300
JUDGE_QUERIES = 100
JUDGE_POOL = 20  # pooled documents per query at k = 10 when the two sides share none (the most there can be)
QUERY_TOKENS = 16  # a typical search query, special tokens included


def evaluation_cost(billed_per_doc: np.ndarray, price_per_million: float | None) -> dict[str, Any]:
    """Tokens (and cost, with a price) of ``compare``'s known-item guard and of a judge, from the corpus's
    token counts: the guard's sample costs about its documents' tokens once per API side (query and shortened
    document together are the document, plus one more pair of special tokens); a judge about
    ``JUDGE_POOL x (query + mean document)`` per query."""
    n = int(len(billed_per_doc))
    mean = float(np.mean(billed_per_doc)) if n else 0.0
    sample = min(GUARD_SAMPLE, n)
    guard = int(round(sample * (mean + 2)))
    judge = int(round(JUDGE_QUERIES * JUDGE_POOL * (QUERY_TOKENS + mean)))

    def price(tokens: int) -> float | None:
        return None if price_per_million is None else round(tokens / 1e6 * price_per_million, 4)

    return {
        "known_item_guard": {"documents": sample, "tokens_per_api_side": guard, "cost_per_api_side": price(guard),
                             "note": "compare re-embeds these on each side whose model is an API (v2 and v3 both: "
                                     "twice); cached, so a rerun pays nothing"},
        "judge_per_100_queries": {"queries": JUDGE_QUERIES, "pairs_at_most": JUDGE_QUERIES * JUDGE_POOL,
                                  "tokens_at_most": judge, "cost_at_most": price(judge),
                                  "note": "a jina-api reranker judge over both sides' pooled top 10 (fewer pairs "
                                          "where the sides agree), priced like embedding tokens; each pair is paid "
                                          "once (cached); local: and llm: judges are not billed by Jina"},
    }
