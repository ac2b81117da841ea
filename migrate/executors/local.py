"""The default executor: run the pending shards one after another in this process."""

from __future__ import annotations

from typing import Any

from migrate.executors.base import Budget, Job, estimate_tokens
from migrate.progress import Reporter
from migrate.shards import Shard
from migrate.step import build_cache, run_shard


def local_executor(job: Job, shards: list[Shard], reporter: Reporter, budget: Budget) -> None:
    """Load the embedder once (at the first pending shard), then run the step shard by shard."""
    if not shards:
        return
    ws, source = job.ws, job.ctx.source()
    embedder = job.make_embedder()
    records: list[dict[str, Any]] = []
    try:
        job.on_embedder(embedder.info().as_dict())
        cache = build_cache(ws, job.plan.shards, job.ctx.config_fingerprint, job.cache_dirs,
                            on_skip=lambda msg: reporter.event("cache_skipped", message=msg))
        if len(cache):
            reporter.event("cache", message=f"{len(cache)} cached vectors available")
        for shard in shards:
            budget.check_before(estimate_tokens(records, shard.rows))
            rec = run_shard(job.ctx, ws, source, shard, embedder, cache)
            budget.spent += int(rec["tokens"])
            records.append(rec)
            reporter.shard_done(rec)
    finally:
        embedder.close()
