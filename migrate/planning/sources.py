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
    documents_from: str = "file"  # "file" (--docs) or "collection" (the old index's collection holds the text)
    payload_bytes: float | None = None  # mean payload bytes a row of a source collection (what a sink copies)

    def __len__(self) -> int:
        return len(self.ids)


def fingerprint(paths: list[Path | None]) -> list[dict[str, Any]]:
    """Path, size and sha256 of each source file (the same function ``run`` pins)."""
    from migrate.sources.fingerprint import fingerprint_sources

    return fingerprint_sources(paths)


def read_sources(opts: PlanOptions) -> PlanSources:
    """Read and validate the documents and the old index named in ``opts``, as ``run`` does (one streamed scan)."""
    from migrate.sources import DocumentSpec, OldIndexSpec, open_documents_source, read_old_keys, scan_documents
    from migrate.sources.texts import PlannedTexts

    collection = opts.old_index is not None and is_collection(opts.old_index)
    documents = opts.documents if opts.documents is not None else (opts.old_index if collection else None)
    if documents is None:
        raise ConfigError("plan needs --docs FILE (the documents to migrate)",
                          hint="or --old-index URI: a database collection that holds the text")
    source = open_documents_source(DocumentSpec(str(documents), opts.id_field, opts.text_field,
                                                opts.title_field, faiss_id_field=opts.faiss_id_field,
                                                delimiter=opts.delimiter))
    old = None
    if opts.old_index is not None:
        old = read_old_keys(OldIndexSpec(str(opts.old_index), str(opts.id_map) if opts.id_map else None,
                                         id_map_faiss_field=opts.id_map_faiss_field,
                                         id_map_id_field=opts.id_map_id_field))
    index_dim = old.dim if old is not None else (_document_vector_dim(opts) if opts.documents is not None else None)
    summary = None if old is None else {"path": str(old.path), "vectors": len(old), "dim": old.dim,
                                        "metric": old.metric, "kind": old.kind}
    payload_bytes = None
    if collection:
        stats, payload_bytes = collection_statistics(str(opts.old_index))
        assert summary is not None
        summary["collection"] = stats
    prints = fingerprint([opts.documents, opts.old_index, opts.id_map])  # as `run` pins them: --docs may be None
    findings: list[Finding] = []
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
                       prints, findings, documents_from="collection" if opts.documents is None else "file",
                       payload_bytes=payload_bytes)


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
    from migrate.engines import open_engine, parse_address

    addr = parse_address(address)
    engine = open_engine(addr)
    try:
        info = engine.describe(addr.collection)
        stats = {"address": str(addr), "engine": addr.engine} | info.as_dict()
        rows = payload = 0
        batches = engine.scan(addr.collection, batch_rows=PAYLOAD_SAMPLE_ROWS, with_vectors=False)
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


def _document_vector_dim(opts: PlanOptions) -> int | None:
    """Width of vectors stored in the documents file itself (a Parquet export with an embedding column)."""
    if opts.documents.suffix.lower() not in (".parquet", ".pq"):
        return None
    import pyarrow as pa

    from migrate.errors import InputError
    from migrate.sources.files import READ_ERRORS, VECTOR_CANDIDATES, _first_line, open_parquet

    pf = open_parquet(opts.documents)
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
        raise InputError(f"{opts.documents}: cannot read column {vf!r} ({_first_line(exc)})",
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
