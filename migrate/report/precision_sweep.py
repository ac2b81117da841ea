"""``compare --precisions``: the new side's vectors stored at each precision x each Matryoshka size, measured.

For every size ``d`` (the full width and each ``--dims`` below it) the vectors are truncated and
re-normalised, then stored as ``migrate.precision`` would store them (its rules, one home):
float16 cast, int8 with the scale calibrated on the first ``CALIBRATION_ROWS`` vectors, binary sign
bits. Queries are scored the way the output's index scores them: in float against the decoded
float16/int8 vectors, and binarised themselves against binary ones (Hamming: ``1 - 2·h/d``).
``binary+rescore`` takes the top ``RESCORE_FACTOR x depth`` by Hamming and re-ranks them by the float
inner product (``--rescore``). Exact search throughout, streamed: one batch of vectors in memory at a
time, plus a second pass for the rescored candidates. Late-chunked sides are not swept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from migrate.embed.base import truncate_and_normalize
from migrate.errors import ConfigError
from migrate.precision import CALIBRATION_ROWS, PRECISIONS, RESCORE_FACTOR, VectorFormat, bytes_per_vector
from migrate.report.search import Ranking, TopK

RESCORED = "binary+rescore"
CHOICES = (*PRECISIONS, RESCORED)

Batches = Callable[[], Iterator[tuple[int, np.ndarray]]]


def parse_precisions(text: str | None) -> list[str]:
    """``float32,int8,binary+rescore`` -> a list; an unknown name is one line naming the choices."""
    if not text:
        return []
    names = [x.strip() for x in text.split(",") if x.strip()]
    for n in names:
        if n not in CHOICES:
            raise ConfigError(f"--precisions: unknown precision {n!r}", hint=f"choose from {', '.join(CHOICES)}")
    return list(dict.fromkeys(names))


def stored_bytes(precision: str, dims: int) -> int:
    """Bytes per vector in the index (rescoring keeps 4·d more beside, outside the index)."""
    return bytes_per_vector(precision.split("+")[0], dims)


def _formats(first: np.ndarray, dims: Sequence[int]) -> dict[int, dict[str, VectorFormat]]:
    out = {}
    for d in dims:
        sample = truncate_and_normalize(first[:CALIBRATION_ROWS], d)
        out[d] = {p: VectorFormat(precision=p, dims=d).calibrated(sample) for p in PRECISIONS}
    return out


def sweep(batches: Batches, queries: np.ndarray, dims: Sequence[int], precisions: Sequence[str],
          depth: int) -> dict[tuple[int, str], Ranking]:
    """Rankings of every (size, precision) over the vectors ``batches()`` yields as ``(first_row, vectors)``."""
    tops: dict[tuple[int, str], TopK] = {}
    qs = {d: truncate_and_normalize(queries, d) for d in dims}
    formats: dict[int, dict[str, VectorFormat]] | None = None
    for start, v in batches():
        if formats is None:
            formats = _formats(v, dims)
        pos = np.arange(start, start + len(v), dtype=np.int64)
        for d in dims:
            part = truncate_and_normalize(v, d)
            for p in precisions:
                base = p.split("+")[0]
                fmt = formats[d][base]
                q = fmt.roundtrip(qs[d]) if base == "binary" else qs[d]
                key = (d, p)
                if key not in tops:
                    want = depth * RESCORE_FACTOR if p == RESCORED else depth
                    tops[key] = TopK(len(queries), want)
                tops[key].add(q @ fmt.roundtrip(part).T, pos)
    rankings = {k: t.ranking() for k, t in tops.items()}
    rescored = [k for k in rankings if k[1] == RESCORED]
    if rescored:
        _rescore(batches, qs, {k: rankings[k] for k in rescored}, depth)
        for k in rescored:
            rankings[k] = _cut(rankings[k], depth)
    return rankings


def _rescore(batches: Batches, qs: dict[int, np.ndarray], rankings: dict[tuple[int, str], Ranking],
             depth: int) -> None:
    """Second pass: the float inner product of each candidate replaces its Hamming score; re-sorted in place."""
    fresh = {k: np.full(r.scores.shape, -np.inf, dtype=np.float32) for k, r in rankings.items()}
    for start, v in batches():
        end = start + len(v)
        for (d, p), r in rankings.items():
            qi, ci = np.nonzero((r.doc_index >= start) & (r.doc_index < end))
            if len(qi):
                part = truncate_and_normalize(v, d)
                rows = part[r.doc_index[qi, ci] - start]
                fresh[(d, p)][qi, ci] = np.einsum("ij,ij->i", qs[d][qi], rows)
    for k, r in rankings.items():
        order = np.argsort(-fresh[k], axis=1, kind="stable")
        r.doc_index[:] = np.take_along_axis(r.doc_index, order, axis=1)
        r.scores[:] = np.take_along_axis(fresh[k], order, axis=1)


def _cut(r: Ranking, depth: int) -> Ranking:
    return Ranking(np.ascontiguousarray(r.doc_index[:, :depth]), np.ascontiguousarray(r.scores[:, :depth]))


def batches_of(store: object) -> Batches:
    """How to stream a document store's vectors (an output folder or vectors in memory); ConfigError else."""
    if getattr(store, "chunked", False):
        raise ConfigError("--precisions: the new side is late-chunked (several vectors per document)",
                          hint="sweep precisions on an output of one vector per document")
    index = getattr(store, "index", None)
    if index is not None and hasattr(index, "stream_vectors"):
        return lambda: index.stream_vectors()
    vectors = getattr(store, "vectors", None)
    if vectors is not None:
        return lambda: iter([(0, np.asarray(vectors, dtype=np.float32))])
    raise ConfigError("--precisions needs the new side's vectors: a finished output folder (--new OUT) or "
                      "--new-model with --docs", hint="a database collection side cannot be swept")
