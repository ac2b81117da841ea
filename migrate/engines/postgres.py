"""PostgreSQL + pgvector through psycopg 3.

* Ids: ``describe`` reports a ``smallint`` / ``integer`` / ``bigint`` key as that integer type, a
  ``uuid`` key as Arrow's UUID, anything else as text; filters cast the seam's string ids to the
  key's own type, and a destination gets that same key type (``_id_column``).
* Reading streams through a server-side (named, binary) cursor, one batch in memory.
* Writing: one transaction per batch: ``DELETE`` the batch's ids, then ``COPY ... FROM STDIN
  (FORMAT BINARY)`` straight into the table: the bulk path's speed, idempotent by id (a rerun
  replaces what an earlier try wrote; a crash rolls the whole batch back). Measured against
  the staging-table + ``INSERT ... ON CONFLICT`` variant, which writes every row twice: 0.52 of
  the bulk path instead of ~0.9 (see docs/notes-engines.md).
* The HNSW (or IVFFlat) index is built after the bulk load (``build_index``).
* ``--precision``: float32 is ``vector(d)``, float16 ``halfvec(d)`` (``halfvec_ip_ops`` /
  ``halfvec_cosine_ops``), binary ``bit(d)`` (the sign bits, ``bit_hamming_ops``; searched with
  ``binary_quantize(query)``, scored ``1 - 2·hamming/d``); pgvector has no int8 vector, so int8 is
  refused (``LIMITS``). The seam stays float32: ``upsert`` encodes, reading decodes
  (``migrate.precision``).
* Cutover: the application's name becomes a view on the new table, switched inside one
  transaction (when that name is the run's own source table, it is renamed aside ``<name>_pre_jm``
  in the same transaction, and renamed back on rollback; any other table is refused). Tables
  jina-migrate did not create are only read.

Every identifier is quoted with ``psycopg.sql.Identifier``; no SQL is built by string formatting.
A lost connection raises ``EngineUnavailable`` (exit 4); the next call reconnects.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import re
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
from pgvector import Bit, HalfVector
from pgvector.psycopg import register_vector
from psycopg import sql

from migrate.engines.address import Address, validate_name
from migrate.engines.limits import Limits
from migrate.engines.base import (ID, VECTOR, CollectionInfo, IndexSpec, Marker, check_existing, check_rows,
                                  checksum_batches, column_name, destination_names, field_schema, format_extra,
                                  int_ids, is_int_type, is_uuid_type, marker_format, owned, payload_table,
                                  seam_schema, unavailable, uuid_ids, vector_array, vectors_of)
from migrate.engines.base import no_vector
from migrate.engines.names import NameState, Switch
from migrate.engines.payload import to_jsonable, decode_column
from migrate.errors import ConfigError, InputError, StateError
from migrate.precision import VectorFormat
from migrate.secrets import redact

#: PostgreSQL + pgvector limits: pgvector's ``vector`` holds 16,000 dimensions and its HNSW / IVFFlat
#: indexes 2,000; a table has at most 1,600 columns (id and vector included); ``text`` and ``jsonb``
#: cannot hold U+0000. Names: ``validate_name("postgres", ...)`` (63 bytes).
LIMITS = Limits("postgres", max_dim=16000, max_index_dim=2000, max_payload_fields=1598, text_nul=False,
                precisions=("float32", "float16", "binary"), precision_note="pgvector has no int8 vector type")

_ALIAS_KEY = "jina_migrate_alias"
_ASIDE = "_pre_jm"
_OPS = {"cosine": ("vector_cosine_ops", "<=>"), "ip": ("vector_ip_ops", "<#>")}
#: The column type of each stored precision (``LIMITS.precisions``), and the operator class of its index.
_COLUMN = {"float32": "vector", "float16": "halfvec", "binary": "bit"}
_HALF_OPS = {"cosine": "halfvec_cosine_ops", "ip": "halfvec_ip_ops"}
_LIBPQ_OPTS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "application_name",
               "target_session_attrs", "passfile", "options")

#: PostgreSQL type name -> Arrow type, for tables jina-migrate did not create.
_PG_TO_ARROW: dict[str, pa.DataType] = {
    "text": pa.string(), "varchar": pa.string(), "bpchar": pa.string(), "name": pa.string(), "citext": pa.string(),
    "int2": pa.int16(), "int4": pa.int32(), "int8": pa.int64(), "float4": pa.float32(), "float8": pa.float64(),
    "bool": pa.bool_(), "timestamptz": pa.timestamp("us", tz="UTC"), "timestamp": pa.timestamp("us"),
    "date": pa.date32(), "bytea": pa.binary(), "json": pa.json_(), "jsonb": pa.json_(),
}


#: PostgreSQL key type -> the id type ``describe`` reports (any other key reads as text).
_ID_TO_ARROW: dict[str, pa.DataType] = {"int2": pa.int16(), "int4": pa.int32(), "int8": pa.int64(),
                                        "uuid": pa.uuid()}


def _id_column(id_type: pa.DataType | None) -> str:
    """The key column type a NEW table gets for the source's id type: the same integer width, ``uuid``
    for UUIDs, ``text`` for anything else (an unsigned 64-bit id does not fit ``bigint``: ``numeric``)."""
    if is_uuid_type(id_type):
        return "uuid"
    if is_int_type(id_type):
        return {pa.int16(): "smallint", pa.int32(): "integer", pa.int8(): "smallint", pa.uint8(): "smallint",
                pa.uint16(): "integer", pa.uint32(): "bigint", pa.uint64(): "numeric"}.get(id_type, "bigint")
    return "text"


#: Field metadata key recording a source column's own PostgreSQL type (see ``_KEEP_TYPES``).
_PG_TYPE_KEY = b"pg_type"
#: Source column types a new table keeps as they are (an application compares with them: LangChain's PGVector
#: compares ``collection_id`` with a uuid, and reads ``json`` and ``jsonb`` differently); others map by Arrow type.
_KEEP_TYPES = re.compile(r"uuid|json|jsonb|character varying(\(\d+\))?|character\(\d+\)")
#: LangChain's PGVector (langchain-postgres and langchain-community): one embedding table holds every collection,
#: told apart by ``collection_id``, the uuid ``langchain_pg_collection(uuid, name)`` names.
_LC_COLLECTIONS, _LC_KEY = "langchain_pg_collection", "collection_id"


def _column_type(f: pa.Field) -> str:
    """The column type a NEW table gets for payload field ``f``: the source column's own type where it is kept
    (``_KEEP_TYPES``), else by its Arrow type (``_pg_type``)."""
    kept = (f.metadata or {}).get(_PG_TYPE_KEY, b"").decode()
    return kept if _KEEP_TYPES.fullmatch(kept) else _pg_type(f.type)


def _pg_type(t: pa.DataType) -> str:
    """The column type jina-migrate creates for an Arrow payload type."""
    if isinstance(t, pa.JsonType):
        return "jsonb"
    simple = {pa.string(): "text", pa.large_string(): "text", pa.bool_(): "boolean", pa.int8(): "smallint",
              pa.int16(): "smallint", pa.int32(): "integer", pa.int64(): "bigint", pa.uint8(): "smallint",
              pa.uint16(): "integer", pa.uint32(): "bigint", pa.uint64(): "numeric", pa.float16(): "real",
              pa.float32(): "real", pa.float64(): "double precision", pa.date32(): "date", pa.date64(): "date",
              pa.binary(): "bytea", pa.large_binary(): "bytea"}
    if t in simple:
        return simple[t]
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    if pa.types.is_decimal(t):
        return "numeric"
    if (pa.types.is_list(t) or pa.types.is_large_list(t)) and t.value_type in simple \
            and not pa.types.is_binary(t.value_type):
        return simple[t.value_type] + "[]"
    return "jsonb"  # structs, maps, nested lists, anything else: JSON


def _copy_type(pg_type: str) -> str:
    if pg_type.startswith(("character varying", "varchar")):
        return "varchar"
    if pg_type.startswith("character("):
        return "bpchar"
    return {"double precision": "float8", "boolean": "bool", "smallint": "int2", "integer": "int4",
            "bigint": "int8", "real": "float4"}.get(pg_type, pg_type.replace("double precision", "float8")
                                                     .replace("boolean", "bool").replace("smallint", "int2")
                                                     .replace("integer", "int4").replace("bigint", "int8")
                                                     .replace("real", "float4"))


def _to_pg_values(col: pa.ChunkedArray, pg_type: str) -> list[Any]:
    """Python values psycopg's binary dumpers accept for ``pg_type``."""
    arr = col.combine_chunks()
    if pg_type == "uuid":
        return [None if v is None else uuid.UUID(str(v)) for v in arr.to_pylist()]
    if pg_type in ("jsonb", "json"):
        if isinstance(arr.type, pa.JsonType):
            return [None if s is None else json.loads(s) for s in arr.storage.to_pylist()]
        return [None if v is None else to_jsonable(v) for v in arr.to_pylist()]
    if pg_type == "numeric":
        return [None if v is None else decimal.Decimal(v) for v in arr.to_pylist()]
    if pa.types.is_float16(arr.type):
        arr = arr.cast(pa.float32())
    return arr.to_pylist()


def _read_vector(value: Any, fmt: VectorFormat) -> np.ndarray:
    """A stored vector as float32: ``vector`` / ``halfvec`` as they are, ``bit`` decoded (``migrate.precision``);
    psycopg's binary protocol gives ``bit`` as its wire bytes (a 4-byte length, then the bits MSB first)."""
    if fmt.precision != "binary":
        return np.asarray(value.to_numpy() if hasattr(value, "to_numpy") else value, dtype=np.float32)
    if isinstance(value, (bytes, bytearray, memoryview)):
        codes = np.frombuffer(bytes(value)[4:], dtype=np.uint8)
    elif isinstance(value, str):
        codes = np.packbits(np.frombuffer(value.encode(), dtype=np.uint8) == ord("1"))
    else:
        codes = np.packbits(np.asarray(value.to_numpy(), dtype=bool))
    return fmt.decode(codes.reshape(1, -1))[0]


def _write_vector(vector: np.ndarray, fmt: VectorFormat) -> Any:
    """A float32 seam vector as the column's COPY value: vector, halfvec (float16 cast) or bit (sign bits)."""
    if fmt.precision == "float16":
        return HalfVector(vector.astype(np.float16))
    if fmt.precision == "binary":
        return Bit(np.asarray(vector) > 0)
    return vector


def _score(op: str, distance: float, dim: int | None) -> float:
    """pgvector's distance as a score, higher = closer: cosine similarity, inner product, or for bits the cosine of
    the ±1 vectors, ``1 - 2·hamming/d`` (``migrate.precision``'s binary rule)."""
    if op == "<~>":
        return 1.0 - 2.0 * distance / float(dim or 1)
    return 1.0 - distance if op == "<=>" else -distance


@dataclass
class _Layout:
    """How one table maps onto the scan columns."""

    name: str  # the relation actually read (a view's target for our own aliases)
    id_col: str
    id_pg: str  # format_type of the id column
    id_arrow: pa.DataType
    vec_col: str
    dim: int | None
    payload: pa.Schema
    payload_cols: list[tuple[str, str]]  # (column, format_type)
    marker: Marker | None
    relkind: str
    reltuples: int
    total_bytes: int | None
    index_defs: list[str]
    subset: Any = None  # the LangChain collection's uuid: only rows whose collection_id is it (else every row)
    fmt: VectorFormat = field(default_factory=VectorFormat)  # the stored precision (halfvec, bit)

    def where(self, first: bool = True) -> tuple[sql.Composable, tuple[Any, ...]]:
        """The condition selecting this layout's rows (`` WHERE``/`` AND`` + parameters), empty for every row."""
        if self.subset is None:
            return sql.SQL(""), ()
        return sql.SQL(" WHERE {} = %s" if first else " AND {} = %s").format(sql.Identifier(_LC_KEY)), (self.subset,)


def _metric_and_index(lay: _Layout) -> tuple[str | None, str | None]:
    """The metric and index of the vector column, from its index definition (else the marker)."""
    metric, index = None, None
    for d in lay.index_defs:
        if f"({lay.vec_col} " in d or f'("{lay.vec_col}" ' in d:
            metric = "cosine" if "vec_cosine_ops" in d else "ip" if "vec_ip_ops" in d else \
                "l2" if "vec_l2_ops" in d else "hamming" if "bit_hamming_ops" in d else metric
            kind = re.search(r"USING (\w+)", d)
            params = re.search(r"WITH \((.*)\)", d)
            index = (kind.group(1) if kind else "index") + (f"({params.group(1)})" if params else "")
    if metric is None and lay.marker is not None:
        metric = lay.marker.metric
    return metric, index


def _value(cur: psycopg.Cursor[Any]) -> Any:
    """The one value of a query that always returns one row (``count(*)``, ``current_schema()``)."""
    row = cur.fetchone()
    assert row is not None  # an aggregate or a bare function call returns exactly one row
    return row[0]


class PostgresEngine:
    """A PostgreSQL database with the pgvector extension."""

    def __init__(self, address: Address) -> None:
        self.address = address
        self._c: psycopg.Connection | None = None
        self._schema: str | None = address.schema
        self._layouts: dict[str, _Layout] = {}
        self._scans = 0
        self._db()

    # ------------------------------------------------------------------ connection

    def _db(self) -> psycopg.Connection:
        if self._c is not None and not self._c.closed and not self._c.broken:
            return self._c
        self._close_quietly()
        a = self.address
        kwargs: dict[str, Any] = {k: v for k, v in a.options if k in _LIBPQ_OPTS}
        kwargs.setdefault("connect_timeout", "10")
        if a.host:
            kwargs["host"] = a.host
        if a.port:
            kwargs["port"] = a.port
        if a.database:
            kwargs["dbname"] = a.database
        if a.user:
            kwargs["user"] = a.user
        if a.secret:
            kwargs["password"] = a.secret
        try:
            conn = psycopg.connect(autocommit=True, **kwargs)
        except psycopg.OperationalError as exc:
            text = str(exc)
            if "password authentication failed" in text or "no password supplied" in text \
                    or ("database" in text and "does not exist" in text) or ("role" in text and "does not exist" in text):
                raise ConfigError(redact(f"{a}: cannot log in: {' '.join(text.split())[:200]}"),
                                  hint="check the user and database; the password comes from PGPASSWORD, "
                                       "~/.pgpass or ?password_file=PATH") from None
            raise unavailable(a, exc, "connecting") from None
        self._c = conn
        if self._schema is None:
            self._schema = _value(conn.execute("SELECT current_schema()")) or "public"
        self._register(conn)
        return conn

    def _register(self, conn: psycopg.Connection) -> None:
        try:
            register_vector(conn)
        except psycopg.ProgrammingError:
            pass  # no pgvector type yet: registered after CREATE EXTENSION in create()

    def _close_quietly(self) -> None:
        if self._c is not None:
            try:
                self._c.close()
            except Exception:  # noqa: BLE001 - a broken connection may fail to close
                pass
        self._c = None

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        try:
            yield
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            if isinstance(exc, psycopg.errors.QueryCanceled):
                raise
            self._close_quietly()
            raise unavailable(self.address, exc, doing) from None

    def close(self) -> None:
        self._close_quietly()

    def _rel(self, name: str) -> sql.Identifier:
        validate_name("postgres", name, "table")
        return self._in_schema(name)

    def _in_schema(self, name: str) -> sql.Identifier:
        self._db()
        assert self._schema is not None  # _db() looks it up on connecting
        return sql.Identifier(self._schema, name)

    # ------------------------------------------------------------------ catalog

    def _relation(self, name: str) -> tuple[int, str, int, int | None, str | None] | None:
        row = self._db().execute(
            "SELECT c.oid, c.relkind::text, c.reltuples::bigint, pg_total_relation_size(c.oid), "
            "obj_description(c.oid, 'pg_class') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s", (self._schema, name)).fetchone()
        return None if row is None else (int(row[0]), str(row[1]), int(row[2]), row[3], row[4])

    @staticmethod
    def _alias_comment(comment: str | None) -> dict[str, Any] | None:
        try:
            obj = json.loads(comment or "")
        except ValueError:
            return None
        return obj.get(_ALIAS_KEY) if isinstance(obj, dict) and isinstance(obj.get(_ALIAS_KEY), dict) else None

    def collections(self) -> list[str]:
        with self._guard("listing tables"):
            rows = self._db().execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                                      "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY 1",
                                      (self._schema,)).fetchall()
            return [r[0] for r in rows]

    def exists(self, collection: str) -> bool:
        validate_name("postgres", collection, "table")
        with self._guard("looking up a table"):
            return self._relation(collection) is not None

    def _layout(self, collection: str, *, fresh: bool = False) -> _Layout:
        validate_name("postgres", collection, "table")
        if not fresh and collection in self._layouts:
            return self._layouts[collection]
        rel = self._relation(collection)
        if rel is None:
            raise InputError(f"{self.address}: table {collection!r} does not exist in schema {self._schema!r}")
        oid, relkind, reltuples, total_bytes, comment = rel
        alias = self._alias_comment(comment) if relkind == "v" else None
        if alias and alias.get("target") and alias["target"] != collection:
            layout = self._layout(str(alias["target"]), fresh=fresh)
            self._layouts[collection] = layout
            return layout
        marker = Marker.from_json(comment)
        cols = self._db().execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typname, "
            "CASE WHEN t.typcategory = 'A' THEN et.typname END "
            "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_type et ON et.oid = t.typelem "
            "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum", (oid,)).fetchall()
        types = {c[0]: (c[1], c[2], c[3]) for c in cols}
        names = [c[0] for c in cols]
        a = self.address
        id_col = a.id_field or (marker.id_field if marker else None)
        if id_col is None:
            pk = self._db().execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s AND i.indisprimary", (oid,)).fetchall()
            id_col = "id" if "id" in types else (pk[0][0] if len(pk) == 1 else None)
        if id_col is None or id_col not in types:
            raise InputError(f"{self.address}: table {collection!r} has no id column {id_col or 'id'!r}",
                             hint=f"name it with ?id=COLUMN; columns are: {', '.join(names)}")
        vec_col = a.vector_field or (marker.vector_field if marker else None)
        if vec_col is None:
            vec_cols = [n for n in names if types[n][1] == "vector"]
            if len(vec_cols) != 1:
                raise InputError(f"{self.address}: table {collection!r} has {len(vec_cols)} vector columns",
                                 hint="name the one to read with ?vector=COLUMN")
            vec_col = vec_cols[0]
        if vec_col not in types:
            raise InputError(f"{self.address}: table {collection!r} has no column {vec_col!r}")
        fmt = marker_format(marker) if types[vec_col][1] != "halfvec" or marker else VectorFormat("float16")
        if types[vec_col][1] != _COLUMN.get(fmt.precision):
            raise InputError(f"{self.address}: column {vec_col!r} of {collection!r} has type {types[vec_col][0]}, "
                             f"expected pgvector's {_COLUMN.get(fmt.precision, 'vector')}")
        m = re.fullmatch(r"(?:vector|halfvec|bit)\((\d+)\)", types[vec_col][0])
        dim = int(m.group(1)) if m else None
        wanted = list(a.payload) if a.payload else [n for n in names if n not in (id_col, vec_col)]
        missing = [p for p in wanted if p not in types]
        if missing:
            raise InputError(f"{self.address}: table {collection!r} has no column {missing[0]!r}")
        fields = []
        for n in wanted:
            if marker is not None and n in marker.payload.names:
                fields.append(marker.payload.field(n))
            else:
                typ, base, elem = types[n]
                meta = {_PG_TYPE_KEY: typ.encode()} if _KEEP_TYPES.fullmatch(typ) else None
                if elem is not None and elem in _PG_TO_ARROW and not isinstance(_PG_TO_ARROW[elem], pa.JsonType):
                    fields.append(pa.field(n, pa.list_(_PG_TO_ARROW[elem])))
                else:
                    fields.append(pa.field(n, _PG_TO_ARROW.get(base, pa.string()), metadata=meta))
        id_typ, id_base, _ = types[id_col]
        id_arrow = _ID_TO_ARROW.get(id_base, pa.string())
        idx = self._db().execute("SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = %s",
                                 (oid,)).fetchall()
        layout = _Layout(name=collection, id_col=id_col, id_pg=id_typ, id_arrow=id_arrow, vec_col=vec_col, dim=dim,
                         payload=pa.schema(fields), payload_cols=[(n, types[n][0]) for n in wanted], marker=marker,
                         relkind=relkind, reltuples=reltuples, total_bytes=total_bytes,
                         index_defs=[r[0] for r in idx],
                         subset=None if marker is not None else self._subset(collection, types),
                         fmt=fmt.with_dims(dim) if dim else fmt)
        self._layouts[collection] = layout
        return layout

    def _subset(self, table: str, types: dict[str, Any]) -> Any:
        """The uuid of the LangChain collection ``?collection=NAME`` selects in a PGVector table; None for every row.
        A PGVector table holding several collections, read without naming one, is refused (one line, with the
        names): mixing them would migrate another application's rows."""
        name = self.address.framework_collection
        if name is None and _LC_KEY not in types:
            return None
        if _LC_KEY not in types or self._relation(_LC_COLLECTIONS) is None:
            if name is None:
                return None
            raise InputError(f"{self.address}: ?collection={name!r} selects a LangChain collection, but table "
                             f"{table!r} has no {_LC_KEY!r} column or schema {self._schema!r} no {_LC_COLLECTIONS!r}",
                             hint="drop &collection= to read the whole table")
        names: dict[str, Any] = dict(self._db().execute(sql.SQL("SELECT name, uuid FROM {}").format(
            self._in_schema(_LC_COLLECTIONS))).fetchall())
        if name is not None:
            if name not in names:
                raise InputError(f"{self.address}: no LangChain collection {name!r} in {_LC_COLLECTIONS!r}",
                                 hint=f"collections are: {', '.join(sorted(map(str, names))) or '(none)'}")
            return names[name]
        used = self._db().execute(sql.SQL("SELECT {}, count(*) FROM {} GROUP BY 1 ORDER BY 2 DESC").format(
            sql.Identifier(_LC_KEY), self._rel(table))).fetchall()
        if len(used) > 1:
            by_id = {v: k for k, v in names.items()}
            shown = ", ".join(f"{by_id.get(u, u)} ({n} rows)" for u, n in used[:5])
            raise InputError(f"{self.address}: table {table!r} holds {len(used)} LangChain collections: {shown}",
                             hint=f"pick one with &collection=NAME (e.g. &collection={by_id.get(used[0][0], '')})")
        return None

    def describe(self, collection: str) -> CollectionInfo:
        with self._guard("describing a table"):
            lay = self._layout(collection, fresh=True)
            rows, exact = lay.reltuples, False
            if rows < 0 or lay.relkind not in ("r", "p", "m") or lay.subset is not None:
                cond, args = lay.where()
                query = sql.SQL("SELECT count(*) FROM {}{}").format(self._rel(lay.name), cond)
                rows = _value(self._db().execute(query, args))
                exact = True
            metric, index = _metric_and_index(lay)
            return CollectionInfo(name=lay.name, rows=int(rows), rows_exact=exact, dim=lay.dim, metric=metric,
                                  id_field=lay.id_col, vector_field=lay.vec_col, payload=seam_schema(lay.payload),
                                  id_type=lay.id_arrow, bytes=lay.total_bytes, index=index,
                                  created_by_run=lay.marker.run if lay.marker else None,
                                  alias_of=lay.name if lay.name != collection else None)

    # ------------------------------------------------------------------ reading

    def _select(self, lay: _Layout, with_vectors: bool) -> sql.Composed:
        parts: list[sql.Composable] = [sql.Identifier(lay.id_col)]
        if with_vectors:
            parts.append(sql.Identifier(lay.vec_col))
        for (col, _typ), f in zip(lay.payload_cols, lay.payload):
            ident = sql.Identifier(col)
            if pa.types.is_string(f.type) and _typ not in ("text", "character varying") \
                    and not _typ.startswith(("character", "varchar")):
                parts.append(sql.SQL("{}::text").format(ident))
            else:
                parts.append(ident)
        return sql.SQL(", ").join(parts)

    def _batch(self, lay: _Layout, rows: list[tuple], with_vectors: bool) -> pa.RecordBatch:
        cols: list[Sequence[Any]] = list(zip(*rows)) if rows else \
            [[] for _ in range(1 + with_vectors + len(lay.payload_cols))]
        arrays: list[pa.Array] = [pa.array([str(v) for v in cols[0]], type=pa.string())]
        names = [ID]
        k = 1
        if with_vectors:
            if any(v is None for v in cols[1]):  # a NULL vector: not a width problem
                raise no_vector(self.address, lay.name, [str(i) for i, v in zip(cols[0], cols[1]) if v is None])
            vecs = [_read_vector(v, lay.fmt) for v in cols[1]]
            dim = lay.dim or (len(vecs[0]) if vecs else 0)
            if any(v.shape != (dim,) for v in vecs):
                bad = [str(i) for i, v in zip(cols[0], vecs) if v.shape != (dim,)][:5]
                raise InputError(f"{self.address}: table {lay.name!r}: vectors of ids {bad} do not have {dim} dimensions")
            arrays.append(vector_array(np.stack(vecs) if vecs else np.zeros((0, dim), np.float32)))
            names.append(VECTOR)
            k = 2
        where = f"{self.address}: table {lay.name!r}: "
        for i, f in enumerate(lay.payload):
            values = list(cols[k + i])
            if pa.types.is_integer(f.type):
                values = [int(v) if isinstance(v, decimal.Decimal) else v for v in values]
            arrays.append(decode_column(values, f.type, name=f.name, where=where))
            names.append(column_name(f.name))
        return pa.RecordBatch.from_arrays(arrays, names=names)

    def scan(self, collection: str, *, batch_rows: int = 2048, with_vectors: bool = True) -> Iterator[pa.RecordBatch]:
        with self._guard("reading a table"):
            lay = self._layout(collection)
            conn = self._db()
            cond, args = lay.where()
            query = sql.SQL("SELECT {} FROM {}{}").format(self._select(lay, with_vectors), self._rel(lay.name), cond)
            with conn.transaction():
                self._scans += 1
                with conn.cursor(name=f"jina_migrate_scan_{self._scans}", binary=True) as cur:
                    cur.itersize = batch_rows
                    cur.execute(query, args or None)
                    while rows := cur.fetchmany(batch_rows):
                        yield self._batch(lay, rows, with_vectors)

    def fetch(self, collection: str, ids: Sequence[str], *, with_vectors: bool = True) -> pa.Table:
        with self._guard("reading rows"):
            lay = self._layout(collection)
            cond, args = lay.where(first=False)
            query = sql.SQL("SELECT {} FROM {} WHERE {} = ANY(%s::text[]::{}[]){}").format(
                self._select(lay, with_vectors), self._rel(lay.name), sql.Identifier(lay.id_col),
                sql.SQL(lay.id_pg), cond)
            rows = self._db().execute(query, (list(ids), *args), binary=True).fetchall()
            table = pa.Table.from_batches([self._batch(lay, rows, with_vectors)])
            pos = {str(r[0]): i for i, r in enumerate(rows)}
            return table.take(pa.array([pos[i] for i in ids if i in pos], type=pa.int64()))

    def count(self, collection: str) -> int:
        with self._guard("counting rows"):
            lay = self._layout(collection)
            cond, args = lay.where()
            query = sql.SQL("SELECT count(*) FROM {}{}").format(self._rel(lay.name), cond)
            return int(_value(self._db().execute(query, args)))

    def checksum(self, collection: str) -> str:
        return checksum_batches(self.scan(collection))

    def search(self, collection: str, vectors: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        with self._guard("searching"):
            lay = self._layout(collection)
            metric = _metric_and_index(lay)[0] or "cosine"
            binary = lay.fmt.precision == "binary"
            op = "<~>" if binary else {"cosine": "<=>", "ip": "<#>", "l2": "<->"}.get(metric, "<=>")
            # the query as the column's type: halfvec, or the sign bits of the float query (binary_quantize)
            arg = sql.SQL({"float16": "%s::vector::halfvec", "binary": "binary_quantize(%s::vector)::bit({})"}.get(
                lay.fmt.precision, "%s")).format(sql.Literal(int(lay.dim or 0)))
            cond, args = lay.where()
            query = sql.SQL("SELECT {}::text, {} {} {} FROM {}{} ORDER BY {} {} {} LIMIT %s").format(
                sql.Identifier(lay.id_col), sql.Identifier(lay.vec_col), sql.SQL(op), arg,
                self._in_schema(collection), cond, sql.Identifier(lay.vec_col), sql.SQL(op), arg)
            out = []
            conn = self._db()
            with conn.transaction():
                # an HNSW scan returns at most ef_search rows (40 by default): widen it for large k
                conn.execute("SELECT set_config('hnsw.ef_search', %s, true), set_config('ivfflat.probes', %s, true)",
                             (str(min(1000, max(40, 2 * k))), str(min(100, max(1, k // 4)))))
                for q in np.asarray(vectors, dtype=np.float32):
                    rows = conn.execute(query, (q, *args, q, k)).fetchall()
                    out.append([(r[0], _score(op, float(r[1]), lay.dim)) for r in rows])
            return out

    # ------------------------------------------------------------------ writing

    def create(self, collection: str, *, dim: int, payload: pa.Schema, index: IndexSpec, run: str,
               id_type: pa.DataType | None = None, id_field: str | None = None,
               vector_field: str | None = None, vector_format: VectorFormat | None = None) -> None:
        validate_name("postgres", collection, "table")
        id_col, vec_col, payload = self.check_create(payload, id_type=id_type, id_field=id_field,
                                                     vector_field=vector_field)
        id_pg = _id_column(id_type)
        with self._guard("creating a table"):
            conn = self._db()
            rel = self._relation(collection)
            if rel is not None:
                check_existing(self.address, collection, Marker.from_json(rel[4]), run=run, dim=dim)
                return
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except psycopg.Error:
                pass  # no privilege: fine if it is installed already (checked by the CREATE TABLE below)
            register_vector(conn)
            marker = Marker(run=run, dim=dim, metric=index.metric, payload=payload, id_field=id_col, vector_field=vec_col,
                            extra=format_extra(vector_format))
            column = _COLUMN[vector_format.precision if vector_format else "float32"]
            cols = [sql.SQL("{} {} PRIMARY KEY").format(sql.Identifier(id_col), sql.SQL(id_pg)),
                    sql.SQL("{} {}({}) NOT NULL").format(sql.Identifier(vec_col), sql.SQL(column),
                                                         sql.Literal(int(dim)))]
            cols += [sql.SQL("{} {}").format(sql.Identifier(f.name), sql.SQL(_column_type(f))) for f in payload]
            with conn.transaction():
                conn.execute(sql.SQL("CREATE TABLE {} ({})").format(self._rel(collection), sql.SQL(", ").join(cols)))
                conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(self._rel(collection),
                                                                       sql.Literal(marker.to_json())))
            self._layouts.pop(collection, None)

    def check_create(self, payload: pa.Schema, *, id_type: pa.DataType | None = None, id_field: str | None = None,
                     vector_field: str | None = None) -> tuple[str, str, pa.Schema]:
        """The id and vector field names a NEW collection gets, and the payload under its field names;
        ConfigError (before anything is embedded or created) when a name clashes or this engine refuses it."""
        id_col, vec_col = destination_names(self.address, payload, id_field=id_field, vector_field=vector_field)
        payload = field_schema(payload)
        for f in payload:
            validate_name("postgres", f.name, "field")
        return id_col, vec_col, payload

    def _own(self, collection: str) -> _Layout:
        lay = self._layout(collection)
        owned(self.address, collection, lay.marker if lay.name == collection else None)
        return lay

    def upsert(self, collection: str, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        with self._guard("writing rows"):
            lay = self._own(collection)
            check_rows(self.address, collection, rows, lay.dim)
            conn = self._db()
            cols = [lay.id_col, lay.vec_col] + [f.name for f in lay.payload]
            pg_types = [_copy_type(lay.id_pg), _COLUMN[lay.fmt.precision]] + [_copy_type(t) for _, t in lay.payload_cols]
            ids: list[Any] = rows.column(ID).to_pylist()
            if is_int_type(lay.id_arrow):
                ids = int_ids(self.address, collection, ids)
            elif is_uuid_type(lay.id_arrow):
                ids = uuid_ids(self.address, collection, ids)
            vecs = vectors_of(rows.column(VECTOR))
            fields = payload_table(rows)
            payload = [_to_pg_values(fields.column(f.name), t) if f.name in fields.column_names
                       else [None] * rows.num_rows for f, (_, t) in zip(lay.payload, lay.payload_cols)]
            ident_list = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
            with conn.transaction():
                # Replace-by-id inside one transaction: readers see all of this batch or none of it,
                # a crash rolls back, a rerun deletes what a committed earlier try wrote. The COPY goes
                # straight into the table (no staging copy), which keeps the bulk path's speed.
                conn.execute(sql.SQL("DELETE FROM {} WHERE {} = ANY(%s::text[]::{}[])").format(
                    self._rel(collection), sql.Identifier(lay.id_col), sql.SQL(lay.id_pg)),
                    ([str(i) for i in ids],))
                with conn.cursor() as cur:
                    with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                            self._rel(collection), ident_list)) as cp:
                        cp.set_types(pg_types)
                        for i in range(rows.num_rows):
                            cp.write_row([ids[i], _write_vector(vecs[i], lay.fmt), *[p[i] for p in payload]])

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        if not ids:
            return
        with self._guard("deleting rows"):
            lay = self._own(collection)
            self._db().execute(sql.SQL("DELETE FROM {} WHERE {} = ANY(%s::text[]::{}[])").format(
                self._rel(collection), sql.Identifier(lay.id_col), sql.SQL(lay.id_pg)), (list(ids),))

    def build_index(self, collection: str, index: IndexSpec) -> None:
        with self._guard("building the index"):
            lay = self._own(collection)
            conn = self._db()
            ops = {"float16": _HALF_OPS[index.metric], "binary": "bit_hamming_ops"}.get(lay.fmt.precision,
                                                                                        _OPS[index.metric][0])
            if index.kind == "flat":
                conn.execute(sql.SQL("ANALYZE {}").format(self._rel(collection)))
                return
            suffix = "_hnsw" if index.kind == "hnsw" else "_ivf"
            name = collection if len((collection + suffix).encode()) <= 63 else \
                collection.encode()[:40].decode("utf-8", "ignore") + hashlib.sha1(collection.encode()).hexdigest()[:8]
            idx = sql.Identifier(name + suffix)
            if index.kind == "hnsw":
                method = sql.SQL("hnsw ({} {}) WITH (m = {}, ef_construction = {})").format(
                    sql.Identifier(lay.vec_col), sql.SQL(ops), sql.Literal(index.m), sql.Literal(index.ef_construction))
            else:
                n = self.count(collection)
                lists = index.nlist or max(1, min(int(4 * np.sqrt(max(n, 1))), max(1, n // 39)))
                method = sql.SQL("ivfflat ({} {}) WITH (lists = {})").format(
                    sql.Identifier(lay.vec_col), sql.SQL(ops), sql.Literal(lists))
            with conn.transaction():
                conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
                conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING {}").format(
                    idx, self._rel(collection), method))
            conn.execute(sql.SQL("ANALYZE {}").format(self._rel(collection)))
            self._layouts.pop(collection, None)

    # ------------------------------------------------------------------ cutover

    SWITCH = Switch("view", container="table", moves_aside=True, aside_suffix=_ASIDE)

    def alias_target(self, name: str) -> str | None:
        state = self.name_state(name)
        return state.target if state.kind == "alias" else name if state.kind == "collection" else None

    def _state(self, name: str) -> NameState:
        rel = self._relation(name)
        if rel is None:
            return NameState("absent")
        alias = self._alias_comment(rel[4]) if rel[1] == "v" else None
        if alias and alias.get("target"):
            return NameState("alias", str(alias["target"]), "view")
        if rel[1] in ("r", "p"):
            return NameState("collection", name, "table")
        what = {"v": "view", "m": "materialized view", "f": "foreign table"}.get(rel[1], f"relation (kind {rel[1]})")
        return NameState("other", None, what)

    def name_state(self, name: str) -> NameState:
        validate_name("postgres", name, "table")
        with self._guard("reading the application's table"):
            return self._state(name)

    @contextmanager
    def _switching(self, name: str) -> Iterator[psycopg.Connection]:
        """One transaction holding the switch lock of ``name`` (one cutover or rollback at a time per name);
        the DDL inside takes the relation locks readers wait on, for milliseconds."""
        with self._guard("switching the application's table"):
            conn = self._db()
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                                 (f"jina-migrate:{self._schema}.{name}",))
                    yield conn
            except (psycopg.OperationalError, psycopg.InterfaceError):
                raise  # the server went away: _guard says so (exit 4)
            except psycopg.Error as exc:  # e.g. no privilege to rename or drop: nothing changed (rolled back)
                raise StateError(redact(f"{self.address}: switching {name!r} failed, nothing changed: "
                                        + " ".join(str(exc).split())[:200])) from None
            self._layouts.clear()

    def point_alias(self, name: str, collection: str, *, move_aside: str | None = None) -> None:
        """Make ``name`` a view on ``collection`` in one transaction: create it, or replace the view jina-migrate
        made. With ``move_aside``, the real table ``name`` is first renamed to ``move_aside`` in the same
        transaction (the caller has proved it is the run's own source). Anything else at ``name`` is refused."""
        validate_name("postgres", name, "alias")
        validate_name("postgres", collection, "table")
        if move_aside is not None:
            validate_name("postgres", move_aside, "table")
        with self._switching(name) as conn:
            state = self._state(name)
            if state.kind == "collection" and move_aside is not None:
                self._refuse_hiding_collections(conn, name, collection)
                if self._relation(move_aside) is not None:
                    raise StateError(f"{self.address}: cannot move {name!r} aside: {move_aside!r} already exists",
                                     hint=f"rename or drop {move_aside!r} first; jina-migrate never drops a table")
                conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(self._rel(name), sql.Identifier(move_aside)))
            elif state.kind == "alias":
                if state.target == collection:
                    return
                conn.execute(sql.SQL("DROP VIEW {}").format(self._rel(name)))
            elif state.kind != "absent":
                raise StateError(f"{self.address}: {name!r} is a {state.what} jina-migrate did not create; "
                                 "cutover never replaces it", hint="name another alias")
            rel = self._relation(collection)
            if rel is None or rel[1] not in ("r", "p"):
                raise InputError(f"{self.address}: table {collection!r} does not exist")
            conn.execute(sql.SQL("CREATE VIEW {} AS SELECT * FROM {}").format(self._rel(name), self._rel(collection)))
            note = json.dumps({_ALIAS_KEY: {"target": collection, "created_by": "jina-migrate",
                                            "switched_at": dt.datetime.now(dt.timezone.utc).isoformat()}})
            conn.execute(sql.SQL("COMMENT ON VIEW {} IS {}").format(self._rel(name), sql.Literal(note)))

    def _refuse_hiding_collections(self, conn: psycopg.Connection, name: str, collection: str) -> None:
        """A LangChain PGVector table holding collections the new table lacks is not moved aside: the view that
        replaces it would hide those collections from every application that reads them (StateError, unchanged)."""
        has_key = conn.execute("SELECT 1 FROM pg_attribute WHERE attrelid = %s AND attname = %s "
                               "AND NOT attisdropped", (self._relation(name)[0], _LC_KEY)).fetchone()  # type: ignore[index]
        if not has_key:
            return
        ident = sql.Identifier(_LC_KEY)
        lost = conn.execute(sql.SQL("SELECT count(*), count(DISTINCT o.{}) FROM {} o WHERE NOT EXISTS ("
                                    "SELECT 1 FROM {} n WHERE n.{} IS NOT DISTINCT FROM o.{})").format(
            ident, self._rel(name), self._rel(collection), ident, ident)).fetchone()
        if lost and lost[0]:
            raise StateError(f"{self.address}: {name!r} also holds {lost[0]} rows of {lost[1]} other LangChain "
                             f"collections that {collection!r} lacks; a view replacing {name!r} would hide them",
                             hint="cutover needs the table to hold the migrated collection alone: move or delete "
                                  "the others first, or point the application at the new table itself")

    def drop_alias(self, name: str, *, restore: str | None = None) -> None:
        """Drop the view jina-migrate made at ``name``; with ``restore``, rename that table back to ``name`` in
        the same transaction (the rollback of a move aside). A name that is no view of ours is left alone."""
        validate_name("postgres", name, "alias")
        if restore is not None:
            validate_name("postgres", restore, "table")
        with self._switching(name) as conn:
            state = self._state(name)
            if state.kind == "alias":
                conn.execute(sql.SQL("DROP VIEW {}").format(self._rel(name)))
            elif state.kind != "absent":
                raise StateError(f"{self.address}: {name!r} is a {state.what}, not the view jina-migrate made; "
                                 "rollback leaves it alone")
            if restore is not None:
                rel = self._relation(restore)
                if rel is None or rel[1] not in ("r", "p"):
                    raise StateError(f"{self.address}: cannot rename {restore!r} back to {name!r}: it is gone",
                                     hint=f"restore the table {restore!r} from a backup")
                conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(self._rel(restore), sql.Identifier(name)))
