"""Shard plan, shard files, completion records and the manifest.

Like datatrove tasks: the plan cuts the corpus into fixed row ranges; a shard is done
when its Parquet file *and* its completion record exist and the record's checksum
matches the file. Reruns skip done shards; a partial or corrupt shard is redone.

A shard's name carries a key derived from its ids and text hashes, so a shard whose
documents did not change keeps its name (and its vectors) when documents are added.
Shard files of an older plan stay on disk until ``finalize`` as a content-hash cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from migrate import __version__
from migrate.atomic import clean_temp_files, sha256_file, write_json, write_with
from migrate.errors import StateError

MANIFEST = "manifest.json"
STALE_TEMP_S = 3600  # a temp file this old belongs to a dead run
SHARDS_DIR = "shards"


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def canonical_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def fingerprint_sources(paths: Iterable[Path | str | None]) -> list[dict[str, Any]]:
    """Name, size and sha256 of each source file; a changed file changes the plan."""
    out = []
    for p in paths:
        if p is None:
            continue
        p = Path(p)
        out.append({"path": str(p), "size": p.stat().st_size, "sha256": sha256_file(p)})
    return out


# --------------------------------------------------------------------------- plan

_SHARD_KEY = re.compile(r"[0-9a-f]{16}")

@dataclass(frozen=True)
class Shard:
    index: int
    start: int
    stop: int
    key: str  # 16 hex chars over (ids, text hashes) of the range

    @property
    def name(self) -> str:
        return f"shard-{self.index:05d}-{self.key}"

    @property
    def rows(self) -> int:
        return self.stop - self.start


@dataclass
class ShardPlan:
    shard_size: int
    total_rows: int
    shards: list[Shard]

    @classmethod
    def build(cls, ids: Sequence[str], hashes: Sequence[str], shard_size: int) -> ShardPlan:
        if shard_size < 1:
            raise StateError("shard size must be at least 1")
        shards = []
        for index, start in enumerate(range(0, len(ids), shard_size)):
            stop = min(start + shard_size, len(ids))
            h = hashlib.sha256()
            for i in range(start, stop):
                h.update(ids[i].encode("utf-8", "surrogatepass"))
                h.update(b"\x00")
                h.update(hashes[i].encode())
                h.update(b"\n")
            shards.append(Shard(index, start, stop, h.hexdigest()[:16]))
        return cls(shard_size=shard_size, total_rows=len(ids), shards=shards)

    def for_worker(self, worker: int, workers: int) -> list[Shard]:
        """Round-robin share of worker ``worker`` of ``workers`` (``--shard I/N``)."""
        return [s for s in self.shards if s.index % workers == worker]

    def as_dict(self) -> dict[str, Any]:
        return {"shard_size": self.shard_size, "total_rows": self.total_rows,
                "shards": [asdict(s) | {"name": s.name} for s in self.shards]}

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: Path | str = MANIFEST) -> ShardPlan:
        """Rebuild a plan from a manifest; a plan edited into something unsafe or inconsistent is refused.

        Shard names become file names, so each key must be 16 hex digits (no ``/``, no ``..``) and the
        shards must tile ``0..total_rows`` in order.
        """
        bad = StateError(f"{source}: the shard plan in the manifest is damaged or was edited",
                         hint="restore the manifest, or rerun with --restart")
        try:
            shards = [Shard(int(s["index"]), int(s["start"]), int(s["stop"]), str(s["key"])) for s in d["shards"]]
            plan = cls(shard_size=int(d["shard_size"]), total_rows=int(d["total_rows"]), shards=shards)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise bad from None
        pos = 0
        for i, s in enumerate(plan.shards):
            if s.index != i or s.start != pos or not s.start < s.stop or not _SHARD_KEY.fullmatch(s.key):
                raise bad
            pos = s.stop
        if pos != plan.total_rows:
            raise bad
        return plan


# --------------------------------------------------------------------------- shard files

def shard_schema(dim: int, chunked: bool = False) -> pa.Schema:
    """id, [chunk,] vector, text_sha256. Late-chunked shards hold one row per chunk (id repeats)."""
    fields = [("id", pa.string())] + ([("chunk", pa.int32())] if chunked else [])
    return pa.schema(fields + [("vector", pa.list_(pa.float32(), dim)), ("text_sha256", pa.string())])


def vectors_to_arrow(vectors: np.ndarray) -> pa.FixedSizeListArray:
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1), type=pa.float32()), v.shape[1])


def arrow_to_vectors(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    dim = arr.type.list_size
    return arr.flatten().to_numpy(zero_copy_only=False).reshape(len(arr), dim).astype(np.float32, copy=False)


class ShardStore:
    """The ``shards/`` directory of an output: write, check and read shards."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.dir = self.out_dir / SHARDS_DIR

    def data_path(self, shard: Shard) -> Path:
        return self.dir / f"{shard.name}.parquet"

    def record_path(self, shard: Shard) -> Path:
        return self.dir / f"{shard.name}.done.json"

    def check_inside(self) -> None:
        """Refuse a ``shards/`` that is a symlink leading out of the output directory."""
        if self.dir.is_symlink() or self.dir.exists():
            ensure_inside(self.out_dir, Path(SHARDS_DIR))

    def prepare(self) -> None:
        """Create ``shards/`` (refusing one that is a symlink out of the output) and drop crash leftovers.

        Only temp files older than ``STALE_TEMP_S`` go: a ``--shard I/N`` worker starting next to
        another must not delete the other's in-flight temp file. ``finalize`` removes the rest.
        """
        self.check_inside()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            from migrate.atomic import write_failed

            raise write_failed(self.dir, exc) from None
        clean_temp_files(self.dir, older_than_s=STALE_TEMP_S)

    def write(self, shard: Shard, ids: list[str], vectors: np.ndarray, hashes: list[str],
              meta: dict[str, Any], chunks: np.ndarray | None = None) -> dict[str, Any]:
        """Write the shard's Parquet file, then its completion record (both atomically).

        Without ``chunks`` there is one row per document of the shard; with them (late
        chunking) one row per chunk, ``ids`` repeating the document id.
        """
        if vectors.shape[0] != len(ids) or (chunks is None and len(ids) != shard.rows):
            raise StateError(f"shard {shard.name}: got {vectors.shape[0]} vectors for {shard.rows} documents")
        cols = {"id": pa.array(ids, pa.string())}
        if chunks is not None:
            cols["chunk"] = pa.array(chunks, pa.int32())
        cols |= {"vector": vectors_to_arrow(vectors), "text_sha256": pa.array(hashes, pa.string())}
        table = pa.table(cols, schema=shard_schema(vectors.shape[1], chunked=chunks is not None))
        path = self.data_path(shard)
        write_with(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
        record = {"shard": shard.name, "index": shard.index, "docs": shard.rows, "rows": len(ids),
                  "dim": int(vectors.shape[1]), "sha256": sha256_file(path)} | meta
        write_json(self.record_path(shard), record)
        return record

    def record(self, shard: Shard) -> dict[str, Any] | None:
        try:
            rec = json.loads(self.record_path(shard).read_text())
        except (OSError, ValueError):
            return None
        return rec if isinstance(rec, dict) else None

    def is_complete(self, shard: Shard, config_fingerprint: str | None = None) -> bool:
        """Done = record present, file present, checksum and row count agree (and same config)."""
        rec = self.record(shard)
        path = self.data_path(shard)
        if not rec or path.is_symlink() or not path.is_file() or rec.get("docs", rec.get("rows")) != shard.rows:
            return False
        if rec.get("shard", shard.name) != shard.name:  # a record (and file) renamed from another shard
            return False
        if config_fingerprint and rec.get("config_fingerprint") != config_fingerprint:
            return False
        return rec.get("sha256") == sha256_file(path)

    def read(self, shard: Shard) -> pa.Table:
        return pq.read_table(self.data_path(shard))

    def files(self) -> list[Path]:
        return sorted(self.dir.glob("shard-*.parquet")) if self.dir.is_dir() else []

    def stale_files(self, plan: ShardPlan) -> list[Path]:
        """Shard files of an earlier plan (kept as a cache until finalize)."""
        current = {f"{s.name}.parquet" for s in plan.shards}
        return [p for p in self.files() if p.name not in current]

    def remove_stale(self, plan: ShardPlan) -> int:
        stale = self.stale_files(plan)
        for p in stale:
            p.unlink(missing_ok=True)
            p.with_name(p.name.replace(".parquet", ".done.json")).unlink(missing_ok=True)
        return len(stale)


# --------------------------------------------------------------------------- manifest

def load_manifest(out_dir: Path) -> dict[str, Any] | None:
    path = Path(out_dir) / MANIFEST
    if not path.exists() and not path.is_symlink():
        return None
    ensure_inside(Path(out_dir), Path(MANIFEST))  # a manifest symlinked out of the output is refused
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise StateError(f"{path}: manifest is not valid JSON ({exc})",
                         hint="restore it or start over with --restart") from None
    if not isinstance(data, dict) or data.get("tool") != "jina-migrate" or "plan" not in data:
        raise StateError(f"{path}: not a jina-migrate manifest", hint="choose an empty output directory or --restart")
    return data


def save_manifest(out_dir: Path, manifest: dict[str, Any]) -> None:
    manifest = dict(manifest)
    manifest.setdefault("tool", "jina-migrate")
    manifest["version"] = __version__
    write_json(Path(out_dir) / MANIFEST, manifest)


def reset_output(out_dir: Path) -> None:
    """--restart: remove shards, outputs and manifest (never anything else in the directory)."""
    out_dir = Path(out_dir)
    shutil.rmtree(out_dir / SHARDS_DIR, ignore_errors=True)
    for name in (MANIFEST, "embeddings.parquet", "index.faiss", "id_map.parquet"):
        (out_dir / name).unlink(missing_ok=True)


def ensure_inside(base: Path, candidate: Path) -> Path:
    """Refuse paths (from a manifest or id map) that resolve outside ``base``."""
    base_r = Path(os.path.realpath(base))
    cand_r = Path(os.path.realpath(base / candidate))
    if base_r != cand_r and base_r not in cand_r.parents:
        raise StateError(f"{candidate}: path points outside the output directory {base}",
                         hint="the manifest was edited or the directory holds a hostile symlink")
    return cand_r
