"""The shard plan: fixed row ranges of the planned documents, each named by its content.

Like datatrove tasks: the plan cuts the corpus into fixed row ranges; a shard is done
when its Parquet file *and* its completion record exist and agree (see
:class:`migrate.workspace.Workspace`). A shard's name carries a key derived from its ids
and text hashes, so a shard whose documents did not change keeps its name (and its
vectors) when documents are added elsewhere, and the plan is identical on every machine.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from migrate.errors import StateError


def canonical_hash(obj: Any) -> str:
    """sha256 of an object's canonical JSON (sorted keys): configuration and source fingerprints."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def shard_key(ids: Sequence[str], hex_hashes: Sequence[str]) -> str:
    """16 hex digits over a range's ids and text hashes (unchanged since version 0.1.0)."""
    h = hashlib.sha256()
    for doc_id, text_sha in zip(ids, hex_hashes):
        h.update(doc_id.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
        h.update(text_sha.encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def _slice(ids: Any, start: int, stop: int) -> list[str]:
    part = ids[start:stop]
    return part.to_pylist() if hasattr(part, "to_pylist") else list(part)


def _hex(hashes: Any, start: int, stop: int) -> list[str]:
    part = hashes[start:stop]
    if getattr(part, "ndim", 1) == 2:
        return [bytes(h).hex() for h in part]
    return list(part)


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
    def build(cls, ids: Any, hashes: Any, shard_size: int) -> ShardPlan:
        """Cut ``len(ids)`` rows into ranges of ``shard_size``. ``ids``: a sequence of str or a pyarrow string
        array; ``hashes``: hex strings, or an (n, 32) uint8 array of sha256 digests."""
        if shard_size < 1:
            raise StateError("shard size must be at least 1")
        n = len(ids)
        shards = []
        for index, start in enumerate(range(0, n, shard_size)):
            stop = min(start + shard_size, n)
            shards.append(Shard(index, start, stop, shard_key(_slice(ids, start, stop), _hex(hashes, start, stop))))
        return cls(shard_size=shard_size, total_rows=n, shards=shards)

    def for_worker(self, worker: int, workers: int) -> list[Shard]:
        """Round-robin share of worker ``worker`` of ``workers`` (``--shard I/N``)."""
        return [s for s in self.shards if s.index % workers == worker]

    def as_dict(self) -> dict[str, Any]:
        return {"shard_size": self.shard_size, "total_rows": self.total_rows,
                "shards": [asdict(s) | {"name": s.name} for s in self.shards]}

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: Path | str = "manifest.json") -> ShardPlan:
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


