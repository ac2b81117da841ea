"""The one step every executor runs: embed one shard and write it.

``run_shard`` reads the shard's planned rows (ids, text hashes, locators) from the
workspace, reads exactly those texts from the source (checking each against its
planned hash, so a source edited since planning is caught), reuses cached vectors by
content hash, embeds the rest, and writes the shard and its completion record
atomically. The local executor calls it in a loop; Ray workers call it on their node.
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


def run_shard(ctx: StepContext, ws: Workspace, source: DocumentSource, shard: Shard, embedder: Embedder,
              cache: EmbeddingCache | None = None) -> dict[str, Any]:
    """Embed one shard and write it; returns its completion record."""
    t0 = time.monotonic()
    ids, texts, hashes = read_texts(ctx, ws, source, shard)
    if ctx.config.late_chunking:
        table, meta = _late_chunked(ctx, ids, texts, hashes, embedder, cache)
    else:
        table, meta = _whole(ctx, ids, texts, hashes, embedder, cache)
    meta |= {"config_fingerprint": ctx.config_fingerprint, "seconds": round(time.monotonic() - t0, 3)}
    return ws.write_shard(shard, table, meta)


def _lookup(cache: EmbeddingCache | None, keys: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    if cache is None or not len(cache):
        return np.zeros(len(keys), dtype=bool), None
    return cache.lookup(keys)


def _whole(ctx: StepContext, ids: list[str], texts: list[str], hashes: list[str], embedder: Embedder,
           cache: EmbeddingCache | None) -> tuple[pa.Table, dict[str, Any]]:
    hit, cached = _lookup(cache, hashes)
    todo = np.nonzero(~hit)[0]
    tokens = 0
    vectors: np.ndarray | None = None
    if len(todo):
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
            cached_n += 1
        else:
            result = embedder.embed(chunks, task=ctx.config.task, late_chunking=True)
            vecs, tokens, embedded = result.vectors, tokens + int(result.total_tokens), embedded + 1
        blocks.append(vecs)
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
