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

#: scheme -> factory of a DocumentSource; plain paths are files.
SOURCES = {"file": FileDocuments}


def open_documents_source(spec: DocumentSpec) -> DocumentSource:
    """The reader for ``spec.path`` (a file today)."""
    scheme = spec.path.split("://", 1)[0] if "://" in spec.path else "file"
    factory = SOURCES.get(scheme)
    if factory is None:
        from migrate.errors import ConfigError

        raise ConfigError(f"{spec.path}: unknown kind of source {scheme!r}", hint="give a Parquet, JSONL or CSV file")
    return factory(spec)


__all__ = ["DocumentSource", "DocumentSpec", "Documents", "FileDocuments", "OldIndex", "OldIndexSpec", "OldKeys",
           "PlannedRows", "ValidationReport", "open_documents", "open_documents_source", "open_old_index",
           "read_id_map", "read_old_keys", "scan_documents", "text_hash"]
