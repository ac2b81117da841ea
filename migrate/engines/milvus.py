"""Milvus through ``pymilvus``'s ``MilvusClient``: a server URI, or Milvus Lite (a ``.db`` file).

* Keys: Milvus has INT64 and VARCHAR primary keys (INT64 is its default, ``auto_id`` or not).
  ``describe`` reports an INT64 key as int64; ids cross the seam as strings and every filter
  (``fetch``, ``upsert``'s lookup, ``delete``) turns them back into the key's type. A destination
  gets an INT64 key for integer ids and a VARCHAR key for any other.
* Schema: the primary key, one FLOAT_VECTOR field, and one
  nullable field per payload column (scalars as themselves, tz-aware timestamps as TIMESTAMPTZ,
  lists / structs / JSON as JSON, other types as VARCHAR text); the exact Arrow schema is kept in
  the collection's ``jina_migrate`` property, so reading back restores every type.
* The HNSW index (``M``, ``efConstruction``; ``FLAT`` for flat, ``IVF_PQ`` for ivfpq) is declared
  at creation, as Milvus needs an index before a collection loads; Milvus builds it per segment
  as data arrives, and ``build_index`` flushes so every row is indexed.
* Writing in batches of 1000: ids not stored yet are inserted (Milvus's bulk path), stored ones
  upserted (a delete + insert inside Milvus); idempotent by primary key.
* Reading streams by keyset pagination on the primary key (``pk > last`` with ``limit``: what
  ``query_iterator`` does, with escaped literals); cutover uses ``alter_alias`` (atomic).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pyarrow as pa
from pymilvus import DataType, MilvusClient
from pymilvus.exceptions import MilvusException

from migrate.engines.address import Address, validate_name
from migrate.engines.limits import Limits
from migrate.engines.base import (ID, VECTOR, CollectionInfo, IndexSpec, Marker, check_existing, check_rows,
                                  checksum_batches, column_name, destination_names, field_schema, int_ids,
                                  is_int_type, no_vector, owned, payload_table, seam_schema, unavailable,
                                  vector_array, vectors_of)
from migrate.engines.names import NameState, Switch
from migrate.engines.payload import decode, encode, infer_schema
from migrate.errors import ConfigError, InputError, StateError

_METRIC = {"cosine": "COSINE", "ip": "IP"}
_FROM_METRIC = {"COSINE": "cosine", "IP": "ip", "L2": "l2"}
_VARCHAR_MAX = 65535

#: Milvus's documented limits (milvus.io/docs/limitations.md): 32,768 dimensions, 64 fields a collection
#: (id and vector included), VARCHAR of 65,535 bytes (the server counts UTF-8 bytes; Milvus Lite counts
#: characters, so bytes is the rule that holds for both). Names: ``validate_name("milvus", ...)``.
#: ``--precision``: float32 only. Milvus Lite (3.2, what a ``.db`` address opens and what this tool is tested
#: against) refuses FLOAT16_VECTOR, INT8_VECTOR and BINARY_VECTOR fields, so the reduced precisions are refused
#: before embedding rather than by the engine after the paid run.
LIMITS = Limits("milvus", max_dim=32768, max_payload_fields=62, max_text_bytes=_VARCHAR_MAX,
                precision_note="Milvus Lite has FLOAT_VECTOR fields only")
#: wraps a scalar JSON value (Milvus JSON fields take objects and arrays only)
_SCALAR = "$jina_migrate_scalar"
_FROM_MILVUS: dict[Any, pa.DataType] = {
    DataType.VARCHAR: pa.string(), DataType.BOOL: pa.bool_(), DataType.INT8: pa.int8(), DataType.INT16: pa.int16(),
    DataType.INT32: pa.int32(), DataType.INT64: pa.int64(), DataType.FLOAT: pa.float32(),
    DataType.DOUBLE: pa.float64(), DataType.JSON: pa.json_(), DataType.TIMESTAMPTZ: pa.timestamp("us", tz="UTC"),
}


def _milvus_type(t: pa.DataType) -> tuple[Any, dict[str, Any]]:
    """The Milvus field type (and its parameters) that stores an Arrow payload type."""
    if isinstance(t, pa.JsonType) or pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_struct(t) \
            or pa.types.is_map(t) or pa.types.is_fixed_size_list(t):
        return DataType.JSON, {}
    simple = {pa.bool_(): DataType.BOOL, pa.int8(): DataType.INT8, pa.int16(): DataType.INT16,
              pa.int32(): DataType.INT32, pa.int64(): DataType.INT64, pa.uint8(): DataType.INT16,
              pa.uint16(): DataType.INT32, pa.uint32(): DataType.INT64, pa.float16(): DataType.FLOAT,
              pa.float32(): DataType.FLOAT, pa.float64(): DataType.DOUBLE}
    if t in simple:
        return simple[t], {}
    if pa.types.is_timestamp(t) and t.tz:
        return DataType.TIMESTAMPTZ, {}
    return DataType.VARCHAR, {"max_length": _VARCHAR_MAX}


def _key_type(id_type: pa.DataType | None) -> Any:
    """The primary-key type a destination gets for the source's id type: INT64 for integers, else VARCHAR."""
    return DataType.INT64 if is_int_type(id_type) else DataType.VARCHAR


def _in_expr(field: str, ids: Sequence[Any]) -> str:
    """``field in [...]`` with every id as a literal of its own type: integers as numbers, text as escaped
    string literals (pymilvus's own ``get``/``delete`` by ids do not escape quotes or backslashes).
    ``field`` passed Milvus's name rule already."""
    return f"{field} in {json.dumps(list(ids), ensure_ascii=False)}"


def _lite_client(path: str, timeout: float) -> MilvusClient:
    """A client of this process's Milvus Lite server for ``path`` (started by pymilvus on first use). On a busy
    machine the first connection to a server just started can fail (the server thread answers late and drops
    the channel: gRPC's "too_many_pings"); the server keeps running, so another try connects. ``timeout``
    widens pymilvus's 10 s wait for the connection."""
    for attempt in range(3):
        try:
            return MilvusClient(path, timeout=timeout)
        except MilvusException as exc:
            if attempt == 2 or "open local milvus failed" in str(exc).lower():
                raise
    raise AssertionError("unreachable")


#: Milvus Lite database file -> engines of this process using it (its server is per file and per process)
_LITE_USERS: dict[str, int] = {}


def _release_lite(path: str) -> None:
    """Stop this process's Milvus Lite server for ``path`` once no engine uses it: it holds the file's
    lock, and another process (the next CLI command, the application) may want the file."""
    _LITE_USERS[path] = _LITE_USERS.get(path, 1) - 1
    if _LITE_USERS[path] > 0:
        return
    del _LITE_USERS[path]
    try:
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(path)
    except Exception:  # noqa: BLE001 - an older milvus-lite: the server stops at process exit
        pass


class MilvusEngine:
    """A Milvus server or Milvus Lite database file."""

    def __init__(self, address: Address) -> None:
        self.address = address
        a = address
        logging.getLogger("pymilvus").setLevel(logging.CRITICAL)  # it logs handled errors with a traceback
        self._loaded: set[str] = set()
        self._lite: str | None = None
        try:
            if a.path is not None:
                if not a.path.parent.is_dir():
                    raise ConfigError(f"{a}: the folder {a.path.parent} does not exist",
                                      hint="create it, or check the path (Milvus Lite makes the .db file only)")
                self._client = _lite_client(str(a.path), float(a.option("timeout", "60") or 60))
                self._lite = os.path.abspath(str(a.path))
                _LITE_USERS[self._lite] = _LITE_USERS.get(self._lite, 0) + 1
            else:
                scheme = "https" if a.https else "http"
                self._client = MilvusClient(uri=f"{scheme}://{a.host}:{a.port or 19530}", token=a.secret or "",
                                            db_name=a.database or "", timeout=float(a.option("timeout", "60") or 60))
        except MilvusException as exc:
            if a.path is not None and "open local milvus failed" in str(exc).lower():
                raise StateError(f"{a}: Milvus Lite cannot open {a.path}: another process has it open",
                                 hint="Milvus Lite allows one process per database file; stop the other one, or "
                                      "use a Milvus server") from None
            raise unavailable(a, exc, "connecting") from None
        self._markers: dict[str, Marker | None] = {}
        self._id_types: dict[tuple[str, str], pa.DataType] = {}

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:  # noqa: BLE001
            pass
        if self._lite is not None:
            _release_lite(self._lite)
            self._lite = None

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        try:
            yield
        except MilvusException as exc:
            text = " ".join(str(exc.message if hasattr(exc, "message") else exc).split())
            if "not found" in text.lower() or "not exist" in text.lower():
                raise InputError(f"{self.address}: {doing}: {text[:200]}") from None
            if "connect" in text.lower() or "unavailable" in text.lower() or "deadline" in text.lower():
                raise unavailable(self.address, exc, doing) from None
            raise StateError(f"{self.address}: {doing} failed: {text[:200]}") from None

    # ------------------------------------------------------------------ names

    def _is_collection(self, name: str) -> bool:
        return bool(self._client.has_collection(name))

    def _alias(self, name: str) -> str | None:
        if name not in self._all_aliases():
            return None
        return str(self._client.describe_alias(name)["collection_name"])

    def _all_aliases(self) -> set[str]:
        got = self._client.list_aliases()
        return set(got.get("aliases", []) if isinstance(got, dict) else got)

    def _resolve(self, name: str) -> str:
        validate_name("milvus", name)
        if self._is_collection(name) and name not in self._all_aliases():
            return name
        target = self._alias(name)
        if target is None:
            raise InputError(f"{self.address}: collection {name!r} does not exist")
        return target

    def _ready(self, real: str) -> str:
        """``real`` loaded for reading: Milvus answers queries only on loaded collections, and a Milvus Lite
        file opened again, or a collection its owner released, starts unloaded. Loading changes no data."""
        if real not in self._loaded:
            state = str(self._client.get_load_state(real).get("state", ""))
            if "Loaded" not in state or "NotLoad" in state:
                self._client.load_collection(real)
            self._loaded.add(real)
        return real

    def collections(self) -> list[str]:
        with self._guard("listing collections"):
            return sorted(self._client.list_collections())

    def exists(self, collection: str) -> bool:
        validate_name("milvus", collection)
        with self._guard("looking up a collection"):
            return self._is_collection(collection) or collection in self._all_aliases()

    def _desc(self, collection: str) -> dict[str, Any]:
        return self._client.describe_collection(collection)

    def _marker(self, collection: str) -> Marker | None:
        if collection not in self._markers:
            props = self._desc(collection).get("properties") or {}
            self._markers[collection] = Marker.from_json(props.get("jina_migrate"))
        return self._markers[collection]

    def _id_type(self, collection: str, id_field: str) -> pa.DataType:
        """The type of the field holding ids (int64 for Milvus's default INT64 key; text for VARCHAR)."""
        if (collection, id_field) not in self._id_types:
            f = next((f for f in self._desc(collection)["fields"] if f["name"] == id_field), None)
            t = _FROM_MILVUS.get(f["type"]) if f is not None else None
            self._id_types[(collection, id_field)] = t if is_int_type(t) else pa.string()
        return self._id_types[(collection, id_field)]

    def _native(self, collection: str, id_field: str, ids: Sequence[str]) -> list[Any]:
        """Seam ids as values of ``id_field``: integers for an integer key (a string literal never matches
        one), text otherwise."""
        if is_int_type(self._id_type(collection, id_field)):
            return int_ids(self.address, collection, ids)
        return [str(i) for i in ids]

    def _layout(self, collection: str) -> tuple[str, str, int, pa.Schema, Marker | None, str | None]:
        """(id field, vector field, dim, payload schema, marker, metric) of a real collection; the payload
        schema under the engine's field names."""
        desc = self._desc(collection)
        marker = self._marker(collection)
        fields = desc["fields"]
        pk = next(f["name"] for f in fields if f.get("is_primary"))
        vecs = [f for f in fields if f["type"] == DataType.FLOAT_VECTOR]
        vname = self.address.vector_field or (marker.vector_field if marker else None)
        if vname is None:
            if len(vecs) != 1:
                raise InputError(f"{self.address}: collection {collection!r} has {len(vecs)} float vector fields",
                                 hint="pick one with ?vector=NAME")
            vname = vecs[0]["name"]
        vfield = next((f for f in vecs if f["name"] == vname), None)
        if vfield is None:
            raise InputError(f"{self.address}: collection {collection!r} has no float vector field {vname!r}")
        id_field = self.address.id_field or (marker.id_field if marker else None) or pk
        if marker is not None:
            schema = marker.payload
        else:
            cols = []
            for f in fields:
                if f["name"] in (pk, vname, id_field) or f["type"] in (DataType.FLOAT_VECTOR, DataType.BINARY_VECTOR,
                                                                      DataType.SPARSE_FLOAT_VECTOR,
                                                                      DataType.FLOAT16_VECTOR, DataType.BFLOAT16_VECTOR):
                    continue
                if f["type"] == DataType.ARRAY:
                    cols.append(pa.field(f["name"], pa.list_(_FROM_MILVUS.get(f.get("element_type"), pa.string()))))
                else:
                    cols.append(pa.field(f["name"], _FROM_MILVUS.get(f["type"], pa.string())))
            if desc.get("enable_dynamic_field"):
                sample = self._client.query(collection, filter="", output_fields=["*"], limit=256)
                known = {f["name"] for f in fields}
                cols += list(infer_schema([{k: v for k, v in r.items() if k not in known} for r in sample]))
            schema = pa.schema(cols)
        if self.address.payload:
            missing = [p for p in self.address.payload if p not in schema.names]
            if missing:
                raise InputError(f"{self.address}: collection {collection!r} has no field {missing[0]!r}")
            schema = pa.schema([schema.field(p) for p in self.address.payload])
        metric = None
        for idx in self._client.list_indexes(collection, field_name=vname):
            metric = _FROM_METRIC.get(str(self._client.describe_index(collection, idx).get("metric_type")), metric)
        return id_field, vname, int(vfield["params"]["dim"]), schema, marker, metric or (marker.metric if marker else None)

    # ------------------------------------------------------------------ reading

    def describe(self, collection: str) -> CollectionInfo:
        with self._guard(f"describing {collection!r}"):
            real = self._ready(self._resolve(collection))
            id_field, vname, dim, schema, marker, metric = self._layout(real)
            rows = int(self._client.get_collection_stats(real).get("row_count", 0))
            index = None
            for idx in self._client.list_indexes(real, field_name=vname):
                d = self._client.describe_index(real, idx)
                index = f"{d.get('index_type')}({', '.join(f'{k}={v}' for k, v in d.items() if k in ('M', 'efConstruction', 'nlist', 'm'))})"
            return CollectionInfo(name=real, rows=rows, rows_exact=False, dim=dim, metric=metric, id_field=id_field,
                                  vector_field=vname, payload=seam_schema(schema),
                                  id_type=self._id_type(real, id_field),
                                  bytes=rows * (dim * 4 + 64 * max(1, len(schema))),
                                  index=index, created_by_run=marker.run if marker else None,
                                  alias_of=real if real != collection else None)

    def _null_vectors(self, real: str, vname: str) -> bool:
        """Whether the vector field is nullable (Milvus 2.6): pymilvus reads a NULL vector as all zeros."""
        field: dict[str, Any] = next((f for f in self._desc(real)["fields"] if f["name"] == vname), {})
        return bool(field.get("nullable"))

    def _batch(self, rows: list[dict], id_field: str, vname: str, dim: int, schema: pa.Schema, with_vectors: bool,
               where: str, *, real: str = "", nullable: bool = False) -> pa.RecordBatch:
        arrays: list[pa.Array] = [pa.array([str(r[id_field]) for r in rows], pa.string())]
        names = [ID]
        if with_vectors:
            missing = [r[id_field] for r in rows if r[vname] is None or (nullable and not np.any(r[vname]))]
            if missing:
                raise no_vector(self.address, real, missing)
            arrays.append(vector_array(np.asarray([r[vname] for r in rows], dtype=np.float32).reshape(len(rows), dim)))
            names.append(VECTOR)
        rows = [{k: v[_SCALAR] if isinstance(v, dict) and len(v) == 1 and _SCALAR in v else v for k, v in r.items()}
                for r in rows]
        arrays += decode(rows, schema, where=where)
        names += [column_name(n) for n in schema.names]
        return pa.RecordBatch.from_arrays(arrays, names=names)

    def scan(self, collection: str, *, batch_rows: int = 2048, with_vectors: bool = True) -> Iterator[pa.RecordBatch]:
        with self._guard(f"reading {collection!r}"):
            real = self._ready(self._resolve(collection))
            id_field, vname, dim, schema, _, _ = self._layout(real)
            pk = next(f["name"] for f in self._desc(real)["fields"] if f.get("is_primary"))
            fields = list(dict.fromkeys([pk, id_field] + ([vname] if with_vectors else []) + schema.names))
            where = f"{self.address}: collection {real!r}: "
            # Keyset pagination on the primary key (what query_iterator does, but with escaped
            # literals: pymilvus's iterator breaks on ids holding quotes or newlines).
            last: Any = None
            while True:
                flt = "" if last is None else f"{pk} > {json.dumps(last, ensure_ascii=False)}"
                rows = self._client.query(real, filter=flt, output_fields=fields, limit=min(batch_rows, 16384))
                if not rows:
                    return
                yield self._batch(list(rows), id_field, vname, dim, schema, with_vectors, where, real=real,
                                  nullable=with_vectors and self._null_vectors(real, vname))
                last = max(r[pk] for r in rows)  # code-point order = Milvus's UTF-8 byte order

    def fetch(self, collection: str, ids: Sequence[str], *, with_vectors: bool = True) -> pa.Table:
        with self._guard(f"reading {collection!r}"):
            real = self._ready(self._resolve(collection))
            id_field, vname, dim, schema, _, _ = self._layout(real)
            fields = [id_field] + ([vname] if with_vectors else []) + schema.names
            rows = self._client.query(real, filter=_in_expr(id_field, self._native(real, id_field, ids)),
                                      output_fields=fields) if ids else []
            batch = self._batch(list(rows), id_field, vname, dim, schema, with_vectors,
                                f"{self.address}: collection {real!r}: ", real=real,
                                nullable=with_vectors and self._null_vectors(real, vname))
            pos = {rid: i for i, rid in enumerate(batch.column(0).to_pylist())}
            return pa.Table.from_batches([batch]).take(pa.array([pos[i] for i in ids if i in pos], pa.int64()))

    def count(self, collection: str) -> int:
        with self._guard(f"counting {collection!r}"):
            res = self._client.query(self._ready(self._resolve(collection)), filter="", output_fields=["count(*)"])
            return int(res[0]["count(*)"])

    def checksum(self, collection: str) -> str:
        return checksum_batches(self.scan(collection))

    def search(self, collection: str, vectors: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        with self._guard(f"searching {collection!r}"):
            validate_name("milvus", collection)
            real = self._ready(self._resolve(collection))
            id_field, vname, _, _, _, metric = self._layout(real)
            res = self._client.search(collection, data=np.asarray(vectors, dtype=np.float32).tolist(), limit=k,
                                      anns_field=vname, output_fields=[id_field])
            sign = -1.0 if metric == "l2" else 1.0
            return [[(str(h["entity"].get(id_field, h["id"])), sign * float(h["distance"])) for h in hits]
                    for hits in res]

    # ------------------------------------------------------------------ writing

    def create(self, collection: str, *, dim: int, payload: pa.Schema, index: IndexSpec, run: str,
               id_type: pa.DataType | None = None, id_field: str | None = None,
               vector_field: str | None = None) -> None:
        validate_name("milvus", collection)
        id_field, vname, payload = self.check_create(payload, id_type=id_type, id_field=id_field,
                                                     vector_field=vector_field)
        with self._guard(f"creating {collection!r}"):
            if self._is_collection(collection):
                check_existing(self.address, collection, self._marker(collection), run=run, dim=dim)
                return
            if collection in self._all_aliases():
                raise StateError(f"{self.address}: {collection!r} is an alias; choose another collection name")
            marker = Marker(run=run, dim=dim, metric=index.metric, payload=payload, id_field=id_field,
                            vector_field=vname)
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            key = _key_type(id_type)
            schema.add_field(id_field, key, is_primary=True,
                             **({"max_length": _VARCHAR_MAX} if key == DataType.VARCHAR else {}))
            schema.add_field(vname, DataType.FLOAT_VECTOR, dim=int(dim))
            for f in payload:
                typ, params = _milvus_type(f.type)
                schema.add_field(f.name, typ, nullable=True, **params)
            params = self._client.prepare_index_params()
            params.add_index(field_name=vname, **self._index_kwargs(index, dim))
            self._client.create_collection(collection, schema=schema, index_params=params,
                                           properties={"jina_migrate": marker.to_json()})
            self._markers.pop(collection, None)
            self._id_types = {k: v for k, v in self._id_types.items() if k[0] != collection}

    def check_create(self, payload: pa.Schema, *, id_type: pa.DataType | None = None, id_field: str | None = None,
                     vector_field: str | None = None) -> tuple[str, str, pa.Schema]:
        """The id and vector field names a NEW collection gets, and the payload under its field names;
        ConfigError (before anything is embedded or created) when a name clashes or this engine refuses it."""
        id_field, vname = destination_names(self.address, payload, id_field=id_field, vector_field=vector_field)
        payload = field_schema(payload)
        for f in payload:
            validate_name("milvus", f.name, "field")
        return id_field, vname, payload

    @staticmethod
    def _index_kwargs(index: IndexSpec, dim: int) -> dict[str, Any]:
        metric = _METRIC[index.metric]
        if index.kind == "flat":
            return {"index_type": "FLAT", "metric_type": metric, "params": {}}
        if index.kind == "ivfpq":
            m = next(mm for mm in (64, 48, 32, 16, 8, 4, 2, 1) if dim % mm == 0)
            return {"index_type": "IVF_PQ", "metric_type": metric, "params": {"nlist": index.nlist or 1024, "m": m}}
        return {"index_type": "HNSW", "metric_type": metric,
                "params": {"M": index.m, "efConstruction": index.ef_construction}}

    def _own(self, collection: str) -> tuple[Marker, str]:
        """The marker of a collection this tool created, and the field its marker names as the key."""
        validate_name("milvus", collection)
        if not self._is_collection(collection):
            raise InputError(f"{self.address}: collection {collection!r} does not exist")
        marker = owned(self.address, collection, self._marker(collection))
        if marker.id_field is None:  # create() names the key field in every Milvus marker
            raise StateError(f"{self.address}: the jina-migrate marker of {collection!r} names no id field")
        self._ready(collection)  # upsert looks up stored ids, delete filters: both need it loaded
        return marker, marker.id_field

    def upsert(self, collection: str, rows: pa.Table, *, batch_size: int = 1000) -> None:
        if rows.num_rows == 0:
            return
        with self._guard(f"writing {collection!r}"):
            marker, key = self._own(collection)
            check_rows(self.address, collection, rows, marker.dim)
            fields = payload_table(rows)
            names = [n for n in marker.payload.names if n in fields.column_names]
            absent = [n for n in marker.payload.names if n not in fields.column_names]
            json_fields = [f.name for f in marker.payload if f.name in names and _milvus_type(f.type)[0] == DataType.JSON]
            for start in range(0, rows.num_rows, batch_size):
                part = rows.slice(start, batch_size)
                payloads = encode(fields.slice(start, batch_size), names, keep_nulls=True)
                vecs = vectors_of(part.column(VECTOR))
                data = []
                for rid, vec, p in zip(self._native(collection, key, part.column(ID).to_pylist()), vecs,
                                       payloads):
                    for n in json_fields:
                        if p.get(n) is not None and not isinstance(p[n], (dict, list)):
                            p[n] = {_SCALAR: p[n]}  # Milvus JSON holds objects and arrays only
                    p[key] = rid
                    p[marker.vector_field] = vec
                    for n in absent:
                        p[n] = None
                    data.append(p)
                # Milvus's upsert is a delete + insert for every row; ids not stored yet take the plain
                # insert (the bulk path), the others the upsert. A rerun after a crash finds what the
                # first try wrote and upserts it, so the write stays idempotent.
                ids = [d[key] for d in data]
                have = {r[key] for r in self._client.query(
                    collection, filter=_in_expr(key, ids), output_fields=[key])}
                fresh = [d for d in data if d[key] not in have]
                if fresh:
                    self._client.insert(collection, data=fresh)
                if have:
                    self._client.upsert(collection, data=[d for d in data if d[key] in have])

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        if not ids:
            return
        with self._guard(f"deleting from {collection!r}"):
            _, key = self._own(collection)
            self._client.delete(collection, filter=_in_expr(key, self._native(collection, key, ids)))

    def build_index(self, collection: str, index: IndexSpec) -> None:
        with self._guard(f"indexing {collection!r}"):
            self._own(collection)
            self._client.flush(collection)
            self._client.load_collection(collection)

    # ------------------------------------------------------------------ cutover

    SWITCH = Switch("alias")

    def alias_target(self, name: str) -> str | None:
        state = self.name_state(name)
        return state.target if state.kind == "alias" else name if state.kind == "collection" else None

    def name_state(self, name: str) -> NameState:
        validate_name("milvus", name, "alias")
        with self._guard("reading aliases"):
            target = self._alias(name)  # aliases first: has_collection is true for an alias too
            if target is not None:
                return NameState("alias", target, "alias")
            return NameState("collection", name, "collection") if self._is_collection(name) else NameState("absent")

    def point_alias(self, name: str, collection: str, *, move_aside: str | None = None) -> None:
        """Create the alias ``name`` or move it with ``alter_alias`` (atomic)."""
        validate_name("milvus", name, "alias")
        validate_name("milvus", collection)
        if move_aside is not None:
            raise StateError(f"{self.address}: Milvus cannot rename a collection aside")
        with self._guard("switching the alias"):
            current = self._alias(name)
            if current is None and self._is_collection(name):
                if collection == name:
                    return
                raise StateError(f"{self.address}: {name!r} is a collection, not an alias; it cannot be switched "
                                 "without dropping it, which jina-migrate never does",
                                 hint=f"point your application at an alias of {name!r}, then cut over that alias")
            if self._alias(collection) is not None or not self._is_collection(collection):
                raise InputError(f"{self.address}: collection {collection!r} does not exist")
            if current == collection:
                return
            if current is None:
                self._client.create_alias(collection, name)
            else:
                self._client.alter_alias(collection, name)

    def drop_alias(self, name: str, *, restore: str | None = None) -> None:
        """Remove the alias ``name`` (rollback of a cutover that created it); absent already: nothing to do."""
        validate_name("milvus", name, "alias")
        if restore is not None:
            raise StateError(f"{self.address}: Milvus cannot rename a collection back")
        with self._guard("removing the alias"):
            if self._alias(name) is not None:
                self._client.drop_alias(name)
