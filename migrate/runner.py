"""The migration pipeline: prepare -> run shards -> finalize.

``prepare`` reads and validates the sources, builds the deterministic shard plan and
pins it in the manifest (refusing to mix shards of another configuration).
``run_shard`` is the one step an executor runs: read the shard's rows, reuse cached
vectors by content hash, embed the rest, write the shard atomically.
``execute`` runs the pending shards of this worker with an executor (local loop here,
Ray in ``migrate.executors.ray``) and finalizes when the whole plan is done.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from migrate import __version__
from migrate.atomic import write_with
from migrate.config import RunConfig
from migrate.embed.base import Embedder
from migrate.errors import BudgetExceeded, InputError, StateError
from migrate.progress import NullReporter, Reporter
from migrate.shards import (Shard, ShardPlan, ShardStore, arrow_to_vectors, canonical_hash, ensure_inside,
                            fingerprint_sources, load_manifest, reset_output, save_manifest, text_hash)
from migrate.sources import Corpus, build_corpus, open_documents, open_old_index

PLAN_TABLE = "plan.parquet"


@dataclass
class Job:
    """Everything a shard step needs, computed once by :func:`prepare`."""

    config: RunConfig
    out: Path
    ids: list[str]
    texts: list[str] | None  # None in a job re-opened for finalize only
    hashes: list[str]
    faiss_ids: np.ndarray
    plan: ShardPlan
    store: ShardStore
    config_fingerprint: str
    manifest: dict[str, Any]
    validation: dict[str, Any] = field(default_factory=dict)

    def shard_rows(self, shard: Shard) -> tuple[list[str], list[str], list[str]]:
        s, e = shard.start, shard.stop
        if self.texts is None:
            raise StateError("this job was opened without texts")
        return self.ids[s:e], self.texts[s:e], self.hashes[s:e]


def config_fingerprint(config: RunConfig) -> str:
    return canonical_hash(config.embedding_config())


def load_corpus(config: RunConfig) -> Corpus:
    if config.docs is None:
        raise InputError("no documents given", hint="pass --docs FILE (Parquet, JSONL or CSV)")
    docs = open_documents(config.docs, id_field=config.id_field, text_field=config.text_field,
                          title_field=config.title_field)
    old = open_old_index(config.old_index, id_map=config.id_map) if config.old_index else None
    return build_corpus(docs, old, on_missing=config.on_missing, on_empty=config.on_empty)


def prepare(config: RunConfig, reporter: Reporter | None = None) -> Job:
    reporter = reporter or NullReporter()
    if config.out is None:
        raise InputError("no output directory given", hint="pass --out DIR")
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise StateError(f"{out}: exists and is not a directory")
    corpus = load_corpus(config)
    if not len(corpus):
        raise InputError(f"{config.docs}: nothing to embed after validation")
    hashes = [text_hash(t) for t in corpus.texts]
    plan = ShardPlan.build(corpus.ids, hashes, config.shard_size)
    fp = config_fingerprint(config)
    sources = fingerprint_sources([config.docs, config.old_index, config.id_map])
    source_fp = canonical_hash([{k: s[k] for k in ("size", "sha256")} for s in sources])

    existing = load_manifest(out) if out.exists() else None
    if existing and existing.get("config_fingerprint") != fp:
        if not config.restart:
            old_cfg = existing.get("config") if isinstance(existing.get("config"), dict) else {}
            changed = sorted(k for k, v in config.embedding_config().items() if old_cfg.get(k) != v)
            raise StateError(f"{out}: holds shards of another configuration (changed: {', '.join(changed) or 'model'})",
                             hint="use a new --out, or --restart to discard them")
    if config.restart:
        reset_output(out)
        existing = None
        reporter.event("restart", message=f"cleared shards and outputs in {out}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from migrate.atomic import write_failed

        raise write_failed(out, exc) from None
    store = ShardStore(out)
    store.prepare()

    manifest = {
        "tool": "jina-migrate",
        "created": (existing or {}).get("created") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": config.embedding_config(),
        "config_fingerprint": fp,
        "sources": sources,
        "source_fingerprint": source_fp,
        "plan": plan.as_dict(),
        "validation": corpus.report.as_dict(),
        "index": index_settings(config),
        "state": "running",
    }
    for key in ("embedder", "tokens"):
        if existing and key in existing:
            manifest[key] = existing[key]
    if existing is None or any(existing.get(k) != manifest[k] for k in ("plan", "state", "source_fingerprint", "index")):
        _write_plan_table(out, corpus, hashes)
        save_manifest(out, manifest)
    return Job(config=config, out=out, ids=corpus.ids, texts=corpus.texts, hashes=hashes,
               faiss_ids=corpus.faiss_ids, plan=plan, store=store, config_fingerprint=fp, manifest=manifest,
               validation=corpus.report.as_dict())


def index_settings(config: RunConfig) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if config.index_type == "hnsw":
        params = {"hnsw_m": config.hnsw_m, "hnsw_ef_construction": config.hnsw_ef_construction}
    elif config.index_type == "ivfpq":
        params = {"ivf_nlist": config.ivf_nlist, "pq_m": config.pq_m, "pq_nbits": config.pq_nbits}
    return {"type": config.index_type, "params": params}


def _write_plan_table(out: Path, corpus: Corpus, hashes: list[str]) -> None:
    """ids, faiss ids and text hashes of the plan, so finalize needs no sources."""
    table = pa.table({"id": pa.array(corpus.ids, pa.string()), "faiss_id": pa.array(corpus.faiss_ids, pa.int64()),
                      "text_sha256": pa.array(hashes, pa.string())})
    write_with(out / PLAN_TABLE, lambda tmp: pq.write_table(table, tmp))


def open_job(out: Path) -> Job:
    """Re-open a prepared output (for finalize/status) without reading the sources."""
    manifest = load_manifest(out)
    if manifest is None:
        raise StateError(f"{out}: no manifest.json here", hint="run `jina-migrate run` first")
    edited = StateError(f"{out / 'manifest.json'}: the manifest is damaged or was edited by hand",
                        hint="restore it, or rerun `jina-migrate run` with --restart")
    try:
        cfg = RunConfig.from_manifest(manifest["config"], out=out)
        fingerprint = str(manifest["config_fingerprint"])
    except (KeyError, TypeError, AttributeError):
        raise edited from None
    plan = ShardPlan.from_dict(manifest["plan"], out / "manifest.json")
    store = ShardStore(out)
    store.check_inside()
    try:
        table = pq.read_table(ensure_inside(out, Path(PLAN_TABLE)), columns=["id", "text_sha256", "faiss_id"])
    except (OSError, pa.ArrowException, KeyError) as exc:
        raise StateError(f"{out / PLAN_TABLE}: missing or unreadable ({str(exc).strip().splitlines()[0][:120]})",
                         hint="rerun `jina-migrate run` with the same sources to rebuild it") from None
    if table.num_rows != plan.total_rows:
        raise edited
    return Job(config=cfg, out=out, ids=table.column("id").to_pylist(), texts=None,
               hashes=table.column("text_sha256").to_pylist(),
               faiss_ids=table.column("faiss_id").to_numpy(), plan=plan,
               store=store, config_fingerprint=fingerprint, manifest=manifest)


# --------------------------------------------------------------------------- content-hash cache

class EmbeddingCache:
    """Vectors already computed for a text hash under this configuration.

    Filled from this output's shard files of earlier plans and from ``--cache`` dirs
    (other outputs whose manifest has the same configuration fingerprint).
    """

    def __init__(self) -> None:
        self._row: dict[str, int] = {}
        self._blocks: list[np.ndarray] = []
        self._n = 0
        self._matrix: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self._row)

    def add_file(self, path: Path) -> None:
        try:
            t = pq.read_table(path, columns=["text_sha256", "vector"])
        except (OSError, pa.ArrowException):
            return  # a damaged cache file is simply not used
        vecs = arrow_to_vectors(t.column("vector"))
        for i, h in enumerate(t.column("text_sha256").to_pylist()):
            self._row.setdefault(h, self._n + i)
        self._blocks.append(vecs)
        self._n += len(vecs)
        self._matrix = None

    def lookup(self, hashes: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """(mask of hits, vectors of the hits in order)."""
        rows = np.array([self._row.get(h, -1) for h in hashes], dtype=np.int64)
        hit = rows >= 0
        if not hit.any():
            return hit, None
        if self._matrix is None:
            self._matrix = np.concatenate(self._blocks) if len(self._blocks) > 1 else self._blocks[0]
        return hit, self._matrix[rows[hit]]


def build_cache(job: Job, reporter: Reporter) -> EmbeddingCache:
    cache = EmbeddingCache()
    for path in job.store.stale_files(job.plan):
        cache.add_file(path)
    for other in job.config.cache:
        other = Path(other)
        m = load_manifest(other) if other.is_dir() else None
        if not m:
            reporter.event("cache_skipped", message=f"{other}: no jina-migrate output here")
            continue
        if m.get("config_fingerprint") != job.config_fingerprint:
            reporter.event("cache_skipped", message=f"{other}: made with another configuration; not used")
            continue
        for path in ShardStore(other).files():
            cache.add_file(path)
        if (other / "embeddings.parquet").exists():
            cache.add_file(other / "embeddings.parquet")
    return cache


# --------------------------------------------------------------------------- the step

def chunk_hash(doc_hash: str, chunker: str, k: int) -> str:
    """A late-chunked vector depends on the whole document, the chunker and the position."""
    return text_hash(f"{doc_hash}\x00{chunker}\x00{k}")


def _tokenizer_of(embedder: Embedder):
    tok = getattr(embedder, "tokenizer", None)
    if tok is None:
        model = getattr(embedder, "model", None)
        tok = getattr(model, "tokenizer", None)
    return tok


def run_shard_late_chunked(job: Job, shard: Shard, embedder: Embedder,
                           cache: EmbeddingCache | None = None) -> dict[str, Any]:
    """Late chunking: each document is chunked, then embedded in one context (one vector per chunk)."""
    from migrate.embed.chunking import chunk_document, parse_chunker

    t0 = time.monotonic()
    ids, texts, hashes = job.shard_rows(shard)
    spec = parse_chunker(job.config.chunker or "sentences:3")
    chunker = spec.describe()
    tokenizer = _tokenizer_of(embedder)
    out_ids: list[str] = []
    out_chunks: list[int] = []
    out_hashes: list[str] = []
    blocks: list[np.ndarray] = []
    tokens = embedded = cached_n = 0
    for doc_id, text, h in zip(ids, texts, hashes):
        chunks = chunk_document(text, spec, tokenizer) or [text]
        keys = [chunk_hash(h, chunker, k) for k in range(len(chunks))]
        hit, vecs = cache.lookup(keys) if cache is not None and len(cache) else (np.zeros(len(keys), bool), None)
        if hit.all():
            cached_n += 1
        else:
            result = embedder.embed(chunks, task=job.config.task, late_chunking=True)
            vecs, tokens, embedded = result.vectors, tokens + int(result.total_tokens), embedded + 1
        blocks.append(vecs)
        out_ids += [doc_id] * len(chunks)
        out_chunks += list(range(len(chunks)))
        out_hashes += keys
    meta = {"config_fingerprint": job.config_fingerprint, "tokens": tokens, "embedded": embedded,
            "cached": cached_n, "chunker": chunker, "seconds": round(time.monotonic() - t0, 3)}
    return job.store.write(shard, out_ids, np.concatenate(blocks), out_hashes, meta,
                           chunks=np.asarray(out_chunks, dtype=np.int32))


def run_shard(job: Job, shard: Shard, embedder: Embedder, cache: EmbeddingCache | None = None) -> dict[str, Any]:
    """Embed one shard and write it; returns its completion record."""
    if job.config.late_chunking:
        return run_shard_late_chunked(job, shard, embedder, cache)
    t0 = time.monotonic()
    ids, texts, hashes = job.shard_rows(shard)
    task = job.config.task
    hit, cached = cache.lookup(hashes) if cache is not None and len(cache) else (np.zeros(len(ids), bool), None)
    todo = np.nonzero(~hit)[0]
    tokens = 0
    dim = None
    vectors = None
    if len(todo):
        result = embedder.embed([texts[i] for i in todo], task=task)
        tokens = int(result.total_tokens)
        dim = result.vectors.shape[1]
        vectors = np.empty((len(ids), dim), dtype=np.float32)
        vectors[todo] = result.vectors
    if cached is not None:
        if vectors is None:
            vectors = np.empty((len(ids), cached.shape[1]), dtype=np.float32)
        vectors[hit] = cached
    assert vectors is not None
    meta = {"config_fingerprint": job.config_fingerprint, "tokens": tokens, "embedded": int(len(todo)),
            "cached": int(hit.sum()), "seconds": round(time.monotonic() - t0, 3)}
    return job.store.write(shard, ids, vectors, hashes, meta)


# --------------------------------------------------------------------------- executors

EmbedderFactory = Callable[[], Embedder]


@dataclass
class Budget:
    max_tokens: int | None
    spent: int = 0

    def check_before(self, estimate: int) -> None:
        if self.max_tokens is not None and self.spent + estimate > self.max_tokens:
            raise BudgetExceeded(f"token budget reached: {self.spent} spent, next shard needs about {estimate} "
                                 f"(limit {self.max_tokens})", hint="raise --max-tokens/--max-cost and rerun to resume")


def token_limit(config: RunConfig) -> int | None:
    limits = []
    if config.max_tokens is not None:
        limits.append(int(config.max_tokens))
    if config.max_cost is not None and config.price_per_million:
        limits.append(int(config.max_cost / config.price_per_million * 1_000_000))
    return min(limits) if limits else None


def spent_tokens(job: Job) -> int:
    total = 0
    for shard in job.plan.shards:
        rec = job.store.record(shard)
        if rec:
            total += int(rec.get("tokens", 0))
    return total


def local_executor(job: Job, shards: list[Shard], make_embedder: EmbedderFactory, reporter: Reporter,
                   budget: Budget) -> list[dict[str, Any]]:
    """Run shards one after another in this process (the default executor)."""
    embedder = None
    cache = None
    records = []
    try:
        for shard in shards:
            if embedder is None:
                embedder = make_embedder()
                job.manifest["embedder"] = embedder.info().as_dict()
                save_manifest(job.out, job.manifest)
                cache = build_cache(job, reporter)
                if len(cache):
                    reporter.event("cache", message=f"{len(cache)} cached vectors available")
            per_row = (sum(r["tokens"] for r in records) / max(sum(r["embedded"] for r in records), 1)) \
                if records else None
            estimate = int(per_row * shard.rows) if per_row else 0
            budget.check_before(estimate)
            rec = run_shard(job, shard, embedder, cache)
            budget.spent += rec["tokens"]
            records.append(rec)
            reporter.shard_done(rec)
    finally:
        if embedder is not None:
            embedder.close()
    return records


def pending_shards(job: Job) -> tuple[list[Shard], list[Shard]]:
    worker, workers = job.config.worker()
    mine = job.plan.for_worker(worker, workers)
    done = [s for s in mine if job.store.is_complete(s, job.config_fingerprint)]
    done_set = {s.index for s in done}
    return [s for s in mine if s.index not in done_set], done


def all_done(job: Job) -> bool:
    return all(job.store.is_complete(s, job.config_fingerprint) for s in job.plan.shards)


def execute(job: Job, make_embedder: EmbedderFactory, reporter: Reporter | None = None,
            executor: Callable[..., list[dict[str, Any]]] = local_executor) -> dict[str, Any]:
    """Run this worker's pending shards; finalize if the whole plan is then complete."""
    from migrate.index import finalize

    reporter = reporter or NullReporter()
    todo, done = pending_shards(job)
    reporter.start(shards=len(todo) + len(done), rows=sum(s.rows for s in todo + done),
                   done_shards=len(done), done_rows=sum(s.rows for s in done))
    budget = Budget(token_limit(job.config), spent=spent_tokens(job))
    error: BaseException | None = None
    try:
        executor(job, todo, make_embedder, reporter, budget)
    except BudgetExceeded as exc:
        error = exc
    # Count from the completion records on disk: right for any executor, and after a stop too.
    records = [r for r in (job.store.record(s) for s in todo if job.store.is_complete(s, job.config_fingerprint)) if r]
    summary: dict[str, Any] = {
        "out": str(job.out),
        "shards_total": len(job.plan.shards),
        "shards_run": len(records),
        "shards_skipped": len(done),
        "rows": job.plan.total_rows,
        "embedded": sum(r["embedded"] for r in records),
        "cached": sum(r["cached"] for r in records),
        "tokens": sum(r["tokens"] for r in records),
        "tokens_total": spent_tokens(job),
        "validation": job.validation,
        "version": __version__,
    }
    worker, workers = job.config.worker()
    if error is None and workers == 1 and all_done(job):
        summary["outputs"] = finalize(job.out)
        summary["state"] = "complete"
    else:
        summary["state"] = "partial" if error is None else "stopped"
    reporter.finish(summary)
    if error is not None:
        raise error
    return summary
