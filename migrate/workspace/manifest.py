"""The manifest (``manifest.json``) as typed data.

The manifest pins what an output directory holds: the configuration that decides the
vectors (and its fingerprint), the sources it was planned from, the shard plan, the
index settings, and once finished the outputs' checksums. Unknown keys (written by a
newer version, or by sinks) are kept on a round trip; a damaged or hand-edited manifest
is refused with a message saying how to recover (``--restart``).
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from migrate import __version__
from migrate.errors import StateError
from migrate.shards import ShardPlan

#: Versions whose outputs this version resumes, verifies and finalizes (same shard and manifest layout).
COMPATIBLE_VERSIONS = ("0.1.", "0.2.")


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class IndexSettings(_Model):
    type: Literal["flat", "hnsw", "ivfpq"] = "flat"
    params: dict[str, int | float | None] = Field(default_factory=dict)


class OutputFile(_Model):
    sha256: str
    bytes: int | None = None


class Result(_Model):
    rows: int
    documents: int
    chunked: bool = False
    dimensions: int
    index_type: str = "flat"
    tokens: int = 0


class SinkSpec(_Model):
    uri: str  # as the user gave it (a password is refused in an address, so there is none in it)
    payload_from: str | None = None  # the source collection whose payload fields are carried
    delete_missing: bool = False


class Manifest(_Model):
    tool: Literal["jina-migrate"] = "jina-migrate"
    version: str = __version__
    created: str = Field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    state: Literal["running", "complete"] = "running"
    config: dict[str, Any]
    config_fingerprint: str
    sources: list[dict[str, Any]] = Field(default_factory=list)
    source_fingerprint: str = ""
    plan: dict[str, Any]
    validation: dict[str, Any] = Field(default_factory=dict)
    index: IndexSettings = Field(default_factory=IndexSettings)
    embedder: dict[str, Any] | None = None
    executor: dict[str, Any] | None = None
    outputs: dict[str, OutputFile] = Field(default_factory=dict)
    result: Result | None = None
    #: Names the collections this output creates in databases (kept across reruns of the same output).
    run_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    #: Where the documents are and which fields hold what (a DocumentSpec), for steps run later.
    documents: dict[str, Any] | None = None
    #: Database destinations (``--sink``): their addresses (never a secret) and how they are filled.
    sinks: list[SinkSpec] = Field(default_factory=list)
    #: What finalize wrote into each destination (rows, upserted, deleted, index).
    destinations: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: Per destination, the cutover's record: what the application's name was before (nothing, an alias of X,
    #: the run's own table moved aside), its target, and the state (switching, done, rolled back); written and
    #: read only by ``migrate.sinks.switch``, so rollback restores exactly what was there.
    cutover: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: How reduced-precision vectors were quantised (``int8_scale``, what it was calibrated on); written at
    #: finalize by ``migrate.workspace.vector_format``, read by resume, verify, search and compare.
    quantization: dict[str, Any] = Field(default_factory=dict)

    def shard_plan(self, where: str = "manifest.json") -> ShardPlan:
        return ShardPlan.from_dict(self.plan, where)

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


def parse_manifest(data: Any, where: str) -> Manifest:
    """Validate a manifest read from disk; every problem is a StateError naming the file and the way out."""
    if not isinstance(data, dict) or data.get("tool") != "jina-migrate" or "plan" not in data:
        raise StateError(f"{where}: not a jina-migrate manifest",
                         hint="choose another output directory, or pass --restart to start over in this one")
    version = str(data.get("version", "?"))
    if not version.startswith(COMPATIBLE_VERSIONS):
        raise StateError(f"{where}: written by jina-migrate {version}, which this version ({__version__}) cannot "
                         "continue", hint=f"use jina-migrate {version} for this output, or --restart to start over")
    from migrate.config import EMBEDDING_FIELDS, MANIFEST_KEYS

    known = {MANIFEST_KEYS.get(k, k) for k in EMBEDDING_FIELDS}
    unknown = sorted(set(data.get("config") or {}) - known) if isinstance(data.get("config"), dict) else []
    if unknown:
        raise StateError(f"{where}: the manifest is damaged or was edited by hand (unknown setting "
                         f"{unknown[0]!r} in its configuration)", hint="restore it, or rerun with --restart")
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first.get("loc", ())) or "?"
        raise StateError(f"{where}: the manifest is damaged or was edited by hand ({loc}: {first.get('msg')})",
                         hint="restore it, or rerun `jina-migrate run` with --restart") from None
