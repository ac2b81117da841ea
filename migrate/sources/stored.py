"""What every framework format turns its files into, and how the rest of the tool reads it.

A framework's saved index holds, beside each vector, the row's id, the text that was embedded and its
metadata. A format module reads its files into a :class:`StoredIndex` (whole: these stores are loaded
whole by the framework too); the functions here serve it as an old index (:func:`stored_keys`,
:func:`stored_vectors`) and as the documents (:class:`StoredDocuments`), so ``--docs`` is not needed.
The text and metadata become payload columns where a destination carries payload
(:meth:`StoredDocuments.payload`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from migrate.errors import InputError, StateError
from migrate.sources.files import DocBatch, DocumentSpec
from migrate.sources.old_types import OldIndex, OldIndexSpec, OldKeys

BATCH = 16_384
#: Payload columns a destination already has: metadata keys with these names get a ``metadata_`` prefix.
RESERVED = ("id", "text", "vector")


@dataclass
class StoredIndex:
    """One framework store: row i is (ids[i], texts[i], metadata[i]) with vector i."""

    path: Path  # what the user named: a folder, or the file inside it
    format: str  # the format's NAME
    kind: str  # what holds the vectors, e.g. "IndexFlatL2" or "SimpleVectorStore"
    ids: list[str]
    texts: list[str]  # the text the framework embedded
    metadata: list[dict[str, Any]]
    dim: int
    metric: str
    vectors: np.ndarray | None = None  # None when not asked for (or when the index cannot give them back)
    faiss_ids: np.ndarray | None = None  # the int64 label each row answers a FAISS search with
    lossy: bool = False
    why_no_vectors: str | None = None
    notes: list[str] = field(default_factory=list)
    findings: list[dict[str, str]] = field(default_factory=list)  # code, severity, message, fix (for the plan)

    def __len__(self) -> int:
        return len(self.ids)


def stored_keys(store: StoredIndex, spec: OldIndexSpec, what: str) -> OldKeys:
    """The store as planning reads an old index: ids from the format, never row order or guessed ids (an
    ``--id-map`` is refused: the store maps its rows itself)."""
    if spec.id_map:
        raise InputError(f"--id-map {spec.id_map}: {spec.path} is {what}, which maps its rows to documents itself",
                         hint="drop --id-map")
    keys = OldKeys(path=store.path, kind=store.kind, ntotal=len(store), dim=store.dim, metric=store.metric,
                   faiss_ids=store.faiss_ids, ids=pa.array(store.ids, pa.string()), id_source=store.format,
                   notes=list(store.notes), format=store.format)
    keys.findings = list(store.findings)
    return keys


def stored_vectors(store: StoredIndex) -> OldIndex:
    return OldIndex(path=store.path, ids=list(store.ids), faiss_ids=store.faiss_ids, vectors=store.vectors,
                    dim=store.dim, metric=store.metric, kind=store.kind, lossy=store.lossy,
                    why_no_vectors=store.why_no_vectors, texts=list(store.texts), notes=list(store.notes),
                    format=store.format)


def refuse_field_options(spec: DocumentSpec, what: str) -> None:
    """A store names its own ids and text: an option that would pick other fields is refused, not ignored."""
    for value, flag in ((spec.id_field, "--id-field"), (spec.text_field, "--text-field"),
                        (spec.title_field, "--title-field"), (spec.faiss_id_field, "--faiss-id-field")):
        if value:
            raise InputError(f"{spec.path}: {what} holds its own ids and texts; {flag} does not apply",
                             hint=f"drop {flag}, or export the documents to a file and pass it with --docs")


class StoredDocuments:
    """A store's rows as a ``DocumentSource``: ids and texts in row order, located by row."""

    def __init__(self, load: Callable[[], StoredIndex], spec: DocumentSpec, what: str) -> None:
        refuse_field_options(spec, what)
        self.spec = spec
        self.store = load()
        self.path = self.store.path
        self._payload: pa.Table | None = None

    def describe(self) -> str:
        return str(self.path)

    def where(self, line: int) -> str:
        line = int(line)
        if 0 <= line < len(self.store):
            return f"{self.path}: row {line} (id {self.store.ids[line]!r})"
        return f"{self.path}: row {line}"

    def scan(self, batch_rows: int = BATCH) -> Iterator[DocBatch]:
        n = len(self.store)
        for start in range(0, n, batch_rows):
            stop = min(n, start + batch_rows)
            locs = np.arange(start, stop, dtype=np.int64)
            yield DocBatch(self.store.ids[start:stop], self.store.texts[start:stop], locs, locs)

    def read(self, locs: np.ndarray, ids: Sequence[str] | None = None) -> list[str]:
        """Texts at rows ``locs``; with ``ids``, each row must still hold that id (the store was not rewritten)."""
        rows = [int(x) for x in np.asarray(locs, dtype=np.int64)]
        n = len(self.store)
        for i, row in enumerate(rows):
            if not 0 <= row < n or (ids is not None and self.store.ids[row] != ids[i]):
                raise StateError(f"{self.path}: row {row} no longer holds document {ids[i] if ids else row!r} "
                                 "(the index was saved again since the run was planned)",
                                 hint="rerun the same command: it re-plans from the index as it is now")
        return [self.store.texts[row] for row in rows]

    # ------------------------------------------------------------------ payload (the metadata)

    def payload_table(self) -> pa.Table:
        if self._payload is None:
            self._payload = metadata_table(self.store.texts, self.store.metadata, f"{self.path}: metadata ")
        return self._payload

    def payload_schema(self) -> pa.Schema:
        """The columns a destination gets beside id and vector: ``text`` and the metadata."""
        return self.payload_table().schema

    def payload(self, locs: np.ndarray) -> pa.Table:
        """Text and metadata of rows ``locs``, in that order."""
        return self.payload_table().take(pa.array(np.asarray(locs, dtype=np.int64)))


def metadata_table(texts: Sequence[str], metadata: Sequence[dict[str, Any]], where: str = "") -> pa.Table:
    """``text`` and one column per top-level metadata key (first-seen order), typed by the rule every payload
    follows (``migrate.engines.payload.infer_schema``: scalars keep their type, anything else is JSON). A key
    named like a column the destination has already (id, text, vector) gets a ``metadata_`` prefix."""
    from migrate.engines.payload import decode, infer_schema

    rows = [{(f"metadata_{k}" if k in RESERVED else str(k)): v for k, v in m.items()} for m in metadata]
    schema = infer_schema(rows)
    columns = {"text": pa.array(list(texts), pa.string())}
    columns.update(zip(schema.names, decode(rows, schema, where=where)))
    return pa.table(columns)


def finite_rows(path: Path, vectors: np.ndarray, ids: Sequence[str]) -> None:
    """Refuse NaN/inf vectors, naming the rows' ids."""
    finite = np.isfinite(vectors).all(axis=1) if len(vectors) else np.ones(0, bool)
    if not finite.all():
        bad = [ids[int(i)] for i in np.nonzero(~finite)[0][:5]]
        raise InputError(f"{path}: the vectors of {bad} hold NaN or infinite values",
                         hint="rebuild those vectors, or remove them from the index")
