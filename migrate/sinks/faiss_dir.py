"""The default sink: ``embeddings.parquet`` + ``id_map.parquet`` + ``index.faiss`` in the output directory.

Built by streaming the shards in plan order: one Parquet writer appends each shard as a
row group, and the FAISS index grows shard by shard, so no more than one shard's vectors
are held besides what the index itself must hold. (A flat index of N × d float32 needs
N·d·4 bytes of RAM: 10 M × 1024 is 41 GB. For corpora that size choose ``--index-type
ivfpq``, whose codes take ``pq_m`` bytes per vector, or a vector-database sink.) IVF-PQ is
trained on a bounded random sample read from the shards, then filled shard by shard.

Documents keep their (old) int64 ids in the index; late-chunked rows are numbered in order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from migrate.atomic import atomic_path, sha256_file
from migrate.errors import ConfigError, StateError
from migrate.index_rules import default_nlist, default_pq_m, index_problem
from migrate.precision import VectorFormat, precision_problem
from migrate.shards import Shard
from migrate.sinks import faiss_precision as fp
from migrate.sinks.base import PlanFacts, SinkCheck, SinkResult
from migrate.sinks.faiss_files import EMBEDDINGS, ID_MAP, INDEX, RESCORE, outputs_of
from migrate.sinks.faiss_verify import verify_faiss_dir
from migrate.workspace import Workspace, arrow_to_vectors
from migrate.workspace.manifest import IndexSettings
from migrate.workspace.vector_format import stored_format

#: Bytes of training vectors IVF-PQ may hold (the sample is cut to fit).
TRAIN_BYTES = 256 << 20


def _given(settings: IndexSettings, name: str) -> int | None:
    """Integer index parameter ``name`` as set (None or 0: not set, the default applies)."""
    value = settings.params.get(name)
    return int(value) if value else None


def ivf_nlist(settings: IndexSettings, n: int) -> int:
    return _given(settings, "ivf_nlist") or default_nlist(n)


def pq_m(settings: IndexSettings, d: int) -> int:
    return _given(settings, "pq_m") or default_pq_m(d)


def check_index(settings: IndexSettings, documents: int, dimensions: int | None,
                fmt: VectorFormat | None = None) -> None:
    """Refuse index settings that cannot work, before anything is embedded (exit 2); the rules are
    ``migrate.index_rules`` and ``migrate.precision``, shared with the settings checks."""
    p = settings.params
    problem = index_problem(settings.type, ivf_nlist=_given(settings, "ivf_nlist"), pq_m=_given(settings, "pq_m"),
                            pq_nbits=int(p.get("pq_nbits") or 8), vectors=documents, dims=dimensions)
    if problem is not None:
        raise ConfigError(f"--{problem.setting.replace('_', '-')}: {problem.message}", hint=problem.hint)
    found = precision_problem(fmt.precision, dims=dimensions, index_type=settings.type,
                              rescore=fmt.rescore) if fmt else None
    if found is not None:
        raise ConfigError(f"--{found[0]}: {found[1]}", hint=found[2])


def _new_index(settings: IndexSettings, d: int, n: int, fmt: VectorFormat | None = None):
    import faiss

    if fmt is not None and fmt.reduced:
        return fp.reduced_index(settings, d, fmt)
    p = settings.params
    if settings.type == "flat":
        return faiss.IndexFlatIP(d)
    if settings.type == "hnsw":
        inner = faiss.IndexHNSWFlat(d, int(p.get("hnsw_m") or 32), faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = int(p.get("hnsw_ef_construction") or 200)
        return inner
    check_index(settings, n, d)
    quantizer = faiss.IndexFlatIP(d)
    return faiss.IndexIVFPQ(quantizer, d, ivf_nlist(settings, n), pq_m(settings, d), int(p.get("pq_nbits") or 8),
                            faiss.METRIC_INNER_PRODUCT)


def build_faiss(vectors: np.ndarray, faiss_ids: np.ndarray, settings: IndexSettings | None = None):
    """An index over ``vectors`` in one go (small sets: tests, compare sweeps)."""
    import faiss

    settings = settings or IndexSettings()
    n, d = vectors.shape
    inner = _new_index(settings, d, n)
    if settings.type == "ivfpq":
        inner.train(np.ascontiguousarray(vectors, dtype=np.float32))
    index = faiss.IndexIDMap2(inner)
    index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.ascontiguousarray(faiss_ids, np.int64))
    return index


@dataclass
class _Pass:
    """Rows of one shard as finalize sees them."""

    shard: Shard
    table: pa.Table
    vectors: np.ndarray
    faiss_ids: np.ndarray


class FaissDirSink:
    """``embeddings.parquet`` + ``id_map.parquet`` + ``index.faiss`` beside the shards."""

    name = "faiss"

    def __init__(self, ws: Workspace, settings: IndexSettings, *, normalized: bool = True) -> None:
        self.ws = ws
        self.settings = settings
        self.normalized = normalized

    def describe(self) -> dict[str, Any]:
        return {"kind": "faiss", "path": str(self.ws.out), "index": self.settings.model_dump()}

    def check(self, facts: PlanFacts) -> None:
        check_index(self.settings, facts.documents, facts.dimensions, facts.vector_format)

    def write_shard(self, shard: Shard, table: pa.Table) -> None:
        """Nothing to do per shard: the files are built from all shards at ``finalize``."""

    # ------------------------------------------------------------------ finalize

    def _passes(self) -> Iterator[_Pass]:
        """Each shard in plan order, checked against the plan, with the int64 ids its rows get."""
        manifest = self.ws.manifest()
        plan = manifest.shard_plan()
        next_chunk_id = 0
        for shard in plan.shards:
            table = self.ws.read_shard(shard)
            planned = self.ws.plan_slice(shard)
            ids = table.column("id").to_pylist()
            chunked = "chunk" in table.column_names
            doc_order = list(dict.fromkeys(ids)) if chunked else ids
            if doc_order != planned.ids:
                raise StateError(f"{self.ws.shard_path(shard)}: shard contents do not match the plan",
                                 hint="rerun with --restart")
            if chunked:
                fids = np.arange(next_chunk_id, next_chunk_id + len(ids), dtype=np.int64)
                next_chunk_id += len(ids)
            else:
                fids = np.asarray(planned.faiss_ids, dtype=np.int64)
            yield _Pass(shard, table, arrow_to_vectors(table.column("vector")), fids)

    def finalize(self) -> SinkResult:
        import faiss

        documents = self.ws.manifest().shard_plan().total_rows
        fmt = stored_format(self.ws)  # int8: calibrated on the first shard, the scale recorded
        out = self.ws.out
        rescore_tmp = None
        rescore: np.memmap | None = None
        index = None
        dim = 0
        rows = 0
        chunked = False
        sample: list[np.ndarray] = []
        sampled = 0
        rng = np.random.default_rng(0)
        train = self.settings.type == "ivfpq"
        with atomic_path(out / EMBEDDINGS) as emb_tmp, atomic_path(out / ID_MAP) as map_tmp, \
                atomic_path(out / RESCORE) as rescore_tmp:
            emb_writer = map_writer = None
            try:
                for step in self._passes():
                    if index is None:
                        dim = step.vectors.shape[1]
                        chunked = "chunk" in step.table.column_names
                        fmt = fmt.with_dims(dim)
                        emb_writer = pq.ParquetWriter(emb_tmp, _emb_schema(dim, chunked, fmt), compression="zstd")
                        map_writer = pq.ParquetWriter(map_tmp, _map_schema(chunked))
                        index = _new_index(self.settings, dim, documents, fmt)
                        index = index if fmt.reduced else faiss.IndexIDMap2(index)
                        if fmt.rescore:
                            total = sum(int((self.ws.record(s) or {}).get("rows", s.rows))
                                        for s in self.ws.manifest().shard_plan().shards)
                            rescore = np.lib.format.open_memmap(rescore_tmp, mode="w+", dtype=np.float32,
                                                                shape=(total, dim))
                    assert emb_writer is not None and map_writer is not None  # opened with the index, above
                    fids = pa.array(step.faiss_ids, pa.int64())
                    doc_cols = {"id": step.table.column("id")} | (
                        {"chunk": step.table.column("chunk")} if chunked else {})
                    stored = fmt.to_arrow(step.vectors) if fmt.reduced else step.table.column("vector")
                    emb_writer.write_table(pa.table(doc_cols | {"vector": stored,
                                                                "text_sha256": step.table.column("text_sha256"),
                                                                "faiss_id": fids}, schema=_emb_schema(dim, chunked, fmt)))
                    if rescore is not None:
                        rescore[rows:rows + len(step.vectors)] = step.vectors
                    map_writer.write_table(pa.table({"faiss_id": fids} | doc_cols, schema=_map_schema(chunked)))
                    if train:  # a bounded random sample to train on; vectors are added in a second pass
                        cap = max(1, TRAIN_BYTES // (4 * dim))
                        want = max(2 ** 16, 39 * ivf_nlist(self.settings, documents))
                        picked = step.vectors[rng.random(len(step.vectors)) < min(1.0, want / max(documents, 1))]
                        if sampled < cap:
                            sample.append(picked[: cap - sampled])
                            sampled += len(sample[-1])
                    else:
                        fp.add(index, step.vectors, step.faiss_ids, fmt)
                    rows += len(step.vectors)
            finally:
                for w in (emb_writer, map_writer):
                    if w is not None:
                        w.close()
                if rescore is not None:
                    rescore.flush()
                    del rescore
        if index is None:
            raise StateError(f"{out}: the plan has no shards", hint="rerun `jina-migrate run`")
        if train:
            vectors = np.concatenate(sample)
            del sample
            index.train(np.ascontiguousarray(vectors))
            del vectors
            for step in self._passes():
                index.add_with_ids(np.ascontiguousarray(step.vectors), step.faiss_ids)
        with atomic_path(out / INDEX) as tmp:
            fp.write(index, tmp)
        if not fmt.rescore:
            (out / RESCORE).unlink(missing_ok=True)  # the empty temp renamed into place
        outputs = {name: {"sha256": sha256_file(out / name), "bytes": (out / name).stat().st_size}
                   for name in outputs_of(fmt)}
        return SinkResult(outputs=outputs, info={"rows": rows, "chunked": chunked, "dimensions": int(dim),
                                                 "index_type": self.settings.type, "precision": fmt.precision})

    # ------------------------------------------------------------------ verify

    def verify(self) -> SinkCheck:
        return verify_faiss_dir(self.ws, normalized=self.normalized)


def _emb_schema(dim: int, chunked: bool, fmt: VectorFormat | None = None) -> pa.Schema:
    """The vector column holds the stored precision: float32/float16/int8 lists of ``dim``, binary: dim/8 bytes."""
    fields = [("id", pa.string())] + ([("chunk", pa.int32())] if chunked else [])
    vector = fmt.arrow_type(dim) if fmt is not None else pa.list_(pa.float32(), dim)
    return pa.schema(fields + [("vector", vector), ("text_sha256", pa.string()), ("faiss_id", pa.int64())])


def _map_schema(chunked: bool) -> pa.Schema:
    return pa.schema([("faiss_id", pa.int64()), ("id", pa.string())] + ([("chunk", pa.int32())] if chunked else []))


# ---------------------------------------------------------------------- reading a finished output

class FaissOutput:
    """A finished FAISS sink, opened for search: the index and a way from int64 ids back to document ids."""

    def __init__(self, out: Path, fmt: VectorFormat | None = None) -> None:
        self.out = Path(out)
        self.fmt = fmt or VectorFormat()
        self.index = fp.read(self.out / INDEX, self.fmt)
        self._ids: dict[int, tuple[str, int | None]] | None = None
        self.rescorer: fp.Rescorer | None = None
        if self.fmt.rescore:
            fids = pq.read_table(self.out / ID_MAP, columns=["faiss_id"]).column(0).to_numpy()
            self.rescorer = fp.Rescorer(self.out / RESCORE, fids)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        """Top ``k`` document ids (a chunked output: each document once, by its best chunk) per query."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        q = q / np.clip(np.linalg.norm(q, axis=1, keepdims=True), 1e-12, None)
        want = min(len(self), self.rescorer.candidates(k * 8) if self.rescorer else k * 8)
        scores, fids = fp.search(self.index, q, want, self.fmt)
        if self.rescorer is not None:  # the reduced index picks the candidates, the float32 vectors rank them
            scores, fids = self.rescorer.rescore(q, fids)
        names = self.lookup(np.unique(fids[fids >= 0]))
        out = []
        for srow, frow in zip(scores, fids):
            seen: dict[str, float] = {}
            for s, f in zip(srow.tolist(), frow.tolist()):
                if f < 0:
                    continue
                doc = names[f][0]
                if doc not in seen:
                    seen[doc] = s
                if len(seen) == k:
                    break
            out.append(list(seen.items()))
        return out

    def lookup(self, faiss_ids: np.ndarray) -> dict[int, tuple[str, int | None]]:
        """Document id (and chunk) of each int64 id, streaming the id map."""
        want = pa.array(np.asarray(faiss_ids, dtype=np.int64))
        found: dict[int, tuple[str, int | None]] = {}
        pf = pq.ParquetFile(self.out / ID_MAP)
        import pyarrow.compute as pc

        for batch in pf.iter_batches():
            mask = pc.is_in(batch.column("faiss_id"), value_set=want)
            if not pc.any(mask).as_py():
                continue
            sel = batch.filter(mask)
            chunks = sel.column("chunk").to_pylist() if "chunk" in sel.schema.names else [None] * sel.num_rows
            for f, i, c in zip(sel.column("faiss_id").to_pylist(), sel.column("id").to_pylist(), chunks):
                found[f] = (i, c)
        return found


@dataclass
class Output:
    """A finished output's vectors in memory (small outputs: the Matryoshka sweep, tests)."""

    out: Path
    ids: list[str]
    vectors: np.ndarray
    faiss_ids: np.ndarray
    text_sha256: list[str]
    manifest: dict[str, Any]

    @property
    def index(self):
        return fp.read(self.out / INDEX, VectorFormat.of(self.manifest.get("config") or {},
                                                         self.manifest.get("quantization")))


def _finished(out: Path | str) -> tuple[Workspace, Any]:
    ws = Workspace(out)
    manifest = ws.manifest()
    if manifest.state != "complete":
        raise StateError(f"{ws.out}: migration is not finished (state: {manifest.state})",
                         hint="run `jina-migrate status` to see what is left")
    missing = [name for name in outputs_of(stored_format(ws, calibrate=False)) if not (ws.out / name).is_file()]
    if missing:
        raise StateError(f"{ws.out}: migration is not finished: {', '.join(missing)} missing",
                         hint="`jina-migrate status` shows what is left; when every shard is done, "
                              "`jina-migrate finalize --out DIR` rebuilds the outputs from the shards")
    return ws, manifest


def open_output(out: Path | str) -> tuple[FaissOutput, Any]:
    """A finished output opened for search (the index, not the embeddings table), and its manifest."""
    ws, manifest = _finished(out)
    try:
        return FaissOutput(ws.out, stored_format(ws, calibrate=False)), manifest
    except RuntimeError as exc:
        raise StateError(f"{ws.out / INDEX}: unreadable ({str(exc).strip().splitlines()[-1][:120]})",
                         hint="run `jina-migrate verify`, then finalize again") from None


def load_output(out: Path | str) -> Output:
    """Every vector of a finished output (needs N·d·4 bytes; search uses :class:`FaissOutput` instead)."""
    ws, manifest = _finished(out)
    try:
        t = pq.read_table(ws.out / EMBEDDINGS)
    except (OSError, pa.ArrowException) as exc:
        raise StateError(f"{ws.out / EMBEDDINGS}: unreadable ({str(exc).splitlines()[0]})",
                         hint="run `jina-migrate verify`, then finalize again") from None
    fmt = stored_format(ws, calibrate=False)
    vectors = fmt.decode(fmt.from_arrow(t.column("vector"))) if fmt.reduced else arrow_to_vectors(t.column("vector"))
    return Output(out=ws.out, ids=t.column("id").to_pylist(), vectors=vectors,
                  faiss_ids=t.column("faiss_id").to_numpy(), text_sha256=t.column("text_sha256").to_pylist(),
                  manifest=manifest.as_json())
