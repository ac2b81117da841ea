"""A vector-database collection as a source: its documents (text in a column or payload key)
and its vectors (the old index), streamed with the engine's own cursor, scroll or iterator.

``--old-index postgresql://HOST/DB?table=docs&text=content`` alone is enough: the
collection is both the old index and the documents. With ``--docs FILE`` the documents
come from the file and the collection only says which ids (and vectors) the old index holds.
Payload fields are not copied here: a database sink fetches them from the source collection
by id when it writes a shard, so they reach the destination unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from migrate.engines import Address, collection_name, open_engine, parse_address
from migrate.engines.base import no_vector
from migrate.engines.limits import TextExtents
from migrate.engines.payload import NODE_FIELD, framework_layout
from migrate.errors import InputError, StateError, ValidationFailed
from migrate.sources.files import TEXT_CANDIDATES, DocBatch, DocumentSpec, _join_title
from migrate.sources.old_types import OldIndexSpec, OldKeys
from migrate.sources.scan import PayloadSource

BATCH = 2048
#: Rows a plan reads to tell whether the text field holds JSON.
JSON_SAMPLE = 64


def _is_json_object(text: str) -> bool:
    """Whether ``text`` is a JSON object or array (what an application's text never is on its own)."""
    stripped = text.strip()
    if not stripped.startswith(("{", "[")):
        return False
    try:
        return isinstance(json.loads(stripped), (dict, list))
    except ValueError:
        return False


def node_text(value: str, address: Address, field: str, doc_id: str) -> str:
    """The text LlamaIndex embedded for a node stored as JSON in ``field`` (its ``_node_content``)."""
    from migrate.sources.llamaindex import embed_text

    try:
        node = json.loads(value)
    except ValueError:
        node = None
    if not isinstance(node, dict):
        raise InputError(f"{address}: row {doc_id!r}: {field!r} is not LlamaIndex node JSON",
                         hint="name the field that holds the text with &text=FIELD")
    return embed_text(node)


def open_source(address: Address) -> Any:
    """The engine holding a source collection. An embedded database (a local path) must exist: opening
    a mistyped path would create an empty database there, a side effect of a mere read."""
    if address.path is not None and not address.path.exists():
        raise InputError(f"{address}: no database at {address.path}",
                         hint="check the path: a source collection must already exist")
    return open_engine(address)


def pick_text_field(names: list[str], wanted: str | None = None, own: str | None = None) -> str | None:
    """The field holding the text among ``names`` (the one rule for sources, compare and destinations):
    ``wanted`` (``&text=FIELD`` or ``--text-field``) when present; else ``own``, the engine's own document text
    (Chroma's ``documents``); else the text field of a framework's payload layout (LangChain's ``page_content``,
    PGVector's ``document``, LlamaIndex's ``_node_content``: ``engines.payload.framework_layout``); else the
    first usual name (``text``, ``content``, ...); None when there is none."""
    if wanted:
        return wanted if wanted in names else None
    if own and own in names:
        return own
    layout = framework_layout(names)
    if layout is not None:
        return layout[1]
    return next((c for c in TEXT_CANDIDATES if c in names), None)


def text_field_of(info: Any, wanted: str | None = None) -> str | None:
    """:func:`pick_text_field` for a collection's ``describe`` (``CollectionInfo``)."""
    return pick_text_field([f.name for f in info.payload], wanted, getattr(info, "text_field", None))


def payload_extents(source: str | DocumentSpec) -> TextExtents:
    """What a destination's limits are checked against before anything is embedded: the longest value of each
    string field of the payload it will be given, and NUL characters in them, in one streamed pass over a source
    collection (``source``: its address; vectors are not read) or over a documents file's payload fields."""
    extents = TextExtents()
    if isinstance(source, str):
        address = parse_address(source)
        engine = open_source(address)
        try:
            for batch in engine.scan(address.collection, batch_rows=BATCH, with_vectors=False):
                extents.add({n: batch.column(n) for n in batch.schema.names if n != "id"}, batch.column("id"))
        finally:
            engine.close()
        return extents
    docs = _payload_source(source)
    for batch in docs.scan():
        payload = docs.payload(batch.locs)
        extents.add({n: payload.column(n) for n in payload.column_names}, batch.ids)
    return extents


def destination_payload(source: str | DocumentSpec) -> tuple[pa.Schema, str | None]:
    """The payload schema a destination is created with and the field holding the text: a source collection's
    payload (``source``: its address), or a documents file's fields."""
    if isinstance(source, str):
        address = parse_address(source)
        engine = open_source(address)
        try:
            info = engine.describe(address.collection)
        finally:
            engine.close()
        return info.payload, text_field_of(info, address.text_field)
    schema = _payload_source(source).payload_schema()
    return schema, pick_text_field(schema.names, source.text_field)


def _payload_source(spec: DocumentSpec) -> PayloadSource:
    """The documents source of ``spec``, which carries a payload: a collection comes as its address instead."""
    from migrate.sources.kinds import open_documents_source

    docs = open_documents_source(spec)
    assert isinstance(docs, PayloadSource), f"{spec.path}: a collection's payload is read through its address"
    return docs


class CollectionDocuments:
    """The documents of a collection (a ``DocumentSource``): ids and texts, read again by id."""

    def __init__(self, spec: DocumentSpec) -> None:
        self.spec = spec
        self.address = parse_address(spec.path)
        self.engine = open_source(self.address)
        self.collection = self.address.collection
        info = self.engine.describe(self.collection)
        names = [f.name for f in info.payload]
        wanted = spec.text_field or self.address.text_field
        found = text_field_of(info, wanted)
        if found is None:
            if self.engine.count(self.collection) == 0:  # nothing there: say so, not that the text is missing
                raise InputError(f"{self.address}: {self.collection!r} is empty: there is nothing to migrate",
                                 hint="check the collection name (and the path or server) in the address")
            if wanted:
                raise InputError(f"{self.address}: no text field {wanted!r} in {self.collection!r}",
                                 hint=f"fields are: {', '.join(names) or '(none)'}")
            raise InputError(f"{self.address}: cannot find the text of {self.collection!r}",
                             hint=f"add &text=FIELD to the address, or pass --docs FILE; fields are: "
                                  f"{', '.join(names) or '(none)'}")
        self.text_field = found
        #: LlamaIndex's node JSON: the text is the one LlamaIndex embedded from it (its templates and metadata)
        self.node_json = found == NODE_FIELD
        self.framework = (framework_layout(names) or (None, None))[0]
        self.title_field = spec.title_field
        if self.title_field and self.title_field not in names:
            raise InputError(f"{self.address}: no title field {self.title_field!r} in {self.collection!r}",
                             hint=f"fields are: {', '.join(names)}")

    def describe(self) -> str:
        return f"{self.address}"

    def where(self, line: int) -> str:
        return f"{self.address}: row {line}"

    def _texts(self, batch: pa.RecordBatch | pa.Table) -> list[str]:
        text = batch.column(self.text_field)
        if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type) or pa.types.is_null(text.type)):
            raise InputError(f"{self.address}: text field {self.text_field!r} has type {text.type}, expected strings")
        texts = pc.fill_null(text.cast(pa.string()), "").to_pylist()
        if self.node_json:
            ids = batch.column("id").to_pylist()
            texts = [node_text(t, self.address, self.text_field, i) for t, i in zip(texts, ids)]
        if self.title_field:
            titles = batch.column(self.title_field).cast(pa.string()).to_pylist()
            texts = [_join_title(t, x) for t, x in zip(titles, texts)]
        return texts

    def scan(self, batch_rows: int = BATCH) -> Iterator[DocBatch]:
        row = 0
        for batch in self.engine.scan(self.collection, batch_rows=batch_rows, with_vectors=False):
            n = batch.num_rows
            ids = batch.column("id")
            if ids.null_count:
                raise InputError(f"{self.address}: {self.collection!r} has rows without an id")
            locs = np.arange(row, row + n, dtype=np.int64)
            yield DocBatch(ids.cast(pa.string()).to_pylist(), self._texts(batch), locs, locs)
            row += n
        if row == 0:
            raise InputError(f"{self.address}: {self.collection!r} is empty", hint="nothing to migrate")

    def findings(self) -> list[dict[str, str]]:
        """What a plan must say about the text (read from the first rows): that it is rebuilt from LlamaIndex's
        node JSON, or that the chosen text field holds JSON, which would be embedded as it stands."""
        sample: list[str] = []
        batches = self.engine.scan(self.collection, batch_rows=JSON_SAMPLE, with_vectors=False)
        try:
            batch = next(iter(batches), None)
            if batch is not None:
                sample = pc.fill_null(batch.column(self.text_field).cast(pa.string()), "").to_pylist()
        finally:
            close = getattr(batches, "close", None)
            if callable(close):
                close()  # ends a server-side cursor now
        if self.node_json:
            return [{"code": "text-from-node-json", "severity": "warning",
                     "message": f"{self.address}: text field {self.text_field!r} holds LlamaIndex's node JSON; the "
                                "text embedded is the one LlamaIndex embedded from it (its metadata lines by the "
                                "node's templates, then its text), not the JSON",
                     "fix": "nothing to do; name another field with &text=FIELD to embed that instead"}]
        blobs = sum(1 for t in sample if _is_json_object(t))
        if not blobs:
            return []
        return [{"code": "text-is-json", "severity": "warning",
                 "message": f"{self.address}: text field {self.text_field!r} holds JSON ({blobs} of the first "
                            f"{len(sample)} rows): that JSON would be embedded as it stands",
                 "fix": "name the field that holds the plain text with &text=FIELD (or --text-field)"}]

    def read(self, locs: np.ndarray, ids: list[str]) -> list[str]:
        """Texts of ``ids`` (fetched by id; the locators are scan positions and not needed)."""
        got = self.engine.fetch(self.collection, list(ids), with_vectors=False)
        by_id = dict(zip(got.column("id").to_pylist(), self._texts(got)))
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise StateError(f"{self.address}: documents {missing[:5]} are gone from {self.collection!r} since the run "
                             "was planned", hint="rerun the same command: it re-plans from the collection as it is now")
        return [by_id[i] for i in ids]


def read_collection_keys(spec: OldIndexSpec) -> OldKeys:
    """Ids and width of a collection's vectors; the vectors are checked batch by batch (NULL, width, NaN) and not
    kept. A vector ``run`` refuses raises ``ValidationFailed`` (exit 2; ``plan`` reports it as an error finding)."""
    address = parse_address(spec.path)
    collection = collection_name(address)
    engine = open_source(address)
    info = engine.describe(collection)
    ids: list[pa.Array] = []
    dim = info.dim
    row = 0
    for batch in engine.scan(collection, batch_rows=BATCH, with_vectors=True):
        col = batch.column("vector")
        if col.null_count:  # an adapter that passes NULL vectors through: the same refusal as theirs
            raise no_vector(address, collection, batch.column("id").filter(col.is_null()).to_pylist())
        width = col.type.list_size if pa.types.is_fixed_size_list(col.type) else None
        flat = col.flatten().to_numpy(zero_copy_only=False)
        if width is None:
            lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
            if len(lengths) and (lengths != (dim or lengths[0])).any():
                at = int(np.nonzero(lengths != (dim or lengths[0]))[0][0])
                raise ValidationFailed(f"{address}: the vector of id {batch.column('id')[at].as_py()!r} has "
                                       f"{int(lengths[at])} dimensions, the collection's others {dim or lengths[0]}",
                                       hint="rebuild that vector, or remove the row")
            width = int(lengths[0]) if len(lengths) else dim
        if dim is not None and width != dim:
            raise ValidationFailed(f"{address}: vectors of {address.collection!r} have {width} dimensions, "
                                   f"the collection says {dim}")
        dim = width
        vecs = np.asarray(flat, dtype=np.float32).reshape(batch.num_rows, width or 0)
        finite = np.isfinite(vecs).all(axis=1)
        if not finite.all():
            bad = batch.column("id").to_pylist()[int(np.nonzero(~finite)[0][0])]
            raise ValidationFailed(f"{address}: the vector of id {bad!r} in {address.collection!r} holds NaN or "
                                   "infinity", hint="rebuild that vector, or remove the row")
        ids.append(batch.column("id").cast(pa.string()))
        row += batch.num_rows
    arr = pa.concat_arrays(ids) if ids else pa.array([], pa.string())
    return OldKeys(path=address, kind="collection", ntotal=len(arr), dim=dim or 0, metric=info.metric or "ip",  # type: ignore[arg-type]
                   ids=arr, id_source="dataset")
