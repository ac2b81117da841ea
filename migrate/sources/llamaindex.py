"""LlamaIndex's persist folder (``index.storage_context.persist(folder)``), read without LlamaIndex.

The folder holds ``docstore.json`` (every node: id, text, metadata and how its embedded text was made),
``index_store.json`` and one ``NAMESPACE__vector_store.json`` per vector store (``default``, ``image``, ...).
A vector store file is SimpleVectorStore JSON (``embedding_dict: {node_id: vector}``) or, with
llama-index-vector-stores-faiss, a binary FAISS index under the same name (sniffed by its first byte), whose
rows map to node ids through ``index_store.json``'s ``nodes_dict``.

LlamaIndex did not embed a node's bare text: it embedded ``node.get_content(MetadataMode.EMBED)``, the node's
metadata lines (``metadata_template`` joined by ``metadata_separator``, leaving out
``excluded_embed_metadata_keys``) put before its text by ``text_template``. :func:`embed_text` rebuilds exactly
that, so v3 embeds the same input v2 did; the plan says so.

``--old-index FOLDER`` (one vector store with vectors) or ``--old-index FOLDER/NAMESPACE__vector_store.json``.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np

from migrate.errors import InputError
from migrate.sources.faiss_index import read_faiss
from migrate.sources.stored import StoredIndex, finite_rows

NAME = "llamaindex"
WHAT = "a LlamaIndex persist folder"
DOCSTORE = "docstore.json"
INDEX_STORE = "index_store.json"
STORE_SUFFIX = "vector_store.json"  # NAMESPACE__vector_store.json (plain vector_store.json before 0.10)
DEFAULT_TEXT_TEMPLATE = "{metadata_str}\n\n{content}"
DEFAULT_METADATA_TEMPLATE = "{key}: {value}"


def _stores(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.name.endswith(STORE_SUFFIX) and p.is_file())
    except OSError:
        return []


def detect(path: Path) -> bool:
    if path.is_dir():
        return (path / DOCSTORE).is_file() and bool(_stores(path))
    return path.name.endswith(STORE_SUFFIX) and path.is_file() and (path.parent / DOCSTORE).is_file()


def _is_faiss(path: Path) -> bool:
    """A binary FAISS index saved under a ``.json`` name (llama-index-vector-stores-faiss): not ``{``."""
    with open(path, "rb") as fh:
        head = fh.read(64).lstrip()
    return not head.startswith(b"{")


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{path}: not LlamaIndex JSON ({str(exc)[:120]})",
                         hint="pass the folder storage_context.persist wrote") from None


def _has_vectors(store: Path) -> bool:
    """Whether a store holds vectors, without parsing a large one (only a small file can be empty)."""
    if _is_faiss(store) or store.stat().st_size > 1 << 16:
        return True
    data = _read_json(store)
    return isinstance(data, dict) and bool(data.get("embedding_dict"))


def _store_file(path: Path) -> Path:
    """The vector store to read: the file named, or the folder's only one that holds vectors."""
    if not path.is_dir():
        return path
    full = [p for p in _stores(path) if _has_vectors(p)]
    if not full:
        raise InputError(f"{path}: none of its vector stores holds vectors "
                         f"({', '.join(p.name for p in _stores(path))})",
                         hint="persist the index after adding documents")
    if len(full) > 1:
        raise InputError(f"{path}: holds {len(full)} vector stores with vectors ({', '.join(p.name for p in full)})",
                         hint=f"name one: --old-index {full[0]}")
    return full[0]


def files(path: Path) -> list[Path]:
    store = _store_file(path)
    out = [store, store.parent / DOCSTORE]
    if (store.parent / INDEX_STORE).is_file():
        out.append(store.parent / INDEX_STORE)
    return out


# --------------------------------------------------------------------------- the embedded text

def embed_text(node: dict[str, Any]) -> str:
    """The text LlamaIndex embedded for ``node`` (a docstore ``__data__``): ``TextNode.get_content(EMBED)``."""
    text = node.get("text")
    if text is None:
        text = (node.get("text_resource") or {}).get("text") or ""
    metadata = node.get("metadata") or {}
    excluded = set(node.get("excluded_embed_metadata_keys") or ())
    template = node.get("metadata_template") or DEFAULT_METADATA_TEMPLATE
    separator = node.get("metadata_separator", node.get("metadata_seperator", "\n"))  # 0.11 spelled it so
    metadata_str = separator.join(template.format(key=k, value=str(v))
                                  for k, v in metadata.items() if k not in excluded).strip()
    if not metadata_str:
        return text
    return (node.get("text_template") or DEFAULT_TEXT_TEMPLATE).format(content=text, metadata_str=metadata_str).strip()


def _nodes(docstore: Path) -> dict[str, dict[str, Any]]:
    data = _read_json(docstore)
    nodes = data.get("docstore/data") if isinstance(data, dict) else None
    if not isinstance(nodes, dict):
        raise InputError(f"{docstore}: not a LlamaIndex docstore (no 'docstore/data')",
                         hint="pass the folder storage_context.persist wrote")
    out = {}
    for node_id, entry in nodes.items():
        body = entry.get("__data__") if isinstance(entry, dict) else None
        if isinstance(body, str):  # older releases stored the node as a JSON string
            try:
                body = json.loads(body)
            except ValueError:
                body = None
        if isinstance(body, dict):
            out[node_id] = body
    return out


# --------------------------------------------------------------------------- vectors and their node ids

def _json_store(store: Path, with_vectors: bool) -> tuple[list[str], np.ndarray, str]:
    data = _read_json(store)
    emb = data.get("embedding_dict") if isinstance(data, dict) else None
    if not isinstance(emb, dict):
        raise InputError(f"{store}: not a LlamaIndex SimpleVectorStore (no 'embedding_dict')")
    ids = [str(k) for k in emb]
    widths = {len(v) if isinstance(v, list) else -1 for v in emb.values()}
    if len(widths) > 1 or -1 in widths:
        raise InputError(f"{store}: vectors have different widths ({sorted(widths)})",
                         hint="every node must be embedded by the same model")
    try:
        vecs = np.asarray(list(emb.values()), dtype=np.float32).reshape(len(ids), widths.pop() if widths else 0)
    except (TypeError, ValueError):
        raise InputError(f"{store}: vector values are not numbers") from None
    finite_rows(store, vecs, ids)
    return ids, vecs, "SimpleVectorStore"


def _nodes_dict(index_store: Path, ntotal: int) -> dict[str, str]:
    """row -> node id of the FAISS-backed vector index in ``index_store.json``."""
    if not index_store.is_file():
        raise InputError(f"{index_store.parent}: no {INDEX_STORE}, which maps the FAISS rows to nodes",
                         hint="pass the whole folder storage_context.persist wrote")
    data = _read_json(index_store)
    found = []
    for entry in (data.get("index_store/data") or {}).values() if isinstance(data, dict) else ():
        body = entry.get("__data__") if isinstance(entry, dict) else None
        body = json.loads(body) if isinstance(body, str) else body
        nodes = body.get("nodes_dict") if isinstance(body, dict) else None
        if isinstance(nodes, dict) and nodes and all(str(k).isdigit() for k in nodes):
            found.append(nodes)
    fits = [n for n in found if len(n) == ntotal]
    if len(fits) != 1:
        raise InputError(f"{index_store}: {'no' if not fits else len(fits)} vector indexes map {ntotal} FAISS rows "
                         "to nodes", hint="pass the folder persisted together with this FAISS store")
    return {str(k): str(v) for k, v in fits[0].items()}


@functools.lru_cache(maxsize=2)
def _load(store: Path, stamp: tuple, with_vectors: bool) -> StoredIndex:
    docstore = store.parent / DOCSTORE
    faiss_ids = None
    lossy, why = False, None
    if _is_faiss(store):
        info = read_faiss(store, reconstruct=with_vectors, check_finite=not with_vectors)
        rows = info.faiss_ids if info.faiss_ids is not None else np.arange(info.ntotal, dtype=np.int64)
        mapping = _nodes_dict(store.parent / INDEX_STORE, info.ntotal)
        try:
            ids = [mapping[str(r)] for r in rows.tolist()]
        except KeyError as exc:
            raise InputError(f"{store.parent / INDEX_STORE}: FAISS row {exc.args[0]} maps to no node") from None
        vecs, dim, metric, kind = info.vectors, info.dim, info.metric, f"faiss:{info.kind}"
        faiss_ids, lossy, why = rows, info.lossy, info.why_no_vectors
    else:
        ids, all_vecs, kind = _json_store(store, with_vectors)
        vecs, dim, metric = (all_vecs if with_vectors else None), all_vecs.shape[1], "cosine"
    nodes = _nodes(docstore)
    texts, metadata = [], []
    with_metadata = 0
    for node_id in ids:
        node = nodes.get(node_id)
        if node is None:
            raise InputError(f"{docstore}: no node {node_id!r} (it has a vector in {store.name})",
                             hint="persist the index with its docstore (storage_context.persist)")
        try:
            text = embed_text(node)
        except (KeyError, IndexError, ValueError, AttributeError) as exc:
            raise InputError(f"{docstore}: node {node_id!r}: its text_template/metadata_template cannot be filled "
                             f"({type(exc).__name__}: {exc})") from None
        if not isinstance(text, str):
            raise InputError(f"{docstore}: node {node_id!r} has no text")
        with_metadata += text != (node.get("text") or "")
        texts.append(text)
        meta = dict(node.get("metadata") or {})
        parent = ((node.get("relationships") or {}).get("1") or {}).get("node_id")
        if parent is not None:
            meta.setdefault("ref_doc_id", parent)
        metadata.append(meta)
    result = StoredIndex(path=store, format=NAME, kind=kind, ids=ids, texts=texts, metadata=metadata, dim=dim,
                         metric=metric, vectors=vecs, faiss_ids=faiss_ids, lossy=lossy, why_no_vectors=why)
    result.findings.append({
        "code": "llamaindex-embed-text", "severity": "info",
        "message": f"{store.parent}: a LlamaIndex index ({store.name}); the texts are what LlamaIndex embedded "
                   f"(text_template, metadata_template, excluded_embed_metadata_keys): {with_metadata} of "
                   f"{len(ids)} nodes carry metadata lines before their text, so v3 embeds the same input as v2",
        "fix": ""})
    return result


def load(path: Path | str, with_vectors: bool = False) -> StoredIndex:
    store = _store_file(Path(path))
    parts = [store, store.parent / DOCSTORE, store.parent / INDEX_STORE]
    stamp = tuple((p.stat().st_mtime_ns, p.stat().st_size) if p.exists() else None for p in parts)
    return _load(store, stamp, with_vectors)

