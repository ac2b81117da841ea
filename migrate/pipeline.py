"""The migration, read like its diagram: source → plan → embed → shard → sink → report.

* :func:`prepare` reads and validates the sources (``migrate.sources``) and builds the
  deterministic shard plan (``migrate.shards``). It writes nothing, so a refused run
  leaves no trace.
* :func:`commit` pins the plan in the output directory (``migrate.workspace``).
* :func:`execute` hands the pending shards to an executor (``migrate.executors``) that
  runs the step (``migrate.step``: embed through ``migrate.embed``, write the shard),
  then, once every shard is done, builds the sinks (``migrate.sinks``).
* The before/after report is ``jina-migrate compare`` (``migrate.report``).
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from migrate import __version__
from migrate.config import RunConfig
from migrate.errors import BudgetExceeded, ConfigError, InputError, MigrateError, StateError
from migrate.executors import Budget, EmbedderFactory, Executor, Job
from migrate.executors.local import local_executor
from migrate.progress import NullReporter, Reporter
from migrate.shards import Shard, ShardPlan, canonical_hash
from migrate.sinks import open_sinks
from migrate.sinks.base import PlanFacts
from migrate.sources import (DocumentSpec, OldIndexSpec, PlannedRows, holds_documents, open_documents_source,
                             read_old_keys, scan_documents, source_kind)
from migrate.sources.fingerprint import fingerprint_sources
from migrate.sources.scan import PLAN_SCHEMA
from migrate.step import StepContext
from migrate.workspace import IndexSettings, Manifest, Workspace, lifecycle
from migrate.workspace.manifest import SinkSpec


@dataclass
class EmbedderMaker:
    """Builds (and probes) the embedder a configuration names, where the step runs; picklable for Ray."""

    model: str
    options: dict[str, Any]
    task: str

    @classmethod
    def from_config(cls, cfg: RunConfig) -> EmbedderMaker:
        return cls(model=cfg.model, options=cfg.backend_options(), task=cfg.task)

    def __call__(self, **overrides: Any) -> Any:
        from migrate.embed.registry import get_embedder

        emb = get_embedder(self.model, **(self.options | overrides))
        probe = getattr(emb, "probe", None)
        if callable(probe):
            probe(task=self.task)  # a wrong model, key or size fails here, before any shard
        return emb


def config_fingerprint(config: RunConfig) -> str:
    return canonical_hash(config.embedding_config())


def document_spec(cfg: RunConfig) -> DocumentSpec:
    """The documents: ``--docs``, or the old index itself when it holds the text (a collection, a framework's
    saved index, a vector dataset with a text field)."""
    path: Path | str | None = cfg.docs
    if path is None and cfg.old_index is not None and holds_documents(str(cfg.old_index), cfg.text_field):
        path = cfg.old_index
    if path is None:
        raise InputError("no documents given", hint="pass --docs FILE (Parquet, JSONL or CSV), or an --old-index "
                                                    "that holds the text")
    return DocumentSpec(path=str(path), id_field=cfg.id_field, text_field=cfg.text_field,
                        title_field=cfg.title_field, faiss_id_field=cfg.faiss_id_field, delimiter=cfg.delimiter)


def old_index_spec(cfg: RunConfig) -> OldIndexSpec | None:
    if cfg.old_index is None:
        if cfg.id_map is not None:
            raise ConfigError("--id-map needs --old-index (the FAISS file whose ids it maps)")
        return None
    return OldIndexSpec(path=str(cfg.old_index), id_map=str(cfg.id_map) if cfg.id_map else None,
                        id_map_faiss_field=cfg.id_map_faiss_field, id_map_id_field=cfg.id_map_id_field,
                        id_field=cfg.id_field if cfg.docs is None else None)  # the documents' ids, when it is them


def index_settings(config: RunConfig) -> IndexSettings:
    params: dict[str, Any] = {}
    if config.index_type == "hnsw":
        params = {"hnsw_m": config.hnsw_m, "hnsw_ef_construction": config.hnsw_ef_construction}
    elif config.index_type == "ivfpq":
        params = {"ivf_nlist": config.ivf_nlist, "pq_m": config.pq_m, "pq_nbits": config.pq_nbits}
    return IndexSettings(type=config.index_type, params=params)


def scan(cfg: RunConfig) -> PlannedRows:
    """Read and validate the documents and the old index (the same validation for ``run`` and ``plan``)."""
    spec = old_index_spec(cfg)
    old = read_old_keys(spec) if spec else None
    return scan_documents(open_documents_source(document_spec(cfg)), old, on_missing=cfg.on_missing,
                          on_empty=cfg.on_empty, use_faiss_id_field=cfg.faiss_id_field is not None)


@dataclass
class Prepared:
    """A validated, planned run that has not written anything yet."""

    config: RunConfig
    ws: Workspace
    rows: PlannedRows
    plan: ShardPlan
    manifest: Manifest
    existing: Manifest | None

    @property
    def fingerprint(self) -> str:
        return self.manifest.config_fingerprint

    def step_context(self) -> StepContext:
        return StepContext(config=self.config, out=str(self.ws.out), config_fingerprint=self.fingerprint,
                           documents=document_spec(self.config))

    def pending(self) -> tuple[list[Shard], list[Shard]]:
        """(shards this worker still has to run, shards of this worker already done)."""
        worker, workers = self.config.worker()
        mine = self.plan.for_worker(worker, workers)
        if self.existing is None and not self.config.cache and not self.ws.has_shards():
            return mine, []
        done = [s for s in mine if self.ws.is_complete(s, self.fingerprint)]
        done_set = {s.index for s in done}
        return [s for s in mine if s.index not in done_set], done


def _check_cache_dirs(cfg: RunConfig) -> None:
    for d in cfg.cache:
        d = Path(d)
        if not d.exists():
            raise ConfigError(f"--cache {d}: no such directory", hint="give the --out directory of an earlier run")
        if not d.is_dir():
            raise ConfigError(f"--cache {d}: is a file, not an output directory",
                              hint="give the --out directory of an earlier run")
        if not (d / "manifest.json").exists():
            raise ConfigError(f"--cache {d}: not a jina-migrate output (no manifest.json)",
                              hint="give the --out directory of an earlier run")


def prepare(cfg: RunConfig) -> Prepared:
    """Validate the configuration and the sources and build the plan. Writes nothing."""
    if cfg.out is None:
        raise InputError("no output directory given", hint="pass --out DIR")
    ws = Workspace(cfg.out)
    if ws.out.exists() and not ws.out.is_dir():
        raise StateError(f"{ws.out}: exists and is not a directory", hint="choose another --out")
    _check_cache_dirs(cfg)
    fp = config_fingerprint(cfg)
    existing = None if cfg.restart else ws.read_manifest()  # --restart recovers a damaged manifest too
    if existing is not None and existing.config_fingerprint != fp and _has_finished_shards(ws, existing):
        changed = cfg.changed_from(existing.config)
        raise StateError(f"{ws.out}: holds shards of another configuration (changed: {', '.join(changed) or 'model'})",
                         hint="use a new --out, or --restart to discard them")
    rows = scan(cfg)
    plan = ShardPlan.build(rows.ids, rows.hashes, cfg.shard_size)
    sources = fingerprint_sources([cfg.docs, cfg.old_index, cfg.id_map])
    same_config = existing is not None and existing.config_fingerprint == fp
    kept: dict[str, Any] = {}
    if existing is not None:
        kept = {"created": existing.created, "run_id": existing.run_id, "cutover": existing.cutover}
    collection_source = str(cfg.old_index) if cfg.old_index and source_kind(str(cfg.old_index)) == "collection" \
        else None
    kept["documents"] = asdict(document_spec(cfg))
    kept["sinks"] = [SinkSpec(uri=u, payload_from=collection_source, delete_missing=cfg.delete_missing)
                     for u in cfg.sink]
    manifest = Manifest(
        **kept, config=cfg.embedding_config(), config_fingerprint=fp, sources=sources,
        source_fingerprint=canonical_hash([{k: s[k] for k in ("size", "sha256")} for s in sources]),
        plan=plan.as_dict(), validation=rows.report.as_dict(), index=index_settings(cfg), state="running",
        embedder=existing.embedder if same_config and existing is not None else None)
    check_sinks(ws, manifest, cfg, len(rows))
    return Prepared(config=cfg, ws=ws, rows=rows, plan=plan, manifest=manifest,
                    existing=existing if same_config else None)


def check_sinks(ws: Workspace, manifest: Manifest, cfg: RunConfig, documents: int) -> None:
    """What every sink can check before the width is known, before anything is written: a refused
    destination (index settings, an existing collection, the source itself) leaves no output behind."""
    sinks = open_sinks(ws, manifest, document_spec(cfg))
    try:
        for sink in sinks:
            sink.check(PlanFacts(documents=documents, dimensions=cfg.dimensions, chunked=cfg.late_chunking,
                                 vector_format=cfg.vector_format()))
    finally:
        for sink in sinks:
            close = getattr(sink, "close", None)
            if callable(close):
                close()


def _has_finished_shards(ws: Workspace, manifest: Manifest) -> bool:
    """Shards of that manifest's configuration exist (a refused run that wrote none holds nothing to protect)."""
    try:
        plan = manifest.shard_plan()
    except StateError:
        return ws.has_shards()
    return any(ws.record_path(s).exists() for s in plan.shards) or ws.has_shards()


def commit(p: Prepared, reporter: Reporter) -> None:
    """Write the plan and the manifest (everything was validated by ``prepare``)."""
    ws = p.ws
    if p.config.restart:
        ws.reset()
        reporter.event("restart", message=f"cleared shards and outputs in {ws.out}")
    ws.create()
    old = p.existing
    unchanged = old is not None and all(getattr(old, k) == getattr(p.manifest, k)
                                        for k in ("plan", "source_fingerprint", "index", "sinks"))
    if unchanged and old is not None and old.state == "complete" and _plan_table_current(ws, p):
        p.manifest = old  # a finished output whose sources did not change: nothing to redo
        ws.clean_temp_files()  # left by a finalize killed after it marked the output complete
        return
    if old is None or not unchanged or old.state != "running" or not _plan_table_current(ws, p):
        ws.write_plan_table(p.rows.table_batches(), PLAN_SCHEMA)
        ws.write_manifest(p.manifest)


def _plan_table_current(ws: Workspace, p: Prepared) -> bool:
    try:
        return ws.plan_rows() == len(p.rows) and "loc" in ws._open_plan().schema_arrow.names
    except StateError:
        return False


def token_limit(config: RunConfig) -> int | None:
    limits = []
    if config.max_tokens is not None:
        limits.append(int(config.max_tokens))
    if config.max_cost is not None and config.price_per_million:
        limits.append(int(config.max_cost / config.price_per_million * 1_000_000))
    return min(limits) if limits else None


def execute(p: Prepared, make_embedder: EmbedderFactory, reporter: Reporter | None = None,
            executor: Executor = local_executor) -> dict[str, Any]:
    """Run this worker's pending shards; build the sinks if the whole plan is then complete."""
    reporter = reporter or NullReporter()
    ws, cfg = p.ws, p.config
    todo, done = p.pending()
    sinks = open_sinks(ws, p.manifest, document_spec(cfg))  # checked by prepare before the width is known

    def on_embedder(info: dict[str, Any]) -> None:
        if cfg.task in (info.get("ignored_tasks") or ()):
            reporter.event("warning", message=f"the task {cfg.task!r} is ignored: {info.get('model')} has no task "
                                              "adapters or instructions, so its vectors are the same for every task")
        for sink in sinks:  # now the width is known: refuse index settings that cannot work, before embedding
            sink.check(PlanFacts(documents=len(p.rows), dimensions=info.get("dimensions") or cfg.dimensions,
                                 chunked=cfg.late_chunking,
                                 vector_format=cfg.vector_format(info.get("dimensions") or cfg.dimensions)))
        m = ws.manifest()
        if m.embedder != info:
            m.embedder = info
            ws.write_manifest(m)

    def on_executor(info: dict[str, Any]) -> None:
        m = ws.manifest()
        m.executor = info
        ws.write_manifest(m)

    job = Job(ctx=p.step_context(), plan=p.plan, make_embedder=make_embedder, cache_dirs=list(cfg.cache),
              on_embedder=on_embedder, on_executor=on_executor)
    reporter.start(shards=len(todo) + len(done), rows=sum(s.rows for s in todo + done), done_shards=len(done),
                   done_rows=sum(s.rows for s in done))
    budget = Budget(token_limit(cfg), spent=ws.spent_tokens(p.plan, p.fingerprint) if done else 0)
    error: BaseException | None = None
    worker, workers = cfg.worker()
    with ws.lock(f"{worker}/{workers}"):
        try:
            executor(job, todo, reporter, budget)
        except BudgetExceeded as exc:
            error = exc
        except KeyboardInterrupt:
            reporter.event("interrupted", message="interrupted: completed shards are kept; rerun the same command "
                                                  "to resume", shards_done=sum(job.is_done(s) for s in todo))
            raise
    # Count from the completion records on disk: right for any executor, and after a stop too.
    records = [r for r in (ws.record(s) for s in todo if job.is_done(s)) if r]
    summary: dict[str, Any] = {
        "out": str(ws.out), "shards_total": len(p.plan.shards), "shards_run": len(records),
        "shards_skipped": len(done), "rows": p.plan.total_rows,
        "embedded": sum(int(r.get("embedded", 0)) for r in records),
        "cached": sum(int(r.get("cached", 0)) for r in records),
        "tokens": sum(int(r.get("tokens", 0)) for r in records),
        "tokens_total": ws.spent_tokens(p.plan, p.fingerprint), "validation": p.rows.report.as_dict(),
        "version": __version__,
    }
    if error is None and p.manifest.state == "complete" and not todo:
        summary["outputs"] = _outputs_of(ws, _repaired(ws, sinks))
        summary["state"] = "complete"
    elif error is None and workers == 1 and all(job.is_done(s) for s in p.plan.shards):
        summary["outputs"] = lifecycle.finalize(ws, sinks)
        summary["state"] = "complete"
    else:
        summary["state"] = "partial" if error is None else "stopped"
    reporter.finish(summary)
    if error is not None:
        raise error
    return summary


def _repaired(ws: Workspace, sinks: list[Any]) -> dict[str, dict[str, Any]]:
    """A rerun of a finished output: each destination that no longer verifies (rows deleted or changed behind
    the tool's back) is repaired from the shards and delivery records (VerifyFailed, exit 6, if it cannot be)."""
    fixed = {}
    for sink in sinks:
        repair = getattr(sink, "repair", None)
        info = repair() if callable(repair) else None
        if info:
            fixed[info["name"]] = info
    if fixed:
        m = ws.manifest()
        m.destinations |= fixed
        ws.write_manifest(m)
    return fixed


def _outputs_of(ws: Workspace, repaired: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    m = ws.manifest()
    res = m.result
    out: dict[str, Any] = {"embeddings": str(ws.out / "embeddings.parquet"), "index": str(ws.out / "index.faiss"),
           "id_map": str(ws.out / "id_map.parquet"), "rows": res.rows if res else None,
           "dimensions": res.dimensions if res else None, "stale_shards_removed": 0}
    if m.destinations:
        out["destinations"] = [(repaired or {}).get(d.get("name", ""))
                               or d | {"upserted": 0, "deleted": 0, "unchanged": d.get("rows", 0)}
                               for d in m.destinations.values()]
    return out


def _sinks_of(ws: Workspace) -> list[Any]:
    """The sinks an existing output's manifest names (for finalize, verify, status, cutover)."""
    m = ws.manifest()
    documents = DocumentSpec(**m.documents) if m.documents else None
    return open_sinks(ws, m, documents)


def status(out: Path | str) -> dict[str, Any]:
    """The workspace's status, plus each database destination's row count and where its application name points."""
    ws = Workspace(out)
    info = lifecycle.status(ws)
    m = ws.manifest()
    if not m.sinks:
        return info
    from migrate.sinks.database import CollectionSink

    dest = []
    for sink in _sinks_of(ws):
        if not isinstance(sink, CollectionSink):
            continue
        entry: dict[str, Any] = {"name": sink.name, "address": str(sink.address), "collection": sink.collection}
        try:
            exists = sink.engine.exists(sink.collection)
            entry["rows"] = sink.engine.count(sink.collection) if exists else 0
            if sink.address.alias:
                state = sink.engine.name_state(sink.address.alias)
                entry["alias"] = sink.address.alias
                entry["alias_target"] = state.target if state.kind == "alias" else None
                entry["alias_state"] = state.describe()
                if m.cutover.get(sink.name):
                    entry["cutover"] = m.cutover[sink.name].get("state")
        except MigrateError as exc:  # a server that is down: say so, status still answers
            entry["error"] = exc.message
        finally:
            sink.close()
        entry["delivered_shards"] = sum(sink.delivered(s) for s in m.shard_plan().shards)
        dest.append(entry)
    info["destinations"] = dest
    return info


def _closing(sinks: list[Any]) -> Any:
    """Close the sinks' connections when done (embedded databases lock their files while open)."""
    import contextlib

    @contextlib.contextmanager
    def scope():
        try:
            yield sinks
        finally:
            for sink in sinks:
                close = getattr(sink, "close", None)
                if callable(close):
                    close()

    return scope()


def finalize(out: Path | str) -> dict[str, Any]:
    """Build the sinks of an output whose shards are all done (after ``--shard I/N`` workers)."""
    ws = Workspace(out)
    with _closing(_sinks_of(ws)) as sinks:
        return lifecycle.finalize(ws, sinks)


def verify(out: Path | str) -> dict[str, Any]:
    """Re-check a finished output and its sinks: {"ok", "problems", "checks"}.

    No output at ``out`` is a StateError (exit 3); a damaged one is a list of problems (exit 6).
    """
    ws = Workspace(out)
    if not ws.out.is_dir() or not ws.has_manifest():
        ws.manifest()  # raises the StateError that says what is missing
    try:
        with _closing(_sinks_of(ws)) as sinks:
            return lifecycle.verify(ws, sinks)
    except StateError as exc:
        return {"ok": False, "problems": [str(exc)], "checks": {}}


def _destinations(ws: Workspace, name: str | None) -> list[Any]:
    from migrate.sinks.database import CollectionSink

    sinks = [s for s in _sinks_of(ws) if isinstance(s, CollectionSink)]
    if name is not None:
        sinks = [s for s in sinks if name in (s.name, s.collection, s.uri)]
    with_alias = [s for s in sinks if s.address.alias]
    if not with_alias:
        raise ConfigError(f"{ws.out}: no database destination with an application name to switch"
                          + (f" matching {name!r}" if name else ""),
                          hint="run with --sink 'ENGINE://...?collection=NEW&alias=NAME' (NAME: what your "
                               "application queries)")
    return with_alias


def cutover(out: Path | str, *, require_report: Path | None = None, sink: str | None = None) -> list[dict[str, Any]]:
    """Point each destination's application name at its new collection, after ``verify`` (and, when asked, a
    compare report about this very destination whose gates passed). Idempotent; nothing is ever dropped, and a
    refused cutover changes and records nothing (``migrate.sinks.switch``)."""
    from migrate.errors import VerifyFailed
    from migrate.sinks import switch

    ws = Workspace(out)
    with _closing(_destinations(ws, sink)) as sinks:
        result = verify(out)
        if not result["ok"]:
            raise VerifyFailed(f"{ws.out}: verify found {len(result['problems'])} problem(s), first: "
                               f"{result['problems'][0]}", hint="cutover waits until `jina-migrate verify` passes")
        if require_report is not None:
            _check_report(Path(require_report), ws, sinks)
        m = ws.manifest()
        plans = [switch.plan(s, m.cutover) for s in sinks]  # every refusal before any destination is switched
        return [{"sink": s.name} | switch.cutover(s, m.cutover, lambda: ws.write_manifest(m), p)
                for s, p in zip(sinks, plans)]


def rollback(out: Path | str, *, sink: str | None = None) -> list[dict[str, Any]]:
    """Put each destination's application name back exactly as it was before ``cutover``."""
    from migrate.sinks import switch

    ws = Workspace(out)
    m = ws.manifest()
    with _closing(_destinations(ws, sink)) as sinks:
        return [{"sink": s.name} | switch.rollback(s, m.cutover, lambda: ws.write_manifest(m)) for s in sinks]


def _check_report(report: Path, ws: Workspace, sinks: list[Any]) -> None:
    """``--require-report``: the report compared this run's destination as it is now (or this run's output),
    and every one of its quality gates passed; else one error line."""
    from migrate.engines.names import place
    from migrate.errors import GateFailed
    from migrate.report.gates import read_cutover_report, subject_problem

    failed, subject = read_cutover_report(report)
    m = ws.manifest()
    embeddings = m.outputs.get("embeddings.parquet")
    for s in sinks:
        problem = subject_problem(report, subject, run_id=m.run_id,
                                  embeddings_sha256=embeddings.sha256 if embeddings else None,
                                  database=place(s.address), collection=s.collection,
                                  checksum=functools.partial(s.engine.checksum, s.collection))
        if problem is not None:
            raise problem
    if failed:
        raise GateFailed(f"{report}: quality gate failed: {failed[0]}",
                         hint="cutover waits until the compare report's gates pass")
