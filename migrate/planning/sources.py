"""All of the planner's source reading, behind one function: ``read_sources``.

It reads the documents and the old index the way ``run`` does (``migrate.sources``) and
runs ``run``'s validation (``build_corpus`` with the same ``on_missing``/``on_empty``
policies), so the plan counts exactly the documents ``run`` would embed. A source that
``run`` would refuse is not an exception here: the plan reports it as an error finding
(and counts every document), so one report shows every problem at once. Files that
cannot be read at all raise ``InputError`` as in ``run``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migrate.errors import InputError, ValidationFailed
from migrate.planning.mapping import Finding
from migrate.planning.options import PlanOptions


@dataclass
class PlanSources:
    """What the planner needs from the sources (ids and texts in ``run``'s order)."""

    ids: list[str]
    texts: Sequence[str]
    index_dim: int | None  # width of the old vectors (old index, or vectors in the documents), None if none
    old_index: dict[str, Any] | None  # path, vectors, dim, metric, kind of the old index
    validation: dict[str, Any] | None  # ``ValidationReport.as_dict()``; None when run would refuse the sources
    fingerprint: list[dict[str, Any]]  # path, size, sha256 of each file (what ``run --plan`` checks)
    findings: list[Finding] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)


def fingerprint(paths: list[Path | None]) -> list[dict[str, Any]]:
    """Path, size and sha256 of each source file (the same function ``run`` pins)."""
    from migrate.shards import fingerprint_sources

    return fingerprint_sources(paths)


def read_sources(opts: PlanOptions) -> PlanSources:
    """Read and validate the documents and the old index named in ``opts``."""
    from migrate.sources import build_corpus, open_documents, open_old_index

    docs = open_documents(opts.documents, id_field=opts.id_field, text_field=opts.text_field,
                          title_field=opts.title_field)
    if len(docs.ids) == 0:
        raise InputError(f"{opts.documents}: no documents")
    old = open_old_index(opts.old_index, opts.id_map, reconstruct=False) if opts.old_index is not None else None
    index_dim = old.dim if old is not None else (int(docs.vectors().shape[1]) if docs.has_vectors else None)
    summary = None if old is None else {"path": str(old.path), "vectors": len(old), "dim": old.dim,
                                        "metric": old.metric, "kind": old.kind}
    prints = fingerprint([opts.documents, opts.old_index, opts.id_map])
    try:
        corpus = build_corpus(docs, old, on_missing=opts.on_missing, on_empty=opts.on_empty)
    except ValidationFailed as exc:
        return PlanSources(docs.ids, docs.texts, index_dim, summary, None, prints,
                           [_refused(exc, opts, old, set(docs.ids))])
    if len(corpus) == 0:
        raise InputError(f"{opts.documents}: no documents left to embed after --on-empty skip")
    findings = []
    if old is not None and len(old) != len(docs.ids):
        findings.append(Finding("index-size-differs", "warning",
                                f"the old index holds {len(old)} vectors for {len(docs.ids)} documents",
                                "check that documents and index are from the same snapshot"))
    return PlanSources(corpus.ids, corpus.texts, index_dim, summary, corpus.report.as_dict(), prints, findings)


def _refused(exc: ValidationFailed, opts: PlanOptions, old, doc_ids: set[str]) -> Finding:
    """``run``'s refusal as an error finding; an index with its own int64 ids and no id map
    gets the fix that names both ways to map them."""
    if old is not None and old.faiss_ids is not None and opts.id_map is None \
            and any(i not in doc_ids for i in old.ids):
        return Finding("faiss-ids-unmapped", "error",
                       f"`run` refuses these sources: {exc.message} (the index stores its own int64 ids, "
                       "which are not document ids)",
                       "pass --id-map FILE (columns faiss_id,id), or --faiss-id-field COLUMN (a documents column "
                       "holding each document's FAISS id)")
    return Finding("sources-invalid", "error", f"`run` refuses these sources: {exc.message}", exc.hint or "")
