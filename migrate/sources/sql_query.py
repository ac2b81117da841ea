"""An SQL query over a SQLite file as the old index: ``--old-index 'sqlite:///PATH?query=SELECT ...'``.

Any hand-made schema: the query returns one row per vector, with an id column, a text column and a vector
column, found by the usual names (``id`` / ``doc_id``..., ``text`` / ``content``..., ``vector`` /
``embedding``...) or named in the address (``&id=COL&text=COL&vector=COL``); every other column is metadata.
A vector is a BLOB of little-endian float32 (sqlite-vec's layout, and numpy's ``tobytes()``) or JSON text
(``[0.1, ...]``). The file is opened read-only and only a ``SELECT`` (or ``WITH``) is run, so reading never
changes it. Relative paths: ``sqlite:///./rel/file.db`` ... ``sqlite:///abs/file.db``.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import numpy as np

from migrate.errors import InputError
from migrate.sources.files import ID_CANDIDATES, TEXT_CANDIDATES, VECTOR_CANDIDATES
from migrate.sources.stored import StoredIndex, finite_rows

NAME = "sql"
WHAT = "an SQL query"
SCHEMES = ("sqlite",)
_OPTIONS = {"query", "id", "text", "vector"}


def detect(path: Path | str) -> bool:
    return str(path).lower().startswith("sqlite://")


def _parse(text: str) -> tuple[Path, str, dict[str, str]]:
    parts = urlsplit(text)
    opts = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(opts) - _OPTIONS)
    if unknown:
        raise InputError(f"sqlite: unknown address option {unknown[0]!r}",
                         hint="allowed: " + ", ".join(sorted(_OPTIONS)))
    if parts.netloc not in ("", "."):
        raise InputError("sqlite: the address names a file, not a host",
                         hint="sqlite:///abs/path.db?query=... or sqlite:///./rel/path.db?query=...")
    path = Path(parts.path[1:] if parts.path.startswith("/./") else parts.path)
    query = (opts.pop("query", "") or "").strip().rstrip(";")
    if not query.lower().startswith(("select", "with")) or ";" in query:
        raise InputError("sqlite: the address needs one SELECT in ?query=",
                         hint="e.g. sqlite:///app.db?query=SELECT id, body AS text, emb AS vector FROM chunks")
    return path, query, opts


def files(path: Path | str) -> list[Path]:
    return [_parse(str(path))[0]]


def _vector(value: Any, where: str) -> np.ndarray:
    if isinstance(value, (bytes, memoryview)):
        raw = bytes(value)
        if len(raw) % 4:
            raise InputError(f"{where}: the vector BLOB has {len(raw)} bytes, not a whole number of float32 values")
        return np.frombuffer(raw, dtype="<f4")
    if isinstance(value, str):
        try:
            return np.asarray(json.loads(value), dtype=np.float32)
        except (ValueError, TypeError):
            pass
    raise InputError(f"{where}: the vector is neither float32 BLOB nor JSON text ({type(value).__name__})")


@functools.lru_cache(maxsize=2)
def _load(text: str, stamp: tuple) -> StoredIndex:
    path, query, opts = _parse(text)
    try:
        con = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True)
        try:
            cur = con.execute(query)
            names = [d[0] for d in cur.description or ()]
            rows = cur.fetchall()
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise InputError(f"{path}: the query failed ({' '.join(str(exc).split())[:160]})",
                         hint="check the SQL in ?query= (sqlite-vec's vec0 tables need the extension: select "
                              "their vectors into a plain table first)") from None

    def pick(flag: str, candidates: tuple[str, ...]) -> int:
        name = opts.get(flag) or next((c for c in candidates if c in names), None)
        if name is None or name not in names:
            raise InputError(f"{path}: the query returns no {flag} column" + (f" {name!r}" if name else ""),
                             hint=f"name it with &{flag}=COLUMN (or AS {flag} in the SELECT); columns: "
                                  f"{', '.join(names)}")
        return names.index(name)

    at_id, at_text, at_vec = pick("id", ID_CANDIDATES), pick("text", TEXT_CANDIDATES), pick("vector", VECTOR_CANDIDATES)
    rest = [i for i in range(len(names)) if i not in (at_id, at_text, at_vec)]
    ids, texts, vecs = [], [], []
    for n, row in enumerate(rows):
        if row[at_id] is None or row[at_vec] is None:
            raise InputError(f"{path}: row {n} of the query has no {'id' if row[at_id] is None else 'vector'}")
        ids.append(str(row[at_id]))
        texts.append("" if row[at_text] is None else str(row[at_text]))
        vecs.append(_vector(row[at_vec], f"{path}: id {ids[-1]!r}"))
    widths = sorted({len(v) for v in vecs})
    if len(widths) > 1:
        raise InputError(f"{path}: the query's vectors have different widths ({widths[:5]})")
    matrix = np.stack(vecs).astype(np.float32) if vecs else np.zeros((0, 0), np.float32)
    finite_rows(path, matrix, ids)
    return StoredIndex(path=path, format=NAME, kind="sqlite query", ids=ids, texts=texts,
                       metadata=[{names[i]: row[i] for i in rest} for row in rows],
                       dim=matrix.shape[1] if vecs else 0, metric="ip", vectors=matrix)


def load(text: str, with_vectors: bool = True) -> StoredIndex:  # one query reads them: always
    path = _parse(text)[0]
    try:
        st = path.stat()
    except OSError:
        raise InputError(f"{path}: no SQLite file there", hint="check the path in the sqlite:/// address") from None
    return _load(text, (st.st_mtime_ns, st.st_size))

