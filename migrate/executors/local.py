"""The default executor: run the pending shards in this process, the step's stages overlapping.

While the model embeds shard k (this thread), a loader thread reads, checks and tokenizes
shard k+1 and a storer thread writes shard k-1 (``migrate.executors.overlap``; one shard waits
between stages at most, so memory stays a few shards). Shards still complete in order, and an
error in any stage stops the run with that error after the shards before it were written.
"""

from __future__ import annotations

from typing import Any

from migrate.executors.base import Budget, Job, estimate_tokens
from migrate.executors.overlap import overlapped
from migrate.progress import Reporter
from migrate.shards import Shard
from migrate.sources import DocumentSource
from migrate.step import EmbeddedShard, LoadedShard, build_cache, embed_shard, load_shard, write_embedded

#: Shards loaded ahead of the model, and embedded shards waiting to be written.
AHEAD = 1
BEHIND = 1


def local_executor(job: Job, shards: list[Shard], reporter: Reporter, budget: Budget) -> None:
    """Load the embedder once (at the first pending shard), then run the step's stages overlapped."""
    if not shards:
        return
    ws = job.ws
    embedder = job.make_embedder()
    records: list[dict[str, Any]] = []
    sources: list[DocumentSource] = []  # opened by the loader thread, which alone reads it

    def load(shard: Shard) -> LoadedShard:
        if not sources:
            sources.append(job.ctx.source())
        return load_shard(job.ctx, ws, sources[0], shard, embedder, cache)

    def work(loaded: LoadedShard) -> EmbeddedShard:
        budget.check_before(estimate_tokens(records, loaded.shard.rows))
        done = embed_shard(job.ctx, loaded, embedder, cache)
        budget.spent += int(done.meta["tokens"])
        records.append(done.meta)
        return done

    def store(done: EmbeddedShard) -> None:
        reporter.shard_done(write_embedded(ws, done))

    try:
        job.on_embedder(embedder.info().as_dict())
        cache = build_cache(ws, job.plan.shards, job.ctx.config_fingerprint, job.cache_dirs,
                            on_skip=lambda msg: reporter.event("cache_skipped", message=msg))
        if len(cache):
            reporter.event("cache", message=f"{len(cache)} cached vectors available")
        overlapped(shards, load, work, store, ahead=AHEAD, behind=BEHIND)
    finally:
        embedder.close()
