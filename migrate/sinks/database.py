"""A NEW collection in a vector database as a destination (``--sink URI``).

At ``finalize`` every shard not yet delivered is written into the collection with
idempotent upserts keyed by id (each engine's bulk path: pgvector ``COPY ... BINARY``,
Qdrant batched upserts, Milvus batched inserts), then a delivery record is written beside
the shard (``shards/NAME.to-KEY.json``). A run killed mid-upsert leaves rows that the rerun
overwrites; a shard whose record exists is not written again. The payload of each row comes
from the source collection (every field, unchanged) or, for a documents file, from the file:
every field but the id, the text exactly as the file holds it (a ``--title-field`` joins the
title only into what is embedded; the title stays its own field).
Then, with ``--delete-missing``, rows whose ids are no longer planned are deleted, and the
ANN index is built (after the bulk load).

Incremental re-index (a rerun after documents changed): into a collection that already holds
rows, a shard's rows are first read back by id and only rows whose vector or payload differ
(or that are new) are upserted, so unchanged rows are never rewritten; a delivered shard
whose source payload changed since (a field edited, the text not) is delivered again the same
way. The counts (``upserted``, ``unchanged``, ``deleted``) go to the summary and the manifest.

Repair: every finalize, and every rerun of a finished output, ends by verifying the collection
(every planned id there once, a sample of vectors equal to the shards'); rows deleted or changed
behind the tool's back are delivered again from the shards (read back by id, only what is missing
or different is upserted), and a collection that still does not verify is exit 6, never exit 0.
Cutover and rollback of the application's name are ``migrate.sinks.switch``.

The collection is always created new (with v3's width and an inner-product/cosine metric)
and marked with the run id; the old collection is never written to.

``--precision``: the collection stores the run's precision natively where its engine's ``LIMITS.precisions``
has it (pgvector ``halfvec`` / ``bit``, Qdrant float16 or its own int8 / binary quantisation, LanceDB
halffloat; refused before embedding elsewhere). The shards keep the float32 vectors, so what a collection
should hold is the codec's round trip of them (``migrate.precision``; int8 with the manifest's scale):
the read-back comparison and ``verify`` compare with that (``limits.readback_format``: float32 where the
engine keeps the float vectors beside its quantised index).
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
from migrate.engines.base import VECTOR, row_digests, vector_array, vectors_of
from migrate.engines.names import check_alias, own_source_name
from migrate.errors import ConfigError, StateError, VerifyFailed
from migrate.shards import Shard
from migrate.sinks.base import PlanFacts, SinkCheck, SinkResult
from migrate.sinks.switch import OwnSource
from migrate.workspace import Workspace
from migrate.workspace.manifest import IndexSettings

SAMPLE = 64  # rows verify compares with the shards
FETCH = 1000  # ids per read-back when comparing a shard with what the collection holds


def sink_key(uri: str) -> str:
    """A short file-name-safe key of a destination (its address without secrets)."""
    return hashlib.sha256(str(parse_address(uri)).encode()).hexdigest()[:12]


def index_spec(settings: IndexSettings, override: str | None = None) -> IndexSpec:
    """The run's index settings in the engine's terms (``IndexSpec.for_run``)."""
    # integer parameters (the manifest's params are typed int | float | None)
    m, ef, nlist = (None if (v := settings.params.get(k)) is None else int(v)
                    for k in ("hnsw_m", "hnsw_ef_construction", "ivf_nlist"))
    return IndexSpec.for_run(settings.type, m, ef, nlist, override)


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
        self._format: Any = None

    # ------------------------------------------------------------------ connections

    @property
    def engine(self) -> Any:
        if self._engine is None:
            path = self.address.path
            if self.address.engine == "milvus" and path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)  # Milvus Lite creates the file, not its folder
            self._engine = open_engine(self.address)
        return self._engine

    def _source_address(self) -> Address:
        """The run's source collection (``payload_from``); read only where a caller has seen that there is one."""
        assert self.payload_from is not None  # every caller of _source_engine / _source_payload checks it first
        return parse_address(self.payload_from)

    def _source_engine(self) -> tuple[Any, Any]:
        """The source collection (for payload), opened separately: a scan there must not block our writes."""
        if self._source is None:
            addr = self._source_address()
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
        else:
            eng.check_create(**self._create_args())  # a name clash is refused now, not after the embedding
            self._check_limits(facts)
        if self.address.alias:  # a name cutover could never take is refused now, not after the paid run
            own = self.own_source()
            check_alias(eng, self.address, own_source=own.collection if own else None)

    def own_source(self) -> OwnSource | None:
        """The run's source collection when it is in the destination's database: the only real table cutover
        may move aside, and only while its checksum is the one recorded when the run read it."""
        src = parse_address(self.payload_from) if self.payload_from else None
        name = own_source_name(src, self.address)
        if src is None or name is None:
            return None

        def unchanged() -> bool:
            recorded = next((s.get("sha256") for s in self.ws.manifest().sources if s.get("path") == str(src)), None)
            engine, _ = self._source_engine()
            return recorded is not None and recorded == f"collection:{engine.checksum(src.collection)}"

        return OwnSource(name, unchanged)

    def _check_limits(self, facts: PlanFacts) -> None:
        """The destination engine's declared limits (``migrate.engines.limits``: width, field names and count, text
        lengths, NUL): refused now, before anything is embedded, not by the engine after the paid run."""
        from migrate.engines.limits import check, limits_of
        from migrate.sources.database import payload_extents

        source = self.payload_from or self.documents
        measure = source is not None and limits_of(self.address.engine).measures_text
        check(self.address, dim=facts.dimensions, payload=self._payload_schema()[0], index_kind=self.index.kind,
              text_field=self._text_field(), extents=payload_extents(source) if measure else None,
              precision=facts.vector_format.precision if facts.vector_format else "float32")

    def _text_field(self) -> str | None:
        """The payload field holding the text, by the sources' own rule (``&text=`` on --sink first): an engine
        that keeps the text as its document (Chroma's ``documents``) stores that field there."""
        from migrate.sources.database import pick_text_field, text_field_of

        if self.address.text_field:
            return self.address.text_field
        if self.payload_from:
            return text_field_of(self._source_engine()[1], parse_address(self.payload_from).text_field)
        if self.documents is not None:
            return pick_text_field(self._payload_schema()[0].names, self.documents.text_field)
        return None

    def _create_args(self) -> dict[str, Any]:
        """What the destination is created with: the payload schema, and the source collection's id type and
        id / vector field names (a destination keeps them where its address names none)."""
        schema, id_type = self._payload_schema()
        names = self._source_engine()[1].names_for_destination() if self.payload_from else {}
        from migrate.engines.limits import with_text_field

        return {"payload": with_text_field(schema, self._text_field()), "id_type": id_type, **names}

    def _payload_schema(self) -> tuple[pa.Schema, pa.DataType | None]:
        if self.payload_from:
            _, info = self._source_engine()
            return info.payload, info.id_type
        if self.documents is not None:
            return self._documents().payload_schema(), None
        return pa.schema([]), None

    def _documents(self) -> Any:
        """The documents file, opened once (its payload schema is inferred once per run)."""
        if self._text_source is None:
            from migrate.sources import open_documents_source

            self._text_source = open_documents_source(self.documents)
        return self._text_source

    def _documents_payload(self, shard: Shard, ids: list[str]) -> pa.Table:
        """id + every payload field of a shard's documents, in the order of ``ids``, read by their planned
        locators. Into a collection that exists already, only the fields it was created with (a field
        that appeared in the file since needs a new collection)."""
        planned = self.ws.plan_slice(shard)
        payload = self._documents().payload(planned.locs)
        if planned.ids != ids:
            pos = {v: i for i, v in enumerate(planned.ids)}
            payload = payload.take(pa.array([pos[i] for i in ids], pa.int64()))
        if self.engine.exists(self.collection):
            have = set(self.engine.describe(self.collection).payload.names)
            payload = payload.select([n for n in payload.column_names if n in have])
        return pa.table({"id": pa.array(ids, pa.string())} | {n: payload.column(n) for n in payload.column_names})

    def _source_payload(self, ids: list[str]) -> pa.Table:
        """id + every payload field of ``ids`` from the source collection, in the order of ``ids``."""
        src, info = self._source_engine()
        got = src.fetch(self._source_address().collection, ids, with_vectors=False)
        pos = {v: i for i, v in enumerate(got.column("id").to_pylist())}
        if len(pos) != len(ids):
            missing = [i for i in ids if i not in pos][:5]
            raise StateError(f"{self.payload_from}: rows {missing} are gone from the source since the run was "
                             "planned", hint="rerun the same command: it re-plans from the collection as it is now")
        order = pa.array([pos[i] for i in ids], pa.int64())
        return pa.table({"id": pa.array(ids, pa.string())} | {f.name: got.column(f.name).take(order)
                                                              for f in info.payload})

    def _rows(self, table: pa.Table, shard: Shard) -> tuple[pa.Table, str | None]:
        """id + vector of a shard, with each row's payload; and the digest of that payload (to see a payload that
        changed since the shard was delivered)."""
        ids = table.column("id").to_pylist()
        cols: dict[str, Any] = {"id": pa.array(ids, pa.string()), "vector": table.column("vector").combine_chunks()}
        digest = None
        if self.payload_from:
            payload = self._source_payload(ids)
            digest = _payload_digest(payload)
            for name in payload.column_names[1:]:
                cols[name] = payload.column(name)
        elif self.documents is not None:
            payload = self._documents_payload(shard, ids)
            digest = _payload_digest(payload)
            for name in payload.column_names[1:]:
                cols[name] = payload.column(name)
        return pa.table(cols), digest

    def _changed(self, rows: pa.Table) -> pa.Table:
        """The rows the collection does not hold exactly (absent, or another vector or payload)."""
        keep: list[int] = []
        for start in range(0, rows.num_rows, FETCH):
            part = rows.slice(start, FETCH)
            ids = part.column("id").to_pylist()
            got = self.engine.fetch(self.collection, ids, with_vectors=True)
            have = dict(zip(got.column("id").to_pylist(), row_digests(got.select(part.column_names))))
            at = part.schema.get_field_index(VECTOR)
            want = part.set_column(at, VECTOR, vector_array(self._expected(part.column(at))))
            keep += [start + i for i, (rid, d) in enumerate(zip(ids, row_digests(want))) if have.get(rid) != d]
        return rows.take(pa.array(keep, pa.int64()))

    def _vector_format(self) -> Any:
        """The output's stored format (``migrate.workspace.vector_format``: int8 calibrated once, on the manifest)."""
        if self._format is None:
            from migrate.workspace.vector_format import stored_format

            self._format = stored_format(self.ws)
        return self._format

    def _expected(self, vectors: Any) -> Any:
        """What the collection holds for these float32 shard vectors once written and read back."""
        from migrate.engines.limits import readback_format

        return readback_format(self.address.engine, self._vector_format()).roundtrip(vectors_of(vectors))

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
            dim = table.schema.field("vector").type.list_size
            fmt = self._vector_format()
            reduced = {"vector_format": fmt.with_dims(dim)} if fmt.reduced else {}
            self.engine.create(self.collection, dim=dim, index=self.index, run=self.run, **self._create_args(),
                               **reduced)
            compare = False
        todo = self._changed(rows) if compare else rows
        self.engine.upsert(self.collection, todo)
        write_json(self.delivery_path(shard), {"sink": self.name, "run": self.run, "rows": rows.num_rows,
                                               "upserted": todo.num_rows, "payload_sha256": digest,
                                               "sha256": (self.ws.record(shard) or {}).get("sha256")})
        return todo.num_rows

    def _payload_changed(self, shard: Shard, done: dict[str, Any]) -> bool:
        """A delivered shard whose rows' payload changed in the source collection or documents file since its
        delivery (a field edited, the text not: the shard's vectors are the same)."""
        if not (self.payload_from or self.documents is not None) or not done.get("payload_sha256"):
            return False
        ids = self.ws.read_shard(shard, columns=["id"]).column("id").to_pylist()
        payload = self._source_payload(ids) if self.payload_from else self._documents_payload(shard, ids)
        return _payload_digest(payload) != done["payload_sha256"]

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
        upserted += self._repair(plan)
        return SinkResult(outputs={}, info=self._built(plan, upserted, deleted))

    def _built(self, plan: Any, upserted: int, deleted: int) -> dict[str, Any]:
        """Build the index (after the bulk load; idempotent) and say what the collection holds."""
        self.engine.build_index(self.collection, self.index)
        rows = self.engine.count(self.collection)
        return {"name": self.name, "address": str(self.address), "collection": self.collection,
                "alias": self.address.alias, "rows": rows, "upserted": upserted, "deleted": deleted,
                "unchanged": plan.total_rows - upserted, "index": self.index.kind}

    # ------------------------------------------------------------------ repair

    def _repair(self, plan: Any) -> int:
        """When the collection no longer verifies (rows deleted or changed behind the tool's back), deliver every
        shard again against it: read back by id, upsert only what is missing or different. Returns the rows
        upserted (0 when it verifies); one that still does not verify afterwards is a VerifyFailed (exit 6)."""
        if not self.verify().problems:
            return 0
        upserted = sum(self.write_shard(s, self.ws.read_shard(s, columns=["id", "vector"]), compare=True)
                       for s in plan.shards)
        if self.delete_missing:
            self._delete_missing()
        left = self.verify().problems
        if left:
            raise VerifyFailed(f"{self.address}: {left[0]} (after re-delivering every shard)",
                               hint=f"`jina-migrate verify --out {self.ws.out}` lists every problem")
        return upserted

    def repair(self) -> dict[str, Any] | None:
        """A rerun of a finished output: None when the collection still verifies; else it is repaired from the
        shards and the delivery records (as in ``finalize``) and what it holds now is returned."""
        plan = self.ws.manifest().shard_plan()
        upserted = self._repair(plan)
        return self._built(plan, upserted, 0) if upserted else None

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
            want = self._expected(t.column("vector").take(pa.array(pick)))
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
        if self._vector_format().reduced:
            checks["precision"] = self._vector_format().describe()
        problems = []
        if missing:
            problems.append(f"{len(missing)} of {compared} sampled ids are missing from {self.collection!r} "
                            f"(e.g. {missing[0]!r})")
        if differ:
            problems.append(f"{len(differ)} of {compared} sampled vectors in {self.collection!r} differ from the "
                            f"shards (e.g. {differ[0]!r})")
        return problems


__all__ = ["CollectionSink", "index_spec", "sink_key", "vector_array"]
