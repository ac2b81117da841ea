"""A txtai ``Embeddings.save(folder)`` folder, read without txtai.

The folder holds ``config.json``, ``embeddings`` (a FAISS ``IndexIDMap`` whose ids are the rows'
``indexid``) and, when the index was built with ``content=True``, ``documents``: SQLite with
``sections(indexid, id, text, tags, entry)`` (the text each vector was made from) and
``documents(id, data JSON, ...)`` (the whole record of a dict input: its metadata). Row i is the section
whose ``indexid`` is the FAISS id of vector i.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from pathlib import Path
from typing import Any

from migrate.errors import InputError
from migrate.sources.faiss_index import read_faiss
from migrate.sources.stored import StoredIndex

NAME = "txtai"
WHAT = "a txtai index folder"


def detect(path: Path) -> bool:
    if not path.is_dir() or not (path / "config.json").is_file() or not (path / "embeddings").is_file():
        return False
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and ("backend" in config or "dimensions" in config)


def files(path: Path) -> list[Path]:
    return [p for p in (path / "config.json", path / "embeddings", path / "documents") if p.is_file()]


def _sections(db: Path) -> tuple[dict[int, tuple[str, str]], dict[str, dict[str, Any]]]:
    """indexid -> (id, text), and id -> metadata (the stored record without its text field)."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            sections = {int(i): (str(d), t) for i, d, t in con.execute("SELECT indexid, id, text FROM sections")}
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            records = con.execute("SELECT id, data FROM documents").fetchall() if "documents" in tables else []
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise InputError(f"{db}: not a txtai content database ({exc})",
                         hint="pass the folder Embeddings.save wrote") from None
    metadata = {}
    for doc_id, data in records:
        try:
            value = json.loads(data) if isinstance(data, str) else None
        except ValueError:
            value = None
        if isinstance(value, dict):
            metadata[str(doc_id)] = value
    return sections, metadata


@functools.lru_cache(maxsize=2)
def _load(folder: Path, stamp: tuple, with_vectors: bool) -> StoredIndex:
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if (config.get("backend") or "faiss") != "faiss":
        raise InputError(f"{folder}: a txtai index on the {config.get('backend')!r} backend; only FAISS is read",
                         hint="export ids, texts and vectors to Parquet and pass that file")
    if not (folder / "documents").is_file():
        raise InputError(f"{folder}: this txtai index was saved without content (content=True), so it holds no texts",
                         hint="pass the documents with --docs FILE, or rebuild the index with content=True")
    info = read_faiss(folder / "embeddings", reconstruct=with_vectors, check_finite=not with_vectors)
    if info.faiss_ids is None:
        raise InputError(f"{folder / 'embeddings'}: expected txtai's IndexIDMap (ids = sections.indexid)")
    sections, records = _sections(folder / "documents")
    text_field = (config.get("columns") or {}).get("text", "text")
    ids, texts, metadata = [], [], []
    for label in info.faiss_ids.tolist():
        if label not in sections:
            raise InputError(f"{folder / 'documents'}: no section with indexid {label} (a vector of "
                             f"{folder / 'embeddings'})", hint="the files are from different saves; save again")
        doc_id, text = sections[label]
        ids.append(doc_id)
        texts.append(text if isinstance(text, str) else "")
        metadata.append({k: v for k, v in records.get(doc_id, {}).items() if k not in ("id", text_field)})
    return StoredIndex(path=folder, format=NAME, kind=info.kind, ids=ids, texts=texts, metadata=metadata,
                       dim=info.dim, metric=info.metric, vectors=info.vectors, faiss_ids=info.faiss_ids,
                       lossy=info.lossy, why_no_vectors=info.why_no_vectors)


def load(path: Path | str, with_vectors: bool = False) -> StoredIndex:
    folder = Path(path)
    stamp = tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in files(folder))
    return _load(folder, stamp, with_vectors)

