"""LanceDB (embedded, a directory) through the ``lancedb`` package.

* Tables hold Arrow natively: ``id`` string, ``vector`` fixed_size_list<float32>, payload
  columns as they are (JSON values as their text). The exact payload schema and the creating
  run live in the table's schema metadata (``jina_migrate``).
* Writing: ``merge_insert("id")`` (update matched, insert new): idempotent, one commit per call.
* Reading streams with the query builder's ``to_batches``.
* Index: ``IVF_HNSW_SQ`` (hnsw) or ``IVF_PQ`` (ivfpq) built after the load; tables under a few
  thousand rows keep exact search (an IVF index cannot be trained on so few vectors).
* Cutover: LanceDB OSS has no aliases, views or renames. jina-migrate keeps a pointer table
  ``jina_migrate_aliases`` (alias -> table), switched with one atomic merge commit; the
  application must open ``alias_target(name)`` (one small read) instead of a fixed table name.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import lancedb
import numpy as np
import pyarrow as pa

from migrate.engines.address import Address, validate_name
from migrate.engines.base import (ID, VECTOR, CollectionInfo, IndexSpec, Marker, check_existing, check_rows, owned,
                                  checksum_batches, vector_array, vectors_of)
from migrate.engines.payload import decode_column
from migrate.errors import ConfigError, InputError, StateError

POINTER_TABLE = "jina_migrate_aliases"
_MARKER = b"jina_migrate"
_MIN_INDEX_ROWS = 5000


def _literal(value: str) -> str:
    """A SQL string literal for Lance filters ('' doubles a quote)."""
    return "'" + value.replace("'", "''") + "'"


def _storage_type(t: pa.DataType) -> pa.DataType:
    return t.storage_type if isinstance(t, pa.ExtensionType) else t


class LanceEngine:
    """A LanceDB directory."""

    def __init__(self, address: Address) -> None:
        self.address = address
        # read_consistency_interval=0: every read sees the latest commit (alias switches, other writers)
        self._db = lancedb.connect(str(address.path), read_consistency_interval=dt.timedelta(0))

    def close(self) -> None:
        self._db = None  # type: ignore[assignment]

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        try:
            yield
        except (OSError, RuntimeError) as exc:
            text = " ".join(str(exc).split())[:200]
            if "not found" in text.lower() or "does not exist" in text.lower():
                raise InputError(f"{self.address}: {doing}: {text}") from None
            raise StateError(f"{self.address}: {doing} failed: {text}") from None

    # ------------------------------------------------------------------ names

    def _tables(self) -> set[str]:
        return set(self._db.table_names(limit=1_000_000))

    def _pointer(self, name: str) -> str | None:
        if POINTER_TABLE not in self._tables():
            return None
        rows = self._db.open_table(POINTER_TABLE).search().where(f"alias = {_literal(name)}").select(
            ["target"]).limit(1).to_list()
        return str(rows[0]["target"]) if rows else None

    def _resolve(self, name: str) -> str:
        validate_name("lancedb", name, "table")
        target = self._pointer(name)
        if target is not None:
            return target
        if name not in self._tables():
            raise InputError(f"{self.address}: table {name!r} does not exist")
        return name

    def collections(self) -> list[str]:
        with self._guard("listing tables"):
            return sorted(self._tables() - {POINTER_TABLE})

    def exists(self, collection: str) -> bool:
        validate_name("lancedb", collection, "table")
        with self._guard("looking up a table"):
            return collection in self._tables() or self._pointer(collection) is not None

    def _open(self, name: str):
        return self._db.open_table(name)

    @staticmethod
    def _marker(tbl) -> Marker | None:
        meta = tbl.schema.metadata or {}
        return Marker.from_json(meta.get(_MARKER))

    def _layout(self, tbl) -> tuple[str, str, int, pa.Schema, Marker | None]:
        marker = self._marker(tbl)
        schema = tbl.schema
        id_col = self.address.id_field or (marker.id_field if marker else ID)
        vec_col = self.address.vector_field or (marker.vector_field if marker else None)
        if vec_col is None:
            vecs = [f.name for f in schema if pa.types.is_fixed_size_list(f.type)
                    and pa.types.is_floating(f.type.value_type)]
            if len(vecs) != 1:
                raise InputError(f"{self.address}: table has {len(vecs)} vector columns", hint="pick one with ?vector=NAME")
            vec_col = vecs[0]
        for col in (id_col, vec_col):
            if col not in schema.names:
                raise InputError(f"{self.address}: table has no column {col!r}",
                                 hint=f"columns are: {', '.join(schema.names)}")
        dim = schema.field(vec_col).type.list_size
        payload = marker.payload if marker else pa.schema([f for f in schema if f.name not in (id_col, vec_col)])
        if self.address.payload:
            missing = [p for p in self.address.payload if p not in payload.names]
            if missing:
                raise InputError(f"{self.address}: table has no column {missing[0]!r}")
            payload = pa.schema([payload.field(p) for p in self.address.payload])
        return id_col, vec_col, int(dim), payload, marker

    # ------------------------------------------------------------------ reading

    def describe(self, collection: str) -> CollectionInfo:
        with self._guard(f"describing {collection!r}"):
            real = self._resolve(collection)
            tbl = self._open(real)
            id_col, vec_col, dim, payload, marker = self._layout(tbl)
            stats = tbl.stats()
            indices = list(tbl.list_indices())
            index = ", ".join(f"{getattr(i, 'index_type', 'index')}" for i in indices) or None
            return CollectionInfo(name=real, rows=int(tbl.count_rows()), dim=dim,
                                  metric=marker.metric if marker else None, id_field=id_col, vector_field=vec_col,
                                  payload=payload, bytes=int(stats.get("total_bytes", 0)) if isinstance(stats, dict)
                                  else None, index=index, created_by_run=marker.run if marker else None,
                                  alias_of=real if real != collection else None)

    def _batch(self, batch: pa.RecordBatch, id_col: str, vec_col: str, payload: pa.Schema,
               with_vectors: bool) -> pa.RecordBatch:
        arrays: list[pa.Array] = [batch.column(id_col).cast(pa.string())]
        names = [ID]
        if with_vectors:
            arrays.append(vector_array(vectors_of(batch.column(vec_col))))
            names.append(VECTOR)
        for f in payload:
            col = batch.column(f.name)
            if isinstance(f.type, pa.ExtensionType):
                col = pa.ExtensionArray.from_storage(f.type, col.cast(f.type.storage_type))
            elif col.type != f.type:
                col = decode_column(col.to_pylist(), f.type, name=f.name, where=f"{self.address}: ")
            arrays.append(col)
            names.append(f.name)
        return pa.RecordBatch.from_arrays(arrays, names=names)

    def scan(self, collection: str, *, batch_rows: int = 2048, with_vectors: bool = True) -> Iterator[pa.RecordBatch]:
        with self._guard(f"reading {collection!r}"):
            tbl = self._open(self._resolve(collection))
            id_col, vec_col, _, payload, _ = self._layout(tbl)
            cols = [id_col] + ([vec_col] if with_vectors else []) + payload.names
            reader = tbl.search().select(cols).limit(None).to_batches(batch_rows)
            for batch in reader:
                if batch.num_rows:
                    yield self._batch(batch, id_col, vec_col, payload, with_vectors)

    def fetch(self, collection: str, ids: Sequence[str], *, with_vectors: bool = True) -> pa.Table:
        with self._guard(f"reading {collection!r}"):
            tbl = self._open(self._resolve(collection))
            id_col, vec_col, dim, payload, _ = self._layout(tbl)
            cols = [id_col] + ([vec_col] if with_vectors else []) + payload.names
            batches = []
            for start in range(0, len(ids), 1000):
                part = ids[start:start + 1000]
                got = tbl.search().where(f"`{id_col}` IN ({', '.join(_literal(i) for i in part)})").select(
                    cols).limit(None).to_arrow()
                batches += [self._batch(b, id_col, vec_col, payload, with_vectors) for b in got.to_batches()]
            if not batches:
                return pa.Table.from_batches([], schema=self._empty_schema(payload, with_vectors, dim))
            table = pa.Table.from_batches(batches)
            pos = {rid: i for i, rid in enumerate(table.column(ID).to_pylist())}
            return table.take(pa.array([pos[i] for i in ids if i in pos], pa.int64()))

    @staticmethod
    def _empty_schema(payload: pa.Schema, with_vectors: bool, dim: int | None = None) -> pa.Schema:
        head = [pa.field(ID, pa.string())] + ([pa.field(VECTOR, pa.list_(pa.float32(), dim or 1))]
                                              if with_vectors else [])
        return pa.schema(head + list(payload))

    def count(self, collection: str) -> int:
        with self._guard(f"counting {collection!r}"):
            return int(self._open(self._resolve(collection)).count_rows())

    def checksum(self, collection: str) -> str:
        return checksum_batches(self.scan(collection))

    def search(self, collection: str, vectors: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        with self._guard(f"searching {collection!r}"):
            tbl = self._open(self._resolve(collection))
            id_col, vec_col, _, _, marker = self._layout(tbl)
            metric = marker.metric if marker else "cosine"
            out = []
            for q in np.asarray(vectors, dtype=np.float32):
                res = tbl.search(q, vector_column_name=vec_col).distance_type(
                    "cosine" if metric == "cosine" else "dot").limit(k).select([id_col, "_distance"]).to_arrow()
                dist = res.column("_distance").to_pylist()
                out.append([(str(i), 1.0 - float(d)) for i, d in zip(res.column(id_col).to_pylist(), dist)])
            return out

    # ------------------------------------------------------------------ writing

    def create(self, collection: str, *, dim: int, payload: pa.Schema, index: IndexSpec, run: str,
               id_type: pa.DataType | None = None) -> None:
        validate_name("lancedb", collection, "table")
        if collection == POINTER_TABLE:
            raise ConfigError(f"{self.address}: {POINTER_TABLE!r} is reserved for jina-migrate's alias pointers")
        id_col = self.address.id_field or ID
        vec_col = self.address.vector_field or VECTOR
        for f in payload:
            validate_name("lancedb", f.name, "field")
            if f.name in (id_col, vec_col):
                raise ConfigError(f"{self.address}: payload field {f.name!r} clashes with the id or vector column")
        with self._guard(f"creating {collection!r}"):
            if collection in self._tables():
                check_existing(self.address, collection, self._marker(self._open(collection)), run=run, dim=dim)
                return
            marker = Marker(run=run, dim=dim, metric=index.metric, payload=payload, id_field=id_col, vector_field=vec_col)
            fields = [pa.field(id_col, pa.string(), nullable=False),
                      pa.field(vec_col, pa.list_(pa.float32(), int(dim)), nullable=False)]
            fields += [pa.field(f.name, _storage_type(f.type)) for f in payload]
            self._db.create_table(collection, schema=pa.schema(fields, metadata={_MARKER: marker.to_json().encode()}))

    def _own(self, collection: str):
        validate_name("lancedb", collection, "table")
        if collection not in self._tables():
            raise InputError(f"{self.address}: table {collection!r} does not exist")
        tbl = self._open(collection)
        marker = owned(self.address, collection, self._marker(tbl))
        return tbl, marker

    def upsert(self, collection: str, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        with self._guard(f"writing {collection!r}"):
            tbl, marker = self._own(collection)
            check_rows(self.address, collection, rows, marker.dim)
            arrays = [rows.column(ID).combine_chunks(), vector_array(vectors_of(rows.column(VECTOR)))]
            for f in marker.payload:
                if f.name in rows.column_names:
                    col = rows.column(f.name).combine_chunks()
                    arrays.append(col.storage if isinstance(col.type, pa.ExtensionType) else col)
                else:
                    arrays.append(pa.nulls(rows.num_rows, _storage_type(f.type)))
            data = pa.Table.from_arrays(arrays, schema=tbl.schema)
            tbl.merge_insert(marker.id_field).when_matched_update_all().when_not_matched_insert_all().execute(data)

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        with self._guard(f"deleting from {collection!r}"):
            tbl, marker = self._own(collection)
            for start in range(0, len(ids), 1000):
                part = ids[start:start + 1000]
                tbl.delete(f"`{marker.id_field}` IN ({', '.join(_literal(i) for i in part)})")

    def build_index(self, collection: str, index: IndexSpec) -> None:
        with self._guard(f"indexing {collection!r}"):
            tbl, marker = self._own(collection)
            n = tbl.count_rows()
            if index.kind == "flat" or n < _MIN_INDEX_ROWS:
                return  # exact search
            metric = "cosine" if index.metric == "cosine" else "dot"
            partitions = index.nlist or max(1, n // 4096)
            if index.kind == "hnsw":
                tbl.create_index(metric=metric, vector_column_name=marker.vector_field, index_type="IVF_HNSW_SQ",
                                 num_partitions=partitions, m=index.m, ef_construction=index.ef_construction,
                                 replace=True)
            else:
                sub = next(s for s in (96, 64, 48, 32, 16, 8, 4, 2, 1) if marker.dim % s == 0)
                tbl.create_index(metric=metric, vector_column_name=marker.vector_field, index_type="IVF_PQ",
                                 num_partitions=partitions, num_sub_vectors=sub, replace=True)

    # ------------------------------------------------------------------ cutover

    def alias_target(self, name: str) -> str | None:
        validate_name("lancedb", name, "alias")
        with self._guard("reading the alias pointer"):
            target = self._pointer(name)
            if target is not None:
                return target
            return name if name in self._tables() else None

    def point_alias(self, name: str, collection: str) -> None:
        validate_name("lancedb", name, "alias")
        validate_name("lancedb", collection, "table")
        with self._guard("switching the alias pointer"):
            if collection not in self._tables():
                raise InputError(f"{self.address}: table {collection!r} does not exist")
            schema = pa.schema([pa.field("alias", pa.string(), nullable=False),
                                pa.field("target", pa.string(), nullable=False),
                                pa.field("switched_at", pa.timestamp("us", tz="UTC"))])
            ptr = self._db.create_table(POINTER_TABLE, schema=schema, exist_ok=True)
            row = pa.table({"alias": [name], "target": [collection],
                            "switched_at": pa.array([dt.datetime.now(dt.timezone.utc)], pa.timestamp("us", tz="UTC"))},
                           schema=schema)
            ptr.merge_insert("alias").when_matched_update_all().when_not_matched_insert_all().execute(row)
