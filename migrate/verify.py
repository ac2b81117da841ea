"""``verify``: check a finished output end to end; every problem is listed.

Counts, ids exactly once, dimensions, unit norms, finite values, shard checksums,
output checksums against the manifest, FAISS index size and ids against the id map.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from migrate.atomic import sha256_file
from migrate.errors import MigrateError
from migrate.index import EMBEDDINGS, ID_MAP, INDEX
from migrate.shards import arrow_to_vectors


def verify(out: Path | str, norm_tol: float = 1e-3) -> dict[str, Any]:
    """Returns {"ok": bool, "problems": [...], "checks": {...}}; never raises for a bad output."""
    from migrate.runner import open_job

    out = Path(out)
    problems: list[str] = []
    checks: dict[str, Any] = {}
    try:
        job = open_job(out)
    except (MigrateError, OSError, pa.ArrowException) as exc:
        return {"ok": False, "problems": [str(exc)], "checks": checks}
    manifest = job.manifest
    if manifest.get("state") != "complete":
        problems.append(f"manifest state is {manifest.get('state')!r}, not 'complete'")

    bad_shards = [s.name for s in job.plan.shards if not job.store.is_complete(s, job.config_fingerprint)]
    checks["shards"] = {"total": len(job.plan.shards), "verified": len(job.plan.shards) - len(bad_shards)}
    if bad_shards:
        problems.append(f"{len(bad_shards)} shards missing or failing their checksum (first: {bad_shards[0]})")

    outputs = manifest.get("outputs") or {}
    if not isinstance(outputs, dict) or set(outputs) - {EMBEDDINGS, ID_MAP, INDEX}:
        problems.append("manifest lists unexpected outputs (edited by hand?)")
        outputs = {k: v for k, v in outputs.items() if k in (EMBEDDINGS, ID_MAP, INDEX)} \
            if isinstance(outputs, dict) else {}
    for name, meta in outputs.items():
        path = out / name
        if path.is_symlink():
            problems.append(f"{name} is a symlink (outputs must be files inside the output directory)")
        elif not path.exists():
            problems.append(f"{name} is missing")
        elif not isinstance(meta, dict) or sha256_file(path) != meta.get("sha256"):
            problems.append(f"{name} does not match the checksum in the manifest")
    if not manifest.get("outputs"):
        problems.append("manifest lists no outputs (finalize has not run)")
        return {"ok": False, "problems": problems, "checks": checks}

    try:
        emb = pq.read_table(out / EMBEDDINGS)
        vecs = arrow_to_vectors(emb.column("vector"))
    except (OSError, pa.ArrowException, ValueError) as exc:
        problems.append(f"{EMBEDDINGS} unreadable: {str(exc).splitlines()[0]}")
        return {"ok": False, "problems": problems, "checks": checks}
    ids = emb.column("id").to_pylist()
    chunked = "chunk" in emb.column_names
    keys = list(zip(ids, emb.column("chunk").to_pylist())) if chunked else ids
    checks["rows"] = len(ids)
    n_docs = len(set(ids))
    if n_docs != job.plan.total_rows or (not chunked and len(ids) != job.plan.total_rows):
        problems.append(f"{n_docs} documents in {len(ids)} rows, plan has {job.plan.total_rows} documents")
    dups = [i for i, c in Counter(keys).items() if c > 1]
    if dups:
        problems.append(f"{len(dups)} ids appear more than once (e.g. {dups[:3]})")
    if set(ids) != set(job.ids):
        problems.append(f"ids differ from the plan ({len(set(job.ids) - set(ids))} missing, "
                        f"{len(set(ids) - set(job.ids))} unexpected)")
    want_dim = (manifest.get("result") or {}).get("dimensions")
    checks["dimensions"] = int(vecs.shape[1])
    if want_dim and vecs.shape[1] != want_dim:
        problems.append(f"vectors have {vecs.shape[1]} dimensions, manifest says {want_dim}")
    if not np.isfinite(vecs).all():
        problems.append(f"{int((~np.isfinite(vecs).all(axis=1)).sum())} vectors hold NaN/inf")
    if manifest.get("config", {}).get("normalized", True):
        norms = np.linalg.norm(vecs, axis=1)
        off = np.abs(norms - 1) > norm_tol
        checks["norm_min"], checks["norm_max"] = float(norms.min(initial=1)), float(norms.max(initial=1))
        if off.any():
            problems.append(f"{int(off.sum())} vectors are not unit length")

    try:
        import faiss

        index = faiss.read_index(str(out / INDEX))
        idmap = pq.read_table(out / ID_MAP)
        checks["index_ntotal"] = int(index.ntotal)
        if index.ntotal != len(ids):
            problems.append(f"index holds {index.ntotal} vectors, embeddings hold {len(ids)}")
        if index.d != vecs.shape[1]:
            problems.append(f"index dimension {index.d} != vectors {vecs.shape[1]}")
        index_ids = faiss.vector_to_array(faiss.downcast_index(index).id_map)
        if not np.array_equal(np.sort(index_ids), np.sort(idmap.column("faiss_id").to_numpy())):
            problems.append("index ids do not match id_map.parquet")
        if idmap.column("id").to_pylist() != ids:
            problems.append("id_map.parquet does not match embeddings.parquet")
    except (RuntimeError, OSError, pa.ArrowException, AttributeError) as exc:
        problems.append(f"index unreadable: {str(exc).strip().splitlines()[-1][:160]}")
    return {"ok": not problems, "problems": problems, "checks": checks}
