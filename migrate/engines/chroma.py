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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pyarrow as pa

from migrate.engines.address import Address, validate_name
from migrate.engines.base import (ID, VECTOR, CollectionInfo, IndexSpec, Marker, check_existing, check_rows, owned,
                                  check_unit, checksum_batches, vector_array, vectors_of)
from migrate.engines.payload import canonical_json, decode, encode_column, infer_schema
from migrate.errors import ConfigError, InputError, StateError

POINTER_COLLECTION = "jina-migrate-aliases"
_SAMPLE = 256


def _chroma_value(v: Any) -> Any:
    """A metadata value Chroma stores natively, else its JSON text."""
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    if isinstance(v, list) and v and all(isinstance(x, (str, int, float, bool)) for x in v) \
            and len({type(x) for x in v}) == 1:
        return v
    return canonical_json(v)


class ChromaEngine:
    """A Chroma persistent directory."""

    def __init__(self, address: Address) -> None:
        import chromadb
        from chromadb.config import Settings

        self.address = address
        self._client = chromadb.PersistentClient(path=str(address.path),
                                                 settings=Settings(anonymized_telemetry=False))

    def close(self) -> None:
        """Release the client: Chroma keeps one system per path and process, with the collections' vector
        segments in memory; the last close stops it, so a later open sees what other processes wrote."""
        client, self._client = self._client, None  # type: ignore[assignment]
        if client is not None:
            try:
                client.close()
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
        else:
            sample = col.get(limit=_SAMPLE, include=["metadatas", "documents"])
            doc_field = self.address.text_field or "document"
            rows = [dict(m or {}) for m in sample["metadatas"]]
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
            schema, marker, _ = self._layout(col)
            first = col.get(limit=1, include=["embeddings"])
            emb = first["embeddings"]
            dim = len(emb[0]) if emb is not None and len(emb) else (marker.dim if marker else None)
            hnsw = (col.configuration or {}).get("hnsw") or {}
            space = hnsw.get("space") or (col.metadata or {}).get("hnsw:space")
            rows = int(col.count())
            return CollectionInfo(name=real, rows=rows, dim=dim,
                                  metric=marker.metric if marker else {"cosine": "cosine", "ip": "ip", "l2": "l2"}.get(
                                      str(space), None),
                                  id_field="(chroma id)", vector_field="(embedding)", payload=schema,
                                  bytes=rows * ((dim or 0) * 4 + 64 * max(1, len(schema))),
                                  index=f"hnsw(max_neighbors={hnsw.get('max_neighbors')}, "
                                        f"ef_construction={hnsw.get('ef_construction')})" if hnsw else None,
                                  created_by_run=marker.run if marker else None,
                                  alias_of=real if real != collection else None)

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
        names += schema.names
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
               id_type: pa.DataType | None = None) -> None:
        validate_name("chroma", collection)
        if collection == POINTER_COLLECTION:
            raise ConfigError(f"{self.address}: {POINTER_COLLECTION!r} is reserved for jina-migrate's alias pointers")
        for f in payload:
            validate_name("chroma", f.name, "field")
        doc_field = self.address.text_field if self.address.text_field in payload.names else None
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
            names = [f.name for f in marker.payload if f.name in rows.column_names and f.name != doc_field]
            cols = {}
            for n in names:
                c = rows.column(n)
                if isinstance(c.type, pa.JsonType):
                    cols[n] = encode_column(c, nested="string")
                else:
                    cols[n] = [_chroma_value(v) for v in encode_column(c)]
            metas = [{n: cols[n][i] for n in names if cols[n][i] is not None} or None for i in range(rows.num_rows)]
            docs = rows.column(doc_field).to_pylist() if doc_field and doc_field in rows.column_names else None
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

    def alias_target(self, name: str) -> str | None:
        validate_name("chroma", name, "alias")
        with self._guard("reading the alias pointer"):
            target = self._pointer(name)
            if target is not None:
                return target
            return name if name in self._names() else None

    def point_alias(self, name: str, collection: str) -> None:
        validate_name("chroma", name, "alias")
        validate_name("chroma", collection)
        with self._guard("switching the alias pointer"):
            if collection not in self._names():
                raise InputError(f"{self.address}: collection {collection!r} does not exist")
            ptr = self._client.get_or_create_collection(POINTER_COLLECTION, embedding_function=None)
            ptr.upsert(ids=[name], embeddings=[[1.0]],
                       metadatas=[{"target": collection, "switched_at": dt.datetime.now(dt.timezone.utc).isoformat()}])
