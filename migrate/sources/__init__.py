"""What a migration starts from: the documents and the old (v2) index.

* documents: :class:`DocumentSource` streams (id, text) records and reads them again by
  locator; :func:`open_documents_source` picks the reader for a spec (files today; each
  new kind of source registers one line in ``SOURCES``).
* the old index: :func:`read_old_keys` (which documents it holds, for planning) and
  :func:`open_old_index` (with vectors, for compare and search).
* :func:`scan_documents`: the planning scan that validates both and joins them.
"""

from __future__ import annotations

from migrate.sources.documents import Documents, open_documents
from migrate.sources.files import DocumentSpec, FileDocuments
from migrate.sources.old_index import OldIndex, OldIndexSpec, OldKeys, open_old_index, read_old_keys, read_id_map
from migrate.sources.scan import DocumentSource, PlannedRows, ValidationReport, scan_documents, text_hash

#: kind -> "module:factory" of a DocumentSource (one line per kind; imported when used).
SOURCES = {"file": "migrate.sources.files:FileDocuments", "collection": "migrate.sources.database:CollectionDocuments"}


def source_kind(path: str) -> str:
    """``collection`` for a vector-database address (``qdrant:///...``), else ``file``."""
    from migrate.engines import is_address

    return "collection" if is_address(path) else "file"


def open_documents_source(spec: DocumentSpec) -> DocumentSource:
    """The reader for ``spec.path``: a documents file, or a vector-database collection."""
    import importlib

    module, _, name = SOURCES[source_kind(spec.path)].partition(":")
    return getattr(importlib.import_module(module), name)(spec)


__all__ = ["SOURCES", "source_kind", "DocumentSource", "DocumentSpec", "Documents", "FileDocuments", "OldIndex", "OldIndexSpec", "OldKeys",
           "PlannedRows", "ValidationReport", "open_documents", "open_documents_source", "open_old_index",
           "read_id_map", "read_old_keys", "scan_documents", "text_hash"]
