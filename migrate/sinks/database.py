"""A NEW collection in a vector database as a destination (``--sink URI``).

At ``finalize`` every shard not yet delivered is written into the collection with
idempotent upserts keyed by id (each engine's bulk path: pgvector ``COPY ... BINARY``,
Qdrant batched upserts, Milvus batched inserts), then a delivery record is written beside
the shard (``shards/NAME.to-KEY.json``). A run killed mid-upsert leaves rows that the rerun
overwrites; a shard whose record exists is not written again. The payload of each row comes
from the source collection (every field, unchanged) or, for a documents file, its text.
Then, with ``--delete-missing``, rows whose ids are no longer planned are deleted, and the
ANN index is built (after the bulk load).

Incremental re-index (a rerun after documents changed): into a collection that already holds
rows, a shard's rows are first read back by id and only rows whose vector or payload differ
(or that are new) are upserted, so unchanged rows are never rewritten; a delivered shard
whose source payload changed since (a field edited, the text not) is delivered again the same
way. The counts (``upserted``, ``unchanged``, ``deleted``) go to the summary and the manifest.

The collection is always created new (with v3's width and an inner-product/cosine metric)
and marked with the run id; the old collection is never written to.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from migrate.atomic import write_json
from migrate.engines import IndexSpec, collection_address, open_engine, parse_address
from migrate.engines.address import Address
from migrate.engines.base import row_digests, vector_array, vectors_of
from migrate.errors import ConfigError, StateError
from migrate.shards import Shard
from migrate.sinks.base import PlanFacts, SinkCheck, SinkResult
from migrate.workspace import Workspace
from migrate.workspace.manifest import IndexSettings

SAMPLE = 64  # rows verify compares with the shards
FETCH = 1000  # ids per read-back when comparing a shard with what the collection holds


def sink_key(uri: str) -> str:
    """A short file-name-safe key of a destination (its address without secrets)."""
    return hashlib.sha256(str(parse_address(uri)).encode()).hexdigest()[:12]


def index_spec(settings: IndexSettings, override: str | None = None) -> IndexSpec:
    """The run's index settings in the engine's terms (``IndexSpec.for_run``)."""
    p = settings.params
    return IndexSpec.for_run(settings.type, p.get("hnsw_m"), p.get("hnsw_ef_construction"), p.get("ivf_nlist"),
                             override)


def _location(address: Address) -> Address:
    """The database an address is in (engine, server or path, database), without the collection or fields."""
    return replace(address, collection=None, alias=None, id_field=None, text_field=None, vector_field=None,
                   payload=None)


def _payload_digest(table: pa.Table) -> str:
    """sha256 over the rows of ``table`` (id + payload, in row order): changes when any payload value does."""
    h = hashlib.sha256()
    for d in row_digests(table):
        h.update(d)
    return h.hexdigest()


class CollectionSink:
    """One destination collection (see the module docstring)."""

    def __init__(self, ws: Workspace, uri: str, settings: IndexSettings, *, run: str,
                 payload_from: str | None = None, documents: Any = None, delete_missing: bool = False) -> None:
        self.ws = ws
        self.uri = uri
        self.address = collection_address(uri, "--sink")
        self.collection = self.address.collection
        self.name = f"{self.address.engine}:{self.collection}"
        self.key = sink_key(uri)
        self.index = index_spec(settings, self.address.option("index"))
        self.run = run
        self.payload_from = payload_from
        self.documents = documents  # a DocumentSpec: the text of a documents file becomes the payload
        self.delete_missing = delete_missing
        self._engine: Any = None
        self._source: Any = None
        self._source_info: Any = None
        self._text_source: Any = None

    # ------------------------------------------------------------------ connections

    @property
    def engine(self) -> Any:
        if self._engine is None:
            path = self.address.path
            if self.address.engine == "milvus" and path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)  # Milvus Lite creates the file, not its folder
            self._engine = open_engine(self.address)
        return self._engine

    def _source_engine(self) -> tuple[Any, Any]:
        """The source collection (for payload), opened separately: a scan there must not block our writes."""
        if self._source is None:
            addr = parse_address(self.payload_from)
            self._source = open_engine(addr)
            self._source_info = self._source.describe(addr.collection)
        return self._source, self._source_info

    def close(self) -> None:
        for e in (self._engine, self._source):
            if e is not None:
                e.close()
        self._engine = self._source = None

    def describe(self) -> dict[str, Any]:
        return {"kind": self.address.engine, "address": str(self.address), "collection": self.collection,
                "alias": self.address.alias, "index": self.index.kind}

    # ------------------------------------------------------------------ lifecycle

    def check(self, facts: PlanFacts) -> None:
        """Before embedding: the engine is reachable and the destination is new (or this run's own)."""
        if facts.chunked:
            raise ConfigError(f"--sink {self.address}: database destinations take one vector per document; "
                              "late chunking makes several", hint="drop --late-chunking, or --sink")
        if self.payload_from:
            src = parse_address(self.payload_from)
            if _location(src) == _location(self.address):
                if src.collection == self.collection:
                    raise ConfigError(f"--sink {self.address}: the destination is the source collection",
                                      hint="name a NEW collection: jina-migrate never writes into the old one")
                _, info = self._source_engine()
                if info.name == self.collection:  # the source's name is an alias/view of the destination
                    raise ConfigError(f"--old-index {src}: {src.collection!r} now points at the destination "
                                      f"{self.collection!r} (after a cutover)",
                                      hint="read the old collection by its own name, or pass the documents "
                                           "with --docs")
        eng = self.engine
        if eng.exists(self.collection):
            info = eng.describe(self.collection)
            if info.created_by_run is None:
                raise StateError(f"{self.address}: {self.collection!r} already exists and was not created by "
                                 "jina-migrate", hint="name a new collection for the destination")
            if info.created_by_run != self.run:
                raise StateError(f"{self.address}: {self.collection!r} was created by another jina-migrate run",
                                 hint="name a new collection, or rerun with that run's --out")

    def _payload_schema(self) -> tuple[pa.Schema, pa.DataType | None]:
        if self.payload_from:
            _, info = self._source_engine()
            return info.payload, info.id_type
        return pa.schema([("text", pa.string())]), None

    def _source_payload(self, ids: list[str]) -> pa.Table:
        """id + every payload field of ``ids`` from the source collection, in the order of ``ids``."""
        src, info = self._source_engine()
        got = src.fetch(parse_address(self.payload_from).collection, ids, with_vectors=False)
        pos = {v: i for i, v in enumerate(got.column("id").to_pylist())}
        if len(pos) != len(ids):
            missing = [i for i in ids if i not in pos][:5]
            raise StateError(f"{self.payload_from}: rows {missing} are gone from the source since the run was "
                             "planned", hint="rerun the same command: it re-plans from the collection as it is now")
        order = pa.array([pos[i] for i in ids], pa.int64())
        return pa.table({"id": pa.array(ids, pa.string())} | {f.name: got.column(f.name).take(order)
                                                              for f in info.payload})

    def _rows(self, table: pa.Table, shard: Shard) -> tuple[pa.Table, str | None]:
        """id + vector of a shard, with each row's payload; and the digest of that payload (source collections)."""
        ids = table.column("id").to_pylist()
        cols: dict[str, Any] = {"id": pa.array(ids, pa.string()), "vector": table.column("vector").combine_chunks()}
        digest = None
        if self.payload_from:
            payload = self._source_payload(ids)
            digest = _payload_digest(payload)
            for name in payload.column_names[1:]:
                cols[name] = payload.column(name)
        elif self.documents is not None:
            from migrate.sources import open_documents_source

            if self._text_source is None:
                self._text_source = open_documents_source(self.documents)
            planned = self.ws.plan_slice(shard)
            cols["text"] = pa.array(self._text_source.read(planned.locs, planned.ids), pa.string())
        return pa.table(cols), digest

    def _changed(self, rows: pa.Table) -> pa.Table:
        """The rows the collection does not hold exactly (absent, or another vector or payload)."""
        keep: list[int] = []
        for start in range(0, rows.num_rows, FETCH):
            part = rows.slice(start, FETCH)
            ids = part.column("id").to_pylist()
            got = self.engine.fetch(self.collection, ids, with_vectors=True)
            have = dict(zip(got.column("id").to_pylist(), row_digests(got.select(part.column_names))))
            keep += [start + i for i, (rid, d) in enumerate(zip(ids, row_digests(part))) if have.get(rid) != d]
        return rows.take(pa.array(keep, pa.int64()))

    def delivery_path(self, shard: Shard) -> Path:
        return self.ws.shards_dir / f"{shard.name}.to-{self.key}.json"

    def _delivery(self, shard: Shard) -> dict[str, Any] | None:
        """The delivery record of ``shard`` if it matches the shard's completion record and this run."""
        rec = self.ws.record(shard) or {}
        try:
            done = json.loads(self.delivery_path(shard).read_text())
        except (OSError, ValueError):
            return None
        ok = isinstance(done, dict) and done.get("sha256") == rec.get("sha256") and done.get("run") == self.run
        return done if ok else None

    def delivered(self, shard: Shard) -> bool:
        return self._delivery(shard) is not None

    def write_shard(self, shard: Shard, table: pa.Table, *, compare: bool = True) -> int:
        """Upsert one shard (idempotent; with ``compare``, only rows the collection does not already hold),
        then record its delivery. Returns the rows upserted."""
        rows, digest = self._rows(table, shard)
        if not self.engine.exists(self.collection):
            schema, id_type = self._payload_schema()
            dim = table.schema.field("vector").type.list_size
            self.engine.create(self.collection, dim=dim, payload=schema, index=self.index, run=self.run,
                               id_type=id_type)
            compare = False
        todo = self._changed(rows) if compare else rows
        self.engine.upsert(self.collection, todo)
        write_json(self.delivery_path(shard), {"sink": self.name, "run": self.run, "rows": rows.num_rows,
                                               "upserted": todo.num_rows, "payload_sha256": digest,
                                               "sha256": (self.ws.record(shard) or {}).get("sha256")})
        return todo.num_rows

    def _payload_changed(self, shard: Shard, done: dict[str, Any]) -> bool:
        """A delivered shard whose rows' payload changed in the source collection since its delivery."""
        if not self.payload_from or not done.get("payload_sha256"):
            return False
        ids = self.ws.read_shard(shard, columns=["id"]).column("id").to_pylist()
        return _payload_digest(self._source_payload(ids)) != done["payload_sha256"]

    def finalize(self) -> SinkResult:
        manifest = self.ws.manifest()
        plan = manifest.shard_plan()
        # Into a collection that holds rows already (a rerun, a nightly re-index), compare before writing.
        compare = self.engine.exists(self.collection) and self.engine.count(self.collection) > 0
        upserted = 0
        for shard in plan.shards:
            done = self._delivery(shard)
            if done is not None and not self._payload_changed(shard, done):
                continue
            upserted += self.write_shard(shard, self.ws.read_shard(shard, columns=["id", "vector"]),
                                         compare=compare)
        self._remove_stale_records(plan)
        deleted = self._delete_missing() if self.delete_missing else 0
        self.engine.build_index(self.collection, self.index)
        rows = self.engine.count(self.collection)
        info = {"name": self.name, "address": str(self.address), "collection": self.collection,
                "alias": self.address.alias, "rows": rows, "upserted": upserted, "deleted": deleted,
                "unchanged": plan.total_rows - upserted, "index": self.index.kind}
        return SinkResult(outputs={}, info=info)

    def _remove_stale_records(self, plan: Any) -> None:
        """Delivery records of shards an earlier plan had (a nightly rerun renames changed shards)."""
        current = {self.delivery_path(s).name for s in plan.shards}
        for p in self.ws.shards_dir.glob(f"shard-*.to-{self.key}.json"):
            if p.name not in current:
                p.unlink(missing_ok=True)

    def _planned_ids(self) -> set[str]:
        ids: set[str] = set()
        for batch in self.ws.iter_plan(columns=["id"]):
            ids.update(batch.column(0).to_pylist())
        return ids

    def _stored_ids(self) -> list[str]:
        ids: list[str] = []
        for batch in self.engine.scan(self.collection, with_vectors=False):
            ids += batch.column("id").to_pylist()
        return ids

    def _delete_missing(self) -> int:
        """Delete rows whose ids are no longer planned (documents removed since the last run)."""
        keep = self._planned_ids()
        gone = [i for i in self._stored_ids() if i not in keep]
        for start in range(0, len(gone), FETCH):
            self.engine.delete(self.collection, gone[start:start + FETCH])
        return len(gone)

    def verify(self) -> SinkCheck:
        """Every planned id is in the collection once; extra ids are a problem only with ``--delete-missing``;
        every shard was delivered; a seeded sample of vectors equals the shards'."""
        check = SinkCheck()
        plan = self.ws.manifest().shard_plan()
        try:
            stored = self._stored_ids()
        except Exception as exc:  # noqa: BLE001 - engine errors are named MigrateErrors; report, don't stop verify
            check.problems.append(str(exc).splitlines()[0])
            return check
        planned = self._planned_ids()
        have = set(stored)
        check.checks = {"collection": self.collection, "rows": len(stored)}
        if len(have) != len(stored):
            check.problems.append(f"{self.collection!r} holds {len(stored) - len(have)} ids twice")
        missing = planned - have
        if missing:
            check.problems.append(f"{len(missing)} of {len(planned)} planned ids are missing from "
                                  f"{self.collection!r} (e.g. {min(missing)!r})")
        extra = have - planned
        if extra:
            note = f"{len(extra)} rows whose documents are gone (e.g. {min(extra)!r})"
            if self.delete_missing:
                check.problems.append(f"{self.collection!r} holds {note}")
            else:
                check.checks["rows_not_planned"] = len(extra)
                check.checks["note"] = f"{note}; kept: rerun with --delete-missing to remove them"
        undelivered = [s.name for s in plan.shards if not self.delivered(s)]
        if undelivered:
            check.problems.append(f"{len(undelivered)} shards not written to {self.collection!r} "
                                  f"(first: {undelivered[0]})")
            return check
        check.problems += self._sample(plan, check.checks)
        return check

    def _sample(self, plan: Any, checks: dict[str, Any]) -> list[str]:
        """A seeded sample of rows read back from the collection must equal the shards' vectors."""
        rng = np.random.default_rng(0)
        shards = [plan.shards[i] for i in sorted(rng.choice(len(plan.shards), size=min(8, len(plan.shards)),
                                                            replace=False))]
        differ, missing, compared = [], [], 0
        per = max(1, SAMPLE // len(shards))
        for shard in shards:
            t = self.ws.read_shard(shard, columns=["id", "vector"])
            pick = np.sort(rng.choice(t.num_rows, size=min(per, t.num_rows), replace=False))
            ids = [t.column("id")[int(i)].as_py() for i in pick]
            want = vectors_of(t.column("vector").take(pa.array(pick)))
            got = self.engine.fetch(self.collection, ids, with_vectors=True)
            pos = {v: i for i, v in enumerate(got.column("id").to_pylist())}
            have = vectors_of(got.column("vector")) if got.num_rows else np.zeros((0, want.shape[1]), np.float32)
            for j, doc in enumerate(ids):
                if doc not in pos:
                    missing.append(doc)
                elif not np.allclose(have[pos[doc]], want[j], atol=1e-6):
                    differ.append(doc)
                compared += 1
        checks["sampled"] = compared
        problems = []
        if missing:
            problems.append(f"{len(missing)} of {compared} sampled ids are missing from {self.collection!r} "
                            f"(e.g. {missing[0]!r})")
        if differ:
            problems.append(f"{len(differ)} of {compared} sampled vectors in {self.collection!r} differ from the "
                            f"shards (e.g. {differ[0]!r})")
        return problems


__all__ = ["CollectionSink", "index_spec", "sink_key", "vector_array"]


# ---------------------------------------------------------------------- cutover and rollback

def switch(sink: CollectionSink, records: dict[str, dict[str, Any]], save: Any) -> dict[str, Any]:
    """Point the application's name (``&alias=NAME``) at the new collection, atomically, remembering the old target.

    ``records`` is the manifest's ``cutover`` section and ``save()`` persists it. The old target is
    saved *before* the switch, so a run killed between the two still knows where to roll back to.
    """
    import time

    alias = sink.address.alias
    rec = records.get(sink.name)
    current = sink.engine.alias_target(alias)
    if rec is None or rec.get("state") == "rolled back":
        rec = {"alias": alias, "previous": current if current != sink.collection else None,
               "target": sink.collection, "state": "switching"}
        records[sink.name] = rec
        save()
    if current != sink.collection:
        sink.engine.point_alias(alias, sink.collection)
    rec |= {"state": "done", "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    save()
    return rec


def switch_back(sink: CollectionSink, records: dict[str, dict[str, Any]], save: Any) -> dict[str, Any]:
    """Point the application's name back where it pointed before ``cutover``."""
    import time

    rec = records.get(sink.name)
    if rec is None:
        raise StateError(f"{sink.address}: no cutover of {sink.collection!r} is recorded in this output",
                         hint="nothing to roll back; `jina-migrate cutover --out DIR` switches")
    previous = rec.get("previous")
    if previous is None:
        raise StateError(f"{sink.address}: the name {rec['alias']!r} did not exist before the cutover, so there is "
                         "no earlier collection to point it back to",
                         hint="point your application at the old collection's own name")
    if sink.engine.alias_target(rec["alias"]) != previous or previous == rec["alias"]:
        sink.engine.point_alias(rec["alias"], previous)
    rec |= {"state": "rolled back", "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    save()
    return rec
