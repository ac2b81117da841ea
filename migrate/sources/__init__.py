"""What a migration starts from: the documents and the old (v2) index.

* documents: :class:`DocumentSource` streams (id, text) records and reads them again by
  locator; :func:`open_documents_source` picks the reader for a spec (files, collections, and
  each framework format registered in :data:`migrate.sources.formats.FORMATS`).
* the old index: :func:`read_old_keys` (which documents it holds, for planning) and
  :func:`open_old_index` (with vectors, for compare and search).
* :func:`scan_documents`: the planning scan that validates both and joins them.
"""

from __future__ import annotations

from migrate.sources.documents import Documents, open_documents
from migrate.sources.files import DocumentSpec, FileDocuments
from migrate.sources.kinds import SOURCES, open_documents_source, source_kind
from migrate.sources.old_index import OldIndex, OldIndexSpec, OldKeys, open_old_index, read_old_keys, read_id_map
from migrate.sources.scan import DocumentSource, PlannedRows, ValidationReport, scan_documents, text_hash


def holds_documents(old_index: str, text_field: str | None = None) -> bool:
    """Whether the old index itself holds the documents' text, so ``--docs`` is not needed: a collection, an
    index a framework saved (its docstore), or a vector dataset with a text field."""
    from migrate.sources.old_index import dataset_has_text

    return source_kind(old_index) != "file" or dataset_has_text(old_index, text_field)


__all__ = ["SOURCES", "holds_documents", "source_kind", "DocumentSource", "DocumentSpec", "Documents", "FileDocuments", "OldIndex", "OldIndexSpec", "OldKeys",
           "PlannedRows", "ValidationReport", "open_documents", "open_documents_source", "open_old_index",
           "read_id_map", "read_old_keys", "scan_documents", "text_hash"]
