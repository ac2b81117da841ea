"""Chroma through ``chromadb.PersistentClient`` (a directory).

* Collections are created with ``embedding_function=None`` (vectors always come from the
  pipeline; Chroma never downloads a model) and HNSW ``ef_construction`` / ``max_neighbors``
  (= m) from the IndexSpec; space ``ip`` for both metrics, over unit vectors (checked on write),
  because the ``cosine`` space re-normalises, so changes, every stored vector. Chroma builds its
  HNSW index as rows arrive.
* Payload becomes metadata: scalars as themselves, homogeneous non-empty lists of scalars as
  lists, anything nested (dicts, JSON values, mixed lists) as JSON text, timestamps/dates as ISO
  text; nulls are left out (Chroma has no null). The exact Arrow schema is kept in the
  collection metadata (``jina_migrate``), so reading back restores every type. With
  ``?text=FIELD`` that field is stored as the Chroma document instead.
* Reading pages with ``get(limit, offset)``; writing upserts in batches of the client's maximum.
* Cutover: Chroma has no aliases or renames. jina-migrate keeps a pointer collection
  ``jina-migrate-aliases`` (one record per alias: metadata ``target``), switched with one
  atomic single-record upsert; the application must read ``alias_target(name)`` first.
"""

from __future__ import annotations

import datetime as dt
import functools
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from urllib.parse import quote

from migrate.engines.address import Address, validate_name
from migrate.engines.limits import Limits, text_field_in
from migrate.engines.base import (ID, VECTOR, CollectionInfo, IndexSpec, Marker, check_existing, check_rows,
                                  check_unit, checksum_batches, column_name, field_schema, owned, payload_table,
                                  seam_schema, vector_array, vectors_of)
from migrate.engines.names import NameState, Switch
from migrate.engines.payload import canonical_json, decode, encode_column, infer_schema
from migrate.errors import ConfigError, InputError, StateError

POINTER_COLLECTION = "jina-migrate-aliases"
#: the payload field a collection's documents are read as (``&text=NAME`` on the address names it otherwise)
DOCUMENT_FIELD = "document"
_SAMPLE = 256
#: Chroma: metadata keys must not start with ``chroma:`` or ``#`` (``validate_name``); the text is the
#: collection's document, so it must be a string.
#: ``--precision``: Chroma stores float32 embeddings only, so the reduced precisions are refused.
LIMITS = Limits("chroma", text_is_document=True, precision_note="Chroma stores float32 embeddings only")


def _chroma_value(v: Any) -> Any:
    """A metadata value Chroma stores natively, else its JSON text."""
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    if isinstance(v, list) and v and all(isinstance(x, (str, int, float, bool)) for x in v) \
            and len({type(x) for x in v}) == 1:
        return v
    return canonical_json(v)


def _schema_of(db: Path) -> set[tuple[str, int]] | None:
    """The migrations a ``chroma.sqlite3`` records (its schema version), read with sqlite in read-only mode;
    None when it cannot be read (the client then reports its own error)."""
    try:
        con = sqlite3.connect(f"file:{quote(str(db.resolve()))}?mode=ro", uri=True)
        try:
            return {(str(d), int(v)) for d, v in con.execute("SELECT dir, version FROM migrations")}
        finally:
            con.close()
    except sqlite3.Error:
        return None


@functools.lru_cache(maxsize=1)
def _client_schema() -> frozenset[tuple[str, int]]:
    """The migrations this chromadb applies: those of an empty store it makes in a temporary folder."""
    import chromadb
    from chromadb.config import Settings

    with tempfile.TemporaryDirectory(prefix="jina-migrate-chroma-") as tmp:
        client = chromadb.PersistentClient(path=tmp, settings=Settings(anonymized_telemetry=False))
        try:
            return frozenset(_schema_of(Path(tmp) / "chroma.sqlite3") or ())
        finally:
            close = getattr(client, "close", None)
            if callable(close):
                close()


def _refuse_other_version(address: Address) -> None:
    """Refuse a store written by another chromadb, before the client opens it: chromadb migrates an older
    store in place on open (after which the application's older chromadb may no longer read it), and a source
    or a dry run is only ever read. ``&upgrade=1`` on the address allows that upgrade."""
    import chromadb

    db = Path(address.path) / "chroma.sqlite3"  # type: ignore[arg-type]
    have = _schema_of(db) if db.is_file() else None
    if not have:
        return
    want = _client_schema()
    if have - want:
        raise ConfigError(f"{address}: this Chroma store was written by a newer chromadb than the installed "
                          f"{chromadb.__version__}", hint="upgrade chromadb here (pip install -U chromadb)")
    if want - have and (address.option("upgrade") or "").lower() not in ("1", "true", "yes"):
        raise ConfigError(f"{address}: this Chroma store was written by an older chromadb; the installed "
                          f"{chromadb.__version__} would upgrade it in place on opening, and the application's "
                          "chromadb may then not read it", hint="copy the folder and give the copy's path, or "
                                                                "upgrade the application's chromadb first; or add "
                                                                "&upgrade=1 to the address to allow the upgrade")


class ChromaEngine:
    """A Chroma persistent directory."""

    def __init__(self, address: Address) -> None:
        import chromadb
        from chromadb.config import Settings

        self.address = address
        _refuse_other_version(address)  # before the client opens the store: opening migrates it
        self._client = chromadb.PersistentClient(path=str(address.path),
                                                 settings=Settings(anonymized_telemetry=False))

    def close(self) -> None:
        """Release the client: Chroma keeps one system per path and process, with the collections' vector
        segments in memory; the last close stops it, so a later open sees what other processes wrote."""
        client, self._client = self._client, None  # type: ignore[assignment]
        if client is not None:
            try:
                client.close()  # type: ignore[attr-defined]  # chromadb types ClientAPI without the Client's close()
            except Exception:  # noqa: BLE001 - an older chromadb without close(): nothing to release
                pass

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        from chromadb.errors import ChromaError, NotFoundError

        try:
            yield
        except NotFoundError as exc:
            raise InputError(f"{self.address}: {doing}: {' '.join(str(exc).split())[:200]}") from None
        except (ChromaError, ValueError) as exc:
            raise StateError(f"{self.address}: {doing} failed: {' '.join(str(exc).split())[:200]}") from None

    # ------------------------------------------------------------------ names

    def _names(self) -> set[str]:
        return {c if isinstance(c, str) else c.name for c in self._client.list_collections()}

    def _collection(self, name: str):
        return self._client.get_collection(name, embedding_function=None)

    def _pointer(self, name: str) -> str | None:
        if POINTER_COLLECTION not in self._names():
            return None
        got = self._collection(POINTER_COLLECTION).get(ids=[name], include=["metadatas"])
        return str(got["metadatas"][0]["target"]) if got["ids"] else None

    def _resolve(self, name: str) -> str:
        validate_name("chroma", name)
        target = self._pointer(name)
        if target is not None:
            return target
        if name not in self._names():
            raise InputError(f"{self.address}: collection {name!r} does not exist")
        return name

    def collections(self) -> list[str]:
        with self._guard("listing collections"):
            return sorted(self._names() - {POINTER_COLLECTION})

    def exists(self, collection: str) -> bool:
        validate_name("chroma", collection)
        with self._guard("looking up a collection"):
            return collection in self._names() or self._pointer(collection) is not None

    @staticmethod
    def _marker(col) -> Marker | None:
        return Marker.from_json((col.metadata or {}).get("jina_migrate"))

    def _layout(self, col) -> tuple[pa.Schema, Marker | None, str | None]:
        """(payload schema, marker, document field)."""
        marker = self._marker(col)
        if marker is not None:
            schema, doc_field = marker.payload, marker.extra.get("document_field")
        else:  # an application's collection: the documents are the text, unless &text= names a metadata key
            sample = col.get(limit=_SAMPLE, include=["metadatas", "documents"])
            rows = [dict(m or {}) for m in sample["metadatas"]]
            keys = {k for r in rows for k in r}
            wanted = self.address.text_field
            doc_field = wanted if wanted and wanted not in keys else DOCUMENT_FIELD
            schema = infer_schema(rows, exclude=[doc_field])
            if any(d is not None for d in sample["documents"] or []):
                schema = schema.insert(0, pa.field(doc_field, pa.string()))
            else:
                doc_field = None
        if self.address.payload:
            missing = [p for p in self.address.payload if p not in schema.names]
            if missing:
                raise InputError(f"{self.address}: collection has no field {missing[0]!r}")
            schema = pa.schema([schema.field(p) for p in self.address.payload])
        return schema, marker, doc_field

    # ------------------------------------------------------------------ reading

    def describe(self, collection: str) -> CollectionInfo:
        with self._guard(f"describing {collection!r}"):
            real = self._resolve(collection)
            col = self._collection(real)
            schema, marker, doc_field = self._layout(col)
            first = col.get(limit=1, include=["embeddings"])
            emb = first["embeddings"]
            dim = len(emb[0]) if emb is not None and len(emb) else (marker.dim if marker else None)
            hnsw = (col.configuration or {}).get("hnsw") or {}
            space = hnsw.get("space") or (col.metadata or {}).get("hnsw:space")
            rows = int(col.count())
            return CollectionInfo(name=real, rows=rows, dim=dim,
                                  metric=marker.metric if marker else {"cosine": "cosine", "ip": "ip", "l2": "l2"}.get(
                                      str(space), None),
                                  id_field="(chroma id)", vector_field="(embedding)", payload=seam_schema(schema),
                                  id_named=False, vector_named=False,
                                  bytes=rows * ((dim or 0) * 4 + 64 * max(1, len(schema))),
                                  index=f"hnsw(max_neighbors={hnsw.get('max_neighbors')}, "
                                        f"ef_construction={hnsw.get('ef_construction')})" if hnsw else None,
                                  created_by_run=marker.run if marker else None,
                                  alias_of=real if real != collection else None,
                                  text_field=column_name(doc_field)
                                  if doc_field is not None and doc_field in schema.names else None)

    def _batch(self, got: dict, schema: pa.Schema, doc_field: str | None, with_vectors: bool,
               where: str, dim: int | None = None) -> pa.RecordBatch:
        ids = list(got["ids"])
        arrays: list[pa.Array] = [pa.array(ids, pa.string())]
        names = [ID]
        if with_vectors:
            vecs = np.asarray(got["embeddings"] if ids else [], dtype=np.float32)
            arrays.append(vector_array(vecs.reshape(len(ids), -1 if ids else (dim or 0))))  # no rows: no width
            names.append(VECTOR)
        rows = [dict(m or {}) for m in (got.get("metadatas") or [None] * len(ids))]
        if doc_field:
            for r, d in zip(rows, got.get("documents") or [None] * len(ids)):
                r[doc_field] = d
        arrays += decode(rows, schema, nested="string", where=where)
        names += [column_name(n) for n in schema.names]
        return pa.RecordBatch.from_arrays(arrays, names=names)

    def _include(self, with_vectors: bool, doc_field: str | None) -> list[str]:
        return ["metadatas"] + (["embeddings"] if with_vectors else []) + (["documents"] if doc_field else [])

    def scan(self, collection: str, *, batch_rows: int = 2048, with_vectors: bool = True) -> Iterator[pa.RecordBatch]:
        with self._guard(f"reading {collection!r}"):
            real = self._resolve(collection)
            col = self._collection(real)
            schema, _, doc_field = self._layout(col)
            where = f"{self.address}: collection {real!r}: "
            offset = 0
            while True:
                got = col.get(limit=batch_rows, offset=offset, include=self._include(with_vectors, doc_field))
                if got["ids"]:
                    yield self._batch(got, schema, doc_field, with_vectors, where)
                if len(got["ids"]) < batch_rows:
                    return
                offset += len(got["ids"])

    def fetch(self, collection: str, ids: Sequence[str], *, with_vectors: bool = True) -> pa.Table:
        with self._guard(f"reading {collection!r}"):
            real = self._resolve(collection)
            col = self._collection(real)
            schema, marker, doc_field = self._layout(col)
            got = col.get(ids=list(ids), include=self._include(with_vectors, doc_field)) if len(ids) else \
                {"ids": [], "embeddings": [], "metadatas": [], "documents": []}
            batch = self._batch(got, schema, doc_field, with_vectors, f"{self.address}: collection {real!r}: ",
                                dim=marker.dim if marker else None)
            pos = {rid: i for i, rid in enumerate(got["ids"])}
            return pa.Table.from_batches([batch]).take(pa.array([pos[i] for i in ids if i in pos], pa.int64()))

    def count(self, collection: str) -> int:
        with self._guard(f"counting {collection!r}"):
            return int(self._collection(self._resolve(collection)).count())

    def checksum(self, collection: str) -> str:
        return checksum_batches(self.scan(collection))

    def search(self, collection: str, vectors: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        with self._guard(f"searching {collection!r}"):
            col = self._collection(self._resolve(collection))
            res = col.query(query_embeddings=np.asarray(vectors, dtype=np.float32), n_results=k, include=["distances"])
            return [[(str(i), 1.0 - float(d)) for i, d in zip(ids, dists)]
                    for ids, dists in zip(res["ids"], res["distances"])]

    # ------------------------------------------------------------------ writing

    def create(self, collection: str, *, dim: int, payload: pa.Schema, index: IndexSpec, run: str,
               id_type: pa.DataType | None = None, id_field: str | None = None,
               vector_field: str | None = None) -> None:
        """Chroma ids are text whatever the source's type (its only kind); ids and embeddings have no names."""
        validate_name("chroma", collection)
        _, _, payload = self.check_create(payload, id_type=id_type)
        if collection == POINTER_COLLECTION:
            raise ConfigError(f"{self.address}: {POINTER_COLLECTION!r} is reserved for jina-migrate's alias pointers")
        wanted = self.address.text_field or text_field_in(payload)  # the text lives in Chroma's documents
        doc_field = wanted if wanted in payload.names else None
        if doc_field and not (pa.types.is_string(payload.field(doc_field).type)
                              or pa.types.is_large_string(payload.field(doc_field).type)):
            raise ConfigError(f"{self.address}: text field {doc_field!r} is not a string column")
        with self._guard(f"creating {collection!r}"):
            if collection in self._names():
                check_existing(self.address, collection, self._marker(self._collection(collection)), run=run, dim=dim)
                return
            marker = Marker(run=run, dim=dim, metric=index.metric, payload=payload,
                            extra={"document_field": doc_field} if doc_field else {})
            self._client.create_collection(
                collection, embedding_function=None, metadata={"jina_migrate": marker.to_json()},
                configuration={"hnsw": {"space": "ip", "ef_construction": index.ef_construction,
                                        "max_neighbors": index.m}})

    def check_create(self, payload: pa.Schema, *, id_type: pa.DataType | None = None, id_field: str | None = None,
                     vector_field: str | None = None) -> tuple[None, None, pa.Schema]:
        """No id or vector names (Chroma keeps both outside the metadata, so a payload ``id`` clashes with
        nothing), and the payload under its field names; ConfigError when Chroma refuses a field name."""
        payload = field_schema(payload)
        for f in payload:
            validate_name("chroma", f.name, "field")
        return None, None, payload

    def _own(self, collection: str):
        validate_name("chroma", collection)
        if collection not in self._names():
            raise InputError(f"{self.address}: collection {collection!r} does not exist")
        col = self._collection(collection)
        marker = owned(self.address, collection, self._marker(col))
        return col, marker

    def upsert(self, collection: str, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        with self._guard(f"writing {collection!r}"):
            col, marker = self._own(collection)
            check_rows(self.address, collection, rows, marker.dim)
            doc_field = marker.extra.get("document_field")
            fields = payload_table(rows)
            names = [f.name for f in marker.payload if f.name in fields.column_names and f.name != doc_field]
            cols = {}
            for n in names:
                c = fields.column(n)
                if isinstance(c.type, pa.JsonType):
                    cols[n] = encode_column(c, nested="string")
                else:
                    cols[n] = [_chroma_value(v) for v in encode_column(c)]
            metas = [{n: cols[n][i] for n in names if cols[n][i] is not None} or None for i in range(rows.num_rows)]
            docs = fields.column(doc_field).to_pylist() if doc_field and doc_field in fields.column_names else None
            ids = rows.column(ID).to_pylist()
            vecs = vectors_of(rows.column(VECTOR))
            if marker.metric == "cosine":
                check_unit(self.address, collection, vecs, ids)
            step = max(1, int(self._client.get_max_batch_size()))
            for s in range(0, len(ids), step):
                col.upsert(ids=ids[s:s + step], embeddings=vecs[s:s + step], metadatas=metas[s:s + step],
                           documents=docs[s:s + step] if docs is not None else None)

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        if not ids:
            return
        with self._guard(f"deleting from {collection!r}"):
            col, _ = self._own(collection)
            col.delete(ids=list(ids))

    def build_index(self, collection: str, index: IndexSpec) -> None:
        with self._guard(f"indexing {collection!r}"):
            self._own(collection)  # Chroma maintains its HNSW index on every write; nothing to build

    # ------------------------------------------------------------------ cutover

    SWITCH = Switch("pointer")

    def alias_target(self, name: str) -> str | None:
        state = self.name_state(name)
        return state.target if state.kind == "alias" else name if state.kind == "collection" else None

    def name_state(self, name: str) -> NameState:
        validate_name("chroma", name, "alias")
        with self._guard("reading the alias pointer"):
            target = self._pointer(name)
            if target is not None:
                return NameState("alias", target, "pointer")
            return NameState("collection", name, "collection") if name in self._names() else NameState("absent")

    def point_alias(self, name: str, collection: str, *, move_aside: str | None = None) -> None:
        """Create or re-point the pointer record ``name`` (one atomic single-record upsert)."""
        validate_name("chroma", name, "alias")
        validate_name("chroma", collection)
        if move_aside is not None:
            raise StateError(f"{self.address}: Chroma cannot rename a collection aside")
        with self._guard("switching the alias pointer"):
            names = self._names()
            if collection not in names or collection == POINTER_COLLECTION:
                raise InputError(f"{self.address}: collection {collection!r} does not exist")
            if name in names and self._pointer(name) is None:
                raise StateError(f"{self.address}: {name!r} is a collection, not a pointer jina-migrate keeps; "
                                 "a pointer of the same name would hide it", hint="name another alias")
            ptr = self._client.get_or_create_collection(POINTER_COLLECTION, embedding_function=None)
            ptr.upsert(ids=[name], embeddings=np.ones((1, 1), dtype=np.float32),
                       metadatas=[{"target": collection, "switched_at": dt.datetime.now(dt.timezone.utc).isoformat()}])

    def drop_alias(self, name: str, *, restore: str | None = None) -> None:
        """Remove the pointer record ``name`` (one delete); absent already: nothing to do."""
        validate_name("chroma", name, "alias")
        if restore is not None:
            raise StateError(f"{self.address}: Chroma cannot rename a collection back")
        with self._guard("removing the alias pointer"):
            if self._pointer(name) is not None:
                self._collection(POINTER_COLLECTION).delete(ids=[name])
