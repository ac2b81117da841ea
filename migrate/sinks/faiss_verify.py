"""Verify a finished FAISS directory sink against its manifest and plan, streaming.

Checks: every output exists, is a plain file and matches its checksum in the manifest;
``embeddings.parquet`` holds exactly the planned documents in plan order (each id once,
or each (id, chunk) once), with the planned int64 ids, the manifest's width, finite and
(when normalised) unit vectors; ``id_map.parquet`` matches it row for row; the FAISS index
holds as many vectors, of that width, under the same int64 ids.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from migrate.atomic import sha256_file
from migrate.sinks.base import SinkCheck
from migrate.workspace import Workspace, arrow_to_vectors

NORM_TOL = 1e-3


def verify_faiss_dir(ws: Workspace, *, normalized: bool = True) -> SinkCheck:
    from migrate.sinks.faiss_dir import EMBEDDINGS, ID_MAP, INDEX, OUTPUTS

    problems: list[str] = []
    checks: dict[str, Any] = {}
    result = SinkCheck(problems, checks)
    manifest = ws.manifest()
    outputs = manifest.outputs
    if set(outputs) - set(OUTPUTS):
        problems.append("manifest lists unexpected outputs (edited by hand?)")
    if not outputs:
        problems.append("manifest lists no outputs (finalize has not run)")
        return result
    for name in OUTPUTS:
        path = ws.out / name
        meta = outputs.get(name)
        if path.is_symlink():
            problems.append(f"{name} is a symlink (outputs must be files inside the output directory)")
        elif not path.exists():
            problems.append(f"{name} is missing")
        elif meta is None or sha256_file(path) != meta.sha256:
            problems.append(f"{name} does not match the checksum in the manifest")
    if problems:
        return result

    want_dim = manifest.result.dimensions if manifest.result else None
    try:
        emb = pq.ParquetFile(ws.out / EMBEDDINGS)
        idmap = pq.ParquetFile(ws.out / ID_MAP)
    except (OSError, pa.ArrowException) as exc:
        problems.append(f"outputs unreadable: {str(exc).splitlines()[0]}")
        return result
    chunked = "chunk" in emb.schema_arrow.names
    rows = 0
    bad_norm = bad_finite = 0
    dim = None
    planned = _Stream(ws.iter_plan(columns=["id", "faiss_id"]))
    map_stream = _Stream(idmap.iter_batches(batch_size=65_536))
    last_doc: str | None = None
    last_chunk = -1
    order_ok = True
    for batch in emb.iter_batches(batch_size=65_536):
        ids = batch.column("id").to_pylist()
        vecs = arrow_to_vectors(batch.column("vector"))
        dim = vecs.shape[1]
        finite = np.isfinite(vecs).all(axis=1)
        bad_finite += int((~finite).sum())
        if normalized:
            norms = np.linalg.norm(vecs[finite], axis=1)
            bad_norm += int((np.abs(norms - 1) > NORM_TOL).sum())
        fids = batch.column("faiss_id").to_numpy()
        m = map_stream.take(len(ids))
        if m is None or m["id"] != ids or not np.array_equal(m["faiss_id"], fids):
            problems.append("id_map.parquet does not match embeddings.parquet")
            order_ok = False
            break
        if chunked:
            chunks = batch.column("chunk").to_pylist()
            for doc, ch in zip(ids, chunks):
                if doc != last_doc:
                    p = planned.take(1)
                    if p is None or p["id"] != [doc] or ch != 0:
                        order_ok = False
                        break
                    last_doc, last_chunk = doc, 0
                elif ch != last_chunk + 1:
                    order_ok = False
                    break
                else:
                    last_chunk = ch
            if not order_ok:
                problems.append("embeddings.parquet rows differ from the plan (a document or chunk is missing, "
                                "repeated or out of order)")
                break
        else:
            p = planned.take(len(ids))
            if p is None or p["id"] != ids or not np.array_equal(p["faiss_id"], fids):
                problems.append("embeddings.parquet rows differ from the plan (ids or int64 ids missing, repeated "
                                "or out of order)")
                order_ok = False
                break
        rows += len(ids)
    if order_ok and planned.take(1) is not None:
        problems.append("embeddings.parquet holds fewer documents than the plan")
    if bad_finite:
        problems.append(f"{bad_finite} vectors hold NaN/inf")
    if bad_norm:
        problems.append(f"{bad_norm} vectors are not unit length")
    if dim is not None and want_dim and dim != want_dim:
        problems.append(f"vectors have {dim} dimensions, manifest says {want_dim}")
    checks["rows"] = rows
    if dim is not None:
        checks["dimensions"] = dim
    if normalized and rows:
        checks["norms_off"] = bad_norm
    problems += _verify_index(ws.out / INDEX, rows, dim, ws.out / ID_MAP, checks)
    return result


def _verify_index(path, rows: int, dim: int | None, id_map_path, checks: dict[str, Any]) -> list[str]:
    import faiss

    try:
        try:
            index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        except RuntimeError:
            index = faiss.read_index(str(path))
    except RuntimeError as exc:
        return [f"index unreadable: {str(exc).strip().splitlines()[-1][:160]}"]
    problems = []
    checks["index_ntotal"] = int(index.ntotal)
    if index.ntotal != rows:
        problems.append(f"index holds {index.ntotal} vectors, embeddings hold {rows}")
    if dim is not None and index.d != dim:
        problems.append(f"index dimension {index.d} != vectors {dim}")
    try:
        index_ids = faiss.vector_to_array(faiss.downcast_index(index).id_map)
    except AttributeError:
        return problems + ["index has no id map (not written by jina-migrate?)"]
    pos = 0
    for batch in pq.ParquetFile(id_map_path).iter_batches(columns=["faiss_id"], batch_size=65_536):
        part = batch.column(0).to_numpy()
        if not np.array_equal(index_ids[pos:pos + len(part)], part):
            problems.append("index ids do not match id_map.parquet")
            break
        pos += len(part)
    return problems


class _Stream:
    """Take the next n rows (as lists/arrays per column) from an iterator of record batches."""

    def __init__(self, batches) -> None:
        self.batches = iter(batches)
        self.buf: pa.Table | None = None

    def take(self, n: int) -> dict | None:
        while self.buf is None or self.buf.num_rows < n:
            try:
                b = next(self.batches)
            except StopIteration:
                break
            t = pa.Table.from_batches([b])
            self.buf = t if self.buf is None else pa.concat_tables([self.buf, t])
        if self.buf is None or self.buf.num_rows < n or n == 0 and self.buf.num_rows == 0:
            return None
        part, self.buf = self.buf.slice(0, n), self.buf.slice(n)
        out = {}
        for name in part.column_names:
            col = part.column(name)
            out[name] = col.to_numpy() if pa.types.is_integer(col.type) and name != "chunk" else col.to_pylist()
        return out
