"""Run the shard plan on a Ray cluster (``jina-migrate run --executor ray --ray-address ...``).

What: ``make_ray_executor(address)`` returns an executor (the ``Executor`` protocol of
``migrate.executors.base``, like the local one). It connects to the cluster, starts a
pool of long-lived ``ShardWorker`` actors (one embedder / model load each; ``num_gpus``
per actor when the cluster has GPUs and the model is local, CPU actors otherwise), hands
each one shard at a time (a name and a row range: workers read the planned rows and the
texts themselves from shared storage), and collects the completion records. The step is
``migrate.step.run_shard``, unchanged; only the executor differs (as datatrove separates
pipeline steps from executors).

* **Shared storage.** Workers write shards and completion records themselves, into the
  output directory, which every node must mount at the same path (NFS, a shared disk).
  The driver only plans, dispatches, aggregates and finalizes. Object-store URIs
  (``s3://``...) are not supported: the shard store writes with POSIX rename.
* **API mode.** All workers pace through one ``RateBudget`` actor (``ray_limiter``), so
  N workers together stay within the key's RPM/TPM/concurrency, and a 429 seen by any
  worker slows all of them. The key is read on the driver and handed to the workers in
  memory (``Secret``: never in a log, a file, or a repr); it never enters the runtime
  environment.
* **Failures.** Actors restart when their node dies (``max_restarts``); the shard that
  was running there is lost with its unfinished temp file (shards are written to a temp
  file and renamed, then the record is written, so a half-written shard is never
  "done") and is dispatched again to a live worker. Each shard is counted once, however
  often it ran. A shard lost more than ``max_shard_attempts`` times stops the run
  (resumable). Errors of the step itself (bad key, budget, invalid input) stop the run
  with the step's own ``MigrateError``.
* **Progress.** Completion records carry ``node``/``node_ip``/``host``/``worker``; the
  driver reports each shard, a ``ray_progress`` event (docs/s, tokens/s, per-node
  counts) every ``progress_every_s``, and writes a per-node summary to the manifest
  (``executor``).

Ray stays an optional extra: it is imported only when this executor is used.
Knobs beyond ``--ray-address`` come from keyword arguments or the environment:
``JINA_MIGRATE_RAY_WORKERS``, ``JINA_MIGRATE_RAY_CPUS_PER_WORKER``,
``JINA_MIGRATE_RAY_GPUS_PER_WORKER``, ``JINA_MIGRATE_RAY_READY_TIMEOUT`` (seconds without
any ready worker before giving up, default 600), ``JINA_MIGRATE_RAY_START_GRACE``
(seconds the first ready worker waits for the others before work is handed out,
default 10: models load at about the same pace, and a run that starts on one worker
would give it a head start of many shards).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from migrate.embed.registry import backend_for
from migrate.errors import ConfigError, EmbeddingError, MigrateError
from migrate.executors.base import Budget, Job
from migrate.executors.ray_worker import ShardWorker
from migrate.secrets import Secret
from migrate.progress import Reporter
from migrate.shards import Shard
from migrate.workspace import Workspace

ENV_WORKERS = "JINA_MIGRATE_RAY_WORKERS"
ENV_CPUS = "JINA_MIGRATE_RAY_CPUS_PER_WORKER"
ENV_GPUS = "JINA_MIGRATE_RAY_GPUS_PER_WORKER"
ENV_READY_TIMEOUT = "JINA_MIGRATE_RAY_READY_TIMEOUT"
ENV_START_GRACE = "JINA_MIGRATE_RAY_START_GRACE"
#: Default number of workers for ``jina-api:`` models (they share one key's budget).
API_WORKERS = 8
#: Environment variables passed to the workers when set on the driver (never secrets).
PASSED_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM")

log = logging.getLogger(__name__)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("the Ray executor needs Ray, which is not installed",
                          hint="pip install 'jina-migrate[ray]' (or use --executor local / --shard I/N)") from None
    return ray


def _env_number(name: str, kind: type) -> Any:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return None
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None


def _system_errors(ray: Any) -> tuple[type[BaseException], ...]:
    """Ray's 'the worker/node went away' errors: the shard is dispatched again."""
    ex = ray.exceptions
    names = ("RayActorError", "WorkerCrashedError", "NodeDiedError", "ObjectLostError", "OwnerDiedError",
             "LocalRayletDiedError")
    return tuple(getattr(ex, n) for n in names if hasattr(ex, n))


@dataclass
class _Actor:
    name: str
    handle: Any
    state: str = "starting"  # starting | ready | dead
    info: dict[str, Any] = field(default_factory=dict)
    inflight: int = 0
    ready_failures: int = 0
    last_error: str = ""


@dataclass
class NodeStats:
    """Per-node totals for progress and the manifest."""

    ip: str = ""
    host: str = ""
    shards: int = 0
    docs: int = 0
    tokens: int = 0

    def add(self, rec: dict[str, Any]) -> None:
        self.ip, self.host = rec.get("node_ip", self.ip), rec.get("host", self.host)
        self.shards += 1
        self.docs += int(rec.get("docs", rec.get("rows", 0)))
        self.tokens += int(rec.get("tokens", 0))


def node_summary(ws: Workspace, shards: list[Shard]) -> dict[str, dict[str, Any]]:
    """Shards, docs and tokens per Ray node, from the completion records on disk (for ``status``)."""
    nodes: dict[str, NodeStats] = {}
    for s in shards:
        rec = ws.record(s)
        if rec and rec.get("node"):
            nodes.setdefault(rec["node"], NodeStats()).add(rec)
    return {k: vars(v) for k, v in nodes.items()}


class RayExecutor:
    """The executor object ``make_ray_executor`` returns (callable like ``local_executor``)."""

    def __init__(self, address: str | None = None, *, workers: int | None = None,
                 cpus_per_worker: float | None = None, gpus_per_worker: float | None = None,
                 in_flight_per_worker: int = 2, max_shard_attempts: int = 3, ready_timeout_s: float | None = None,
                 progress_every_s: float = 10.0, max_restarts: int = -1, start_grace_s: float | None = None,
                 shared_rate_limit: bool = True) -> None:
        self.address = address
        self.workers = workers if workers is not None else _env_number(ENV_WORKERS, int)
        self.cpus_per_worker = cpus_per_worker if cpus_per_worker is not None else _env_number(ENV_CPUS, float)
        self.gpus_per_worker = gpus_per_worker if gpus_per_worker is not None else _env_number(ENV_GPUS, float)
        rt = ready_timeout_s if ready_timeout_s is not None else _env_number(ENV_READY_TIMEOUT, float)
        self.ready_timeout_s = rt if rt is not None else 600.0
        sg = start_grace_s if start_grace_s is not None else _env_number(ENV_START_GRACE, float)
        self.start_grace_s = sg if sg is not None else 10.0
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"{ENV_WORKERS} must be at least 1, got {self.workers}")
        self.in_flight_per_worker = max(1, in_flight_per_worker)
        self.max_shard_attempts = max_shard_attempts
        self.progress_every_s = progress_every_s
        self.max_restarts = max_restarts
        #: False only to measure what one shared budget is worth (bench/ray_rate.py).
        self.shared_rate_limit = shared_rate_limit
        #: Filled by a run: per-node totals, retries, the shared limiter's counters.
        self.last_run: dict[str, Any] = {}

    # ----------------------------------------------------------------- connection

    def _connect(self, ray: Any) -> bool:
        """ray.init unless already connected; True if this call connected."""
        if ray.is_initialized():
            return False
        _check_reachable(self.address)
        env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
        try:
            ray.init(address=self.address, namespace="jina-migrate", logging_level=logging.WARNING,
                     runtime_env={"env_vars": env} if env else None, include_dashboard=False
                     if self.address is None else None)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"cannot connect to the Ray cluster at {self.address or 'auto/local'}: {exc}",
                              hint="check --ray-address (auto, HOST:PORT or ray://HOST:10001) and `ray status`") \
                from None
        return True

    def _pool_shape(self, ray: Any, job: Job, n_shards: int) -> tuple[int, float, float]:
        res = ray.cluster_resources()
        local_model = not backend_for(job.config.model).remote
        gpus = self.gpus_per_worker
        if gpus is None:
            gpus = 1.0 if local_model and res.get("GPU", 0) >= 1 else 0.0
        cpus = self.cpus_per_worker if self.cpus_per_worker is not None else 1.0
        if self.workers is not None:
            n = self.workers
        elif not local_model:  # API workers wait on the network; the shared key budget is the limit
            n = min(int(res.get("CPU", 1) // max(cpus, 1e-3)), API_WORKERS)
        elif gpus > 0:
            n = int(res.get("GPU", 0) // gpus)
        else:
            n = int(res.get("CPU", 1) // max(cpus, 1e-3))
        if gpus > 0 and res.get("GPU", 0) < gpus:
            raise ConfigError(f"the Ray cluster has {res.get('GPU', 0):g} GPUs, each worker asks for {gpus:g}",
                              hint=f"set {ENV_GPUS}=0 for CPU workers")
        return max(1, min(n, n_shards)), cpus, gpus

    # ----------------------------------------------------------------- the run

    def __call__(self, job: Job, shards: list[Shard], reporter: Reporter, budget: Budget) -> None:
        if not shards:
            return
        ray = _import_ray()
        connected_here = self._connect(ray)
        actors: list[_Actor] = []
        limiter = None
        self._limiter_name: str | None = None
        try:
            n, cpus, gpus = self._pool_shape(ray, job, len(shards))
            secret, limiter = self._api_parts(ray, job)
            worker_cls = ray.remote(ShardWorker)
            for i in range(n):
                name = f"w{i}"
                handle = worker_cls.options(num_cpus=cpus, num_gpus=gpus, max_restarts=self.max_restarts,
                                            max_task_retries=0, scheduling_strategy="SPREAD").remote(
                    job.make_embedder, job.ctx, [str(c) for c in job.cache_dirs], name, secret,
                    self._limiter_name if limiter is not None else None)
                actors.append(_Actor(name, handle))
            reporter.event("ray_start", message=f"{n} Ray workers ({cpus:g} CPU, {gpus:g} GPU each) for "
                                                f"{len(shards)} shards", workers=n, cpus_per_worker=cpus,
                           gpus_per_worker=gpus, cluster=_resources_summary(ray),
                           shared_rate_limit=limiter is not None)
            self._dispatch(ray, job, shards, actors, limiter, reporter, budget)
        finally:
            for a in actors:
                try:
                    ray.kill(a.handle, no_restart=True)
                except Exception as exc:  # noqa: BLE001 - best effort: the cluster ends them with the job
                    log.debug("could not stop Ray worker %s: %s", a.name, exc)
            if limiter is not None:
                ray.kill(limiter, no_restart=True)
            if connected_here:
                ray.shutdown()

    def _api_parts(self, ray: Any, job: Job) -> tuple[Secret | None, Any]:
        """For API models: the key for the workers and the one shared rate budget."""
        cfg = job.config
        if not backend_for(cfg.model).remote:
            return None, None
        from migrate.embed.ratelimit import resolve_limits
        from migrate.executors.ray_limiter import RateBudget
        from migrate.secrets import read_api_key

        key = read_api_key(cfg.api_key_env, cfg.api_key_file, required=False) if cfg.api_key_file is None else None
        if not self.shared_rate_limit:
            return (Secret(key) if key else None), None
        limits = resolve_limits(cfg.tier, rpm=cfg.rpm, tpm=cfg.tpm, concurrency=cfg.concurrency)
        # Named, so workers look it up themselves (a handle passed as a constructor
        # argument would tie the workers' restarts to the driver's reference).
        name = f"jina-migrate-rate-{uuid.uuid4().hex[:12]}"
        opts: dict[str, Any] = {"num_cpus": 0, "max_restarts": -1, "max_concurrency": 10_000, "name": name}
        try:  # keep the budget on the head node, which outlives worker nodes
            limiter = ray.remote(RateBudget).options(**opts, resources={"node:__internal_head__": 0.001}).remote(
                limits.rpm, limits.tpm, limits.concurrency)
        except (ValueError, TypeError):
            limiter = ray.remote(RateBudget).options(**opts).remote(limits.rpm, limits.tpm, limits.concurrency)
        self._limiter_name = name
        return (Secret(key) if key else None), limiter

    def _dispatch(self, ray: Any, job: Job, shards: list[Shard], actors: list[_Actor], limiter: Any,
                  reporter: Reporter, budget: Budget) -> None:
        system_errors = _system_errors(ray)
        queue: deque[Shard] = deque(shards)
        attempts: dict[int, int] = {}
        pending: dict[Any, tuple[str, _Actor, Shard | None]] = {}
        for a in actors:
            pending[a.handle.ready.remote()] = ("ready", a, None)
        done: dict[int, dict[str, Any]] = {}
        nodes: dict[str, NodeStats] = {}
        stats = {"shards_redone": 0, "duplicate_results": 0, "workers_lost": 0}
        t0 = last_progress = time.monotonic()
        last_ready = t0  # the last time some worker was ready
        inflight_est: dict[int, int] = {}
        stop: MigrateError | None = None
        embedder_saved = False
        first_ready: float | None = None
        dispatch_open = False

        def per_row() -> float | None:
            recs = list(done.values())
            emb = sum(r["embedded"] for r in recs)
            return sum(r["tokens"] for r in recs) / emb if emb else None

        while True:
            # hand out work to ready workers (once all started, or the first waited start_grace_s)
            if not dispatch_open and first_ready is not None:
                dispatch_open = all(a.state != "starting" for a in actors) or \
                    time.monotonic() - first_ready >= self.start_grace_s
            while queue and stop is None and dispatch_open:
                free = [a for a in actors if a.state == "ready" and a.inflight < self.in_flight_per_worker]
                if not free:
                    break
                a = min(free, key=lambda x: x.inflight)
                head = queue[0]
                pr = per_row()
                if pr is None and inflight_est and getattr(budget, "max_tokens", None) is not None:
                    break  # with a token budget, learn the cost of one shard before sending more
                est = int(pr * head.rows) if pr else 0
                try:  # shards in flight hold their estimate until their real cost is known
                    budget.check_before(sum(inflight_est.values()) + est)
                except MigrateError as exc:
                    if not inflight_est:
                        stop = exc
                    break
                queue.popleft()
                inflight_est[head.index] = est
                pending[a.handle.run.remote(head)] = ("run", a, head)
                a.inflight += 1
            runs_pending = any(kind == "run" for kind, _, _ in pending.values())
            if not runs_pending and (not queue or stop is not None):
                # A shard that ran more than once may have had its file replaced by a late
                # duplicate after its record was written: check those (only) against their records.
                incomplete = [s for s in shards if s.index in done and attempts.get(s.index)
                              and not job.is_done(s)]
                if incomplete and stop is None:  # run them once more
                    for s in incomplete:
                        done.pop(s.index)
                        self._count_attempt(attempts, s)
                        queue.append(s)
                    continue
                break
            if not any(a.state != "dead" for a in actors):
                errors = "; ".join(sorted({a.last_error for a in actors if a.last_error}))[:500]
                raise EmbeddingError(f"every Ray worker died and none could be restarted ({errors})",
                                     hint="check the cluster (`ray status`), then rerun to resume")
            if any(a.state == "ready" for a in actors):
                last_ready = time.monotonic()
            elif time.monotonic() - last_ready > self.ready_timeout_s:
                raise ConfigError(f"no Ray worker became ready within {self.ready_timeout_s:.0f}s "
                                  f"(cluster: {_resources_summary(ray)})",
                                  hint="the cluster may lack free CPUs/GPUs for a worker: check `ray status`, "
                                       f"or lower {ENV_CPUS}/{ENV_GPUS}")
            ready_refs, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready_refs:
                kind, a, shard = pending.pop(ref)
                try:
                    value = ray.get(ref)
                except system_errors as exc:
                    if getattr(exc, "actor_init_failed", False):  # __init__ or its arguments failed: a bug
                        raise EmbeddingError(f"Ray worker {a.name} could not start: {_last_line(exc)}",
                                             hint="the cluster's nodes need the same jina-migrate and Python "
                                                  "packages as this machine") from exc
                    a.last_error = f"{type(exc).__name__}: {_last_line(exc)}"
                    self._worker_lost(ray, a, kind, limiter, pending, stats, reporter, exc)
                    if kind == "run":
                        assert shard is not None
                        a.inflight -= 1
                        inflight_est.pop(shard.index, None)
                        if shard.index not in done:
                            self._count_attempt(attempts, shard)
                            stats["shards_redone"] += 1
                            queue.appendleft(shard)
                            reporter.event("shard_retry", message=f"{shard.name}: its worker {a.name} was lost; "
                                                                  f"running it again", shard=shard.name)
                    continue
                except ray.exceptions.RayTaskError as exc:
                    cause = getattr(exc, "cause", None)
                    if isinstance(cause, MigrateError):
                        raise cause from None
                    raise
                if kind == "ready":
                    a.state, a.info, a.ready_failures = "ready", value, 0
                    first_ready = first_ready or time.monotonic()
                    if not embedder_saved:
                        job.on_embedder(value["embedder"])
                        embedder_saved = True
                    reporter.event("ray_worker_ready", message=f"worker {a.name} ready on {value['node_ip']} "
                                                               f"(node {value['node'][:8]}, gpus {value['gpus']})",
                                   worker=a.name, node=value["node"], node_ip=value["node_ip"], gpus=value["gpus"],
                                   shared_limiter=value["shared_limiter"])
                    continue
                assert shard is not None
                a.inflight -= 1
                inflight_est.pop(shard.index, None)
                if shard.index in done:
                    stats["duplicate_results"] += 1
                    continue
                done[shard.index] = value
                budget.spent += int(value.get("tokens", 0))
                nodes.setdefault(value.get("node", "?"), NodeStats()).add(value)
                reporter.shard_done(value)
            now = time.monotonic()
            if now - last_progress >= self.progress_every_s:
                last_progress = now
                reporter.event("ray_progress", **self._progress(done, nodes, actors, now - t0, len(shards)))
        summary = self._progress(done, nodes, actors, time.monotonic() - t0, len(shards)) | stats
        if limiter is not None:
            try:
                summary["rate_limit"] = ray.get(limiter.stats.remote(), timeout=30)
            except Exception as exc:  # noqa: BLE001 - counters only; the shards are done
                log.warning("could not read the shared rate budget's counters: %s", exc)
        self.last_run = summary
        reporter.event("ray_done", **summary)
        job.on_executor({"kind": "ray", "workers": len(actors), **stats,
                         "nodes": {k: vars(v) for k, v in nodes.items()},
                         "shared_rate_limit": summary.get("rate_limit")})
        if stop is not None:
            raise stop

    def _count_attempt(self, attempts: dict[int, int], shard: Shard) -> None:
        attempts[shard.index] = attempts.get(shard.index, 0) + 1
        if attempts[shard.index] >= self.max_shard_attempts:
            raise EmbeddingError(f"{shard.name} was lost {attempts[shard.index]} times (its Ray workers or nodes "
                                 "died while running it)",
                                 hint="check the cluster's health (`ray status`), then rerun to resume")

    def _worker_lost(self, ray: Any, a: _Actor, kind: str, limiter: Any, pending: dict, stats: dict,
                     reporter: Reporter, exc: BaseException) -> None:
        """A worker's process or node went away: free its rate permits, wait for its restart."""
        if limiter is not None:
            limiter.release_owner.remote(a.name)
        if kind == "ready":
            a.ready_failures += 1
            if self.max_restarts == 0 or a.ready_failures >= 3:
                a.state = "dead"
                reporter.event("ray_worker_dead", message=f"worker {a.name} could not be restarted "
                                                          f"({type(exc).__name__})", worker=a.name)
                return
        elif a.state == "ready":
            stats["workers_lost"] += 1
            reporter.event("ray_worker_lost", message=f"worker {a.name} on {a.info.get('node_ip', '?')} was lost "
                                                      f"({type(exc).__name__}); it restarts when a node has room",
                           worker=a.name, node=a.info.get("node"))
        if a.state == "dead" or any(k == "ready" and x is a for k, x, _ in pending.values()):
            return  # already waiting for this worker's restart
        a.state = "starting"
        pending[a.handle.ready.remote()] = ("ready", a, None)

    def _progress(self, done: dict[int, dict], nodes: dict[str, NodeStats], actors: list[_Actor], elapsed: float,
                  total: int) -> dict[str, Any]:
        docs = sum(int(r.get("docs", r.get("rows", 0))) for r in done.values())
        tokens = sum(int(r.get("tokens", 0)) for r in done.values())
        el = max(elapsed, 1e-9)
        per_node = {k: vars(v) for k, v in nodes.items()}
        msg = (f"{len(done)}/{total} shards, {docs / el:.1f} docs/s, {tokens / el:.0f} tokens/s; "
               + ", ".join(f"{v.ip or k[:8]}: {v.shards}" for k, v in nodes.items()))
        return {"message": msg, "shards_done": len(done), "shards": total, "docs": docs, "tokens": tokens,
                "docs_per_s": round(docs / el, 2), "tokens_per_s": round(tokens / el, 1),
                "workers_ready": sum(a.state == "ready" for a in actors), "nodes": per_node,
                "seconds": round(elapsed, 2)}


def _check_reachable(address: str | None) -> None:
    """Fail fast on a HOST:PORT nobody listens on (Ray itself retries for minutes)."""
    if not address or address == "auto" or address.startswith("local"):
        return
    hostport = address.split("://", 1)[-1].rsplit("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--ray-address {address!r} is not auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}",
                          hint="check --ray-address (the head's GCS port, default 6379, or ray://HOST:10001) "
                               "and that the cluster is up (`ray status`)") from None


def _last_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__


def _resources_summary(ray: Any) -> dict[str, float]:
    res = ray.cluster_resources()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    return {"nodes": len(nodes), "CPU": res.get("CPU", 0), "GPU": res.get("GPU", 0)}


def make_ray_executor(address: str | None = None, **options: Any) -> RayExecutor:
    """An executor that runs the shard plan on the Ray cluster at ``address``.

    ``address``: ``auto`` (the cluster this machine belongs to), ``HOST:PORT`` (a head's
    GCS port), ``ray://HOST:10001`` (Ray Client), or None (``RAY_ADDRESS`` if set,
    otherwise a Ray instance started on this machine for this run).
    """
    return RayExecutor(address, **options)
