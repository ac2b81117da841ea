"""Local time: a short timed embed of a seeded random sample, extrapolated by tokens."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np


def calibrate_local(emb: Any, spec: str, texts: Sequence[str], task: str, *, seed: int, seconds: float, max_docs: int,
                    load_seconds: float = 0.0, load_cpu_seconds: float = 0.0) -> dict[str, Any]:
    """Time ``emb`` (an open embedder) on a seeded random sample; extrapolate by the model's tokens.

    Returns the deterministic part (sample, tokens) and, under ``measured``, the timings.
    Tokens are the model's own count capped at its input limit, since that is what it
    computes on; the sample grows (doubling) until ``seconds`` of embedding were timed.
    ``load_seconds`` (how long loading the model took) is added to the prediction.
    """
    info = emb.info()
    cap = info.max_tokens or 10 ** 9
    n = len(texts)
    order = np.random.default_rng(seed).permutation(n)
    warm = min(8, n)
    emb.embed([texts[int(i)] for i in order[:warm]], task=task)  # warm-up (lazy init, allocator), not timed
    all_tokens = np.minimum(np.asarray(emb.count_tokens(texts, task=task), dtype=np.int64), cap)
    # timed calls of 32, 64, 128, ... documents, so batches are as full as in a real run
    timed = order[warm:] if n > warm else order
    used, spent, cpu, k = 0, 0.0, 0.0, 32
    limit = min(len(timed), max_docs)
    while used < limit:
        pick = timed[used:min(used + k, limit)]
        t1, c1 = time.perf_counter(), time.process_time()
        emb.embed([texts[int(i)] for i in pick], task=task)
        spent += time.perf_counter() - t1
        cpu += time.process_time() - c1
        used += len(pick)
        if spent >= seconds:
            break
        k *= 2
    sample_tokens = int(all_tokens[timed[:used]].sum())
    total_tokens = int(all_tokens.sum())
    rate = sample_tokens / spent if spent > 0 else float("inf")
    predicted = total_tokens / rate + load_seconds
    predicted_cpu = total_tokens * (cpu / max(sample_tokens, 1)) + load_cpu_seconds
    return {
        "model": spec, "backend": info.backend, "model_max_tokens": info.max_tokens,
        "corpus_model_tokens": total_tokens, "seed": seed,
        "method": "time a seeded random sample (after a warm-up), extrapolate by the model's own token count, "
                  "add the measured load time",
        "measured": {"sample_docs": used, "sample_tokens": sample_tokens, "load_seconds": round(load_seconds, 2),
                     "sample_seconds": round(spent, 2), "tokens_per_second": round(rate, 1),
                     "predicted_seconds": round(predicted, 1),
                     # CPU seconds of this process: less sensitive to other work on a shared machine
                     "sample_cpu_seconds": round(cpu, 2), "predicted_cpu_seconds": round(predicted_cpu, 1)},
    }


def open_timed(spec: str) -> tuple[Any, float, float]:
    """Load the embedder named by ``spec``: (embedder, wall seconds, CPU seconds)."""
    from migrate.embed.registry import get_embedder

    t0, c0 = time.perf_counter(), time.process_time()
    emb = get_embedder(spec)
    return emb, time.perf_counter() - t0, time.process_time() - c0
