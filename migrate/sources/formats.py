"""Old indexes saved by a framework, read natively: one module per format, one line each in ``FORMATS``.

A format module (see :mod:`migrate.sources.langchain_faiss` for one) has

* ``NAME``: the format's name (``langchain-faiss``), shown in plans and manifests;
* ``detect(path) -> bool``: whether ``--old-index PATH`` is this format, from file names or a first byte only
  (never loads anything, never raises);
* ``files(path) -> list[Path]``: the files it reads (what a plan pins, so ``run --plan`` notices a change);
* ``WHAT``: how a message names one of its stores (e.g. "LangChain FAISS folder");
* ``load(path, with_vectors=False) -> StoredIndex``: ids, the text the framework embedded, metadata, and the
  vectors when asked (a format whose files hold them anyway may always read them).

From ``load`` the registry serves every format the same three ways (:mod:`migrate.sources.stored`):
:func:`format_keys` (which documents the index holds: planning), :func:`format_vectors` (the same with its
vectors: ``compare`` and ``search``) and :func:`format_documents` (the text the framework stored, so
``--docs`` is not needed).

Formats are tried in order; a plain FAISS file, a vector dataset and a database collection are read by
:mod:`migrate.sources.old_index` and :mod:`migrate.sources.database` when no format claims the path.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from migrate.sources.files import DocumentSpec
from migrate.sources.old_types import OldIndex, OldIndexSpec, OldKeys
from migrate.sources.stored import StoredDocuments, stored_keys, stored_vectors

#: format name -> its module (one line each; imported when a path is checked).
FORMATS: dict[str, str] = {
    "langchain-faiss": "migrate.sources.langchain_faiss",
    "llamaindex": "migrate.sources.llamaindex",
    "haystack": "migrate.sources.haystack",
    "txtai": "migrate.sources.txtai",
    "sql": "migrate.sources.sql_query",
}


def format_module(name: str) -> ModuleType:
    return importlib.import_module(FORMATS[name])


def format_for(path: str | Path) -> ModuleType | None:
    """The module of the registered format ``path`` is saved in, or None (a plain file, or an address)."""
    text = str(path)
    if "://" in text:  # an address: a format that declares its scheme (``SCHEMES``) reads it
        scheme = text.split("://", 1)[0].lower()
        return next((m for m in map(format_module, FORMATS) if scheme in getattr(m, "SCHEMES", ())), None)
    p = Path(text)
    for name in FORMATS:
        module = format_module(name)
        if module.detect(p):
            return module
    return None


def format_name(path: str | Path) -> str | None:
    module = format_for(path)
    return None if module is None else module.NAME


def format_files(path: str | Path) -> list[Path] | None:
    """The files a framework's saved index at ``path`` consists of (None: not a registered format)."""
    module = format_for(path)
    return None if module is None else list(module.files(path if "://" in str(path) else Path(path)))


def format_keys(module: ModuleType, spec: OldIndexSpec) -> OldKeys:
    """Which documents the store at ``spec.path`` holds (ids, width), its vectors not kept."""
    return stored_keys(module.load(spec.path), spec, module.WHAT)


def format_vectors(module: ModuleType, spec: OldIndexSpec) -> OldIndex:
    """The store at ``spec.path`` as an old index, vectors and all."""
    return stored_vectors(module.load(spec.path, with_vectors=True))


def format_documents(module: ModuleType, spec: DocumentSpec) -> StoredDocuments:
    """The text (and metadata) the framework stored, read when asked."""
    return StoredDocuments(lambda: module.load(spec.path), spec, module.WHAT)
