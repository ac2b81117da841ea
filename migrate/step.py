"""The one step every executor runs: embed one shard and write it.

``run_shard`` reads the shard's planned rows (ids, text hashes, locators) from the
workspace, reads exactly those texts from the source (checking each against its
planned hash, so a source edited since planning is caught), reuses cached vectors by
content hash, embeds the rest, and writes the shard and its completion record
atomically. Ray workers call it on their node.

It is three stages, also callable one by one so an executor can overlap them (the local
executor loads the next shard and writes the previous one while the model runs):
``load_shard`` (read, check, look up the cache, and let a ``Preparing`` embedder tokenize:
no model work), ``embed_shard`` (the model), ``write_embedded`` (the shard file and record).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from migrate.config import RunConfig
from migrate.embed.base import Embedder
from migrate.embed.token_ids import Preparing
from migrate.errors import StateError
from migrate.shards import Shard
from migrate.sources import DocumentSource, DocumentSpec, open_documents_source
from migrate.workspace import Workspace, shard_schema, vectors_to_arrow
from migrate.workspace.cache import EmbeddingCache


@dataclass
class StepContext:
    """What a shard step needs; small and picklable (it travels to Ray workers, never with texts)."""

    config: RunConfig
    out: str
    config_fingerprint: str
    documents: DocumentSpec

    def workspace(self) -> Workspace:
        return Workspace(Path(self.out))

    def source(self) -> DocumentSource:
        return open_documents_source(self.documents)


def chunk_hash(doc_hash: str, chunker: str, k: int) -> str:
    """A late-chunked vector depends on the whole document, the chunker and the position."""
    return hashlib.sha256(f"{doc_hash}\x00{chunker}\x00{k}".encode()).hexdigest()


def _tokenizer_of(embedder: Embedder) -> Any:
    tok = getattr(embedder, "tokenizer", None)
    if tok is None:
        tok = getattr(getattr(embedder, "model", None), "tokenizer", None)
    return tok


def read_texts(ctx: StepContext, ws: Workspace, source: DocumentSource, shard: Shard) -> tuple[list[str], list[str], list[str]]:
    """(ids, texts, text hashes) of ``shard``, read from the source and checked against the plan."""
    planned = ws.plan_slice(shard)
    if planned.locs is None:
        raise StateError(f"{ws.out}: the plan was written by jina-migrate 0.1 and holds no source locators",
                         hint="rerun `jina-migrate run` with the same sources: it re-plans and keeps finished shards")
    texts = source.read(planned.locs, planned.ids)
    for doc_id, text, want in zip(planned.ids, texts, planned.hashes):
        if hashlib.sha256(text.encode("utf-8")).hexdigest() != want:
            raise StateError(f"{source.describe()}: document {doc_id!r} changed since the run was planned",
                             hint="rerun the same command: it re-plans from the current sources and keeps "
                                  "finished shards")
    return planned.ids, texts, planned.hashes


@dataclass
class LoadedShard:
    """A shard read and checked, ready for the model: what ``load_shard`` hands to ``embed_shard``."""

    shard: Shard
    ids: list[str]
    texts: list[str]
    hashes: list[str]
    seconds: float  # spent loading (waits between stages are not counted)
    hit: np.ndarray | None = None  # whole documents: which the cache holds
    cached: np.ndarray | None = None  # and their vectors
    prepared: Any = None  # the documents to embed, prepared by a ``Preparing`` embedder


@dataclass
class EmbeddedShard:
    """A shard's table and completion facts: what ``embed_shard`` hands to ``write_embedded``."""

    shard: Shard
    table: pa.Table
    meta: dict[str, Any]


def run_shard(ctx: StepContext, ws: Workspace, source: DocumentSource, shard: Shard, embedder: Embedder,
              cache: EmbeddingCache | None = None) -> dict[str, Any]:
    """Embed one shard and write it; returns its completion record."""
    loaded = load_shard(ctx, ws, source, shard, embedder, cache)
    return write_embedded(ws, embed_shard(ctx, loaded, embedder, cache))


def load_shard(ctx: StepContext, ws: Workspace, source: DocumentSource, shard: Shard, embedder: Embedder,
               cache: EmbeddingCache | None = None) -> LoadedShard:
    """Read and check the shard's texts, look up the cache, and prepare (tokenize) what is left to embed.

    No model work: safe to run in another thread while ``embed_shard`` runs the previous shard.
    """
    t0 = time.monotonic()
    ids, texts, hashes = read_texts(ctx, ws, source, shard)
    loaded = LoadedShard(shard, ids, texts, hashes, 0.0)
    if not ctx.config.late_chunking:
        loaded.hit, loaded.cached = _lookup(cache, hashes)
        todo = np.nonzero(~loaded.hit)[0]
        if len(todo) and isinstance(embedder, Preparing):
            loaded.prepared = embedder.prepare([texts[i] for i in todo], task=ctx.config.task)
    loaded.seconds = time.monotonic() - t0
    return loaded


def embed_shard(ctx: StepContext, loaded: LoadedShard, embedder: Embedder,
                cache: EmbeddingCache | None = None) -> EmbeddedShard:
    """The model's part of the step: the shard's table and its completion facts."""
    t0 = time.monotonic()
    if ctx.config.late_chunking:
        table, meta = _late_chunked(ctx, loaded.ids, loaded.texts, loaded.hashes, embedder, cache)
    else:
        table, meta = _whole(ctx, loaded, embedder)
    meta |= {"config_fingerprint": ctx.config_fingerprint,
             "seconds": round(loaded.seconds + time.monotonic() - t0, 3)}
    return EmbeddedShard(loaded.shard, table, meta)


def write_embedded(ws: Workspace, done: EmbeddedShard) -> dict[str, Any]:
    """Write the shard file, then its completion record (both atomically); returns the record."""
    return ws.write_shard(done.shard, done.table, done.meta)


def _lookup(cache: EmbeddingCache | None, keys: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    if cache is None or not len(cache):
        return np.zeros(len(keys), dtype=bool), None
    return cache.lookup(keys)


def _whole(ctx: StepContext, loaded: LoadedShard, embedder: Embedder) -> tuple[pa.Table, dict[str, Any]]:
    ids, texts, hashes, hit, cached = loaded.ids, loaded.texts, loaded.hashes, loaded.hit, loaded.cached
    assert hit is not None
    todo = np.nonzero(~hit)[0]
    tokens = 0
    vectors: np.ndarray | None = None
    if len(todo):
        if loaded.prepared is not None:
            result = embedder.embed_prepared(loaded.prepared)  # type: ignore[attr-defined]
        else:
            result = embedder.embed([texts[i] for i in todo], task=ctx.config.task)
        tokens = int(result.total_tokens)
        vectors = np.empty((len(ids), result.vectors.shape[1]), dtype=np.float32)
        vectors[todo] = result.vectors
    if cached is not None:
        if vectors is None:
            vectors = np.empty((len(ids), cached.shape[1]), dtype=np.float32)
        vectors[hit] = cached
    assert vectors is not None
    table = pa.table({"id": pa.array(ids, pa.string()), "vector": vectors_to_arrow(vectors),
                      "text_sha256": pa.array(hashes, pa.string())}, schema=shard_schema(vectors.shape[1]))
    return table, {"tokens": tokens, "embedded": int(len(todo)), "cached": int(hit.sum())}


def _late_chunked(ctx: StepContext, ids: list[str], texts: list[str], hashes: list[str], embedder: Embedder,
                  cache: EmbeddingCache | None) -> tuple[pa.Table, dict[str, Any]]:
    """Each document is chunked, then its chunks are embedded in one context (one vector per chunk)."""
    from migrate.embed.chunking import chunk_document, parse_chunker

    spec = parse_chunker(ctx.config.chunker or "sentences:3")
    chunker = spec.describe()
    tokenizer = _tokenizer_of(embedder)
    out_ids: list[str] = []
    out_chunks: list[int] = []
    out_keys: list[str] = []
    blocks: list[np.ndarray] = []
    tokens = embedded = cached_n = 0
    for doc_id, text, h in zip(ids, texts, hashes):
        chunks = chunk_document(text, spec, tokenizer) or [text]
        keys = [chunk_hash(h, chunker, k) for k in range(len(chunks))]
        hit, vecs = _lookup(cache, keys)
        if hit.all():
            assert vecs is not None  # every chunk (at least one) was found: the cache returned their vectors
            cached_n += 1
            blocks.append(vecs)
        else:
            result = embedder.embed(chunks, task=ctx.config.task, late_chunking=True)
            tokens, embedded = tokens + int(result.total_tokens), embedded + 1
            blocks.append(result.vectors)
        out_ids += [doc_id] * len(chunks)
        out_chunks += list(range(len(chunks)))
        out_keys += keys
    vectors = np.concatenate(blocks)
    table = pa.table({"id": pa.array(out_ids, pa.string()), "chunk": pa.array(out_chunks, pa.int32()),
                      "vector": vectors_to_arrow(vectors), "text_sha256": pa.array(out_keys, pa.string())},
                     schema=shard_schema(vectors.shape[1], chunked=True))
    return table, {"tokens": tokens, "embedded": embedded, "cached": cached_n, "chunker": chunker}


def build_cache(ws: Workspace, plan_shards: list[Shard], config_fingerprint: str, extra: list[Path],
                on_skip: Any = None) -> EmbeddingCache:
    """Stale shards of this output, plus earlier outputs with the same configuration (``--cache``)."""
    cache = EmbeddingCache()
    current = {f"{s.name}.parquet" for s in plan_shards}
    for path in ws.shard_files():
        if path.name not in current:
            cache.add_file(path)
    for other in extra:
        other_ws = Workspace(Path(other))
        try:
            m = other_ws.read_manifest() if Path(other).is_dir() else None
        except StateError:
            m = None
        if m is None:
            if on_skip:
                on_skip(f"{other}: no jina-migrate output here")
            continue
        if m.config_fingerprint != config_fingerprint:
            if on_skip:
                on_skip(f"{other}: made with another configuration; not used")
            continue
        files = other_ws.shard_files()
        for path in files or [other_ws.out / "embeddings.parquet"]:
            if path.exists():
                cache.add_file(path)
    return cache
