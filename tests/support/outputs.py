"""Finished migration outputs written directly, in the layout ``finalize`` writes (README "What
gets written"): for tests and benchmarks that need outputs far larger than a test can embed."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def write_output(out: Path, vectors: np.ndarray, ids: list[str], faiss_ids: np.ndarray, *, index_type: str = "flat",
                 row_group: int = 4096) -> None:
    """``embeddings.parquet`` (row groups of ``row_group``), ``id_map.parquet``, ``index.faiss``
    (IndexIDMap2 over flat inner product or HNSW) and a complete ``manifest.json``; repeated
    ``ids`` make a chunked (late-chunking) output."""
    out.mkdir(parents=True, exist_ok=True)
    n, d = vectors.shape
    schema = pa.schema([("id", pa.string()), ("vector", pa.list_(pa.float32(), d)), ("faiss_id", pa.int64())])
    with pq.ParquetWriter(out / "embeddings.parquet", schema) as w:
        for s in range(0, n, row_group):
            v = vectors[s:s + row_group]
            w.write_table(pa.table({"id": ids[s:s + row_group],
                                    "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), d),
                                    "faiss_id": faiss_ids[s:s + row_group]}, schema=schema))
    pq.write_table(pa.table({"faiss_id": pa.array(faiss_ids, pa.int64()), "id": ids}), out / "id_map.parquet")
    inner = faiss.IndexFlatIP(d) if index_type == "flat" else faiss.IndexHNSWFlat(d, 8, faiss.METRIC_INNER_PRODUCT)
    index = faiss.IndexIDMap2(inner)
    for s in range(0, n, 50_000):
        index.add_with_ids(vectors[s:s + 50_000], faiss_ids[s:s + 50_000])
    faiss.write_index(index, str(out / "index.faiss"))
    chunked = len(set(ids)) != len(ids)
    manifest = {"tool": "jina-migrate", "version": "0.1.0", "state": "complete", "plan": {"shards": []},
                "config": {"model": "local:standin:static", "task": "retrieval.passage", "dimensions": None,
                           "normalized": True, "late_chunking": chunked, "chunker": "sentences:3" if chunked else None},
                "index": {"type": index_type, "params": {}},
                "result": {"rows": n, "documents": len(set(ids)), "chunked": chunked, "dimensions": d,
                           "index_type": index_type}}
    (out / "manifest.json").write_text(json.dumps(manifest))
