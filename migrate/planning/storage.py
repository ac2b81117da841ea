"""Bytes on disk: vectors and flat FAISS index per width and number format, and ``run``'s output."""

from __future__ import annotations

import math
from typing import Any

#: Bytes per vector component in each storage format.
STORAGE_FORMATS = {"float32": 4.0, "float16": 2.0, "binary": 1.0 / 8.0}


def storage_options(n: int, dims_list: list[int]) -> list[dict[str, Any]]:
    """Vectors and an ``IndexIDMap2`` flat index (vectors + int64 ids) for each width and format."""
    rows = []
    for d in dims_list:
        for fmt, per in STORAGE_FORMATS.items():
            vec = n * d * per
            rows.append({"dimensions": d, "format": fmt, "vectors_bytes": int(math.ceil(vec)),
                         "faiss_index_bytes": int(math.ceil(vec + n * 8)),
                         "bytes_per_vector": round(d * per, 3)})
    return rows


def output_bytes(n: int, dims: int, id_bytes: float) -> dict[str, int]:
    """Disk used by ``run``'s float32 output: shards, embeddings.parquet, index.faiss, id_map."""
    vec = n * dims * 4
    row_meta = id_bytes + 64 + 8  # id, text_sha256 (hex), offsets
    shards = int(vec + n * row_meta)
    emb = int(vec + n * (row_meta + 8))
    index = int(vec + n * 8)
    id_map = int(n * (id_bytes + 8 + 4))
    return {"shards": shards, "embeddings_parquet": emb, "index_faiss": index, "id_map_parquet": id_map,
            "total": shards + emb + index + id_map}


def storage_section(ids: Any, dims: int, dims_list: list[int]) -> dict[str, Any]:
    """The plan's ``storage`` section for ``ids`` (a pyarrow string array or a list) at the chosen width ``dims``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(ids)
    arr = ids if isinstance(ids, pa.Array) else pa.array(list(ids), pa.string())
    id_bytes = float(pc.sum(pc.binary_length(arr)).as_py() or 0) / n if n else 0.0
    return {"documents": n, "id_bytes_mean": round(id_bytes, 1), "options": storage_options(n, dims_list),
            "run_output": output_bytes(n, dims, id_bytes) | {"dimensions": dims}}
