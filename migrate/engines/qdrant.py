"""Qdrant through ``qdrant-client``: a server URL, or the client's embedded local mode (``path``).

* Point ids: Qdrant takes unsigned integers or UUIDs. ``describe`` reports a collection's id type
  from a sample: int64 for integer point ids, UUID for UUID point ids, the key's values' type when
  the ids live in a payload key (``?id=KEY``), else text. A destination keeps integer and UUID ids
  as the point ids themselves, with no payload key the source did not have; other ids (text)
  become ``uuid5(NAMESPACE, id)`` point ids with the original kept in a payload key (``?id=KEY``,
  else the source's id field name, else ``id``); ``?id=KEY`` on a destination keeps any ids there.
* Cosine is stored as ``Dot`` over unit vectors (checked on write): Qdrant's ``Cosine``
  re-normalises every stored vector, changing its low bits, so the collection could never be
  proved equal to what was written; on unit vectors both give the same ranking and scores.
  Except for a payload a framework laid out (``engines.payload.framework_layout``: LangChain's
  ``page_content`` + ``metadata``, LlamaIndex's ``_node_content``): its reader asks for ``Cosine``
  (LangChain refuses a Dot collection) and for the source's vector name (``""`` included), so the
  destination keeps both; ``verify`` compares read-back vectors within 1e-6, which the re-normalisation
  of a unit vector stays within.
* Writing uses ``upload_collection`` (batched upserts; ``wait=True``): idempotent by point id.
  The collection is created with HNSW ``m=0`` (no graph while bulk loading, as Qdrant advises);
  ``build_index`` then sets ``m`` / ``ef_construct`` and Qdrant builds the graph.
* Cutover: ``update_collection_aliases`` with delete + create in one atomic request.
* ``--precision``: float16 is stored as float16 (``VectorParams(datatype=float16)``; the vectors are rounded
  to float16 before the upload, so what is read back is the float16 value on a server and in local mode
  alike). int8 and binary keep the float32 vectors and configure Qdrant's own quantisation of the index
  (``ScalarQuantization`` int8 at the 0.999 quantile, the rule of ``migrate.precision``, with Qdrant's own
  calibration; ``BinaryQuantization``): searches score the quantised codes and rescore with the float32
  vectors, which are what ``scan`` / ``fetch`` return and ``verify`` compares (``LIMITS.keeps_float32``).
  Local mode accepts but ignores quantisation (exact search).
* Local mode is the client's own Python implementation of the server API, not the Rust server:
  same calls and results, but exact search (no HNSW) and its own speed.
"""

from __future__ import annotations

import atexit
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pyarrow as pa
from qdrant_client import QdrantClient, models

from migrate.engines.address import Address, validate_name
from migrate.engines.limits import Limits
from migrate.engines.base import (ID, VECTOR, CollectionInfo, IndexSpec, Marker, check_existing, check_rows,
                                  check_unit, checksum_batches, column_name, field_schema, int_ids, is_int_type,
                                  format_extra, is_uuid_type, marker_format, owned, payload_table, seam_schema,
                                  unavailable, valid_field_name, vector_array, vectors_of)
from migrate.engines.names import NameState, Switch
from migrate.engines.payload import decode, encode, framework_layout, infer_schema
from migrate.errors import ConfigError, InputError, StateError
from migrate.precision import CALIBRATION_QUANTILE, VectorFormat

#: uuid5 namespace for string ids that are neither integers nor UUIDs (fixed forever: ids must stay stable).
NAMESPACE = uuid.UUID("6f1c8f0e-7a43-5b7e-9a55-6a696e612d6d")
#: cosine is stored as Dot on unit vectors: Qdrant's Cosine re-normalises (changes the low bits of) every vector.
_DISTANCE = {"cosine": models.Distance.DOT, "ip": models.Distance.DOT}
_METRIC = {models.Distance.COSINE: "cosine", models.Distance.DOT: "ip", models.Distance.EUCLID: "l2",
           models.Distance.MANHATTAN: "l1"}
_SAMPLE = 256
#: Qdrant: a dense vector of at most 65,536 dimensions (its collection config's rule); payload is JSON
#: without a size rule of its own.
LIMITS = Limits("qdrant", max_dim=65536, precisions=("float32", "float16", "int8", "binary"),
                keeps_float32=("int8", "binary"))


def _quantization(fmt: VectorFormat | None) -> Any:
    """Qdrant's own quantisation of the index for int8 / binary (None for the float precisions)."""
    if fmt is not None and fmt.precision == "int8":
        return models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(
            type=models.ScalarType.INT8, quantile=CALIBRATION_QUANTILE / 100, always_ram=True))
    if fmt is not None and fmt.precision == "binary":
        return models.BinaryQuantization(binary=models.BinaryQuantizationConfig(always_ram=True))
    return None


def _framework(payload: pa.Schema) -> bool:
    """Whether a Qdrant framework (LangChain, LlamaIndex) laid out this payload: its reader then asks for Cosine
    and for the vector's name."""
    return (framework_layout(payload.names) or ("",))[0] in ("langchain", "llamaindex")


def point_id(doc_id: str) -> int | str:
    """The Qdrant point id for a document id (stable across runs and machines)."""
    if doc_id.isascii() and doc_id.isdigit() and str(int(doc_id)) == doc_id and int(doc_id) < 2 ** 64:
        return int(doc_id)
    try:
        if str(uuid.UUID(doc_id)) == doc_id:
            return doc_id
    except ValueError:
        pass
    return str(uuid.uuid5(NAMESPACE, doc_id))


def _is_point_id(doc_id: str) -> bool:
    """Whether ``doc_id`` is a point id as it stands (a canonical unsigned integer or UUID), so it needs no key."""
    return str(point_id(doc_id)) == doc_id


def _id_type_of(values: list[Any]) -> pa.DataType:
    """The id type of sampled ids (point ids or a key's values): int64 when all are integers, UUID when all
    are canonical UUIDs, else text (also for none: an empty collection)."""
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return pa.int64()
    if values and all(isinstance(v, str) and _is_point_id(v) and not v.isdigit() for v in values):
        return pa.uuid()
    return pa.string()


#: Local mode locks its folder to one client per process: every adapter on a folder shares it.
_LOCAL: dict[str, list] = {}  # path -> [client, users]


def _local_client(path: str) -> Any:
    entry = _LOCAL.get(path)
    if entry is None:
        entry = _LOCAL[path] = [QdrantClient(path=path), 0]
    entry[1] += 1
    return entry[0]


@atexit.register
def _close_local_clients() -> None:
    """Close local clients while the interpreter still works (their ``__del__`` fails at shutdown)."""
    for path in list(_LOCAL):
        client = _LOCAL.pop(path)[0]
        try:
            client.close()
        except Exception:  # noqa: BLE001
            pass


def _release_local(path: str) -> None:
    entry = _LOCAL.get(path)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] <= 0:
        del _LOCAL[path]
        try:
            entry[0].close()
        except Exception:  # noqa: BLE001 - closing a local client that is already gone
            pass


class QdrantEngine:
    """A Qdrant server or local-mode directory."""

    def __init__(self, address: Address) -> None:
        self.address = address
        a = address
        try:
            if a.path is not None:
                self._client = _local_client(str(a.path))
            else:
                scheme = "https" if a.https else "http"
                timeout = int(a.option("timeout", "60") or 60)
                self._client = QdrantClient(url=f"{scheme}://{a.host}:{a.port or 6333}", api_key=a.secret,
                                            timeout=timeout, prefer_grpc=a.option("prefer_grpc") in ("1", "true"))
        except RuntimeError as exc:  # local mode: the folder is locked by another process
            raise StateError(f"{a}: {' '.join(str(exc).split())[:200]}",
                             hint="local mode allows one process at a time; stop the other one") from None
        self._markers: dict[str, Marker | None] = {}
        self._id_types: dict[tuple[str, str | None], pa.DataType] = {}

    def close(self) -> None:
        if self.address.path is not None:
            _release_local(str(self.address.path))
            return
        try:
            self._client.close()
        except Exception:  # noqa: BLE001
            pass

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

        try:
            yield
        except UnexpectedResponse as exc:
            if exc.status_code == 404:
                raise InputError(f"{self.address}: {doing}: not found ({exc.content[:200]!r})") from None
            if exc.status_code in (401, 403):
                raise ConfigError(f"{self.address}: access refused ({exc.status_code})",
                                  hint="set QDRANT_API_KEY or ?api_key_file=PATH") from None
            raise unavailable(self.address, exc, doing) from None
        except (ResponseHandlingException, ConnectionError, TimeoutError) as exc:
            raise unavailable(self.address, exc, doing) from None

    # ------------------------------------------------------------------ names

    def _aliases(self) -> dict[str, str]:
        return {a.alias_name: a.collection_name for a in self._client.get_aliases().aliases}

    def _resolve(self, name: str) -> str:
        """The real collection behind ``name`` (aliases first: ``collection_exists`` is true for an alias too)."""
        validate_name("qdrant", name)
        target = self._aliases().get(name)
        if target is not None:
            return target
        if not self._client.collection_exists(name):
            raise InputError(f"{self.address}: collection {name!r} does not exist")
        return name

    def collections(self) -> list[str]:
        with self._guard("listing collections"):
            return sorted(c.name for c in self._client.get_collections().collections)

    def exists(self, collection: str) -> bool:
        validate_name("qdrant", collection)
        with self._guard("looking up a collection"):
            return self._client.collection_exists(collection) or collection in self._aliases()

    def _marker(self, collection: str) -> Marker | None:
        if collection not in self._markers:
            meta = self._client.get_collection(collection).config.metadata or {}
            self._markers[collection] = Marker.from_json(meta.get("jina_migrate")) if isinstance(meta, dict) else None
        return self._markers[collection]

    def _id_key(self, marker: Marker | None) -> str | None:
        if self.address.id_field:
            return self.address.id_field
        return marker.id_field if marker else None

    def _vector_params(self, collection: str) -> tuple[str | None, models.VectorParams]:
        vectors = self._client.get_collection(collection).config.params.vectors
        if isinstance(vectors, models.VectorParams):
            return None, vectors
        if not vectors:
            raise InputError(f"{self.address}: collection {collection!r} has no dense vectors")
        name = self.address.vector_field or (next(iter(vectors)) if len(vectors) == 1 else None)
        if name is None or name not in vectors:
            raise InputError(f"{self.address}: collection {collection!r} has named vectors {sorted(vectors)}",
                             hint="pick one with ?vector=NAME")
        return name, vectors[name]

    def _id_type(self, collection: str, marker: Marker | None, id_key: str | None) -> pa.DataType:
        """The collection's id type, from a sample of its ids (see the module docstring)."""
        if marker is not None and marker.extra.get("id_type") == "int64":
            return pa.int64()
        if (collection, id_key) not in self._id_types:
            points, _ = self._client.scroll(collection, limit=_SAMPLE, with_payload=[id_key] if id_key else False,
                                            with_vectors=False)
            sample = [(p.payload or {}).get(id_key) for p in points] if id_key else [p.id for p in points]
            self._id_types[(collection, id_key)] = _id_type_of(sample)
        return self._id_types[(collection, id_key)]

    def _native(self, id_type: pa.DataType, ids: Sequence[str], collection: str) -> list[Any]:
        """Seam ids as the values a payload key holds: integers for integer ids, else the text."""
        return int_ids(self.address, collection, ids) if is_int_type(id_type) else [str(i) for i in ids]

    def _payload_schema(self, collection: str, marker: Marker | None, id_key: str | None) -> pa.Schema:
        if marker is not None:
            schema = marker.payload
        else:
            points, _ = self._client.scroll(collection, limit=_SAMPLE, with_payload=True, with_vectors=False)
            schema = infer_schema([p.payload or {} for p in points], exclude=[id_key] if id_key else [])
        if self.address.payload:
            missing = [p for p in self.address.payload if p not in schema.names]
            if missing and marker is not None:
                raise InputError(f"{self.address}: collection {collection!r} has no payload field {missing[0]!r}")
            schema = pa.schema([schema.field(p) if p in schema.names else pa.field(p, pa.string())
                                for p in self.address.payload])
        return schema

    # ------------------------------------------------------------------ reading

    def describe(self, collection: str) -> CollectionInfo:
        with self._guard(f"describing {collection!r}"):
            real = self._resolve(collection)
            info = self._client.get_collection(real)
            marker = self._marker(real)
            vname, params = self._vector_params(real)
            id_key = self._id_key(marker)
            schema = self._payload_schema(real, marker, id_key)
            rows = int(info.points_count or 0)
            hnsw = info.config.hnsw_config
            index = f"hnsw(m={hnsw.m}, ef_construct={hnsw.ef_construct})" if hnsw and hnsw.m else "flat"
            return CollectionInfo(name=real, rows=rows, rows_exact=self.address.embedded, dim=int(params.size),
                                  metric=marker.metric if marker else _METRIC.get(params.distance),
                                  id_field=id_key or "(point id)", id_named=id_key is not None,
                                  id_type=self._id_type(real, marker, id_key),
                                  vector_field="(default)" if vname is None else vname,
                                  vector_named=vname is not None,
                                  payload=seam_schema(schema),
                                  bytes=rows * int(params.size) * 4 + rows * 64 * max(1, len(schema)),
                                  index=index, created_by_run=marker.run if marker else None,
                                  alias_of=real if real != collection else None)

    def _batch(self, points: list, schema: pa.Schema, id_key: str | None, vname: str | None, dim: int,
               with_vectors: bool, where: str) -> pa.RecordBatch:
        ids = [str(p.payload[id_key]) if id_key and p.payload and id_key in p.payload else str(p.id) for p in points]
        arrays: list[pa.Array] = [pa.array(ids, pa.string())]
        names = [ID]
        if with_vectors:
            # a named vector comes as {name: vector}, except the name "" in local mode (a plain list)
            vecs = [p.vector[vname] if isinstance(p.vector, dict) else p.vector for p in points]
            mat = np.asarray(vecs, dtype=np.float32).reshape(len(points), dim)
            arrays.append(vector_array(mat))
            names.append(VECTOR)
        arrays += decode([p.payload for p in points], schema, where=where)
        names += [column_name(n) for n in schema.names]
        return pa.RecordBatch.from_arrays(arrays, names=names)

    def _layout(self, collection: str) -> tuple[str, Any, str | None, str | None, int, pa.Schema]:
        """What reading ``collection`` needs: its real name (through an alias), our marker, the payload key
        that holds ids, the vector's name and size, and the Arrow schema of a batch."""
        real = self._resolve(collection)
        marker = self._marker(real)
        id_key = self._id_key(marker)
        vname, params = self._vector_params(real)
        return real, marker, id_key, vname, int(params.size), self._payload_schema(real, marker, id_key)

    def scan(self, collection: str, *, batch_rows: int = 2048, with_vectors: bool = True) -> Iterator[pa.RecordBatch]:
        with self._guard(f"reading {collection!r}"):
            real, marker, id_key, vname, size, schema = self._layout(collection)
            where = f"{self.address}: collection {real!r}: "
            offset = None
            while True:
                points, offset = self._client.scroll(real, limit=batch_rows, offset=offset, with_payload=True,
                                                     with_vectors=[vname] if (with_vectors and vname is not None)
                                                     else with_vectors)
                if points:
                    yield self._batch(points, schema, id_key, vname, size, with_vectors, where)
                if offset is None:
                    return

    def fetch(self, collection: str, ids: Sequence[str], *, with_vectors: bool = True) -> pa.Table:
        with self._guard(f"reading {collection!r}"):
            real, marker, id_key, vname, size, schema = self._layout(collection)
            wv: Any = [vname] if (with_vectors and vname is not None) else with_vectors
            if marker is None and id_key:
                # the key's values have their own type: an integer never matches its text
                values = self._native(self._id_type(real, marker, id_key), ids, real)
                flt = models.Filter(must=[models.FieldCondition(key=id_key, match=models.MatchAny(any=values))])
                points, _ = self._client.scroll(real, scroll_filter=flt, limit=max(1, len(ids)), with_payload=True,
                                                with_vectors=wv)
            else:
                points = self._client.retrieve(real, ids=[point_id(i) for i in ids], with_payload=True,
                                               with_vectors=wv)
            batch = self._batch(points, schema, id_key, vname, size, with_vectors,
                                f"{self.address}: collection {real!r}: ")
            pos = {rid: i for i, rid in enumerate(batch.column(0).to_pylist())}
            return pa.Table.from_batches([batch]).take(pa.array([pos[i] for i in ids if i in pos], pa.int64()))

    def count(self, collection: str) -> int:
        with self._guard(f"counting {collection!r}"):
            return int(self._client.count(self._resolve(collection), exact=True).count)

    def checksum(self, collection: str) -> str:
        return checksum_batches(self.scan(collection))

    def search(self, collection: str, vectors: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        with self._guard(f"searching {collection!r}"):
            validate_name("qdrant", collection)
            real = self._resolve(collection)
            id_key = self._id_key(self._marker(real))
            vname, _ = self._vector_params(real)
            requests = [models.QueryRequest(query=q.tolist(), limit=k, using=vname,
                                            with_payload=[id_key] if id_key else False)
                        for q in np.asarray(vectors, dtype=np.float32)]
            # Query the name the caller gave: through an alias when it is one, as the application does.
            answers = self._client.query_batch_points(collection, requests=requests)
            return [[(str(p.payload[id_key]) if id_key and p.payload and id_key in p.payload else str(p.id),
                      float(p.score)) for p in ans.points] for ans in answers]

    # ------------------------------------------------------------------ writing

    def create(self, collection: str, *, dim: int, payload: pa.Schema, index: IndexSpec, run: str,
               id_type: pa.DataType | None = None, id_field: str | None = None,
               vector_field: str | None = None, vector_format: VectorFormat | None = None) -> None:
        validate_name("qdrant", collection)
        id_key, vname, payload = self.check_create(payload, id_type=id_type, id_field=id_field,
                                                   vector_field=vector_field)
        with self._guard(f"creating {collection!r}"):
            if self._client.collection_exists(collection):
                check_existing(self.address, collection, self._marker(collection), run=run, dim=dim)
                return
            if collection in self._aliases():
                raise StateError(f"{self.address}: {collection!r} is an alias; choose another collection name")
            # a framework's reader asks for the distance it created (LangChain refuses a Dot collection)
            distance = models.Distance.COSINE if _framework(payload) else _DISTANCE[index.metric]
            extra: dict[str, Any] = {"id_type": "int64"} if id_key and is_int_type(id_type) else {}
            if vname is not None:
                extra["vector_name"] = vname
            extra.update(format_extra(vector_format))
            marker = Marker(run=run, dim=dim, metric=index.metric, payload=payload, id_field=id_key, extra=extra)
            half = vector_format is not None and vector_format.precision == "float16"
            params = models.VectorParams(size=int(dim), distance=distance,
                                         datatype=models.Datatype.FLOAT16 if half else None)
            self._client.create_collection(
                collection, vectors_config=params if vname is None else {vname: params},
                hnsw_config=models.HnswConfigDiff(m=0, ef_construct=index.ef_construction),
                quantization_config=_quantization(vector_format),
                metadata={"jina_migrate": marker.to_json()})
            self._markers.pop(collection, None)

    def check_create(self, payload: pa.Schema, *, id_type: pa.DataType | None = None, id_field: str | None = None,
                     vector_field: str | None = None) -> tuple[str | None, str | None, pa.Schema]:
        """The payload key a NEW collection keeps ids in, its vector's name, and the payload under its field
        names. The vector: named ``?vector=NAME`` when the address says so; the source's own vector name when
        the payload is laid out by a framework (LangChain's ``page_content`` + ``metadata``, LlamaIndex's
        ``_node_content``: its reader asks for that name, ``""`` included), created with the Cosine distance
        those frameworks ask for; else one unnamed vector. The key: ``?id=KEY`` when the address names one;
        else none for integer and UUID ids (the point id is the id, and no key the source did not have is
        added); else, for text ids, the source's id field name or ``id``. ConfigError (before anything is
        embedded or created) when the key is also a payload field."""
        payload = field_schema(payload)
        key = self.address.id_field
        if key is None and not (is_int_type(id_type) or is_uuid_type(id_type)):
            key = valid_field_name(self.address, id_field) or ID
        if key is not None:
            validate_name("qdrant", key, "field")
            if key in payload.names:
                raise ConfigError(f"{self.address}: the id key {key!r} is also a payload field of the source",
                                  hint="name another payload key for the id with &id=KEY on --sink")
        vname = self.address.vector_field
        if vname is None and vector_field is not None and _framework(payload):
            vname = vector_field if vector_field == "" else valid_field_name(self.address, vector_field)
        return key, vname, payload

    def _own(self, collection: str) -> Marker:
        validate_name("qdrant", collection)
        if not self._client.collection_exists(collection):
            raise InputError(f"{self.address}: collection {collection!r} does not exist")
        marker = owned(self.address, collection, self._marker(collection))
        return marker

    def upsert(self, collection: str, rows: pa.Table, *, batch_size: int = 256) -> None:
        if rows.num_rows == 0:
            return
        with self._guard(f"writing {collection!r}"):
            marker = self._own(collection)
            check_rows(self.address, collection, rows, marker.dim)
            ids = rows.column(ID).to_pylist()
            vectors = vectors_of(rows.column(VECTOR))
            if marker_format(marker).precision == "float16":  # stored as float16 by a server, rounded here for both
                vectors = vectors.astype(np.float16).astype(np.float32)
            if marker.metric == "cosine":
                check_unit(self.address, collection, vectors, ids)
            fields = payload_table(rows)
            names = [n for n in marker.payload.names if n in fields.column_names]
            payloads = encode(fields, names)
            if marker.id_field:
                values = self._native(pa.int64() if marker.extra.get("id_type") == "int64" else pa.string(), ids,
                                      collection)
                for value, p in zip(values, payloads):
                    p[marker.id_field] = value
            else:
                odd = next((i for i in ids if not _is_point_id(i)), None)
                if odd is not None:
                    raise InputError(f"{self.address}: id {odd[:80]!r} cannot be a Qdrant point id (an unsigned "
                                     "integer or a UUID) and this collection keeps no id key",
                                     hint="migrate into a new collection with &id=KEY: the ids are then kept in "
                                          "that payload key")
            vname = marker.extra.get("vector_name")
            self._client.upload_collection(collection, vectors=vectors if vname is None else {vname: vectors},
                                           payload=payloads,
                                           ids=[point_id(i) for i in ids], batch_size=batch_size, wait=True)

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        if not ids:
            return
        with self._guard(f"deleting from {collection!r}"):
            self._own(collection)
            self._client.delete(collection, points_selector=models.PointIdsList(points=[point_id(i) for i in ids]),
                                wait=True)

    def build_index(self, collection: str, index: IndexSpec) -> None:
        with self._guard(f"indexing {collection!r}"):
            self._own(collection)
            m = 0 if index.kind == "flat" else index.m  # ivfpq: Qdrant has HNSW only
            self._client.update_collection(collection, hnsw_config=models.HnswConfigDiff(
                m=m, ef_construct=index.ef_construction))

    # ------------------------------------------------------------------ cutover

    SWITCH = Switch("alias")

    def alias_target(self, name: str) -> str | None:
        state = self.name_state(name)
        return state.target if state.kind == "alias" else name if state.kind == "collection" else None

    def name_state(self, name: str) -> NameState:
        validate_name("qdrant", name, "alias")
        with self._guard("reading aliases"):
            target = self._aliases().get(name)
            if target is not None:
                return NameState("alias", target, "alias")
            return NameState("collection", name, "collection") if self._client.collection_exists(name) \
                else NameState("absent")

    def point_alias(self, name: str, collection: str, *, move_aside: str | None = None) -> None:
        """Create or re-point the alias ``name`` in one atomic request (delete + create)."""
        validate_name("qdrant", name, "alias")
        validate_name("qdrant", collection)
        if move_aside is not None:
            raise StateError(f"{self.address}: Qdrant cannot rename a collection aside")
        with self._guard("switching the alias"):
            aliases = self._aliases()
            if name not in aliases and self._client.collection_exists(name):
                if collection == name:
                    return
                raise StateError(f"{self.address}: {name!r} is a collection, not an alias; it cannot be switched "
                                 "without dropping it, which jina-migrate never does",
                                 hint="point your application at an alias (e.g. create alias docs_live -> "
                                      f"{name}), then cut over that alias")
            if collection in aliases or not self._client.collection_exists(collection):
                raise InputError(f"{self.address}: collection {collection!r} does not exist")
            if aliases.get(name) == collection:
                return
            ops: list[Any] = []
            if name in aliases:
                ops.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=name)))
            ops.append(models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=collection,
                                                                                   alias_name=name)))
            self._client.update_collection_aliases(change_aliases_operations=ops)

    def drop_alias(self, name: str, *, restore: str | None = None) -> None:
        """Remove the alias ``name`` (rollback of a cutover that created it); absent already: nothing to do."""
        validate_name("qdrant", name, "alias")
        if restore is not None:
            raise StateError(f"{self.address}: Qdrant cannot rename a collection back")
        with self._guard("removing the alias"):
            if name in self._aliases():
                self._client.update_collection_aliases(change_aliases_operations=[
                    models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=name))])
