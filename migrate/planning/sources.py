"""All of the planner's source reading, behind one function: ``read_sources``.

It reads the documents and the old index with ``run``'s own streamed scan
(``migrate.sources.scan_documents``, same ``on_missing``/``on_empty`` policies), so the
plan counts exactly the documents ``run`` would embed, and holds no text in memory. A source that
``run`` would refuse is not an exception here: the plan reports it as an error finding
(and counts every document), so one report shows every problem at once. Files that
cannot be read at all raise ``InputError`` as in ``run``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migrate.errors import ConfigError, ValidationFailed
from migrate.planning.mapping import Finding
from migrate.planning.options import PlanOptions


@dataclass
class PlanSources:
    """What the planner needs from the sources, in ``run``'s order (texts read on demand)."""

    ids: Any  # pyarrow string array of the planned document ids
    hashes: Any  # (n, 32) uint8 sha256 of each text: the shard plan's keys
    texts: Sequence[str]  # PlannedTexts: streamed from the source, never all in memory
    index_dim: int | None  # width of the old vectors (old index, or vectors in the documents), None if none
    old_index: dict[str, Any] | None  # path, vectors, dim, metric, kind of the old index (+ collection statistics)
    validation: dict[str, Any] | None  # ``ValidationReport.as_dict()``; None when run would refuse the sources
    fingerprint: list[dict[str, Any]]  # path, size, sha256 of each file (what ``run --plan`` checks)
    findings: list[Finding] = field(default_factory=list)
    documents_from: str = "file"  # "file" (--docs), or the old index's kind when it holds the text ("collection",
    # a framework format such as "langchain-faiss", or "dataset")
    payload_bytes: float | None = None  # mean payload bytes a row of a source collection (what a sink copies)

    def __len__(self) -> int:
        return len(self.ids)


def fingerprint(paths: list[Path | str | None]) -> list[dict[str, Any]]:
    """Path, size and sha256 of each source file (the same function ``run`` pins)."""
    from migrate.sources.fingerprint import fingerprint_sources

    return fingerprint_sources(paths)


def read_sources(opts: PlanOptions) -> PlanSources:
    """Read and validate the documents and the old index named in ``opts``, as ``run`` does (one streamed scan)."""
    from migrate.sources import (DocumentSpec, OldIndexSpec, holds_documents, open_documents_source, read_old_keys,
                                 scan_documents, source_kind)
    from migrate.sources.texts import PlannedTexts

    collection = opts.old_index is not None and is_collection(opts.old_index)
    documents: Path | str | None = opts.documents
    if documents is None and opts.old_index is not None and holds_documents(str(opts.old_index), opts.text_field):
        documents = opts.old_index
    if documents is None:
        raise ConfigError("plan needs --docs FILE (the documents to migrate)",
                          hint="or an --old-index that holds the text: a database collection, an index a framework "
                               "saved (LangChain, LlamaIndex, ...), or a vector dataset with a text field")
    source = open_documents_source(DocumentSpec(str(documents), opts.id_field, opts.text_field,
                                                opts.title_field, faiss_id_field=opts.faiss_id_field,
                                                delimiter=opts.delimiter))
    old = None
    refused: list[Finding] = []
    if opts.old_index is not None:
        try:
            old = read_old_keys(OldIndexSpec(str(opts.old_index), str(opts.id_map) if opts.id_map else None,
                                             id_map_faiss_field=opts.id_map_faiss_field,
                                             id_map_id_field=opts.id_map_id_field,
                                             id_field=opts.id_field if opts.documents is None else None))
        except ValidationFailed as exc:  # vectors `run` refuses (NULL, NaN, another width): an error finding
            refused.append(Finding("old-index-invalid", "error", f"`run` refuses the old index: {exc.message}",
                                   exc.hint or ""))
    index_dim = old.dim if old is not None else (
        _document_vector_dim(opts.documents) if opts.documents is not None else None)
    summary = None if old is None else {"path": str(old.path), "vectors": len(old), "dim": old.dim,
                                        "metric": old.metric, "kind": old.kind}
    if refused:
        summary = {"path": str(opts.old_index), "refused": refused[0].message}
    if old is not None and old.format is not None:
        assert summary is not None
        summary["format"] = old.format
    payload_bytes = None
    if collection:
        stats, payload_bytes = collection_statistics(str(opts.old_index))
        assert summary is not None
        summary["collection"] = stats
    # as `run` pins them (--docs may be None); an old index `run` refuses is not pinned: it cannot be read whole
    prints = fingerprint([opts.documents, None if refused else opts.old_index, opts.id_map])
    findings: list[Finding] = _old_index_findings(old, opts) + refused
    declared = getattr(source, "findings", None)  # what a documents source says about its text (JSON, ...)
    if callable(declared):
        findings += [Finding(f["code"], f["severity"], f["message"], f.get("fix", "")) for f in declared()]
    use_fid = opts.faiss_id_field is not None
    validation: dict[str, Any] | None
    try:
        rows = scan_documents(source, old, on_missing=opts.on_missing, on_empty=opts.on_empty,
                              use_faiss_id_field=use_fid)
        validation = rows.report.as_dict()
    except ValidationFailed as exc:
        # `run` would refuse: report it, and still plan what a lenient run would embed
        findings.append(_refused(exc, opts, old))
        rows = scan_documents(source, old, on_missing="skip", on_empty="skip", use_faiss_id_field=use_fid)
        validation = None
    if old is not None and len(old) != rows.report.documents:
        findings.append(Finding("index-size-differs", "warning",
                                f"the old index holds {len(old)} vectors for {rows.report.documents} documents",
                                "check that documents and index are from the same snapshot"))
    return PlanSources(rows.ids, rows.hashes, PlannedTexts(source, rows.locs, rows.ids), index_dim, summary, validation,
                       prints, findings, documents_from=_documents_from(opts, source_kind),
                       payload_bytes=payload_bytes)


def _documents_from(opts: PlanOptions, source_kind: Any) -> str:
    """Where the texts come from: ``file`` (--docs), or the old index's kind when it holds them."""
    if opts.documents is not None:
        return "file"
    kind = source_kind(str(opts.old_index))
    return "dataset" if kind == "file" else kind


def _old_index_findings(old: Any, opts: PlanOptions) -> list[Finding]:
    """What the plan must say about the old index itself: what a framework's format declared (how its texts
    were made), and that a FAISS index without ids is matched to the documents by row order alone."""
    if old is None:
        return []
    found = [Finding(f["code"], f["severity"], f["message"], f.get("fix", "")) for f in old.findings]
    if old.id_source == "row-order" and opts.faiss_id_field is None:
        found.append(Finding(
            "index-row-order", "warning",
            f"{old.path} stores no ids: vector i is taken to be the document in row i of {opts.documents} "
            "(row order is trusted; a file in another order would pair every vector with the wrong text)",
            "pass --faiss-id-field COLUMN (a documents column holding each document's row in the index), or "
            "save the index with its ids (IndexIDMap + --id-map); `run` refuses integer ids that show "
            "another order"))
    return found


def is_collection(path: str | Path) -> bool:
    """True when ``path`` is a vector-database address (``qdrant:///...``), not a file."""
    from migrate.engines import is_address

    return is_address(str(path))


#: Rows of a source collection read to measure its payload (what a database destination copies).
PAYLOAD_SAMPLE_ROWS = 2048


def collection_statistics(address: str) -> tuple[dict[str, Any], float]:
    """A collection's own statistics (``Engine.describe``: rows, bytes, index, fields) and the mean
    payload bytes a row, measured on its first rows (Arrow sizes: strings as their bytes, numbers as
    their width)."""
    from migrate.engines import collection_name, open_engine, parse_address

    addr = parse_address(address)
    collection = collection_name(addr)
    engine = open_engine(addr)
    try:
        info = engine.describe(collection)
        stats = {"address": str(addr), "engine": addr.engine} | info.as_dict()
        rows = payload = 0
        batches = engine.scan(collection, batch_rows=PAYLOAD_SAMPLE_ROWS, with_vectors=False)
        try:
            for batch in batches:
                cols = [batch.column(i) for i, name in enumerate(batch.schema.names) if name != "id"]
                payload += sum(c.nbytes for c in cols)
                rows += batch.num_rows
                if rows >= PAYLOAD_SAMPLE_ROWS:
                    break
        finally:
            close = getattr(batches, "close", None)
            if callable(close):
                close()  # ends a server-side cursor now, not when the generator is collected
    finally:
        engine.close()
    per_row = payload / rows if rows else 0.0
    stats["payload_bytes_per_row"] = round(per_row, 1)
    if info.rows and info.bytes:
        stats["bytes_per_row"] = round(info.bytes / info.rows, 1)
    return stats, per_row


def _document_vector_dim(documents: Path) -> int | None:
    """Width of vectors stored in the documents file itself (a Parquet export with an embedding column)."""
    if documents.suffix.lower() not in (".parquet", ".pq"):
        return None
    import pyarrow as pa

    from migrate.errors import InputError
    from migrate.sources.files import READ_ERRORS, VECTOR_CANDIDATES, _first_line, open_parquet

    pf = open_parquet(documents)
    schema = pf.schema_arrow
    vf = next((c for c in VECTOR_CANDIDATES if c in schema.names), None)
    if vf is None:
        return None
    t = schema.field(vf).type
    if pa.types.is_fixed_size_list(t):
        return t.list_size
    if pf.metadata.num_row_groups == 0:
        return None
    try:
        first = pf.read_row_group(0, columns=[vf]).column(0)
        return len(first[0].as_py()) if len(first) and first[0].is_valid else None
    except READ_ERRORS as exc:
        raise InputError(f"{documents}: cannot read column {vf!r} ({_first_line(exc)})",
                         hint="check that the file is complete and of that type") from None


def _refused(exc: ValidationFailed, opts: PlanOptions, old) -> Finding:
    """``run``'s refusal as an error finding; an index with its own int64 ids and no id map
    gets the fix that names both ways to map them."""
    if old is not None and old.id_source == "faiss-ids" and opts.faiss_id_field is None:
        return Finding("faiss-ids-unmapped", "error",
                       f"`run` refuses these sources: {exc.message} (the index stores its own int64 ids, "
                       "which are not document ids)",
                       "pass --id-map FILE (columns faiss_id,id), or --faiss-id-field COLUMN (a documents column "
                       "holding each document's FAISS id)")
    return Finding("sources-invalid", "error", f"`run` refuses these sources: {exc.message}", exc.hint or "")
