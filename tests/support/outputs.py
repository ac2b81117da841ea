"""Finished migration outputs written directly, in the layout ``finalize`` writes (README "What
gets written"): for tests and benchmarks that need outputs far larger than a test can embed."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
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
    from migrate.shards import canonical_hash

    config = {"model": "local:standin:static", "task": "retrieval.passage", "dimensions": None, "normalized": True,
              "late_chunking": chunked, "chunker": "sentences:3" if chunked else None}
    manifest = {"tool": "jina-migrate", "version": "0.2.0", "state": "complete",
                "plan": {"shard_size": 1, "total_rows": 0, "shards": []},
                "config": config, "config_fingerprint": canonical_hash(config),
                "index": {"type": index_type, "params": {}},
                "result": {"rows": n, "documents": len(set(ids)), "chunked": chunked, "dimensions": d,
                           "index_type": index_type}}
    (out / "manifest.json").write_text(json.dumps(manifest))


_CHILD = textwrap.dedent("""
    import json, sys, threading, time
    import numpy as np

    def anon():
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon"):
                return int(line.split()[1]) * 1024

    from migrate.report.output import OutputIndex, OutputManifest
    from migrate.report.side import OutputStore
    import migrate.shards  # noqa: F401 - imported before the baseline, like every module used below
    q = np.load(sys.argv[2])
    dims = [int(d) for d in sys.argv[3].split(",") if d]
    peak, stop = [0], []
    def sample():
        while not stop:
            peak[0] = max(peak[0], anon()); time.sleep(0.002)
    t = threading.Thread(target=sample, daemon=True); t.start()
    time.sleep(0.05); base = anon()
    t0 = time.perf_counter()
    store = OutputStore(OutputIndex(OutputManifest.load(sys.argv[1])))
    r = store.search(q, 100)
    top = [store.ids_at(row[:10]) for row in r.doc_index]
    t1 = time.perf_counter()
    sweep = store.sweep(q, dims, 100) if dims else {}
    t2 = time.perf_counter()
    time.sleep(0.05); stop.append(1); t.join()
    print(json.dumps({"grew": peak[0] - base, "top": top, "exact": store.index.exact,
                      "search_s": t1 - t0, "sweep_s": t2 - t1}))
""")


def search_in_child(out: Path, queries: Path, dims: tuple[int, ...] = (256, 64)) -> dict:
    """Open ``out`` as compare does, search it with the query matrix saved in ``queries`` (.npy)
    and sweep ``dims``, in a fresh process; returns the peak growth of its anonymous memory
    (``grew``, bytes), the top-10 ids per query, and the search and sweep times."""
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(out), str(queries), ",".join(map(str, dims))],
                          capture_output=True, text=True, cwd=repo, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])
