"""Exact (brute-force) top-k search over one side, plus the side's optional ANN index.

Exact search is the default because a comparison must measure the *embeddings*, not
an ANN build's recall loss; the ANN index, when asked for, is measured against it.
Unchunked sides use ``faiss.IndexFlatIP`` (inner product = cosine on unit vectors).
Chunked sides score every chunk and keep each document's best chunk (max pooling).
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np


@dataclass
class Ranking:
    """Top-``depth`` results per query: document positions (-1 = none) and cosine scores."""

    doc_index: np.ndarray  # (n_queries, depth) int64
    scores: np.ndarray  # (n_queries, depth) float32

    def top_ids(self, doc_ids: list[str], q: int, k: int) -> list[str]:
        return [doc_ids[i] for i in self.doc_index[q, :k] if i >= 0]


def exact_search(vectors: np.ndarray, queries: np.ndarray, depth: int,
                 vector_doc: np.ndarray | None = None, n_docs: int | None = None) -> Ranking:
    """Top-``depth`` documents for every query by cosine, exactly."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if vector_doc is None:
        depth = min(depth, vectors.shape[0])
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        scores, idx = index.search(queries, depth)
        return Ranking(idx.astype(np.int64), scores.astype(np.float32))
    return _chunked_search(vectors, queries, depth, vector_doc, int(n_docs or vector_doc.max() + 1))


def _chunked_search(vectors: np.ndarray, queries: np.ndarray, depth: int,
                    vector_doc: np.ndarray, n_docs: int) -> Ranking:
    """Document score = max over its chunks; rows must be grouped by document (Side sorts them)."""
    depth = min(depth, n_docs)
    starts = np.flatnonzero(np.r_[True, vector_doc[1:] != vector_doc[:-1]])
    docs_at = vector_doc[starts]
    out_idx = np.empty((queries.shape[0], depth), dtype=np.int64)
    out_sc = np.empty((queries.shape[0], depth), dtype=np.float32)
    block = max(1, int(2e7 // max(1, vectors.shape[0])))
    for b in range(0, queries.shape[0], block):
        sims = queries[b:b + block] @ vectors.T  # (bq, n_chunks)
        per_doc = np.full((sims.shape[0], n_docs), -np.inf, dtype=np.float32)
        per_doc[:, docs_at] = np.maximum.reduceat(sims, starts, axis=1)
        top = np.argpartition(-per_doc, depth - 1, axis=1)[:, :depth]
        top_sc = np.take_along_axis(per_doc, top, axis=1)
        order = np.argsort(-top_sc, axis=1, kind="stable")
        out_idx[b:b + block] = np.take_along_axis(top, order, axis=1)
        out_sc[b:b + block] = np.take_along_axis(top_sc, order, axis=1)
    return Ranking(out_idx, out_sc)


def faiss_ann(index: faiss.Index, faiss_ids: np.ndarray, *, nprobe: int | None = None,
              ef_search: int | None = None):
    """Wrap a built FAISS index whose ids are ``faiss_ids[i]`` for document position ``i``.

    Returns a ``search(queries, k) -> (scores, doc_index)`` function mapping FAISS ids back
    to document positions, for ``AnnIndex``.
    """
    pos = {int(f): i for i, f in enumerate(np.asarray(faiss_ids, dtype=np.int64))}
    if nprobe is not None:
        faiss.ParameterSpace().set_index_parameter(index, "nprobe", nprobe)
    if ef_search is not None:
        faiss.ParameterSpace().set_index_parameter(index, "efSearch", ef_search)

    def search(queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, ids = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        mapped = np.vectorize(lambda f: pos.get(int(f), -1), otypes=[np.int64])(ids) if ids.size else ids
        return scores.astype(np.float32), mapped.astype(np.int64)

    return search
