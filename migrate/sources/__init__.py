"""Readers for what a migration starts from: the documents and the old (v2) index.

``open_documents`` -> :class:`Documents` (id, text[, vector]) from Parquet/JSONL/CSV.
``open_old_index`` -> :class:`OldIndex` from a FAISS file (+ id map) or a vector dataset.
``build_corpus``   -> the validated :class:`Corpus` the pipeline embeds.
"""

from migrate.sources.corpus import Corpus, ValidationReport, build_corpus
from migrate.sources.documents import Documents, open_documents
from migrate.sources.old_index import OldIndex, open_old_index

__all__ = ["Corpus", "Documents", "OldIndex", "ValidationReport", "build_corpus", "open_documents", "open_old_index"]
