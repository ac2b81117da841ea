"""What one stored vector is (:class:`VectorFormat`: precision, width, normalisation, metric) and its codecs.

``--precision`` decides how the new vectors are *stored* (the FAISS + Parquet output, a database
destination); shards in the workspace always hold the float32 vectors the model made, so the
quantisation is a pure function of them and any sink can be rebuilt or verified from the shards.

Rules, one per precision:

* ``float32``: as embedded (4·d bytes).
* ``float16``: cast, round to nearest (2·d bytes).
* ``int8``: global symmetric scalar quantisation, ``code = clip(round(x / scale), -127, 127)`` (d bytes).
  ``scale`` is the 99.9th percentile of ``|x|`` over the vectors of the first shard in plan order (at
  most ``CALIBRATION_ROWS`` of them), divided by 127: one number for every dimension, so inner products
  stay proportional (``q·x ≈ scale · q·code``) and a database's own int8 inner-product search ranks as
  the floats do. It is calibrated once, at finalize, and recorded in the manifest (``quantization``), so
  a resume, ``verify``, ``search`` and ``compare`` use the same scale; a query is scored in float
  against the decoded codes (``code · scale``).
* ``binary``: sign bits (``x > 0`` -> 1), packed 8 per byte, most significant bit first (``np.packbits``):
  exactly the Jina API's ``ubinary`` (jina-spec §1.3), so the API's bits and the local sign agree. ``d``
  must be a multiple of 8 (d/8 bytes). Decoded as ±1/sqrt(d), so a float inner product of two decoded
  vectors is ``1 - 2·hamming/d``, the cosine of the ±1 vectors (FAISS ``IndexBinaryFlat`` ranks the same).

``--rescore`` keeps the float32 vectors beside the reduced ones (``rescore.npy`` in the output
directory); ``search`` and ``compare`` then re-rank the top ``RESCORE_FACTOR``·k candidates by the
float inner product.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa

PRECISIONS = ("float32", "float16", "int8", "binary")
#: Vectors of the first shard used to calibrate int8.
CALIBRATION_ROWS = 10_000
CALIBRATION_QUANTILE = 99.9
#: Candidates re-ranked by the float vectors per result asked for (``--rescore``).
RESCORE_FACTOR = 10
_VALUE_TYPES = {"float32": pa.float32(), "float16": pa.float16(), "int8": pa.int8(), "binary": pa.uint8()}
_DTYPES = {"float32": np.float32, "float16": np.float16, "int8": np.int8, "binary": np.uint8}


def bytes_per_vector(precision: str, dims: int) -> int:
    """Bytes one ``dims``-wide vector takes at ``precision`` (the codes alone)."""
    if precision == "binary":
        return math.ceil(dims / 8)
    return {"float32": 4, "float16": 2, "int8": 1}[precision] * dims


def calibrate_int8(sample: np.ndarray) -> float:
    """The int8 scale of the module docstring's rule, from ``sample`` (the first shard's vectors)."""
    v = np.abs(np.asarray(sample[:CALIBRATION_ROWS], dtype=np.float32))
    top = float(np.percentile(v, CALIBRATION_QUANTILE)) if v.size else 0.0
    return (top if top > 0 else 1.0) / 127.0


@dataclass(frozen=True)
class VectorFormat:
    """How a run's vectors are stored; carried from the settings to the sinks, engines and readers."""

    precision: str = "float32"
    dims: int | None = None
    normalized: bool = True
    metric: str = "ip"  # inner product (cosine on unit vectors); binary: hamming
    rescore: bool = False
    scale: float | None = None  # int8 only, once calibrated

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}")

    @classmethod
    def of(cls, config: dict[str, Any], quantization: dict[str, Any] | None = None,
           dims: int | None = None) -> VectorFormat:
        """From a manifest's ``config`` (outputs of earlier versions record no precision: float32) and
        ``quantization`` section."""
        precision = str(config.get("precision") or "float32")
        scale = (quantization or {}).get("int8_scale")
        return cls(precision=precision, dims=dims or config.get("dimensions"),
                   normalized=bool(config.get("normalized", True)),
                   metric="hamming" if precision == "binary" else "ip", rescore=bool(config.get("rescore", False)),
                   scale=float(scale) if scale is not None else None)

    # ------------------------------------------------------------------ facts

    @property
    def is_float(self) -> bool:
        return self.precision in ("float32", "float16")

    @property
    def reduced(self) -> bool:
        return self.precision != "float32"

    def with_dims(self, dims: int) -> VectorFormat:
        return replace(self, dims=int(dims))

    def calibrated(self, sample: np.ndarray) -> VectorFormat:
        """This format with its int8 scale (unchanged for the other precisions or when already set)."""
        if self.precision != "int8" or self.scale is not None:
            return self
        return replace(self, scale=calibrate_int8(sample))

    def bytes_per_vector(self, dims: int | None = None) -> int:
        d = dims or self.dims
        assert d is not None
        return bytes_per_vector(self.precision, d)

    def width(self, dims: int | None = None) -> int:
        """Values per stored vector: d, or d/8 bytes for binary."""
        d = dims or self.dims
        assert d is not None
        return math.ceil(d / 8) if self.precision == "binary" else d

    def arrow_type(self, dims: int | None = None) -> pa.DataType:
        return pa.list_(_VALUE_TYPES[self.precision], self.width(dims))

    def describe(self) -> str:
        text = self.precision + (f" (scale {self.scale:.6g})" if self.scale is not None else "")
        return text + (" + float32 for rescoring" if self.rescore else "")

    # ------------------------------------------------------------------ codecs

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        """float32 vectors (n, d) -> stored codes (n, width) in the precision's dtype."""
        v = np.asarray(vectors, dtype=np.float32)
        if self.precision == "float32":
            return np.ascontiguousarray(v)
        if self.precision == "float16":
            return v.astype(np.float16)
        if self.precision == "int8":
            if self.scale is None:
                raise ValueError("int8 needs a calibrated scale")
            return np.clip(np.rint(v / self.scale), -127, 127).astype(np.int8)
        return np.packbits(v > 0, axis=1)

    def decode(self, codes: np.ndarray, dims: int | None = None) -> np.ndarray:
        """Stored codes -> float32 vectors to score with a float query (binary: ±1/sqrt(d), unit length)."""
        c = np.asarray(codes)
        if self.precision in ("float32", "float16"):
            return c.astype(np.float32)
        if self.precision == "int8":
            if self.scale is None:
                raise ValueError("int8 needs a calibrated scale")
            return c.astype(np.float32) * np.float32(self.scale)
        d = dims or self.dims or c.shape[1] * 8
        bits = np.unpackbits(c.astype(np.uint8), axis=1)[:, :d]
        return (bits.astype(np.float32) * 2 - 1) / np.float32(math.sqrt(d))

    def roundtrip(self, vectors: np.ndarray) -> np.ndarray:
        """What a float32 vector becomes once stored and read back (the vectors a sink is compared with)."""
        if self.precision == "float32":
            return np.asarray(vectors, dtype=np.float32)
        return self.decode(self.encode(vectors), dims=np.asarray(vectors).shape[1])

    def to_arrow(self, vectors: np.ndarray) -> pa.FixedSizeListArray:
        codes = np.ascontiguousarray(self.encode(vectors))
        return pa.FixedSizeListArray.from_arrays(pa.array(codes.reshape(-1), type=_VALUE_TYPES[self.precision]),
                                                 codes.shape[1])

    def from_arrow(self, col: pa.ChunkedArray | pa.Array) -> np.ndarray:
        """A stored vector column -> its codes (n, width) in the precision's dtype."""
        arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        flat = arr.flatten().to_numpy(zero_copy_only=False)
        return np.asarray(flat, dtype=_DTYPES[self.precision]).reshape(len(arr), arr.type.list_size)


def stored_precision(value_type: pa.DataType) -> str:
    """The precision a stored vector column's value type means (``embeddings.parquet`` of any version)."""
    for name, t in _VALUE_TYPES.items():
        if value_type == t:
            return name
    raise ValueError(f"no precision stores {value_type}")



def precision_problem(precision: str, *, dims: int | None = None, index_type: str = "flat",
                      rescore: bool = False) -> tuple[str, str, str] | None:
    """The first thing a precision cannot do with these settings, as (setting, message, hint); None if fine.
    One home for the rule: the settings check it before anything is written, the FAISS sink once the width
    is known."""
    if rescore and precision == "float32":
        return ("rescore", "keeps float32 vectors beside reduced ones; float32 vectors need no rescoring",
                "add --precision binary (or int8, float16), or drop --rescore")
    if precision != "float32" and index_type == "ivfpq":
        return ("precision", f"{precision} applies to flat and hnsw indexes; IVF-PQ compresses the vectors itself",
                "use --index-type flat or hnsw with --precision, or drop --precision")
    if precision == "binary" and dims is not None and dims % 8:
        return ("precision", f"binary vectors pack 8 dimensions per byte; {dims} dimensions is not a multiple of 8",
                "pass --dimensions with a multiple of 8 (e.g. 1024, 512, 256, 128)")
    return None
