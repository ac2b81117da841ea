"""Duplicate ids and id joins over millions of ids in bounded memory.

A hash table over ten million strings (what ``pyarrow.compute.count_distinct`` or
``index_in`` build) costs more than a gigabyte. Here each id is reduced to a 64-bit
BLAKE2b digest (8 bytes, computed batch by batch), the digests are sorted, and only the
ids whose digests collide are compared as strings: about 24 bytes per id at the peak.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import pyarrow as pa

CHUNK = 65_536


def digest_ids(ids: Iterable[str]) -> bytes:
    """8-byte digests of ``ids``, concatenated (the scan appends them batch by batch)."""
    h = hashlib.blake2b
    return b"".join(h(i.encode("utf-8", "surrogatepass"), digest_size=8).digest() for i in ids)


def hash_array(ids: pa.Array) -> np.ndarray:
    """uint64 digest of every id of an Arrow string array (read in chunks, never all as Python strings)."""
    parts = [np.frombuffer(digest_ids(ids.slice(s, CHUNK).to_pylist()), dtype="<u8")
             for s in range(0, len(ids), CHUNK)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype="<u8")


def duplicate_rows(ids: pa.Array, digests: np.ndarray) -> np.ndarray:
    """Rows whose id occurs more than once (each such id listed at all its rows), sorted."""
    order = np.argsort(digests, kind="stable")
    sorted_d = digests[order]
    same = np.nonzero(sorted_d[1:] == sorted_d[:-1])[0]
    if not len(same):
        return np.zeros(0, dtype=np.int64)
    cand = np.unique(np.concatenate([order[same], order[same + 1]]))
    values = ids.take(pa.array(cand)).to_pylist()
    seen: dict[str, list[int]] = {}
    for row, value in zip(cand.tolist(), values):
        seen.setdefault(value, []).append(row)
    return np.array(sorted(r for rows in seen.values() if len(rows) > 1 for r in rows), dtype=np.int64)


def lookup(keys: pa.Array, key_digests: np.ndarray, table: pa.Array, table_digests: np.ndarray) -> np.ndarray:
    """For each key, its row in ``table`` (-1 when absent); ``table`` ids must be unique."""
    order = np.argsort(table_digests, kind="stable")
    sorted_d = table_digests[order]
    pos = np.searchsorted(sorted_d, key_digests)
    pos = np.minimum(pos, max(len(sorted_d) - 1, 0))
    hit = (len(sorted_d) > 0) & (sorted_d[pos] == key_digests) if len(sorted_d) else np.zeros(len(keys), bool)
    out = np.full(len(keys), -1, dtype=np.int64)
    rows = np.nonzero(hit)[0]
    for s in range(0, len(rows), CHUNK):  # a digest match is confirmed on the strings themselves
        part = rows[s:s + CHUNK]
        cand = order[pos[part]]
        equal = np.array(keys.take(pa.array(part)).to_pylist(), dtype=object) == \
            np.array(table.take(pa.array(cand)).to_pylist(), dtype=object)
        out[part[equal]] = cand[equal]
    return out
