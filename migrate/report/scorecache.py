"""A content-hash cache for what label-free evaluation pays for: judge scores and re-embedded texts.

What: ``ScoreCache(path)`` is one SQLite file with two tables, ``scores`` (key -> float)
and ``vectors`` (key -> float32 bytes). Keys are SHA-256 digests of the *content* that
decides the value (``content_key``: the judge's or embedder's identity, the task, the
query and the document text), never of ids or positions, so a reordered corpus, another
source holding the same texts, or a rerun after a crash all hit the same entries.
Why: a judge call and an API embedding cost money and time; each pair must be paid for
once. Entries are committed in batches as they arrive (``put_*``), so an interrupted
evaluation keeps what it finished and the next run scores only the rest.

Why SQLite: the standard library's, one file, safe against a crash mid-write (a
transaction either lands or not), and concurrent readers are fine.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from migrate.errors import ConfigError

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, value REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, dim INTEGER NOT NULL, data BLOB NOT NULL)",
)
_CHUNK = 500  # keys per SELECT (SQLite's variable limit is 999 on old builds)


def content_key(*parts: str) -> str:
    """SHA-256 of the parts, each length-prefixed so no two different part lists collide."""
    h = hashlib.sha256()
    for p in parts:
        b = p.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


class ScoreCache:
    """Scores and vectors by content key, in one SQLite file (created on first use)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            for stmt in SCHEMA:
                self._db.execute(stmt)
            self._db.commit()
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open the judgment cache {self.path}: {exc}",
                              hint="point --cache at a writable folder, or delete a damaged cache file") from None

    # ----------------------------------------------------------------- scores

    def get_scores(self, keys: Sequence[str]) -> dict[str, float]:
        out: dict[str, float] = {}
        for part in _chunks(list(dict.fromkeys(keys))):
            rows = self._db.execute(f"SELECT key, value FROM scores WHERE key IN ({','.join('?' * len(part))})", part)
            out.update((k, float(v)) for k, v in rows)
        return out

    def put_scores(self, items: Mapping[str, float]) -> None:
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO scores (key, value) VALUES (?, ?)",
                                 [(k, float(v)) for k, v in items.items()])

    # ----------------------------------------------------------------- vectors

    def get_vectors(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for part in _chunks(list(dict.fromkeys(keys))):
            rows = self._db.execute(f"SELECT key, dim, data FROM vectors WHERE key IN ({','.join('?' * len(part))})",
                                    part)
            for k, dim, data in rows:
                v = np.frombuffer(data, dtype="<f4")
                if v.size == dim:  # a damaged row is simply recomputed
                    out[k] = v.astype(np.float32)
        return out

    def put_vectors(self, items: Iterable[tuple[str, np.ndarray]]) -> None:
        rows = [(k, int(v.size), np.asarray(v, dtype="<f4").tobytes()) for k, v in items]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO vectors (key, dim, data) VALUES (?, ?, ?)", rows)

    def counts(self) -> dict[str, int]:
        return {t: int(self._db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in ("scores", "vectors")}

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ScoreCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _chunks(keys: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(keys), _CHUNK):
        yield keys[i:i + _CHUNK]
