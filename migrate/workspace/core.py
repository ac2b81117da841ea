"""``Workspace``: the one object that owns a migration's output directory.

Layout::

    OUT/
      manifest.json        typed Manifest: configuration, sources, shard plan, state, outputs
      plan.parquet         id, faiss_id, text_sha256, loc of every planned document
      shards/              shard-NNNNN-KEY.parquet + shard-NNNNN-KEY.done.json (completion record)
      .locks/              one lock file per running worker (pid, host): tells a live run from a stopped one
      embeddings.parquet, id_map.parquet, index.faiss      written by the FAISS sink at finalize

Nothing else in the package opens these files: the pipeline, the executors (local and
Ray workers), ``status``, ``verify`` and ``finalize`` go through this class. Every write
is atomic (temp file, fsync, rename); a shard counts as done only when its completion
record exists and agrees with the shard file (checksum, rows, configuration).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from migrate.atomic import clean_temp_files, sha256_file, write_failed, write_json, write_with
from migrate.errors import StateError
from migrate.shards import Shard, ShardPlan
from migrate.workspace.manifest import Manifest, parse_manifest

MANIFEST = "manifest.json"
PLAN_TABLE = "plan.parquet"
SHARDS_DIR = "shards"
LOCKS_DIR = ".locks"
STALE_TEMP_S = 3600  # a temp file this old belongs to a dead run
#: Files ``--restart`` removes (never anything else in the directory).
OWNED_FILES = (MANIFEST, PLAN_TABLE, "embeddings.parquet", "index.faiss", "id_map.parquet")
#: Key of the completion facts stored inside each shard file's Parquet metadata (covered by its checksum).
SHARD_META_KEY = b"jina_migrate"


def ensure_inside(base: Path, candidate: Path) -> Path:
    """Refuse paths (from a manifest or id map) that resolve outside ``base``."""
    base_r = Path(os.path.realpath(base))
    cand_r = Path(os.path.realpath(base / candidate))
    if base_r != cand_r and base_r not in cand_r.parents:
        raise StateError(f"{candidate}: path points outside the output directory {base}",
                         hint="the manifest was edited or the directory holds a hostile symlink")
    return cand_r


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


@dataclass
class PlanSlice:
    """The planned rows of one shard, read from ``plan.parquet``."""

    ids: list[str]
    faiss_ids: np.ndarray
    hashes: list[str]  # hex sha256 of each text
    locs: np.ndarray | None  # source locators (None for outputs of version 0.1, which did not record them)


class Workspace:
    """The output directory of one migration (see the module docstring)."""

    def __init__(self, out: Path | str) -> None:
        self.out = Path(out)
        self.shards_dir = self.out / SHARDS_DIR
        self._plan_file: pq.ParquetFile | None = None
        self._plan_groups: np.ndarray | None = None
        self._group_cache: tuple[int, pa.Table] | None = None

    def __repr__(self) -> str:
        return f"Workspace({str(self.out)!r})"

    # ------------------------------------------------------------------ manifest

    @property
    def manifest_path(self) -> Path:
        return self.out / MANIFEST

    def has_manifest(self) -> bool:
        return self.manifest_path.exists() or self.manifest_path.is_symlink()

    def read_manifest(self) -> Manifest | None:
        """The manifest, or None when there is none; a damaged or foreign one is a StateError."""
        if not self.has_manifest():
            return None
        ensure_inside(self.out, Path(MANIFEST))  # a manifest symlinked out of the output is refused
        try:
            data = json.loads(self.manifest_path.read_text())
        except (OSError, ValueError) as exc:
            raise StateError(f"{self.manifest_path}: manifest is not valid JSON ({str(exc)[:80]})",
                             hint="restore it, or pass --restart to start over in this directory") from None
        return parse_manifest(data, str(self.manifest_path))

    def manifest(self) -> Manifest:
        """The manifest of an existing output (StateError naming the way out when there is none)."""
        if not self.out.is_dir():
            what = "is a file, not an output directory" if self.out.exists() else "no such output directory"
            raise StateError(f"{self.out}: {what}",
                             hint="point --out at the directory a `jina-migrate run` wrote")
        m = self.read_manifest()
        if m is None:
            raise StateError(f"{self.out}: no manifest.json here", hint="run `jina-migrate run` first")
        return m

    def write_manifest(self, manifest: Manifest) -> None:
        from migrate import __version__

        manifest.version = __version__
        write_json(self.manifest_path, manifest.as_json())

    # ------------------------------------------------------------------ lifecycle

    def create(self) -> None:
        """Create the directory and ``shards/`` (refusing a ``shards/`` symlinked out) and drop crash leftovers.

        Only temp files older than ``STALE_TEMP_S`` go: a ``--shard I/N`` worker starting next to
        another must not delete the other's in-flight temp file. ``finalize`` removes the rest.
        """
        if self.out.exists() and not self.out.is_dir():
            raise StateError(f"{self.out}: exists and is not a directory", hint="choose another --out")
        self.check_inside()
        try:
            self.shards_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_failed(self.shards_dir, exc) from None
        clean_temp_files(self.shards_dir, older_than_s=STALE_TEMP_S)

    def reset(self) -> None:
        """``--restart``: remove shards, outputs, plan and manifest (even a damaged one); nothing else."""
        shutil.rmtree(self.shards_dir, ignore_errors=True)
        for name in OWNED_FILES:
            (self.out / name).unlink(missing_ok=True)
        self._plan_file = None

    def check_inside(self) -> None:
        """Refuse a ``shards/`` that is a symlink leading out of the output directory."""
        if self.shards_dir.is_symlink() or self.shards_dir.exists():
            ensure_inside(self.out, Path(SHARDS_DIR))

    # ------------------------------------------------------------------ plan table

    def write_plan_table(self, batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> None:
        """``plan.parquet`` (id, faiss_id, text_sha256, loc), written batch by batch."""
        def write(tmp: Path) -> None:
            with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
                for batch in batches:
                    writer.write_batch(batch)

        write_with(self.out / PLAN_TABLE, write)
        self._plan_file = None

    def _open_plan(self) -> pq.ParquetFile:
        if self._plan_file is None:
            path = ensure_inside(self.out, Path(PLAN_TABLE))
            try:
                self._plan_file = pq.ParquetFile(path)
            except (OSError, pa.ArrowException) as exc:
                raise StateError(f"{self.out / PLAN_TABLE}: missing or unreadable ({str(exc).strip()[:100]})",
                                 hint="rerun `jina-migrate run` with the same sources to rebuild it") from None
            meta = self._plan_file.metadata
            self._plan_groups = np.cumsum([0] + [meta.row_group(i).num_rows for i in range(meta.num_row_groups)])
            self._group_cache = None
        return self._plan_file

    def plan_rows(self) -> int:
        return int(self._open_plan().metadata.num_rows)

    def plan_slice(self, shard: Shard) -> PlanSlice:
        """The planned rows of ``shard`` (reads one or two row groups of ``plan.parquet``)."""
        pf = self._open_plan()
        assert self._plan_groups is not None
        first = int(np.searchsorted(self._plan_groups, shard.start, side="right") - 1)
        last = int(np.searchsorted(self._plan_groups, shard.stop - 1, side="right") - 1)
        parts = []
        for g in range(first, last + 1):
            if self._group_cache is None or self._group_cache[0] != g:
                self._group_cache = (g, pf.read_row_group(g))
            parts.append(self._group_cache[1])
        table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        part = table.slice(shard.start - int(self._plan_groups[first]), shard.rows)
        locs = part.column("loc").to_numpy() if "loc" in part.column_names else None
        return PlanSlice(ids=part.column("id").to_pylist(), faiss_ids=part.column("faiss_id").to_numpy(),
                         hashes=part.column("text_sha256").to_pylist(), locs=locs)

    def iter_plan(self, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
        yield from self._open_plan().iter_batches(batch_size=65_536, columns=columns)

    # ------------------------------------------------------------------ shards

    def shard_path(self, shard: Shard) -> Path:
        return self.shards_dir / f"{shard.name}.parquet"

    def record_path(self, shard: Shard) -> Path:
        return self.shards_dir / f"{shard.name}.done.json"

    def write_shard(self, shard: Shard, table: pa.Table, meta: dict[str, Any]) -> dict[str, Any]:
        """Write the shard file, then its completion record (both atomically); returns the record.

        The record's facts (rows, tokens, configuration) are also stored in the file's own Parquet
        metadata, which its checksum covers, so an edited record is caught by ``verify``.
        """
        if "chunk" not in table.column_names and table.num_rows != shard.rows:
            raise StateError(f"shard {shard.name}: got {table.num_rows} vectors for {shard.rows} documents")
        dim = table.schema.field("vector").type.list_size
        facts = {"shard": shard.name, "index": shard.index, "docs": shard.rows, "rows": table.num_rows,
                 "dim": int(dim)} | {k: meta[k] for k in ("config_fingerprint", "tokens", "embedded", "cached")
                                     if k in meta}
        table = table.replace_schema_metadata({SHARD_META_KEY: json.dumps(facts, sort_keys=True).encode()})
        path = self.shard_path(shard)
        write_with(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
        stat = path.stat()
        record = facts | {"sha256": sha256_file(path), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns} | meta
        write_json(self.record_path(shard), record)
        return record

    def write_record(self, shard: Shard, record: dict[str, Any]) -> None:
        """Rewrite a completion record (Ray workers add where they ran)."""
        write_json(self.record_path(shard), record)

    def record(self, shard: Shard) -> dict[str, Any] | None:
        try:
            rec = json.loads(self.record_path(shard).read_text())
        except (OSError, ValueError):
            return None
        return rec if isinstance(rec, dict) else None

    def is_complete(self, shard: Shard, config_fingerprint: str | None = None, *, thorough: bool = False) -> bool:
        """Done = record present, file present, row count and checksum agree (and same configuration).

        The checksum is recomputed when ``thorough`` (verify, finalize) or when the file's size or
        modification time differ from the record's; otherwise (resuming a run of millions of
        documents) they vouch for the file, which was renamed into place only once complete.
        """
        rec = self.record(shard)
        path = self.shard_path(shard)
        if not rec or path.is_symlink() or not path.is_file() or rec.get("docs", rec.get("rows")) != shard.rows:
            return False
        if rec.get("shard", shard.name) != shard.name:  # a record (and file) renamed from another shard
            return False
        if config_fingerprint and rec.get("config_fingerprint") != config_fingerprint:
            return False
        if not thorough:
            stat = path.stat()
            if rec.get("bytes") == stat.st_size and rec.get("mtime_ns") == stat.st_mtime_ns:
                return True
        return rec.get("sha256") == sha256_file(path)

    def shard_facts(self, shard: Shard) -> dict[str, Any] | None:
        """The completion facts stored inside the shard file (None for files of version 0.1)."""
        try:
            meta = pq.read_schema(self.shard_path(shard)).metadata or {}
        except (OSError, pa.ArrowException):
            return None
        raw = meta.get(SHARD_META_KEY)
        return json.loads(raw) if raw else None

    def read_shard(self, shard: Shard, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(self.shard_path(shard), columns=columns)

    def shard_files(self) -> list[Path]:
        return sorted(self.shards_dir.glob("shard-*.parquet")) if self.shards_dir.is_dir() else []

    def has_shards(self) -> bool:
        return bool(self.shard_files())

    def stale_files(self, plan: ShardPlan) -> list[Path]:
        """Shard files of an earlier plan (kept as a cache until finalize)."""
        current = {f"{s.name}.parquet" for s in plan.shards}
        return [p for p in self.shard_files() if p.name not in current]

    def remove_stale(self, plan: ShardPlan) -> int:
        stale = self.stale_files(plan)
        for p in stale:
            p.unlink(missing_ok=True)
            p.with_name(p.name.replace(".parquet", ".done.json")).unlink(missing_ok=True)
        return len(stale)

    def clean_temp_files(self) -> None:
        """Temp files of runs killed mid-write (call only when no worker is running)."""
        clean_temp_files(self.out)
        clean_temp_files(self.shards_dir)

    def spent_tokens(self, plan: ShardPlan, config_fingerprint: str) -> int:
        return sum(int((self.record(s) or {}).get("tokens", 0)) for s in plan.shards
                   if self.is_complete(s, config_fingerprint))

    # ------------------------------------------------------------------ locks (live runs)

    @contextlib.contextmanager
    def lock(self, worker: str = "0/1") -> Iterator[Path]:
        """Mark a run of ``worker`` as live for ``status`` (removed on exit, also on Ctrl-C)."""
        locks = self.out / LOCKS_DIR
        locks.mkdir(parents=True, exist_ok=True)
        path = locks / f"{socket.gethostname()}-{os.getpid()}.json"
        write_json(path, {"pid": os.getpid(), "host": socket.gethostname(), "worker": worker,
                          "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)

    def runs(self) -> list[dict[str, Any]]:
        """Lock files of runs that are, or were when they died, working on this output; each with ``alive``."""
        out = []
        locks = self.out / LOCKS_DIR
        for p in sorted(locks.glob("*.json")) if locks.is_dir() else []:
            try:
                info = json.loads(p.read_text())
            except (OSError, ValueError):
                continue
            if not isinstance(info, dict):
                continue
            info["alive"] = _alive(info)
            out.append(info)
        return out


def _alive(info: dict[str, Any]) -> bool | None:
    """True/False for a process on this host; None when it runs elsewhere (cannot be checked from here)."""
    if info.get("host") != socket.gethostname():
        return None
    try:
        pid = int(info.get("pid", -1))
        os.kill(pid, 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True

