"""Join documents with the old index, validate, and produce the corpus to embed.

Validation happens before anything is embedded. Each problem names the file and the
offending ids. Problems a user can choose to tolerate (vectors with no document,
empty texts) stop the run unless ``on_missing`` / ``on_empty`` say ``skip``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from migrate.errors import ValidationFailed
from migrate.sources.documents import Documents
from migrate.sources.old_index import OldIndex

POLICIES = ("fail", "skip")


def _sample(ids: list[str], n: int = 5) -> str:
    shown = ", ".join(ids[:n])
    return shown + (f" and {len(ids) - n} more" if len(ids) > n else "")


@dataclass
class ValidationReport:
    documents: int = 0
    old_vectors: int = 0
    skipped_missing: list[str] = field(default_factory=list)  # vector ids with no document
    skipped_empty: list[str] = field(default_factory=list)
    unindexed: int = 0  # documents without an old vector (embedded too)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "documents": self.documents,
            "old_vectors": self.old_vectors,
            "skipped_missing": len(self.skipped_missing),
            "skipped_empty": len(self.skipped_empty),
            "documents_without_old_vector": self.unindexed,
            "notes": list(self.notes),
        }


@dataclass
class Corpus:
    """What gets embedded: one row per document, in document-file order."""

    ids: list[str]
    texts: list[str]
    faiss_ids: np.ndarray  # int64 id each document gets in the new FAISS index
    old_rows: np.ndarray  # row of each document in the old index, -1 when it had none
    report: ValidationReport

    def __len__(self) -> int:
        return len(self.ids)


def _all_int(ids: list[str]) -> np.ndarray | None:
    try:
        vals = np.array([int(i) for i in ids], dtype=np.int64)
    except (ValueError, OverflowError):
        return None
    if any(str(v) != i for v, i in zip(vals.tolist(), ids)) or len(np.unique(vals)) != len(vals) or (vals < 0).any():
        return None
    return vals


def build_corpus(docs: Documents, old: OldIndex | None = None, *, on_missing: str = "fail",
                 on_empty: str = "fail") -> Corpus:
    if on_missing not in POLICIES or on_empty not in POLICIES:
        raise ValidationFailed(f"policy must be one of {POLICIES}")
    ids, texts = docs.ids, docs.texts
    report = ValidationReport(documents=len(ids), old_vectors=len(old) if old else 0)

    dup = [i for i, c in Counter(ids).items() if c > 1]
    if dup:
        raise ValidationFailed(f"{docs.path}: duplicate document ids: {_sample(dup)}",
                               hint="ids must be unique; de-duplicate the export")

    position = {doc_id: row for row, doc_id in enumerate(ids)}
    old_rows = np.full(len(ids), -1, dtype=np.int64)
    if old is not None:
        if old.faiss_ids is None and old.kind != "dataset" and len(old) > len(ids):
            raise ValidationFailed(
                f"{old.path}: index holds {len(old)} vectors but {docs.path} has only {len(ids)} documents, and the "
                "index has no ids to match them by", hint="pass the documents the index was built from, or an --id-map")
        if old.faiss_ids is None and old.kind != "dataset":
            # Row-order index: vector i is document row i; rows past the index are new documents.
            old_rows[: len(old)] = np.arange(len(old))
        else:
            dup_old = [i for i, c in Counter(old.ids).items() if c > 1]
            if dup_old:
                raise ValidationFailed(f"{old.path}: duplicate ids in the old index: {_sample(dup_old)}")
            missing = [doc_id for doc_id in old.ids if doc_id not in position]
            if missing:
                if on_missing == "fail":
                    raise ValidationFailed(
                        f"{old.path}: {len(missing)} vectors have no document in {docs.path}: {_sample(missing)}",
                        hint="pass --on-missing skip to migrate without them, or fix the documents file")
                report.skipped_missing = missing
            for row, doc_id in enumerate(old.ids):
                if doc_id in position:
                    old_rows[position[doc_id]] = row
        report.unindexed = int((old_rows < 0).sum())
        if report.unindexed:
            report.notes.append(f"{report.unindexed} documents have no old vector; they are embedded too")

    empty = [i for i, t in zip(ids, texts) if not t.strip()]
    keep = np.ones(len(ids), dtype=bool)
    if empty:
        if on_empty == "fail":
            raise ValidationFailed(f"{docs.path}: {len(empty)} documents have empty text: {_sample(empty)}",
                                   hint="pass --on-empty skip to leave them out, or fill them in")
        report.skipped_empty = empty
        empty_set = set(empty)
        keep = np.array([i not in empty_set for i in ids])

    faiss_ids = _assign_faiss_ids(ids, old, old_rows)
    sel = np.nonzero(keep)[0]
    return Corpus(ids=[ids[i] for i in sel], texts=[texts[i] for i in sel], faiss_ids=faiss_ids[sel],
                  old_rows=old_rows[sel], report=report)


def _assign_faiss_ids(ids: list[str], old: OldIndex | None, old_rows: np.ndarray) -> np.ndarray:
    """Keep the old index's int64 ids, so application code that stores them keeps working."""
    if old is not None and old.faiss_ids is not None:
        out = np.where(old_rows >= 0, old.faiss_ids[np.clip(old_rows, 0, None)], -1).astype(np.int64)
        fresh = out < 0
        start = int(old.faiss_ids.max()) + 1 if len(old.faiss_ids) else 0
        out[fresh] = np.arange(start, start + int(fresh.sum()), dtype=np.int64)
        return out
    as_int = _all_int(ids)
    if as_int is not None:
        return as_int
    return np.arange(len(ids), dtype=np.int64)
