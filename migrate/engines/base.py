"""The one protocol every vector-database adapter implements, and what it passes around.

A source reads with ``describe`` / ``scan`` / ``fetch``; a sink writes with ``create`` /
``upsert`` / ``delete`` / ``build_index``; cutover uses ``name_state`` / ``point_alias`` / ``drop_alias``;
``verify`` and ``compare`` use ``count`` / ``checksum`` / ``search``.

Ids are always strings at this seam (an integer as its decimal digits, a UUID in its canonical
lower-case form). Each adapter owns the rule for its engine's key types: ``describe`` reports
the source's native id type (``CollectionInfo.id_type``: string, an integer type, or UUID), the
adapter converts seam ids back to that type in every filter and fetch, and ``create`` gives a
destination the nearest key type its engine has, so an int64 key stays int64 and a UUID stays a
UUID. A payload field may have any name, ``id`` and ``vector`` included: at this seam such a
field is carried as :func:`column_name` (``payload:id``) beside the reserved ``id`` and
``vector`` columns, and written back under its own name.

Collections created by jina-migrate carry a *marker* (table comment, collection metadata or
properties, Arrow schema metadata) naming the run that created them and the exact Arrow
payload schema, so a rerun of the same run continues and reading back restores every type.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa

from migrate.engines.address import Address, validate_name
from migrate.engines.payload import to_jsonable
from migrate.errors import ConfigError, MigrateError, StateError
from migrate.precision import VectorFormat
from migrate.secrets import redact

MARKER_KEY = "jina_migrate"
#: The reserved output columns of ``scan`` / ``fetch``.
ID, VECTOR = "id", "vector"
#: Prefix of a payload field's column at this seam when its own name is reserved (see ``column_name``).
PAYLOAD_PREFIX = "payload:"


def column_name(field_name: str) -> str:
    """The seam column that carries payload field ``field_name``: the name itself, unless that is a
    reserved column (``id``, ``vector``) or starts with the prefix; then ``payload:`` + name (reversible)."""
    if field_name in (ID, VECTOR) or field_name.startswith(PAYLOAD_PREFIX):
        return PAYLOAD_PREFIX + field_name
    return field_name


def field_name(column: str) -> str:
    """The payload field a seam column carries (the inverse of :func:`column_name`)."""
    return column[len(PAYLOAD_PREFIX):] if column.startswith(PAYLOAD_PREFIX) else column


def seam_schema(payload: pa.Schema) -> pa.Schema:
    """A payload schema with field names as the seam's columns (what ``describe`` reports)."""
    return pa.schema([f.with_name(column_name(f.name)) for f in payload], metadata=payload.metadata)


def field_schema(payload: pa.Schema) -> pa.Schema:
    """A payload schema given at the seam (``create``) with each field under its own name again."""
    return pa.schema([f.with_name(field_name(f.name)) for f in payload], metadata=payload.metadata)


def payload_table(rows: pa.Table | pa.RecordBatch) -> pa.Table:
    """The payload columns of seam ``rows`` (everything but ``id`` / ``vector``) under their field names."""
    names = [n for n in rows.schema.names if n not in (ID, VECTOR)]
    cols = [rows.column(rows.schema.get_field_index(n)) for n in names]
    return pa.Table.from_arrays(cols, names=[field_name(n) for n in names])


def is_int_type(t: pa.DataType | None) -> bool:
    """An integer id type (the engines' int64 / int32 / int16 keys)."""
    return t is not None and pa.types.is_integer(t)


def is_uuid_type(t: pa.DataType | None) -> bool:
    """Arrow's UUID extension type, the id type of PostgreSQL ``uuid`` keys and Qdrant UUID point ids."""
    return isinstance(t, pa.BaseExtensionType) and t.extension_name == "arrow.uuid"


def int_ids(address: Any, collection: str, ids: Sequence[str]) -> list[int]:
    """Seam ids as integers for an integer key; an id that is not one is refused with one line."""
    out = []
    for i in ids:
        try:
            out.append(int(i))
        except (TypeError, ValueError):
            from migrate.errors import InputError

            raise InputError(f"{address}: {collection!r} has integer ids; {str(i)[:80]!r} is not an integer",
                             hint="migrate into a new collection whose ids are text") from None
    return out


def uuid_ids(address: Any, collection: str, ids: Sequence[str]) -> list[Any]:
    """Seam ids as ``uuid.UUID`` for a UUID key; an id that is not one is refused with one line."""
    import uuid

    out = []
    for i in ids:
        try:
            out.append(uuid.UUID(str(i)))
        except ValueError:
            from migrate.errors import InputError

            raise InputError(f"{address}: {collection!r} has UUID ids; {str(i)[:80]!r} is not a UUID",
                             hint="migrate into a new collection whose ids are text") from None
    return out


def valid_field_name(address: Address, name: str | None) -> str | None:
    """``name`` if this engine accepts it as a field name (a source's name may not suit another engine)."""
    if not name:
        return None
    try:
        validate_name(address.engine, name, "field")
    except ConfigError:
        return None
    return name


def destination_names(address: Address, payload: pa.Schema, *, id_field: str | None = None,
                      vector_field: str | None = None) -> tuple[str, str]:
    """The id and vector field names a NEW collection gets: the address's ``&id=`` / ``&vector=``, else the
    source's own names (``id_field`` / ``vector_field``; so an application's columns keep their names),
    else ``id`` / ``vector``. ``payload`` is a seam schema; a payload field of either name is refused."""
    id_name = address.id_field or valid_field_name(address, id_field) or ID
    vec_name = address.vector_field or valid_field_name(address, vector_field) or VECTOR
    for name in (id_name, vec_name):
        validate_name(address.engine, name, "field")
    fields = set(field_schema(payload).names)
    for flag, name in (("id", id_name), ("vector", vec_name)):
        if name in fields:
            raise ConfigError(f"{address}: the destination's {flag} field {name!r} is also a payload field of the "
                              "source", hint=f"name the {flag} field with &{flag}=NAME on --sink")
    if id_name == vec_name:
        raise ConfigError(f"{address}: the id and vector fields are both named {id_name!r}",
                          hint="name them apart with &id= and &vector= on --sink")
    return id_name, vec_name


class EngineUnavailable(MigrateError):
    """The database could not be reached or went away mid-operation (exit code 4, like a failed
    embedding backend): nothing is lost, rerun the same command once the server is back."""

    exit_code = 4


def unavailable(address: Address, exc: BaseException, doing: str) -> EngineUnavailable:
    """A one-line EngineUnavailable naming the address (never a secret) and the cause."""
    cause = " ".join(str(exc).split())[:200] or type(exc).__name__
    return EngineUnavailable(redact(f"{address}: {doing} failed: the server is unreachable or went away ({cause})"),
                             hint="check the server, then rerun the same command: finished work is kept")


@dataclass(frozen=True)
class IndexSpec:
    """The ANN index to build, in the pipeline's terms; each adapter maps it to its engine's own.

    ``kind``: ``hnsw`` (pgvector/Qdrant/Milvus/Chroma HNSW, LanceDB IVF_HNSW_SQ), ``flat`` (exact
    search: no ANN index where the engine allows it), ``ivfpq`` (pgvector IVFFlat, Milvus/LanceDB
    IVF_PQ; Qdrant and Chroma keep HNSW). ``metric``: ``cosine`` or ``ip`` (identical on unit vectors).
    """

    kind: str = "hnsw"
    metric: str = "cosine"
    m: int = 16
    ef_construction: int = 200
    nlist: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("hnsw", "flat", "ivfpq"):
            raise StateError(f"unknown index type {self.kind!r}", hint="use flat, hnsw or ivfpq")
        if self.metric not in ("cosine", "ip"):
            raise StateError(f"unknown metric {self.metric!r}", hint="use cosine or ip")
        if not (2 <= self.m <= 128) or not (4 <= self.ef_construction <= 4096):
            raise StateError(f"HNSW parameters out of range (m={self.m}, ef_construction={self.ef_construction})")

    @classmethod
    def for_run(cls, index_type: str | None, hnsw_m: int | None = None, ef_construction: int | None = None,
                ivf_nlist: int | None = None, override: str | None = None) -> "IndexSpec":
        """The index a database destination builds for a run's ``--index-type`` settings: a flat (exact)
        run still gets HNSW (m=16) in a database unless the address says ``&index=``; an HNSW run keeps its
        ``--hnsw-m`` (default 32) and ``--hnsw-ef-construction``; IVF-PQ keeps ``--ivf-nlist``."""
        run_kind = index_type or "flat"
        kind = override or ("hnsw" if run_kind == "flat" else run_kind)
        m, ef = (hnsw_m or 32, ef_construction or 200) if run_kind == "hnsw" else (16, 200)
        return cls.from_settings(kind, hnsw_m=m, ef_construction=ef,
                                 nlist=ivf_nlist if run_kind == "ivfpq" else None)

    @classmethod
    def from_settings(cls, index_type: str = "hnsw", hnsw_m: int = 16, ef_construction: int = 200,
                      metric: str = "cosine", nlist: int | None = None) -> "IndexSpec":
        """From the CLI's ``--index-type`` / ``--hnsw-m`` / ``--ef-construction``."""
        return cls(kind=index_type, metric=metric, m=hnsw_m, ef_construction=ef_construction, nlist=nlist)


@dataclass
class CollectionInfo:
    """What ``describe`` learns about a collection, cheaply (the engine's own statistics)."""

    name: str
    rows: int  # from statistics where cheap (see rows_exact)
    dim: int | None
    metric: str | None  # cosine | ip | l2 | None (no index / unknown)
    id_field: str
    vector_field: str
    payload: pa.Schema  # every other field, with its Arrow type
    id_type: pa.DataType = field(default_factory=pa.string)  # the native id type: string, an integer, UUID
    rows_exact: bool = True
    bytes: int | None = None  # estimated storage (data + index) in bytes
    index: str | None = None  # e.g. "hnsw(m=16, ef_construction=200)"
    created_by_run: str | None = None  # the run that created it (jina-migrate marker), else None
    alias_of: str | None = None  # the collection this name resolves to when it is an alias/view
    #: whether ``id_field`` / ``vector_field`` name real fields (False: Qdrant point ids, Chroma ids and
    #: embeddings, which those engines keep outside the payload): a destination takes real names only
    id_named: bool = True
    vector_named: bool = True
    #: the payload field holding the engine's own document text (Chroma's ``documents``), read as the text
    #: when the address names none; None where the text is an ordinary field
    text_field: str | None = None

    def names_for_destination(self) -> dict[str, str | None]:
        """The ``id_field`` / ``vector_field`` a destination created from this collection defaults to."""
        return {"id_field": self.id_field if self.id_named else None,
                "vector_field": self.vector_field if self.vector_named else None}

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rows": self.rows, "rows_exact": self.rows_exact, "dim": self.dim,
                "metric": self.metric, "id_field": self.id_field,
                "id_type": "uuid" if is_uuid_type(self.id_type) else str(self.id_type),
                "vector_field": self.vector_field,
                "payload": {field_name(f.name): str(f.type) for f in self.payload},
                "bytes": self.bytes, "index": self.index, "created_by_run": self.created_by_run,
                "alias_of": self.alias_of}


@runtime_checkable
class Engine(Protocol):
    """A vector database seen as a source, a sink and a cutover switch."""

    address: Address

    def describe(self, collection: str) -> CollectionInfo:
        """Rows, dim, metric, fields, payload schema, size; InputError if it does not exist."""

    def exists(self, collection: str) -> bool:
        """Whether a collection (or alias/view) of that name exists."""

    def collections(self) -> list[str]:
        """Names of the collections (tables) there, sorted; aliases and pointers not included."""

    def scan(self, collection: str, *, batch_rows: int = 2048, with_vectors: bool = True) -> Iterator[pa.RecordBatch]:
        """Stream every row: ``id`` (string), [``vector`` fixed_size_list<float32>], payload fields."""

    def fetch(self, collection: str, ids: Sequence[str], *, with_vectors: bool = True) -> pa.Table:
        """The rows of ``ids`` that exist, in the given order (missing ids are left out)."""

    def create(self, collection: str, *, dim: int, payload: pa.Schema, index: IndexSpec, run: str,
               id_type: pa.DataType | None = None, id_field: str | None = None,
               vector_field: str | None = None, vector_format: VectorFormat | None = None) -> None:
        """A NEW collection marked with ``run``; an existing one is accepted only with the same run and shape.

        ``payload`` is a seam schema (``describe``'s); ``id_type`` the source's id type (None: strings),
        given the nearest key type of this engine; ``id_field`` / ``vector_field`` the source's own names,
        used where the address names none (see :func:`destination_names`). ``vector_format``: a reduced
        ``--precision`` (given only then, and only to engines whose ``LIMITS.precisions`` has it): the
        collection stores that type natively and records it in its marker (:func:`format_extra`); the seam
        stays float32 either way (``upsert`` encodes, ``scan`` / ``fetch`` return the decoded vectors)."""

    def check_create(self, payload: pa.Schema, *, id_type: pa.DataType | None = None, id_field: str | None = None,
                     vector_field: str | None = None) -> tuple[str | None, str | None, pa.Schema]:
        """What ``create`` with these arguments would name the id and vector fields (None where the engine
        keeps them unnamed) and the payload under its field names; ConfigError, before anything is
        embedded or created, when a name clashes or the engine refuses it. ``create`` calls it first."""

    def upsert(self, collection: str, rows: pa.Table) -> None:
        """Insert or replace rows keyed by ``id``; idempotent; uses the engine's bulk path."""

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        """Remove these ids (absent ids are ignored)."""

    def build_index(self, collection: str, index: IndexSpec) -> None:
        """Build the ANN index after the bulk load (idempotent)."""

    def count(self, collection: str) -> int:
        """Exact row count."""

    def search(self, collection: str, vectors: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        """Top-k (id, score) per query with the engine's own index; higher score = closer."""

    def checksum(self, collection: str) -> str:
        """Order-independent digest over ids, vectors and payload, streamed."""

    def alias_target(self, name: str) -> str | None:
        """The collection the application's ``name`` points at now (itself if a real collection; None if absent)."""

    def name_state(self, name: str) -> Any:
        """What ``name`` is now (``migrate.engines.names.NameState``); the adapter's ``SWITCH`` says what it can do."""

    def point_alias(self, name: str, collection: str, *, move_aside: str | None = None) -> None:
        """Atomically create or re-point the alias/view/pointer ``name`` at ``collection``; ``move_aside``
        (engines whose ``SWITCH.moves_aside``) renames the real table ``name`` aside in the same step."""

    def drop_alias(self, name: str, *, restore: str | None = None) -> None:
        """Remove the alias/view/pointer ``name`` (rollback to "nothing there"); ``restore`` renames a table
        moved aside back to ``name`` in the same step."""

    def close(self) -> None:
        """Release connections and files."""


# --------------------------------------------------------------------------- marker


@dataclass(frozen=True)
class Marker:
    """What jina-migrate records on a collection it created."""

    run: str
    dim: int
    metric: str
    payload: pa.Schema  # field names as in the engine (not the seam's column names)
    id_field: str | None = ID  # None: the engine's own key holds the id (Qdrant int / UUID point ids)
    vector_field: str = VECTOR
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"created_by": "jina-migrate", "run": self.run, "dim": self.dim, "metric": self.metric,
                           "id_field": self.id_field, "vector_field": self.vector_field,
                           "schema": schema_to_text(self.payload), **({"extra": self.extra} if self.extra else {})},
                          sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes | None) -> "Marker | None":
        """The marker, or None when ``text`` is not one of ours."""
        if not text:
            return None
        try:
            obj = json.loads(text)
            if not isinstance(obj, dict) or obj.get("created_by") != "jina-migrate":
                return None
            return cls(run=str(obj["run"]), dim=int(obj["dim"]), metric=str(obj["metric"]),
                       payload=schema_from_text(obj["schema"]),
                       id_field=None if obj.get("id_field", ID) is None else str(obj.get("id_field", ID)),
                       vector_field=str(obj.get("vector_field", VECTOR)), extra=dict(obj.get("extra") or {}))
        except (ValueError, KeyError, TypeError, pa.ArrowException):
            return None


#: Marker ``extra`` keys of a collection storing a reduced ``--precision`` (absent: float32).
PRECISION_KEY, SCALE_KEY = "precision", "int8_scale"


def format_extra(fmt: VectorFormat | None) -> dict[str, Any]:
    """What a marker records about a reduced vector format (``{}`` for float32): the precision, int8's scale."""
    if fmt is None or not fmt.reduced:
        return {}
    return {PRECISION_KEY: fmt.precision, **({SCALE_KEY: fmt.scale} if fmt.scale is not None else {})}


def marker_format(marker: Marker | None) -> VectorFormat:
    """The vector format a collection's marker records (float32 for a foreign collection or an older marker)."""
    extra = marker.extra if marker is not None else {}
    precision = str(extra.get(PRECISION_KEY) or "float32")
    scale = extra.get(SCALE_KEY)
    return VectorFormat(precision=precision, dims=marker.dim if marker is not None else None,
                        metric="hamming" if precision == "binary" else "ip",
                        scale=float(scale) if scale is not None else None)


def owned(address: Address, collection: str, marker: Marker | None) -> Marker:
    """The marker of a collection this tool created; a collection without one is never written to."""
    if marker is None:
        raise StateError(f"{address}: {collection!r} was not created by jina-migrate; it is never written to")
    return marker


def check_existing(address: Address, collection: str, marker: Marker | None, *, run: str, dim: int) -> None:
    """Refuse to write into a collection jina-migrate did not create for this very run."""
    if marker is None:
        raise StateError(f"{address}: {collection!r} already exists and was not created by jina-migrate; "
                         "the tool never writes into an existing collection",
                         hint="choose a new collection name for the destination")
    if marker.run != run:
        raise StateError(f"{address}: {collection!r} was created by another jina-migrate run ({marker.run})",
                         hint="choose a new collection name, or rerun with the output directory of that run")
    if marker.dim != dim:
        raise StateError(f"{address}: {collection!r} holds {marker.dim}-dimensional vectors, this run writes {dim}")


def schema_to_text(schema: pa.Schema) -> str:
    """An Arrow schema as compact base64 text (IPC serialisation), for engine metadata fields."""
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def schema_from_text(text: str) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


# --------------------------------------------------------------------------- arrow helpers


def vectors_of(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A list/fixed-size-list column as a C-contiguous float32 matrix."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    n = len(arr)
    if n == 0:
        size = arr.type.list_size if pa.types.is_fixed_size_list(arr.type) else 0
        return np.zeros((0, size), dtype=np.float32)
    flat = arr.flatten().to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(np.asarray(flat, dtype=np.float32).reshape(n, -1))


def no_vector(address: Address, collection: str, ids: Sequence[Any]) -> MigrateError:
    """The one refusal of rows whose vector is NULL (every adapter's scan raises it): the old index must hold
    a vector for each row, and a missing one is not a width problem. Exit 2; ``plan`` reports it as an error."""
    from migrate.errors import ValidationFailed

    shown = [str(i) for i in list(ids)[:5]]
    return ValidationFailed(f"{address}: {collection!r}: {'ids' if len(shown) > 1 else 'id'} "
                            f"{', '.join(repr(i) for i in shown)} {'have' if len(shown) > 1 else 'has'} no vector "
                            "(NULL)", hint="give those rows a vector, or delete them: the old index needs one vector "
                                           "per row")


def vector_array(vectors: np.ndarray) -> pa.FixedSizeListArray:
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1), type=pa.float32()), v.shape[1])


def check_rows(address: Address, collection: str, rows: pa.Table, dim: int | None = None) -> None:
    """The table an ``upsert`` takes: an ``id`` string column without nulls or duplicates, a vector column."""
    from migrate.errors import InputError

    if ID not in rows.column_names or VECTOR not in rows.column_names:
        raise InputError(f"{address}: rows for {collection!r} need columns 'id' and 'vector'")
    ids = rows.column(ID)
    if ids.null_count:
        raise InputError(f"{address}: rows for {collection!r} have null ids")
    if len(set(ids.to_pylist())) != rows.num_rows:
        raise InputError(f"{address}: rows for {collection!r} repeat an id within one batch")
    if dim is not None and rows.num_rows:
        t = rows.schema.field(VECTOR).type
        got = t.list_size if pa.types.is_fixed_size_list(t) else len(rows.column(VECTOR)[0])
        if got != dim:
            raise InputError(f"{address}: vectors for {collection!r} have {got} dimensions, the collection {dim}")


def check_unit(address: Address, collection: str, vectors: np.ndarray, ids: Sequence[str], tol: float = 1e-3) -> None:
    """Refuse vectors that are not unit length where cosine is stored as inner product.

    Qdrant (Cosine) and Chroma (cosine space) re-normalise every stored vector, which changes its
    low bits (differently for different batchings in Qdrant's local mode), so a collection could
    never be proved equal to the vectors written. On unit vectors cosine equals the inner product,
    so those adapters store them unchanged under the inner-product metric; this guards that.
    """
    from migrate.errors import InputError

    norms = np.linalg.norm(vectors, axis=1)
    bad = np.nonzero(np.abs(norms - 1.0) > tol)[0]
    if len(bad):
        raise InputError(f"{address}: vectors for {collection!r} are not unit length (ids {[ids[i] for i in bad[:5]]}, "
                         f"norm {float(norms[bad[0]]):.4f})",
                         hint="cosine collections here store unit vectors as inner product; normalise the vectors "
                              "(v3 vectors are unit length unless normalisation was turned off)")


# --------------------------------------------------------------------------- checksum


def row_digests(batch: pa.RecordBatch | pa.Table) -> list[bytes]:
    """One sha256 per row over (id, vector bytes if present, canonical payload JSON).

    Two rows have the same digest exactly when their ids, vectors (bit for bit) and payload values
    are equal, whatever the engine and column order: what ``checksum`` sums, and what a sink
    compares to skip rows a destination already holds.
    """
    names = batch.schema.names
    ids = batch.column(names.index(ID)).to_pylist()
    vecs = vectors_of(batch.column(names.index(VECTOR))) if VECTOR in names else None
    payload_names = sorted(n for n in names if n not in (ID, VECTOR))
    cols = {n: json_values(batch.column(names.index(n))) for n in payload_names}
    out = []
    for i, rid in enumerate(ids):
        h = hashlib.sha256(str(rid).encode("utf-8") + b"\x00")
        if vecs is not None:
            h.update(vecs[i].astype("<f4").tobytes())
        row = {n: cols[n][i] for n in payload_names}
        h.update(json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
        out.append(h.digest())
    return out


def checksum_batches(batches: Iterable[pa.RecordBatch]) -> str:
    """``rows:sha256-sum`` over the :func:`row_digests` of every row.

    The digests are added modulo 2**256, so the result does not depend on the order the engine
    returns rows in, and memory stays one batch.
    """
    total, rows = 0, 0
    mod = 1 << 256
    for batch in batches:
        for digest in row_digests(batch):
            total = (total + int.from_bytes(digest, "big")) % mod
            rows += 1
    return f"{rows}:{total:064x}"


def json_values(col: pa.Array | pa.ChunkedArray) -> list[Any]:
    """Python values of a column in canonical JSON form (JSON extension values parsed)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if isinstance(col.type, pa.JsonType):
        return [None if v is None else to_jsonable(json.loads(v)) for v in col.storage.to_pylist()]
    return [to_jsonable(v) for v in col.to_pylist()]
