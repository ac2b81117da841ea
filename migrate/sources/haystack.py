"""Haystack's ``InMemoryDocumentStore.save_to_disk(path)`` file, read without Haystack.

The file is one JSON object ``{type, init_parameters, documents: [{id, content, embedding, meta, ...}]}``.
Each document with an embedding is a row: its ``id``, its ``content`` as the text and its ``meta`` as the
metadata. Haystack's embedders can also embed chosen meta fields before the content
(``meta_fields_to_embed``); that is a pipeline setting the file does not record, so the plan says the
texts are the content alone.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np

from migrate.errors import InputError
from migrate.sources.stored import StoredIndex, finite_rows

NAME = "haystack"
WHAT = "a Haystack document store file"
MARK = b"InMemoryDocumentStore"
METRICS = {"cosine": "cosine", "dot_product": "ip"}


def detect(path: Path) -> bool:
    """A ``.json`` file whose first bytes name Haystack's in-memory document store."""
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return False
    return head.lstrip().startswith(b"{") and b'"type"' in head and MARK in head


def files(path: Path) -> list[Path]:
    return [path]


@functools.lru_cache(maxsize=2)
def _load(path: Path, stamp: tuple) -> StoredIndex:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{path}: not a Haystack document store file ({str(exc)[:120]})") from None
    docs = data.get("documents") if isinstance(data, dict) else None
    if not isinstance(docs, list):
        raise InputError(f"{path}: not a Haystack document store file (no 'documents' list)",
                         hint="pass the file InMemoryDocumentStore.save_to_disk wrote")
    ids: list[str] = []
    texts: list[str] = []
    metadata: list[dict[str, Any]] = []
    vectors: list[Any] = []
    without = 0
    for n, doc in enumerate(docs):
        if not isinstance(doc, dict) or doc.get("id") is None:
            raise InputError(f"{path}: document {n} has no id")
        if doc.get("embedding") is None:
            without += 1
            continue
        if not isinstance(doc.get("content"), str):
            raise InputError(f"{path}: document {doc['id']!r} has an embedding but no text content",
                             hint="only text documents can be embedded again")
        ids.append(str(doc["id"]))
        texts.append(doc["content"])
        meta = doc.get("meta")
        metadata.append(meta if isinstance(meta, dict) else {})
        vectors.append(doc["embedding"])
    widths = {len(v) if isinstance(v, list) else -1 for v in vectors}
    if len(widths) > 1 or -1 in widths:
        raise InputError(f"{path}: embeddings have different widths ({sorted(widths)})")
    try:
        vecs = np.asarray(vectors, dtype=np.float32).reshape(len(ids), widths.pop() if widths else 0)
    except (TypeError, ValueError):
        raise InputError(f"{path}: embedding values are not numbers") from None
    finite_rows(path, vecs, ids)
    params = data.get("init_parameters")
    similarity = params.get("embedding_similarity_function") if isinstance(params, dict) else None
    # Haystack's default: dot product
    metric = METRICS.get(similarity, "ip") if isinstance(similarity, str) else "ip"
    store = StoredIndex(path=path, format=NAME, kind="InMemoryDocumentStore", ids=ids, texts=texts,
                        metadata=metadata, dim=vecs.shape[1], metric=metric, vectors=vecs)
    if without:
        store.notes.append(f"{without} documents of {path.name} have no embedding: left out")
    store.findings.append({
        "code": "haystack-content", "severity": "info",
        "message": f"{path}: a Haystack document store; the texts are each document's content (if the app's "
                   "embedder also embedded meta fields, meta_fields_to_embed, v3 sees less than v2 did)",
        "fix": "to embed meta fields too, export id + the embedded text to a file and pass it with --docs"})
    return store


def load(path: Path | str, with_vectors: bool = True) -> StoredIndex:  # the JSON holds the vectors: always read
    p = Path(path)
    return _load(p, (p.stat().st_mtime_ns, p.stat().st_size))

