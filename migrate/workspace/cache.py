"""The content-hash cache: vectors already computed for a text under the same configuration.

Its sources are shard files of an earlier plan in this output (documents were added or
changed, so shard ranges moved) and earlier outputs given with ``--cache``. The cache
holds no vectors: it indexes the first 8 bytes of every cached text hash (16 bytes per
entry in RAM), and a lookup reads only the row groups holding the hits, then checks
the full hash. So a cache of millions of vectors costs tens of MB, not tens of GB.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from migrate.workspace.core import arrow_to_vectors


def _prefixes(hex_hashes: Sequence[str]) -> np.ndarray:
    return np.array([int(h[:16], 16) if len(h) >= 16 else 0 for h in hex_hashes], dtype=np.uint64)


class EmbeddingCache:
    """text sha256 -> vector, over Parquet files with ``text_sha256`` and ``vector`` columns."""

    def __init__(self) -> None:
        self.files: list[pq.ParquetFile] = []
        self.paths: list[Path] = []
        self._groups: list[np.ndarray] = []  # row-group start offsets per file
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._prefix = np.zeros(0, np.uint64)
        self._file = np.zeros(0, np.int32)
        self._row = np.zeros(0, np.int64)
        self._dirty = False

    def __len__(self) -> int:
        self._index()
        return len(self._prefix)

    def add_file(self, path: Path) -> None:
        """Index a file's hashes; a damaged file is simply not used."""
        try:
            pf = pq.ParquetFile(path)
            if not {"text_sha256", "vector"} <= set(pf.schema_arrow.names):
                return
            hashes = pf.read(columns=["text_sha256"]).column(0).to_pylist()
        except (OSError, pa.ArrowException):
            return
        meta = pf.metadata
        self._groups.append(np.cumsum([0] + [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]))
        fid = len(self.files)
        self.files.append(pf)
        self.paths.append(Path(path))
        self._parts.append((_prefixes(hashes), np.full(len(hashes), fid, np.int32), np.arange(len(hashes))))
        self._dirty = True

    def _index(self) -> None:
        if not self._dirty:
            return
        prefix = np.concatenate([self._prefix] + [p[0] for p in self._parts])
        file = np.concatenate([self._file] + [p[1] for p in self._parts])
        row = np.concatenate([self._row] + [p[2] for p in self._parts])
        order = np.argsort(prefix, kind="stable")  # stable: the first file added wins among equal hashes
        self._prefix, self._file, self._row = prefix[order], file[order], row[order]
        self._parts = []
        self._dirty = False

    def lookup(self, hashes: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """(mask of hits, vectors of the hits in order)."""
        self._index()
        n = len(hashes)
        hit = np.zeros(n, dtype=bool)
        if not len(self._prefix) or not n:
            return hit, None
        q = _prefixes(hashes)
        pos = np.searchsorted(self._prefix, q)
        cand = (pos < len(self._prefix)) & (self._prefix[np.minimum(pos, len(self._prefix) - 1)] == q)
        if not cand.any():
            return hit, None
        found: dict[int, np.ndarray] = {}
        want = np.nonzero(cand)[0]
        files, rows = self._file[pos[want]], self._row[pos[want]]
        for f in np.unique(files).tolist():
            sel = files == f
            got_hashes, got_vecs = self._read_rows(f, rows[sel])
            for i, h, v in zip(want[sel].tolist(), got_hashes, got_vecs):
                if h == hashes[i]:  # the full hash must match, not just its prefix
                    found[i] = v
        if not found:
            return hit, None
        order = sorted(found)
        hit[order] = True
        return hit, np.stack([found[i] for i in order]).astype(np.float32, copy=False)

    def _read_rows(self, f: int, rows: np.ndarray) -> tuple[list[str], np.ndarray]:
        starts = self._groups[f]
        group_of = np.searchsorted(starts, rows, side="right") - 1
        groups = np.unique(group_of)
        table = self.files[f].read_row_groups(groups.tolist(), columns=["text_sha256", "vector"])
        sizes = np.diff(starts)[groups]
        base = dict(zip(groups.tolist(), (np.cumsum(sizes) - sizes).tolist()))
        pos = np.array([base[g] for g in group_of.tolist()], np.int64) + (rows - starts[group_of])
        picked = table.take(pa.array(pos))
        return picked.column("text_sha256").to_pylist(), arrow_to_vectors(picked.column("vector"))
