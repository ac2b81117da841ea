"""LanceDB (embedded, a directory) through the ``lancedb`` package.

* Tables hold Arrow natively: the id column (the source's integer type for integer ids, else
  string; a source's int64 ids stay int64), ``vector`` fixed_size_list<float32>, payload
  columns as they are (JSON values as their text). Ids cross the seam as strings; every filter
  writes them as literals of the id column's type (a quoted '1' never matches an int64 1). The exact payload schema and the creating
  run live in the table's schema metadata (``jina_migrate``).
* Writing: ``merge_insert("id")`` (update matched, insert new): idempotent, one commit per call.
* Reading streams with the query builder's ``to_batches``.
* ``--precision float16``: the vector column is fixed_size_list<halffloat> (LanceDB searches it with a
  float32 query, flat or indexed); read back as float32. int8 and binary are refused (``LIMITS``): a
  LanceDB vector column holds floats.
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
import pyarrow.compute as pc

from migrate.engines.address import Address, validate_name
from migrate.engines.limits import Limits
from migrate.engines.base import (ID, VECTOR, CollectionInfo, IndexSpec, Marker, check_existing, check_rows,
                                  checksum_batches, column_name, destination_names, field_schema, format_extra,
                                  int_ids, is_int_type, marker_format, owned, payload_table, seam_schema,
                                  vector_array, vectors_of)
from migrate.engines.base import no_vector
from migrate.engines.names import NameState, Switch
from migrate.engines.payload import decode_column
from migrate.errors import ConfigError, InputError, StateError, ValidationFailed
from migrate.precision import VectorFormat

POINTER_TABLE = "jina_migrate_aliases"
_MARKER = b"jina_migrate"
_MIN_INDEX_ROWS = 5000
#: LanceDB stores any Arrow column: no limit but its names (``validate_name("lancedb", ...)``).
LIMITS = Limits("lancedb", precisions=("float32", "float16"),
                precision_note="a LanceDB vector column holds floats: float32 or float16")


def _literal(value: str) -> str:
    """A SQL string literal for Lance filters ('' doubles a quote)."""
    return "'" + value.replace("'", "''") + "'"


def _id_type(tbl, id_col: str) -> pa.DataType:
    """The id type a table reports: its id column's integer type, else string (text of any width)."""
    t = tbl.schema.field(id_col).type
    return t if is_int_type(t) else pa.string()


def _column_type(id_type: pa.DataType | None) -> pa.DataType:
    """The id column a NEW table gets for the source's id type: the same integer type, else string."""
    return id_type if is_int_type(id_type) else pa.string()


def _storage_type(t: pa.DataType) -> pa.DataType:
    return t.storage_type if isinstance(t, pa.ExtensionType) else t


def _is_vector_type(t: pa.DataType) -> bool:
    """A column of float vectors: ``fixed_size_list<float>`` (LanceDB's own) or ``list<float>`` (an application's
    schema that gives no size)."""
    return (pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t)) \
        and pa.types.is_floating(t.value_type)


def _vector_column(address: Address, schema: pa.Schema) -> str:
    """The one vector column of a table: its only fixed-size float list, else its only float list."""
    fixed = [f.name for f in schema if pa.types.is_fixed_size_list(f.type) and _is_vector_type(f.type)]
    lists = [f.name for f in schema if _is_vector_type(f.type) and f.name not in fixed]
    found = fixed or lists
    if len(found) != 1:
        raise InputError(f"{address}: table has {len(found)} vector columns"
                         + (f" ({', '.join(found)})" if found else ""), hint="pick one with ?vector=NAME")
    return found[0]


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

    def _id_filter(self, tbl, id_col: str, ids: Sequence[str], collection: str) -> str:
        """``id IN (...)`` with each id a literal of the id column's type (integers bare, text quoted)."""
        if is_int_type(_id_type(tbl, id_col)):
            literals = [str(i) for i in int_ids(self.address, collection, ids)]
        else:
            literals = [_literal(str(i)) for i in ids]
        return f"`{id_col}` IN ({', '.join(literals)})"

    @staticmethod
    def _marker(tbl) -> Marker | None:
        meta = tbl.schema.metadata or {}
        return Marker.from_json(meta.get(_MARKER))

    def _layout(self, tbl) -> tuple[str, str, int | None, pa.Schema, Marker | None]:
        marker = self._marker(tbl)
        schema = tbl.schema
        id_col = self.address.id_field or (marker.id_field if marker else ID)
        vec_col = self.address.vector_field or (marker.vector_field if marker else None)
        if vec_col is None:
            vec_col = _vector_column(self.address, schema)
        for col in (id_col, vec_col):
            if col not in schema.names:
                raise InputError(f"{self.address}: table has no column {col!r}",
                                 hint=f"columns are: {', '.join(schema.names)}")
        assert id_col is not None  # a column of the table (checked above)
        dim = self._width(tbl, vec_col)
        payload = marker.payload if marker else pa.schema([f for f in schema if f.name not in (id_col, vec_col)])
        if self.address.payload:
            missing = [p for p in self.address.payload if p not in payload.names]
            if missing:
                raise InputError(f"{self.address}: table has no column {missing[0]!r}")
            payload = pa.schema([payload.field(p) for p in self.address.payload])
        return id_col, vec_col, dim, payload, marker

    def _width(self, tbl, vec_col: str) -> int | None:
        """The vector width: a fixed-size list's own size; for a ``list<float>`` column (what an application
        gets from a schema without a size), the first stored vector's length (None: no vector stored)."""
        t = _storage_type(tbl.schema.field(vec_col).type)
        if not _is_vector_type(t):
            raise InputError(f"{self.address}: column {vec_col!r} holds {t}, not vectors",
                             hint="name the vector column with ?vector=NAME")
        if pa.types.is_fixed_size_list(t):
            return int(t.list_size)
        first = tbl.search().where(f"`{vec_col}` IS NOT NULL").select([vec_col]).limit(1).to_arrow()
        return len(first.column(0)[0]) if first.num_rows else None

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
                                  payload=seam_schema(payload), id_type=_id_type(tbl, id_col), bytes=int(stats.get("total_bytes", 0)) if isinstance(stats, dict)
                                  else None, index=index, created_by_run=marker.run if marker else None,
                                  alias_of=real if real != collection else None)

    def _batch(self, batch: pa.RecordBatch, id_col: str, vec_col: str, payload: pa.Schema,
               with_vectors: bool, dim: int | None = None, table: str = "") -> pa.RecordBatch:
        arrays: list[pa.Array] = [batch.column(id_col).cast(pa.string())]
        names = [ID]
        if with_vectors:
            arrays.append(self._vectors(batch.column(vec_col), arrays[0], dim, table))
            names.append(VECTOR)
        for f in payload:
            col = batch.column(f.name)
            if isinstance(f.type, pa.ExtensionType):
                col = pa.ExtensionArray.from_storage(f.type, col.cast(f.type.storage_type))
            elif col.type != f.type:
                col = decode_column(col.to_pylist(), f.type, name=f.name, where=f"{self.address}: ")
            arrays.append(col)
            names.append(column_name(f.name))
        return pa.RecordBatch.from_arrays(arrays, names=names)

    def _vectors(self, col: pa.Array, ids: pa.Array, dim: int | None, table: str) -> pa.FixedSizeListArray:
        """The vector column as fixed_size_list<float32>. A ``list<float>`` column is accepted when every row has
        the table's width; a NULL vector or one of another width is refused with one line naming the ids."""
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        if col.null_count:
            raise no_vector(self.address, table, ids.filter(col.is_null()).to_pylist())
        if not pa.types.is_fixed_size_list(col.type) and len(col):
            lengths = pc.list_value_length(col)
            width = dim if dim is not None else lengths[0].as_py()
            wrong = pc.not_equal(lengths, width)
            if pc.any(wrong).as_py():
                at = pc.index(wrong, True).as_py()
                raise ValidationFailed(f"{self.address}: {table!r}: the vector of id {ids[at].as_py()!r} has "
                                       f"{lengths[at].as_py()} dimensions, the table's others {width}",
                                       hint="rebuild that vector, or remove the row")
        return vector_array(vectors_of(col))

    def scan(self, collection: str, *, batch_rows: int = 2048, with_vectors: bool = True) -> Iterator[pa.RecordBatch]:
        with self._guard(f"reading {collection!r}"):
            tbl = self._open(self._resolve(collection))
            id_col, vec_col, dim, payload, _ = self._layout(tbl)
            cols = [id_col] + ([vec_col] if with_vectors else []) + payload.names
            reader = tbl.search().select(cols).limit(None).to_batches(batch_rows)
            for batch in reader:
                if batch.num_rows:
                    yield self._batch(batch, id_col, vec_col, payload, with_vectors, dim, collection)

    def fetch(self, collection: str, ids: Sequence[str], *, with_vectors: bool = True) -> pa.Table:
        with self._guard(f"reading {collection!r}"):
            tbl = self._open(self._resolve(collection))
            id_col, vec_col, dim, payload, _ = self._layout(tbl)
            cols = [id_col] + ([vec_col] if with_vectors else []) + payload.names
            batches = []
            for start in range(0, len(ids), 1000):
                part = ids[start:start + 1000]
                got = tbl.search().where(self._id_filter(tbl, id_col, part, collection)).select(
                    cols).limit(None).to_arrow()
                batches += [self._batch(b, id_col, vec_col, payload, with_vectors, dim, collection)
                            for b in got.to_batches()]
            if not batches:
                return pa.Table.from_batches([], schema=self._empty_schema(payload, with_vectors, dim))
            table = pa.Table.from_batches(batches)
            pos = {rid: i for i, rid in enumerate(table.column(ID).to_pylist())}
            return table.take(pa.array([pos[i] for i in ids if i in pos], pa.int64()))

    @staticmethod
    def _empty_schema(payload: pa.Schema, with_vectors: bool, dim: int | None = None) -> pa.Schema:
        head = [pa.field(ID, pa.string())] + ([pa.field(VECTOR, pa.list_(pa.float32(), dim or 1))]
                                              if with_vectors else [])
        return pa.schema(head + list(seam_schema(payload)))

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
               id_type: pa.DataType | None = None, id_field: str | None = None,
               vector_field: str | None = None, vector_format: VectorFormat | None = None) -> None:
        validate_name("lancedb", collection, "table")
        if collection == POINTER_TABLE:
            raise ConfigError(f"{self.address}: {POINTER_TABLE!r} is reserved for jina-migrate's alias pointers")
        id_col, vec_col, payload = self.check_create(payload, id_type=id_type, id_field=id_field,
                                                     vector_field=vector_field)
        with self._guard(f"creating {collection!r}"):
            if collection in self._tables():
                check_existing(self.address, collection, self._marker(self._open(collection)), run=run, dim=dim)
                return
            marker = Marker(run=run, dim=dim, metric=index.metric, payload=payload, id_field=id_col, vector_field=vec_col,
                            extra=format_extra(vector_format))
            fields = [pa.field(id_col, _column_type(id_type), nullable=False),
                      pa.field(vec_col, marker_format(marker).arrow_type(int(dim)), nullable=False)]
            fields += [pa.field(f.name, _storage_type(f.type)) for f in payload]
            self._db.create_table(collection, schema=pa.schema(fields, metadata={_MARKER: marker.to_json().encode()}))

    def check_create(self, payload: pa.Schema, *, id_type: pa.DataType | None = None, id_field: str | None = None,
                     vector_field: str | None = None) -> tuple[str, str, pa.Schema]:
        """The id and vector field names a NEW collection gets, and the payload under its field names;
        ConfigError (before anything is embedded or created) when a name clashes or this engine refuses it."""
        id_col, vec_col = destination_names(self.address, payload, id_field=id_field, vector_field=vector_field)
        payload = field_schema(payload)
        for f in payload:
            validate_name("lancedb", f.name, "field")
        return id_col, vec_col, payload

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
            ids = rows.column(ID).to_pylist()
            key = _id_type(tbl, marker.id_field)
            id_array = pa.array(int_ids(self.address, collection, ids), key) if is_int_type(key) else \
                pa.array([str(i) for i in ids], tbl.schema.field(marker.id_field).type)
            arrays = [id_array, marker_format(marker).to_arrow(vectors_of(rows.column(VECTOR)))]
            fields = payload_table(rows)
            for f in marker.payload:
                if f.name in fields.column_names:
                    col = fields.column(f.name).combine_chunks()
                    arrays.append(col.storage if isinstance(col.type, pa.ExtensionType) else col)
                else:
                    arrays.append(pa.nulls(rows.num_rows, _storage_type(f.type)))
            data = pa.Table.from_arrays(arrays, schema=tbl.schema)
            tbl.merge_insert(marker.id_field).when_matched_update_all().when_not_matched_insert_all().execute(data)

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        with self._guard(f"deleting from {collection!r}"):
            tbl, marker = self._own(collection)
            for start in range(0, len(ids), 1000):
                tbl.delete(self._id_filter(tbl, marker.id_field, ids[start:start + 1000], collection))

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

    SWITCH = Switch("pointer", container="table")

    def alias_target(self, name: str) -> str | None:
        state = self.name_state(name)
        return state.target if state.kind == "alias" else name if state.kind == "collection" else None

    def name_state(self, name: str) -> NameState:
        validate_name("lancedb", name, "alias")
        with self._guard("reading the alias pointer"):
            target = self._pointer(name)
            if target is not None:
                return NameState("alias", target, "pointer")
            return NameState("collection", name, "table") if name in self._tables() else NameState("absent")

    def point_alias(self, name: str, collection: str, *, move_aside: str | None = None) -> None:
        """Create or re-point the pointer record ``name`` (one atomic merge commit)."""
        validate_name("lancedb", name, "alias")
        validate_name("lancedb", collection, "table")
        if move_aside is not None:
            raise StateError(f"{self.address}: LanceDB cannot rename a table aside")
        with self._guard("switching the alias pointer"):
            tables = self._tables()
            if collection not in tables or collection == POINTER_TABLE:
                raise InputError(f"{self.address}: table {collection!r} does not exist")
            if name in tables and self._pointer(name) is None:
                raise StateError(f"{self.address}: {name!r} is a table, not a pointer jina-migrate keeps; "
                                 "a pointer of the same name would hide it", hint="name another alias")
            schema = pa.schema([pa.field("alias", pa.string(), nullable=False),
                                pa.field("target", pa.string(), nullable=False),
                                pa.field("switched_at", pa.timestamp("us", tz="UTC"))])
            ptr = self._db.create_table(POINTER_TABLE, schema=schema, exist_ok=True)
            row = pa.table({"alias": [name], "target": [collection],
                            "switched_at": pa.array([dt.datetime.now(dt.timezone.utc)], pa.timestamp("us", tz="UTC"))},
                           schema=schema)
            ptr.merge_insert("alias").when_matched_update_all().when_not_matched_insert_all().execute(row)

    def drop_alias(self, name: str, *, restore: str | None = None) -> None:
        """Remove the pointer record ``name`` (one commit); absent already: nothing to do."""
        validate_name("lancedb", name, "alias")
        if restore is not None:
            raise StateError(f"{self.address}: LanceDB cannot rename a table back")
        with self._guard("removing the alias pointer"):
            if self._pointer(name) is not None:
                self._db.open_table(POINTER_TABLE).delete(f"alias = {_literal(name)}")
