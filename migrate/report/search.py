"""Top-k search: the one home for it in jina-migrate (``compare`` and ``search`` use it).

* ``top_k(index_or_vectors, query_vectors, k)``: the public entry point, over a matrix of
  vectors (exact, inner product) or a built FAISS index.
* ``exact_search``: top-``depth`` *documents* by cosine, exactly; chunked sides score a
  document by its best chunk (max pooling, the way late-chunking retrieval ranks).
* ``TopK``: an exact running top-k over vectors that arrive in batches, so an output far
  larger than RAM is searched with one batch in memory (``report.output``).
* ``faiss_ann``: a built ANN index wrapped for the report's ANN check.

Exact search is the default in ``compare`` because a comparison must measure the
*embeddings*, not an ANN build's recall loss; an ANN index, when asked for, is measured
against it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

from migrate.errors import ConfigError


@dataclass
class Ranking:
    """Top-``depth`` results per query: document positions (-1 = none) and cosine scores."""

    doc_index: np.ndarray  # (n_queries, depth) int64
    scores: np.ndarray  # (n_queries, depth) float32


def _as_queries(query_vectors: np.ndarray, dim: int) -> np.ndarray:
    q = np.asarray(query_vectors, dtype=np.float32)
    if q.ndim == 1:
        q = q[None, :]
    if q.ndim != 2 or q.shape[1] != dim:
        got = q.shape[-1] if q.ndim else 0
        raise ConfigError(f"queries have {got} dims but the index has {dim}",
                          hint="embed queries with the model (and --dimensions) the index was built with")
    norms = np.linalg.norm(q, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(q / norms, dtype=np.float32)


def top_k(index_or_vectors: Any, query_vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best rows for each query: ``(scores, positions)``, both shaped (n_queries, k).

    ``index_or_vectors`` is either a float matrix (one row per document; pass unit rows
    for cosine scores) searched exactly by inner product, or a FAISS index (its own
    metric and accuracy). Queries (one vector or a matrix) are L2-normalised first.
    ``positions`` are row numbers of the matrix, or the FAISS index's labels (for an
    ``IndexIDMap2`` its int64 ids); -1 fills slots when there are fewer than ``k`` rows.
    A query width that differs from the index's is a ``ConfigError``.
    """
    if k < 1:
        raise ConfigError(f"k must be at least 1, got {k}", hint="e.g. -k 10")
    if isinstance(index_or_vectors, faiss.Index):
        index = index_or_vectors
        q = _as_queries(query_vectors, int(index.d))
        scores, labels = index.search(q, k)
        return scores.astype(np.float32), labels.astype(np.int64)
    vectors = np.asarray(index_or_vectors)
    if vectors.ndim != 2:
        raise ConfigError(f"expected a matrix of vectors, got shape {vectors.shape}", hint="one row per document")
    q = _as_queries(query_vectors, vectors.shape[1])
    top = TopK(q.shape[0], min(k, vectors.shape[0]))
    top.add(q @ np.asarray(vectors, dtype=np.float32).T, np.arange(vectors.shape[0], dtype=np.int64))
    r = top.ranking()
    if r.doc_index.shape[1] < k:  # fewer rows than k: pad like FAISS does
        pad = k - r.doc_index.shape[1]
        r = Ranking(np.pad(r.doc_index, ((0, 0), (0, pad)), constant_values=-1),
                    np.pad(r.scores, ((0, 0), (0, pad)), constant_values=-np.inf))
    return r.scores, r.doc_index


class TopK:
    """Exact running top-``depth`` per query over scores that arrive in column batches.

    ``add(scores, positions)``: ``scores`` is (n_queries, m) for ``m`` rows whose document
    positions are ``positions``; with ``grouped=True`` several rows may belong to one
    document (chunks) and a document keeps its best score. Memory: n_queries x 2·depth.
    """

    def __init__(self, n_queries: int, depth: int) -> None:
        self.depth = depth
        self.pos = np.full((n_queries, 0), -1, dtype=np.int64)
        self.sc = np.full((n_queries, 0), -np.inf, dtype=np.float32)

    def add(self, scores: np.ndarray, positions: np.ndarray, *, grouped: bool = False) -> None:
        scores = np.asarray(scores, dtype=np.float32)
        positions = np.asarray(positions, dtype=np.int64)
        if scores.shape[1] == 0:
            return
        if grouped:  # best chunk per document inside this batch: unique documents from here on
            order = np.argsort(positions, kind="stable")
            pos_sorted = positions[order]
            starts = np.flatnonzero(np.r_[True, pos_sorted[1:] != pos_sorted[:-1]])
            scores = np.maximum.reduceat(scores[:, order], starts, axis=1)
            positions = pos_sorted[starts]
        n = scores.shape[1]
        keep = min(self.depth, n)
        if keep < n:
            part = np.argpartition(-scores, keep - 1, axis=1)[:, :keep]
            cand_sc = np.take_along_axis(scores, part, axis=1)
            cand_pos = positions[part]
        else:
            cand_sc = scores
            cand_pos = np.broadcast_to(positions, scores.shape)
        sc = np.concatenate([self.sc, cand_sc], axis=1)
        pos = np.concatenate([self.pos, cand_pos], axis=1)
        if grouped and self.pos.shape[1]:  # a document in both halves: keep its better score
            sc = _drop_repeats(pos, sc)
        order = np.argsort(-sc, axis=1, kind="stable")[:, : self.depth]
        self.sc = np.take_along_axis(sc, order, axis=1)
        self.pos = np.take_along_axis(pos, order, axis=1)

    def ranking(self) -> Ranking:
        pos = self.pos.copy()
        pos[~np.isfinite(self.sc)] = -1
        return Ranking(pos, self.sc.copy())


def _drop_repeats(pos: np.ndarray, sc: np.ndarray) -> np.ndarray:
    """Scores with every repeat of a position in a row, except its best, set to -inf."""
    nq, m = pos.shape
    rows = np.repeat(np.arange(nq), m)
    flat_pos, flat_sc = pos.ravel(), sc.ravel()
    order = np.lexsort((-flat_sc, flat_pos, rows))  # by row, then position, best score first
    dup = np.zeros(order.size, dtype=bool)
    same = (rows[order][1:] == rows[order][:-1]) & (flat_pos[order][1:] == flat_pos[order][:-1])
    dup[1:] = same
    out = flat_sc.copy()
    out[order[dup]] = -np.inf
    return out.reshape(nq, m)


def map_labels(labels: np.ndarray, faiss_ids: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """FAISS labels -> row positions of ``faiss_ids`` (-1 for FAISS's empty slot or an unknown id).

    ``order`` is ``argsort(faiss_ids)`` when the caller keeps it between searches.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if len(faiss_ids) == 0:
        return np.full(labels.shape, -1, dtype=np.int64)
    if order is None:
        order = np.argsort(faiss_ids, kind="stable")
    sorted_ids = np.asarray(faiss_ids, dtype=np.int64)[order]
    at = np.minimum(np.searchsorted(sorted_ids, labels), len(sorted_ids) - 1)
    found = (labels != -1) & (sorted_ids[at] == labels)
    return np.where(found, order[at], -1).astype(np.int64)


def rows_to_docs(rows: np.ndarray, scores: np.ndarray, row_doc: np.ndarray, depth: int) -> tuple[Ranking, bool]:
    """Chunk rows ranked by score -> the first ``depth`` distinct documents per query.

    Returns the ranking and whether every query found ``depth`` documents (else the
    caller searches deeper).
    """
    nq = rows.shape[0]
    out_pos = np.full((nq, depth), -1, dtype=np.int64)
    out_sc = np.full((nq, depth), -np.inf, dtype=np.float32)
    complete = True
    for qi in range(nq):
        valid = rows[qi] >= 0
        docs = row_doc[rows[qi][valid]]
        uniq, first = np.unique(docs, return_index=True)
        first.sort()
        take = first[:depth]
        out_pos[qi, : len(take)] = docs[take]
        out_sc[qi, : len(take)] = scores[qi][valid][take]
        complete &= len(take) == depth
    return Ranking(out_pos, out_sc), complete


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


AnnSearch = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


def faiss_ann(index: faiss.Index, faiss_ids: np.ndarray, *, nprobe: int | None = None,
              ef_search: int | None = None) -> AnnSearch:
    """Wrap a built FAISS index whose ids are ``faiss_ids[i]`` for document position ``i``.

    Returns a ``search(queries, k) -> (scores, doc_index)`` function mapping FAISS ids back
    to document positions, for ``AnnIndex``.
    """
    fids = np.asarray(faiss_ids, dtype=np.int64)
    order = np.argsort(fids, kind="stable")
    if nprobe is not None:
        faiss.ParameterSpace().set_index_parameter(index, "nprobe", nprobe)
    if ef_search is not None:
        faiss.ParameterSpace().set_index_parameter(index, "efSearch", ef_search)

    def search(queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, ids = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return scores.astype(np.float32), map_labels(ids, fids, order)

    return search
