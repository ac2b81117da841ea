"""The long-lived Ray actor that runs shard steps: one embedder (one model load) per actor.

What: ``ShardWorker`` builds its embedder once with the driver's own factory, then runs
``migrate.runner.run_shard`` (the very step the local executor runs) for each shard it
is given, writing the shard and its completion record to the shared output directory.
It adds where it ran (``node``, ``node_ip``, ``host``, ``worker``, ``pid``) to the
completion record.

Why an actor and not a task per shard: loading a model costs seconds to minutes; an
actor pays it once and keeps the GPU (``num_gpus``) for the whole run.

The worker gets only what a shard step needs: a ``JobSpec`` (configuration, output
path, configuration fingerprint) and per shard the shard's rows.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from migrate.config import RunConfig
from migrate.embed.ratelimit import RateLimits
from migrate.errors import StateError
from migrate.shards import MANIFEST, Shard, ShardPlan, ShardStore, load_manifest


@dataclass
class JobSpec:
    """The part of a ``runner.Job`` every worker needs: no document texts, and no plan
    (each worker reads the plan from the manifest on the shared output directory, which
    also proves that it sees that directory)."""

    config: RunConfig
    out: str
    config_fingerprint: str


@dataclass
class ShardTask:
    """One shard and its rows, as sent to a worker."""

    index: int
    start: int
    stop: int
    key: str
    ids: list[str]
    texts: list[str]
    hashes: list[str]


class Secret:
    """An API key in transit to workers; never shown by ``repr`` or ``str``."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__


def node_identity() -> dict[str, Any]:
    """Which Ray node and process this is (for completion records and status)."""
    import ray

    ctx = ray.get_runtime_context()
    return {"node": ctx.get_node_id(), "node_ip": ray.util.get_node_ip_address(), "host": socket.gethostname(),
            "pid": os.getpid()}


class ShardWorker:
    """Runs shard steps on one node (decorated with ``ray.remote`` by the executor)."""

    def __init__(self, make_embedder: Any, spec: JobSpec, name: str, secret: Secret | None = None,
                 limiter: str | None = None) -> None:
        self.make_embedder = make_embedder
        self.spec = spec
        self.name = name
        self.limiter = limiter
        if secret is not None:
            # The client reads its key from this variable, lazily, in this process only.
            os.environ[spec.config.api_key_env] = secret.value
            from migrate.secrets import register_secret

            register_secret(secret.value)
        self.embedder: Any = None
        self.cache: Any = None
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
        out = Path(self.spec.out)
        where = f"Ray node {self.identity['node_ip']} ({self.identity['host']})"
        manifest = load_manifest(out) if (out / MANIFEST).is_file() else None
        if manifest is None:
            raise StateError(f"{out}: the output directory is not visible on {where}",
                             hint="put --out on storage that every node mounts at the same path (NFS, a shared disk)")
        if manifest.get("config_fingerprint") != self.spec.config_fingerprint:
            raise StateError(f"{out}: the manifest seen on {where} is of another configuration",
                             hint="another run is using this output directory; use a separate --out")
        return ShardPlan.from_dict(manifest["plan"])

    def _ensure_embedder(self) -> None:
        if self.embedder is not None:
            return
        from migrate.progress import NullReporter
        from migrate.runner import build_cache

        self.plan = self._load_plan()
        embedder = self.make_embedder()
        if self.limiter is not None:
            import ray

            from migrate.executors.ray_limiter import SharedLimiterProxy, install

            limits = getattr(embedder, "limits", None)
            if isinstance(limits, RateLimits):
                handle = ray.get_actor(self.limiter, namespace=ray.get_runtime_context().namespace)
                self.limiter_installed = install(embedder, SharedLimiterProxy(handle, f"{self.name}/{os.getpid()}", limits))
        self.embedder = embedder
        self.cache = build_cache(self._job([], [], []), NullReporter())

    def _job(self, ids: list[str], texts: list[str], hashes: list[str]) -> Any:
        from migrate.runner import Job

        spec = self.spec
        return Job(config=spec.config, out=Path(spec.out), ids=ids, texts=texts, hashes=hashes,
                   faiss_ids=np.zeros(0, np.int64), plan=self.plan, store=ShardStore(Path(spec.out)),
                   config_fingerprint=spec.config_fingerprint, manifest={})

    def run(self, task: ShardTask) -> dict[str, Any]:
        """Embed and write one shard; returns its completion record (with where it ran)."""
        from migrate.atomic import write_json
        from migrate.runner import run_shard

        self._ensure_embedder()
        job = self._job(task.ids, task.texts, task.hashes)
        # The same shard (same name and key), its rows re-based to this task's slice.
        shard = Shard(task.index, 0, task.stop - task.start, task.key)
        record = run_shard(job, shard, self.embedder, self.cache)
        record = record | {k: self.identity[k] for k in ("node", "node_ip", "host", "pid")} | {"worker": self.name}
        write_json(job.store.record_path(shard), record)
        self.shards_run += 1
        return record

    def close(self) -> None:
        if self.embedder is not None:
            self.embedder.close()
            self.embedder = None
