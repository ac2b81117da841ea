"""The source-kind registry: which reader a ``--docs`` / ``--old-index`` path needs (a documents file, a
vector-database collection, or a format of :data:`migrate.sources.formats.FORMATS`)."""

from __future__ import annotations

from migrate.sources.files import DocumentSpec
from migrate.sources.scan import DocumentSource

#: kind -> "module:factory" of a DocumentSource (one line per kind; imported when used).
SOURCES = {"file": "migrate.sources.files:FileDocuments", "collection": "migrate.sources.database:CollectionDocuments"}


def source_kind(path: str) -> str:
    """``collection`` for a vector-database address (``qdrant:///...``), a format's name for an index a
    framework saved (``langchain-faiss``, see ``migrate.sources.formats``), else ``file``."""
    from migrate.engines import is_address
    from migrate.sources.formats import format_name

    if is_address(path):
        return "collection"
    return format_name(path) or "file"


def open_documents_source(spec: DocumentSpec) -> DocumentSource:
    """The reader for ``spec.path``: a documents file, a vector-database collection, or a framework's store."""
    import importlib

    kind = source_kind(spec.path)
    if kind not in SOURCES:
        from migrate.sources.formats import format_documents, format_module

        return format_documents(format_module(kind), spec)
    module, _, name = SOURCES[kind].partition(":")
    return getattr(importlib.import_module(module), name)(spec)
