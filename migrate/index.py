"""Build the new index from finished shards, and load a finished output.

``finalize`` reads every shard in plan order and writes, each atomically:
``embeddings.parquet`` (id, vector, text_sha256, faiss_id; readable by DuckDB/Polars
as is), ``id_map.parquet`` (faiss_id -> id), ``index.faiss`` (IndexIDMap2 over flat
inner product by default, HNSW or IVF-PQ on request), then marks the manifest
complete with the outputs' checksums. Stale shards of earlier plans are removed last.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from migrate.atomic import clean_temp_files, sha256_file, write_with
from migrate.errors import StateError
from migrate.shards import arrow_to_vectors, load_manifest, save_manifest, vectors_to_arrow

EMBEDDINGS = "embeddings.parquet"
INDEX = "index.faiss"
ID_MAP = "id_map.parquet"


def build_faiss(vectors: np.ndarray, faiss_ids: np.ndarray, index_type: str = "flat", *, hnsw_m: int = 32,
                hnsw_ef_construction: int = 200, ivf_nlist: int | None = None, pq_m: int | None = None,
                pq_nbits: int = 8):
    """Inner-product index over unit vectors (= cosine), keyed by the original int64 ids."""
    import faiss

    n, d = vectors.shape
    if index_type == "flat":
        inner = faiss.IndexFlatIP(d)
    elif index_type == "hnsw":
        inner = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = hnsw_ef_construction
    elif index_type == "ivfpq":
        nlist = ivf_nlist or max(1, min(int(4 * np.sqrt(n)), n // 39 or 1))
        m = pq_m or next(mm for mm in (64, 48, 32, 16, 8, 4, 2, 1) if d % mm == 0 and mm <= d // 4 or mm == 1)
        if d % m:
            raise StateError(f"--pq-m {m} must divide the dimension {d}")
        quantizer = faiss.IndexFlatIP(d)
        inner = faiss.IndexIVFPQ(quantizer, d, nlist, m, pq_nbits, faiss.METRIC_INNER_PRODUCT)
        if n < nlist * 39 or n < 2 ** pq_nbits:
            raise StateError(f"IVF-PQ with nlist={nlist}, nbits={pq_nbits} needs more vectors than {n} to train",
                             hint="use --index-type flat or hnsw for small corpora, or lower --ivf-nlist")
        inner.train(vectors)
    else:
        raise StateError(f"unknown index type {index_type!r}")
    index = faiss.IndexIDMap2(inner)
    index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.ascontiguousarray(faiss_ids, dtype=np.int64))
    return index


def finalize(out: Path | str) -> dict[str, Any]:
    """Assemble outputs from complete shards; refuses while any shard is missing or corrupt."""
    from migrate.runner import open_job

    out = Path(out)
    job = open_job(out)
    missing = [s.name for s in job.plan.shards if not job.store.is_complete(s, job.config_fingerprint)]
    if missing:
        raise StateError(f"{out}: {len(missing)} of {len(job.plan.shards)} shards are not done "
                         f"(first: {missing[0]})", hint="run the remaining workers (or `jina-migrate run`) first")
    tables = [job.store.read(s) for s in job.plan.shards]
    ids = [x for t in tables for x in t.column("id").to_pylist()]
    chunked = "chunk" in tables[0].column_names
    doc_order = list(dict.fromkeys(ids)) if chunked else ids
    if doc_order != job.ids:
        raise StateError(f"{out}: shard contents do not match the plan", hint="rerun with --restart")
    vectors = np.concatenate([arrow_to_vectors(t.column("vector")) for t in tables])
    hashes = pa.concat_arrays([t.column("text_sha256").combine_chunks() for t in tables])
    # Documents keep their (old) int64 ids; late-chunked rows are numbered in order instead.
    faiss_ids = np.arange(len(ids), dtype=np.int64) if chunked else np.asarray(job.faiss_ids, dtype=np.int64)

    cols = {"id": pa.array(ids, pa.string())}
    if chunked:
        cols["chunk"] = pa.concat_arrays([t.column("chunk").combine_chunks() for t in tables])
    emb = pa.table(cols | {"vector": vectors_to_arrow(vectors), "text_sha256": hashes,
                           "faiss_id": pa.array(faiss_ids, pa.int64())})
    write_with(out / EMBEDDINGS, lambda tmp: pq.write_table(emb, tmp, compression="zstd"))
    idmap = pa.table({"faiss_id": pa.array(faiss_ids, pa.int64()), "id": pa.array(ids, pa.string())}
                     | ({"chunk": cols["chunk"]} if chunked else {}))
    write_with(out / ID_MAP, lambda tmp: pq.write_table(idmap, tmp))

    import faiss

    cfg = job.manifest.get("index", {}) or {}
    index = build_faiss(vectors, faiss_ids, cfg.get("type", "flat"), **cfg.get("params", {}))
    write_with(out / INDEX, lambda tmp: faiss.write_index(index, str(tmp)))

    manifest = load_manifest(out) or job.manifest
    manifest["outputs"] = {name: {"sha256": sha256_file(out / name), "bytes": (out / name).stat().st_size}
                           for name in (EMBEDDINGS, ID_MAP, INDEX)}
    manifest["result"] = {"rows": len(ids), "documents": len(doc_order), "chunked": chunked,
                          "dimensions": int(vectors.shape[1]),
                          "index_type": cfg.get("type", "flat"),
                          "tokens": sum(int((job.store.record(s) or {}).get("tokens", 0)) for s in job.plan.shards)}
    manifest["state"] = "complete"
    save_manifest(out, manifest)
    removed = job.store.remove_stale(job.plan)
    clean_temp_files(out)  # temp files of runs killed mid-write; every shard is done, so none is in flight
    clean_temp_files(job.store.dir)
    return {"embeddings": str(out / EMBEDDINGS), "index": str(out / INDEX), "id_map": str(out / ID_MAP),
            "rows": len(ids), "dimensions": int(vectors.shape[1]), "stale_shards_removed": removed}


@dataclass
class Output:
    """A finished migration, loaded for search/compare/verify."""

    out: Path
    ids: list[str]
    vectors: np.ndarray
    faiss_ids: np.ndarray
    text_sha256: list[str]
    manifest: dict[str, Any]

    @property
    def index(self):
        import faiss

        return faiss.read_index(str(self.out / INDEX))


def load_output(out: Path | str) -> Output:
    out = Path(out)
    manifest = load_manifest(out)
    if manifest is None:
        raise StateError(f"{out}: no manifest.json here", hint="point at the --out directory of a finished run")
    if manifest.get("state") != "complete" or not (out / EMBEDDINGS).exists():
        raise StateError(f"{out}: migration is not finished (state: {manifest.get('state')})",
                         hint="run `jina-migrate status` to see what is left")
    try:
        t = pq.read_table(out / EMBEDDINGS)
    except (OSError, pa.ArrowException) as exc:
        raise StateError(f"{out / EMBEDDINGS}: unreadable ({str(exc).splitlines()[0]})",
                         hint="run `jina-migrate verify`, then finalize again") from None
    return Output(out=out, ids=t.column("id").to_pylist(), vectors=arrow_to_vectors(t.column("vector")),
                  faiss_ids=t.column("faiss_id").to_numpy(), text_sha256=t.column("text_sha256").to_pylist(),
                  manifest=manifest)
