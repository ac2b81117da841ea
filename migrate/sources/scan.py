"""The planning scan: read the documents once, validate, join with the old index.

The result, :class:`PlannedRows`, is everything the plan needs and nothing more: per
document its id, the sha256 of its text, the int64 id it gets in the new FAISS index and
its locator in the source (to read its text again when its shard runs). It is held in
compact arrays (about 60 bytes per document plus the id), never as Python lists, so
planning ten million documents fits in a couple of GB.

Validation happens here, before anything is embedded or written; each problem names the
file and the records (line or row) and says how to fix it. Problems a user can choose to
tolerate (vectors with no document, empty texts) stop the run unless ``on_missing`` /
``on_empty`` say ``skip``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from migrate.errors import InputError, ValidationFailed
from migrate.sources.files import DocBatch, encodable
from migrate.sources.idhash import digest_ids, duplicate_rows, hash_array, lookup
from migrate.sources.old_types import OldKeys

POLICIES = ("fail", "skip")
PLAN_SCHEMA = pa.schema([("id", pa.string()), ("faiss_id", pa.int64()), ("text_sha256", pa.string()),
                         ("loc", pa.int64())])
EXAMPLES = 5


class DocumentSource(Protocol):
    """What the scan and the shard step need from a documents source."""

    def describe(self) -> str: ...

    def where(self, line: int) -> str: ...

    def scan(self, batch_rows: int = ...) -> Any: ...  # Iterator[DocBatch]

    def read(self, locs: np.ndarray, ids: Sequence[str]) -> list[str]: ...


@runtime_checkable
class PayloadSource(DocumentSource, Protocol):
    """A documents source that carries its records' other fields (documents files, indexes frameworks saved),
    the payload a database destination is given; a collection's payload is read through its address."""

    def payload_schema(self) -> pa.Schema: ...

    def payload(self, locs: np.ndarray) -> pa.Table: ...


def _many(n: int, one: str, many: str) -> str:
    """``1 document has`` / ``3 documents have``: counts in messages read as English."""
    return f"{n} {one if n == 1 else many}"


def _sample(values: Sequence, n: int = EXAMPLES) -> str:
    shown = ", ".join(str(v) for v in list(values)[:n])
    return shown + (f" and {len(values) - n} more" if len(values) > n else "")


@dataclass
class ValidationReport:
    documents: int = 0
    old_vectors: int = 0
    skipped_missing: int = 0  # old vectors whose document is not in the documents file
    skipped_empty: int = 0
    unindexed: int = 0  # documents without an old vector (embedded too)
    examples: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "documents": self.documents,
            "old_vectors": self.old_vectors,
            "skipped_missing": self.skipped_missing,
            "skipped_empty": self.skipped_empty,
            "documents_without_old_vector": self.unindexed,
            "examples": {k: list(v) for k, v in self.examples.items()},
            "notes": list(self.notes),
        }


@dataclass
class PlannedRows:
    """What gets embedded: one row per document, in source order (compact arrays)."""

    ids: pa.Array  # string
    hashes: np.ndarray  # (n, 32) uint8: sha256 of each text
    faiss_ids: np.ndarray  # int64 id each document gets in the new FAISS index
    locs: np.ndarray  # int64 locator of each document in its source
    report: ValidationReport

    def __len__(self) -> int:
        return len(self.ids)

    def hex_hashes(self, start: int = 0, stop: int | None = None) -> list[str]:
        return [bytes(h).hex() for h in self.hashes[start:stop]]

    def table_batches(self, rows: int = 65_536) -> Iterator[pa.RecordBatch]:
        """``plan.parquet`` rows (id, faiss_id, text_sha256 as hex, loc), a batch at a time."""
        for start in range(0, len(self), rows):
            stop = min(start + rows, len(self))
            yield pa.record_batch({"id": self.ids.slice(start, stop - start),
                                   "faiss_id": pa.array(self.faiss_ids[start:stop], pa.int64()),
                                   "text_sha256": pa.array(self.hex_hashes(start, stop), pa.string()),
                                   "loc": pa.array(self.locs[start:stop], pa.int64())}, schema=PLAN_SCHEMA)


def text_hash(text: str) -> str:
    """sha256 of a text (hex): the content hash that decides whether a text is embedded again."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _Collected:
    """The scan's per-document columns, appended batch by batch."""

    def __init__(self) -> None:
        self.ids: list[pa.Array] = []
        self.digests = bytearray()  # sha256 of each text; one growing buffer: no second copy when the scan ends
        self.id_digests = bytearray()  # 8-byte digest of each id (duplicates and joins, see idhash)
        self.locs: list[np.ndarray] = []
        self.lines: list[np.ndarray | None] = []  # None: the batch's lines are its locators
        self.empty: list[np.ndarray] = []
        self.fids: list[np.ndarray] = []

    def add(self, src: DocumentSource, batch: DocBatch) -> None:
        digests = self.digests
        empty = np.zeros(len(batch.texts), dtype=bool)
        sha = hashlib.sha256
        for i, text in enumerate(batch.texts):
            try:
                raw = text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InputError(f"{src.where(batch.lines[i])}: text holds an invalid character "
                                 f"({text[exc.start]!r}, a lone UTF-16 surrogate)",
                                 hint="fix the export: that escape does not encode a character") from None
            if b"\x00" in raw:
                raise InputError(f"{src.where(batch.lines[i])}: document {batch.ids[i]!r} contains a NUL byte",
                                 hint="clean the export; NUL is never valid text")
            digests += sha(raw).digest()
            if not text.strip():
                empty[i] = True
        try:
            ids = pa.array(batch.ids, pa.string())
        except (pa.ArrowException, UnicodeEncodeError):
            i = next(i for i, x in enumerate(batch.ids) if not encodable(x))
            raise InputError(f"{src.where(batch.lines[i])}: id holds an invalid character (a lone UTF-16 surrogate)",
                             hint="fix the export: that escape does not encode a character") from None
        self.ids.append(ids)
        self.id_digests += digest_ids(batch.ids)
        self.locs.append(batch.locs)
        self.lines.append(batch.lines if batch.lines is not batch.locs else None)  # Parquet: a row is its locator
        self.empty.append(empty)
        if batch.faiss_ids is not None:
            self.fids.append(batch.faiss_ids)


def _cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)


def scan_documents(src: DocumentSource, old: OldKeys | None = None, *, on_missing: str = "fail",
                   on_empty: str = "fail", use_faiss_id_field: bool = False) -> PlannedRows:
    """Read, validate and join; raises ``ValidationFailed``/``InputError`` naming the file and records."""
    if on_missing not in POLICIES or on_empty not in POLICIES:
        raise ValidationFailed(f"policy must be one of {POLICIES}")
    got = _Collected()
    for batch in src.scan():
        got.add(src, batch)
    ids = pa.concat_arrays(got.ids) if got.ids else pa.array([], pa.string())
    n = len(ids)
    if n == 0:
        raise InputError(f"{src.describe()}: no records found", hint="the file is empty")
    hashes = np.frombuffer(got.digests, dtype=np.uint8).reshape(n, 32)
    id_digests = np.frombuffer(got.id_digests, dtype="<u8")
    locs, empty = _cat(got.locs, np.int64), _cat(got.empty, bool)
    lines = locs if all(x is None for x in got.lines) else \
        _cat([x if x is not None else l for x, l in zip(got.lines, got.locs)], np.int64)
    got.ids, got.locs, got.lines = [], [], []  # the columns are concatenated: free the parts
    field_fids = _cat(got.fids, np.int64) if use_faiss_id_field else None
    report = ValidationReport(documents=n, old_vectors=len(old) if old is not None else 0)

    _refuse_duplicate_ids(src, ids, id_digests, lines)
    if field_fids is not None:
        _refuse_duplicate_values(src, field_fids, lines, "FAISS id (--faiss-id-field)")

    old_pos = _join_old(src, ids, id_digests, field_fids, old, on_missing, report, n)
    del id_digests
    faiss_ids = _assign_faiss_ids(ids, field_fids, old, old_pos)

    keep = np.ones(n, dtype=bool)
    if empty.any():
        empty_ids = pc.filter(ids, pa.array(empty)).to_pylist()
        if on_empty == "fail":
            raise ValidationFailed(f"{src.describe()}: {_many(len(empty_ids), 'document has', 'documents have')} "
                                   f"empty text (id{'s' if len(empty_ids) > 1 else ''} {_sample(empty_ids)})",
                                   hint="pass --on-empty skip to leave them out, or fill them in")
        report.skipped_empty = len(empty_ids)
        report.examples["skipped_empty"] = empty_ids[:EXAMPLES]
        keep = ~empty
    if old is not None:
        report.unindexed = int(((old_pos < 0) & keep).sum())
        if report.unindexed:
            report.notes.append(f"{_many(report.unindexed, 'document has', 'documents have')} no old vector; "
                                "they are embedded too")
    if not keep.all():
        sel = np.nonzero(keep)[0]
        ids, hashes, faiss_ids, locs = ids.take(pa.array(sel)), hashes[sel], faiss_ids[sel], locs[sel]
    if len(ids) == 0:
        raise InputError(f"{src.describe()}: nothing to embed after validation",
                         hint="every document was left out (empty texts); check the text field")
    return PlannedRows(ids=ids, hashes=np.ascontiguousarray(hashes), faiss_ids=faiss_ids, locs=locs, report=report)


def _refuse_duplicate_ids(src: DocumentSource, ids: pa.Array, id_digests: np.ndarray, lines: np.ndarray) -> None:
    rows = duplicate_rows(ids, id_digests)
    if not len(rows):
        return
    values = ids.take(pa.array(rows)).to_pylist()
    dup = list(dict.fromkeys(values))
    first = dup[0]
    where = [int(lines[r]) for r, v in zip(rows.tolist(), values) if v == first][:2]
    raise ValidationFailed(f"{src.describe()}: duplicate document ids: {_sample(dup)} "
                           f"({first!r} at {src.where(where[0])} and {src.where(where[1])})",
                           hint="ids must be unique; de-duplicate the export")


def _refuse_duplicate_values(src: DocumentSource, values: np.ndarray, lines: np.ndarray, what: str) -> None:
    uniq, counts = np.unique(values, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1]
        at = lines[values == dup[0]][:2].tolist()
        raise ValidationFailed(f"{src.describe()}: duplicate {what}: {_sample(dup.tolist())} "
                               f"(value {int(dup[0])} at {src.where(at[0])} and {src.where(at[1])})",
                               hint="each document needs its own FAISS id")


def _join_old(src: DocumentSource, ids: pa.Array, id_digests: np.ndarray, field_fids: np.ndarray | None,
              old: OldKeys | None, on_missing: str, report: ValidationReport, n: int) -> np.ndarray:
    """Row of each document in the old index (-1: none); refuses or counts old vectors with no document."""
    old_pos = np.full(n, -1, dtype=np.int64)
    if old is None:
        return old_pos
    if field_fids is not None and old.is_faiss:
        # documents carry their FAISS id: match it with the ids the index stores (or its row numbers)
        keys = old.faiss_ids if old.faiss_ids is not None else np.arange(old.ntotal, dtype=np.int64)
        order = np.argsort(keys, kind="stable")
        at = np.minimum(np.searchsorted(keys[order], field_fids), max(len(keys) - 1, 0))
        found = (keys[order][at] == field_fids) if len(keys) else np.zeros(n, bool)
        pos_np = np.where(found, order[at], -1).astype(np.int64)
        missing_keys = pa.array(keys[~np.isin(keys, field_fids)], pa.int64())
        what = "FAISS ids"
    elif old.ids is None:  # row-order index: vector i is document row i
        if old.ntotal > n:
            raise ValidationFailed(
                f"{old.path}: index holds {old.ntotal} vectors but {src.describe()} has only {n} documents, and the "
                "index has no ids to match them by",
                hint="pass the documents the index was built from, or --faiss-id-field (a documents column holding "
                     "each document's FAISS id)")
        _check_row_order(src, ids, old, on_missing, report)
        old_pos[: old.ntotal] = np.arange(old.ntotal)
        return old_pos
    else:
        old_digests = hash_array(old.ids)
        dup_rows = duplicate_rows(old.ids, old_digests)
        if len(dup_rows):
            dup = list(dict.fromkeys(old.ids.take(pa.array(dup_rows)).to_pylist()))
            where = old.id_map if old.id_map is not None else old.path
            raise ValidationFailed(f"{where}: duplicate document ids in the old index: {_sample(dup)}",
                                   hint="each vector must belong to a different document")
        pos_np = lookup(ids, id_digests, old.ids, old_digests)
        back = lookup(old.ids, old_digests, ids, id_digests)
        missing_keys = old.ids.filter(pa.array(back < 0))
        what = "document ids"
    if len(missing_keys):
        shown = missing_keys.to_pylist()
        if on_missing == "fail":
            hint = "pass --on-missing skip to migrate without them, or fix the documents file"
            if old.id_source == "faiss-ids":
                hint = ("the index stores its own int64 ids: pass --id-map FILE (faiss_id, id) or --faiss-id-field "
                        "(a documents column holding each document's FAISS id); or --on-missing skip")
            raise ValidationFailed(
                f"{old.path}: {_many(len(shown), 'vector has', 'vectors have')} no document in {src.describe()} "
                f"(by {what}): {_sample(shown)}",
                hint=hint)
        report.skipped_missing = len(shown)
        report.examples["skipped_missing"] = [str(x) for x in shown[:EXAMPLES]]
    return pos_np


def _check_row_order(src: DocumentSource, ids: pa.Array, old: OldKeys, on_missing: str,
                     report: ValidationReport) -> None:
    """An index without ids pairs vector i with document row i, on trust. What can be checked is checked:
    documents whose ids are exactly the row numbers 0..n-1, but in another order, show a file sorted
    differently from the index (refused; with ``on_missing=skip`` only noted). The pairing is always noted."""
    report.notes.append(f"{old.path} stores no ids: vector i was paired with document row i of {src.describe()} "
                        "(row order trusted)")
    as_int = _canonical_ints(ids)
    if as_int is None or not len(as_int):
        return
    rows = np.arange(len(as_int), dtype=np.int64)
    if np.array_equal(as_int, rows) or not np.array_equal(np.sort(as_int), rows):
        return
    first = int(np.nonzero(as_int != rows)[0][0])
    message = (f"{src.describe()}: the documents' ids are the row numbers 0..{len(rows) - 1} in another order "
               f"(row {first} holds id {int(as_int[first])}), but {old.path} stores no ids and pairs vector i with "
               "row i: the file is probably sorted differently from the index")
    if on_missing == "fail":
        raise ValidationFailed(message, hint="if the index was built in id order, pass --faiss-id-field with the id "
                                             "field (each id is its vector's row); if it was built in this file's "
                                             "order, add a column holding each row's position and pass that")
    report.notes.append(message)


def _assign_faiss_ids(ids: pa.Array, field_fids: np.ndarray | None, old: OldKeys | None,
                      old_pos: np.ndarray) -> np.ndarray:
    """Keep the old index's int64 ids, so application code that stores them keeps working."""
    if field_fids is not None:
        return field_fids.astype(np.int64, copy=True)
    if old is not None and old.faiss_ids is not None:
        out = np.where(old_pos >= 0, old.faiss_ids[np.clip(old_pos, 0, None)], -1).astype(np.int64)
        fresh = out < 0
        start = int(old.faiss_ids.max()) + 1 if len(old.faiss_ids) else 0
        out[fresh] = np.arange(start, start + int(fresh.sum()), dtype=np.int64)
        return out
    as_int = _canonical_ints(ids)
    if as_int is not None:
        return as_int
    return np.arange(len(ids), dtype=np.int64)


def _canonical_ints(ids: pa.Array) -> np.ndarray | None:
    """The ids as int64 when every id is a canonical non-negative decimal (``"17"``, not ``"017"``), else None."""
    try:
        vals = pc.cast(ids, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if vals.null_count or not pc.all(pc.equal(pc.cast(vals, pa.string()), ids)).as_py():
        return None
    arr = vals.to_numpy(zero_copy_only=False)
    if (arr < 0).any():
        return None
    return arr.astype(np.int64)
