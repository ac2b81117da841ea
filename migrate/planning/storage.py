"""Bytes on disk: vectors and flat FAISS index per width and precision, and ``run``'s output.

Precisions and their bytes per vector are ``migrate.precision``'s (the rule that stores them): float32
4·d, float16 2·d, int8 d, binary d/8; ``--rescore`` keeps 4·d more beside, outside the index."""

from __future__ import annotations

from typing import Any

from migrate.precision import PRECISIONS, bytes_per_vector

#: The storage precisions priced (``--precision``), each row also marks the run's own.
STORAGE_FORMATS = PRECISIONS


def storage_options(n: int, dims_list: list[int], precision: str = "float32") -> list[dict[str, Any]]:
    """Vectors and an id-mapped flat index (codes + int64 ids) for each width and precision."""
    rows = []
    for d in dims_list:
        for fmt in STORAGE_FORMATS:
            per = bytes_per_vector(fmt, d)
            rows.append({"dimensions": d, "format": fmt, "vectors_bytes": n * per, "faiss_index_bytes": n * (per + 8),
                         "bytes_per_vector": per, "chosen": fmt == precision})
    return rows


def output_bytes(n: int, dims: int, id_bytes: float, precision: str = "float32",
                 rescore: bool = False) -> dict[str, int | str]:
    """Disk used by ``run``'s output: float32 shards, embeddings.parquet and index.faiss at ``precision``,
    id_map, and ``rescore.npy`` (float32) with ``--rescore``."""
    vec = n * dims * 4
    stored = n * bytes_per_vector(precision, dims)
    row_meta = id_bytes + 64 + 8  # id, text_sha256 (hex), offsets
    shards = int(vec + n * row_meta)
    emb = int(stored + n * (row_meta + 8))
    index = int(stored + n * 8)
    id_map = int(n * (id_bytes + 8 + 4))
    kept = vec if rescore else 0
    out: dict[str, int | str] = {"shards": shards, "embeddings_parquet": emb, "index_faiss": index, "id_map_parquet": id_map,
           "total": shards + emb + index + id_map + kept, "precision": precision}
    return out | ({"rescore_npy": kept} if rescore else {})


def storage_section(ids: Any, dims: int, dims_list: list[int], precision: str = "float32",
                    rescore: bool = False) -> dict[str, Any]:
    """The plan's ``storage`` section for ``ids`` (a pyarrow string array or a list) at the chosen width ``dims``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(ids)
    arr = ids if isinstance(ids, pa.Array) else pa.array(list(ids), pa.string())
    id_bytes = float(pc.sum(pc.binary_length(arr)).as_py() or 0) / n if n else 0.0
    return {"documents": n, "id_bytes_mean": round(id_bytes, 1), "options": storage_options(n, dims_list, precision),
            "run_output": output_bytes(n, dims, id_bytes, precision, rescore) | {"dimensions": dims}}
