"""Validate and decode one 200 response of the Jina embeddings endpoint.

What: ``decode_response`` turns a response into an (n, d) float32 matrix and the billed
token count, or raises. Any defect that a retry may fix (not JSON, no ``data``, wrong
count, missing/repeated ``index``, undecodable or non-finite values, wrong norm) is a
``Retryable``; it never becomes a wrong vector. A server that ignores ``dimensions``
(answers another width than asked) is an ``EmbeddingError``: retrying cannot fix it.

Why separate: this is the part of the client that decides what a correct answer is;
it is pure (no I/O), so it is tested on its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from migrate.embed.api_transport import Retryable
from migrate.embed.jina_wire import BINARY_TYPES, decode_embedding, error_detail, packed_length
from migrate.errors import EmbeddingError


def decode_response(
    obj: Any,
    raw: bytes,
    n: int,
    *,
    embedding_type: str,
    known_dims: int | None,
    asked_dims: int | None,
    normalized: bool,
    model: str,
    server: str,
    scrub: Callable[[str], str],
) -> tuple[np.ndarray, int]:
    """``(vectors, billed tokens)`` of a parsed 200 body ``obj`` (``raw``: its bytes, for messages)."""
    data = obj.get("data") if isinstance(obj, dict) else None
    if not isinstance(data, list):
        raise Retryable(f"response has no 'data' list: {scrub(error_detail(raw))}")
    if len(data) != n:
        raise Retryable(f"response has {len(data)} embeddings for {n} inputs")
    usage = obj.get("usage")
    used = usage.get("total_tokens") if isinstance(usage, dict) else None
    if not isinstance(used, int) or isinstance(used, bool) or used < 0:
        raise Retryable("response has no usage.total_tokens")
    rows: list[np.ndarray | None] = [None] * n
    want = known_dims
    for item in data:
        idx = item.get("index") if isinstance(item, dict) else None
        if not isinstance(idx, int) or not 0 <= idx < n or rows[idx] is not None:
            raise Retryable(f"response index {idx!r} is missing, out of range or repeated")
        value = item.get("embedding")
        if embedding_type in BINARY_TYPES:
            if want is None:
                raise EmbeddingError(f"embeddings server {server}: binary embeddings need known dimensions",
                                     hint="pass --dimensions, or let the probe run first")
            if not isinstance(value, list) or len(value) != packed_length(want):
                raise Retryable(f"binary embedding {idx} is not {packed_length(want)} bytes")
        try:
            vec = decode_embedding(value, embedding_type, want)
        except (ValueError, TypeError) as exc:
            raise Retryable(f"embedding {idx} cannot be decoded: {exc}") from None
        if want is None:
            want = int(vec.shape[0])
        if asked_dims is not None and vec.shape[0] != asked_dims:
            raise EmbeddingError(
                f"embeddings server {server}: {model} returned {vec.shape[0]} dimensions, {asked_dims} asked",
                hint="the server ignores 'dimensions' for this model: choose a model that supports it, or drop --dimensions",
            )
        if vec.shape != (want,):
            raise Retryable(f"embedding {idx} has {vec.shape[0]} dimensions, {want} expected")
        if not np.all(np.isfinite(vec)):
            raise Retryable(f"embedding {idx} has non-finite values")
        rows[idx] = vec
    mat = np.stack(rows).astype(np.float32)  # type: ignore[arg-type]
    if embedding_type in BINARY_TYPES:
        if normalized:
            mat /= np.float32(math.sqrt(mat.shape[1]))
    elif normalized:
        norms = np.linalg.norm(mat, axis=1)
        if np.any(np.abs(norms - 1.0) > 1e-3):
            bad = int(np.argmax(np.abs(norms - 1.0)))
            raise Retryable(f"embedding {bad} has norm {norms[bad]:.4f}, but normalized=true was asked")
    return mat, used
