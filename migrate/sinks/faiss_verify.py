"""Verify a finished FAISS directory sink against its manifest and plan, streaming.

Checks: every output exists, is a plain file and matches its checksum in the manifest;
``embeddings.parquet`` holds exactly the planned documents in plan order (each id once,
or each (id, chunk) once), with the planned int64 ids, the manifest's width, finite and
(when normalised) unit vectors; ``id_map.parquet`` matches it row for row; the FAISS index
holds as many vectors, of that width, under the same int64 ids.

Reduced precision (``--precision``): the vector column must have the precision's type and width
(binary: d/8 bytes); norms are checked for float types only (float16 within its rounding), int8
codes must lie in -127..127, and ``rescore.npy`` (``--rescore``) must hold one finite float32
vector per row, unit length when normalised.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from migrate.atomic import sha256_file
from migrate.precision import VectorFormat, stored_precision
from migrate.sinks.base import SinkCheck
from migrate.sinks.faiss_files import EMBEDDINGS, ID_MAP, INDEX, RESCORE, outputs_of
from migrate.workspace import Workspace, arrow_to_vectors
from migrate.workspace.vector_format import stored_format

NORM_TOL = 1e-3
NORM_TOL_FLOAT16 = 5e-3


def verify_faiss_dir(ws: Workspace, *, normalized: bool = True) -> SinkCheck:
    problems: list[str] = []
    checks: dict[str, Any] = {}
    result = SinkCheck(problems, checks)
    manifest = ws.manifest()
    fmt = stored_format(ws, calibrate=False)
    OUTPUTS = outputs_of(fmt)
    normalized = normalized and fmt.is_float
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
    vtype = emb.schema_arrow.field("vector").type
    try:
        stored = stored_precision(vtype.value_type)
    except (ValueError, AttributeError):
        stored = str(vtype)
    if stored != fmt.precision:
        problems.append(f"{EMBEDDINGS} stores {stored} vectors, the manifest says {fmt.precision}")
        return result
    if fmt.precision == "int8" and fmt.scale is None:
        problems.append("the manifest records no int8 scale (quantization.int8_scale): finalize again")
        return result
    checks["precision"] = fmt.precision
    tol = NORM_TOL_FLOAT16 if fmt.precision == "float16" else NORM_TOL
    bad_codes = 0
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
        if fmt.reduced:
            codes = fmt.from_arrow(batch.column("vector"))
            vecs = fmt.decode(codes, dims=want_dim)
            if fmt.precision == "int8":
                bad_codes += int((codes == -128).any(axis=1).sum())
        else:
            vecs = arrow_to_vectors(batch.column("vector"))
        dim = vecs.shape[1]
        finite = np.isfinite(vecs).all(axis=1)
        bad_finite += int((~finite).sum())
        if normalized:
            norms = np.linalg.norm(vecs[finite], axis=1)
            bad_norm += int((np.abs(norms - 1) > tol).sum())
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
    if bad_codes:
        problems.append(f"{bad_codes} int8 vectors hold -128, outside the quantiser's -127..127")
    if fmt.precision == "binary" and dim is not None:
        checks["bits"] = dim
    if fmt.rescore:
        problems += _verify_rescore(ws.out, rows, dim, normalized=bool(manifest.config.get("normalized", True)),
                                    checks=checks)
    if dim is not None and want_dim and dim != want_dim:
        problems.append(f"vectors have {dim} dimensions, manifest says {want_dim}")
    checks["rows"] = rows
    if dim is not None:
        checks["dimensions"] = dim
    if normalized and rows:
        checks["norms_off"] = bad_norm
    problems += _verify_index(ws.out / INDEX, rows, dim, ws.out / ID_MAP, checks, fmt)
    return result


def _verify_rescore(out, rows: int, dim: int | None, *, normalized: bool, checks: dict[str, Any]) -> list[str]:
    try:
        v = np.load(out / RESCORE, mmap_mode="r")
    except (OSError, ValueError) as exc:
        return [f"{RESCORE} unreadable ({str(exc)[:120]})"]
    checks["rescore_rows"] = int(v.shape[0])
    if v.dtype != np.float32 or v.ndim != 2 or v.shape != (rows, dim):
        return [f"{RESCORE} holds {v.dtype} {tuple(v.shape)}, expected float32 ({rows}, {dim})"]
    bad = 0
    for start in range(0, rows, 65_536):
        part = np.asarray(v[start:start + 65_536])
        ok = np.isfinite(part).all(axis=1)
        bad += int((~ok).sum())
        if normalized:
            bad += int((np.abs(np.linalg.norm(part[ok], axis=1) - 1) > NORM_TOL).sum())
    return [f"{RESCORE}: {bad} float32 vectors are not finite unit vectors"] if bad else []


def _verify_index(path, rows: int, dim: int | None, id_map_path, checks: dict[str, Any], fmt=None) -> list[str]:
    import faiss

    from migrate.sinks import faiss_precision as fp

    try:
        index = fp.read(path, fmt or VectorFormat(), mmap=True)
    except RuntimeError as exc:
        return [f"index unreadable: {str(exc).strip().splitlines()[-1][:160]}"]
    problems = []
    checks["index_ntotal"] = int(index.ntotal)
    if index.ntotal != rows:
        problems.append(f"index holds {index.ntotal} vectors, embeddings hold {rows}")
    if dim is not None and index.d != dim:
        problems.append(f"index dimension {index.d} != vectors {dim}")
    try:
        # an IndexIDMap2 / IndexBinaryIDMap2 when jina-migrate wrote it: any other class lacks ``id_map``
        mapped: Any = index if fp.is_binary(index) else faiss.downcast_index(index)
        index_ids = faiss.vector_to_array(mapped.id_map)
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
