"""The Jina Embeddings API wire format, shared by the client and the local server.

What: the documented limits, the field names, and the codecs for ``embedding_type``
(``float``, ``base64``, ``binary``, ``ubinary``) and for error bodies.
Why one module: the client and ``migrate.rehearsal`` server must agree byte for byte,
and both must agree with jina-spec.md §1. Facts used:

* ``base64``: little-endian float32 bytes, base64-encoded (the layout is
  [UNCONFIRMED] upstream; it is what every OpenAI-compatible server sends).
* ``ubinary``: sign bits (value > 0) packed 8 per byte, MSB first, as uint8 values;
  ``binary``: the same bytes as int8 (byte − 128), so llama-index's decoder
  ``np.unpackbits((values + 128).astype(uint8))`` reads it back (jina-spec §1.3).
* errors: ``{"detail": "..."}``, ``{"detail": [{"msg"|"message": ...}]}`` or
  ``{"error": {"message": ...}}`` (jina-spec §1.4).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np

#: jina-spec §1.5
MAX_INPUTS_PER_REQUEST = 2048
MAX_TOKENS_PER_INPUT = 8192
MAX_LATE_CHUNKING_TOKENS = 8192

EMBEDDING_TYPES = ("float", "base64", "binary", "ubinary")
BINARY_TYPES = ("binary", "ubinary")

ENDPOINT = "/v1/embeddings"
DEFAULT_BASE_URL = "https://api.jina.ai"

#: Header set by the local server on every response; the client records it as ``stand_in``.
STAND_IN_HEADER = "X-Jina-Migrate-Stand-In"


def request_body(model: str, inputs: list[str], *, embedding_type: str, normalized: bool, task: str | None,
                 dimensions: int | None, late_chunking: bool, truncate: bool) -> dict[str, Any]:
    """The JSON body of ``POST /v1/embeddings``: optional fields only when set, as the official clients send them."""
    body: dict[str, Any] = {"model": model, "input": inputs, "embedding_type": embedding_type, "normalized": normalized}
    optional = {"task": task, "dimensions": dimensions, "late_chunking": late_chunking or None, "truncate": truncate or None}
    return body | {k: v for k, v in optional.items() if v is not None}


def encode_embedding(vector: np.ndarray, embedding_type: str) -> Any:
    """One float32 vector -> the JSON value the API sends for ``embedding_type``."""
    v = np.asarray(vector, dtype=np.float32)
    if embedding_type == "float":
        return [float(x) for x in v]
    if embedding_type == "base64":
        return base64.b64encode(v.astype("<f4").tobytes()).decode("ascii")
    packed = np.packbits((v > 0).astype(np.uint8))
    if embedding_type == "ubinary":
        return [int(x) for x in packed]
    if embedding_type == "binary":
        return [int(x) - 128 for x in packed]
    raise ValueError(f"unknown embedding_type {embedding_type!r}")


def decode_embedding(value: Any, embedding_type: str, dims: int | None = None) -> np.ndarray:
    """The JSON value of one ``embedding`` -> float32 vector.

    float/base64 give the floats. binary/ubinary give the sign bits as ±1 (the first
    ``dims`` bits; the padding bits of the last byte are dropped). Raises ValueError on
    anything malformed (wrong type, bad base64, values out of range).
    """
    if embedding_type == "float":
        if not isinstance(value, list):
            raise ValueError(f"expected a list of floats, got {type(value).__name__}")
        return np.asarray(value, dtype=np.float32)
    if embedding_type == "base64":
        if not isinstance(value, str):
            raise ValueError(f"expected a base64 string, got {type(value).__name__}")
        raw = base64.b64decode(value, validate=True)
        if len(raw) % 4:
            raise ValueError(f"base64 embedding has {len(raw)} bytes, not a multiple of 4")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if embedding_type in BINARY_TYPES:
        if not isinstance(value, list):
            raise ValueError(f"expected a list of bytes, got {type(value).__name__}")
        arr = np.asarray(value, dtype=np.int64)
        lo, hi = (0, 255) if embedding_type == "ubinary" else (-128, 127)
        if arr.size and (arr.min() < lo or arr.max() > hi):
            raise ValueError(f"{embedding_type} values out of range [{lo}, {hi}]")
        u8 = (arr if embedding_type == "ubinary" else arr + 128).astype(np.uint8)
        bits = np.unpackbits(u8)
        if dims is not None:
            if dims > bits.size:
                raise ValueError(f"{embedding_type} embedding has {bits.size} bits, {dims} dimensions asked")
            bits = bits[:dims]
        return np.where(bits > 0, 1.0, -1.0).astype(np.float32)
    raise ValueError(f"unknown embedding_type {embedding_type!r}")


def packed_length(dims: int) -> int:
    """Number of bytes a binary/ubinary embedding of ``dims`` dimensions has."""
    return (dims + 7) // 8


def error_detail(body: bytes | str | None, *, limit: int = 300) -> str:
    """A readable one-line message from an error body in any of the documented shapes."""
    if not body:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        obj = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:limit]
    msg: Any = obj
    if isinstance(obj, dict):
        if "detail" in obj:
            msg = obj["detail"]
        elif isinstance(obj.get("error"), dict) and "message" in obj["error"]:
            msg = obj["error"]["message"]
    if isinstance(msg, list):
        parts = []
        for item in msg:
            if isinstance(item, dict):
                where = item.get("loc") or item.get("field")
                what = item.get("msg") or item.get("message") or json.dumps(item)
                parts.append(f"{'.'.join(map(str, where)) if isinstance(where, list) else where}: {what}" if where else str(what))
            else:
                parts.append(str(item))
        msg = "; ".join(parts)
    if not isinstance(msg, str):
        msg = json.dumps(msg)
    return " ".join(msg.split())[:limit]
