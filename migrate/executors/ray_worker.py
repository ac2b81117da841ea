"""The long-lived Ray actor that runs shard steps: one embedder (one model load) per actor.

What: ``ShardWorker`` builds its embedder once with the driver's own factory, then runs
``migrate.step.run_shard`` (the very step the local executor runs) for each shard it is
given. It reads the shard's planned rows from the shared output directory and the texts
from the source itself (the driver never ships texts), writes the shard and its
completion record there, and adds where it ran (``node``, ``node_ip``, ``host``,
``worker``, ``pid``) to the record.

Why an actor and not a task per shard: loading a model costs seconds to minutes; an
actor pays it once and keeps the GPU (``num_gpus``) for the whole run.

The API key arrives as an argument (``Secret``) and goes to the embedder as an argument:
it is never put into the worker's environment, a log or a file.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from migrate.errors import StateError
from migrate.secrets import Secret
from migrate.shards import Shard, ShardPlan
from migrate.step import StepContext, build_cache, run_shard


def node_identity() -> dict[str, Any]:
    """Which Ray node and process this is (for completion records and status)."""
    import ray

    ctx = ray.get_runtime_context()
    return {"node": ctx.get_node_id(), "node_ip": ray.util.get_node_ip_address(), "host": socket.gethostname(),
            "pid": os.getpid()}


class ShardWorker:
    """Runs shard steps on one node (decorated with ``ray.remote`` by the executor)."""

    def __init__(self, make_embedder: Any, ctx: StepContext, cache_dirs: list[str], name: str,
                 secret: Secret | None = None, limiter: str | None = None) -> None:
        self.make_embedder = make_embedder
        self.ctx = ctx
        self.cache_dirs = [Path(c) for c in cache_dirs]
        self.name = name
        self.secret = secret
        self.limiter = limiter
        self.embedder: Any = None
        self.cache: Any = None
        self.source: Any = None
        self.plan: ShardPlan | None = None
        self.limiter_installed = False
        self.identity = node_identity()
        self.shards_run = 0

    def ready(self) -> dict[str, Any]:
        """Load the embedder (once) and report where this worker runs and what it embeds with."""
        import ray

        import migrate

        self._ensure_embedder()
        return self.identity | {"worker": self.name, "version": migrate.__version__, "gpus": ray.get_gpu_ids(),
                                "embedder": self.embedder.info().as_dict(), "shared_limiter": self.limiter_installed}

    def _load_plan(self) -> ShardPlan:
        """The plan from the shared output's manifest, checked against the driver's configuration."""
        ws = self.ctx.workspace()
        where = f"Ray node {self.identity['node_ip']} ({self.identity['host']})"
        manifest = ws.read_manifest() if ws.manifest_path.is_file() else None
        if manifest is None:
            raise StateError(f"{ws.out}: the output directory is not visible on {where}",
                             hint="put --out on storage that every node mounts at the same path (NFS, a shared disk)")
        if manifest.config_fingerprint != self.ctx.config_fingerprint:
            raise StateError(f"{ws.out}: the manifest seen on {where} is of another configuration",
                             hint="another run is using this output directory; use a separate --out")
        return manifest.shard_plan()

    def _ensure_embedder(self) -> None:
        if self.embedder is not None:
            return
        self.plan = self._load_plan()
        overrides: dict[str, Any] = {}
        if self.secret is not None:
            overrides["api_key"] = self.secret  # a Secret: redacted in this process too, never in os.environ
        if self.limiter is not None:
            import ray

            from migrate.embed.ratelimit import resolve_limits
            from migrate.executors.ray_limiter import SharedLimiterProxy

            cfg = self.ctx.config
            limits = resolve_limits(cfg.tier, rpm=cfg.rpm, tpm=cfg.tpm, concurrency=cfg.concurrency)
            handle = ray.get_actor(self.limiter, namespace=ray.get_runtime_context().namespace)
            overrides["limiter"] = SharedLimiterProxy(handle, f"{self.name}/{os.getpid()}", limits)
            self.limiter_installed = True
        self.embedder = self.make_embedder(**overrides)
        self.source = self.ctx.source()
        self.cache = build_cache(self.ctx.workspace(), self.plan.shards, self.ctx.config_fingerprint, self.cache_dirs)

    def run(self, shard: Shard) -> dict[str, Any]:
        """Embed and write one shard; returns its completion record (with where it ran)."""
        self._ensure_embedder()
        ws = self.ctx.workspace()
        record = run_shard(self.ctx, ws, self.source, shard, self.embedder, self.cache)
        record = record | {k: self.identity[k] for k in ("node", "node_ip", "host", "pid")} | {"worker": self.name}
        ws.write_record(shard, record)
        self.shards_run += 1
        return record

    def close(self) -> None:
        if self.embedder is not None:
            self.embedder.close()
            self.embedder = None
