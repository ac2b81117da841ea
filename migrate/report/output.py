"""A finished migration output, opened for comparison without loading its vectors.

What: ``OutputManifest`` is a typed, read-only view of ``manifest.json`` (model, task,
dimensions, index type, how the documents were embedded); ``OutputIndex`` searches the
built ``index.faiss`` (an ``IndexIDMap2`` keyed by ``faiss_id``) and maps FAISS ids to
document ids through ``id_map.parquet``; ``stream_vectors`` reads ``embeddings.parquet``
one batch at a time for the features that need the vectors themselves.
Why: a production output holds millions of 1024-d vectors (a 1M x 1024 output is 4 GB);
``compare`` must not hold them in RAM. A flat index is memory-mapped (FAISS
``IO_FLAG_MMAP_IFC``), so its vectors stay in the page cache; an ANN index (HNSW,
IVF-PQ) is not exact, so the comparison then streams ``embeddings.parquet`` with an
exact running top-k instead and keeps the ANN index for ``--ann``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from migrate.errors import StateError
from migrate.precision import RESCORE_FACTOR, VectorFormat
from migrate.report.schema import EmbedderRecord
from migrate.report.search import Ranking, TopK, map_labels, rows_to_docs

EMBEDDINGS = "embeddings.parquet"
INDEX = "index.faiss"
ID_MAP = "id_map.parquet"
#: Rows scored at a time when streaming embeddings.parquet (x 1024 dims x 4 bytes = 32 MB).
STREAM_ROWS = 8_192


def _section(manifest: dict[str, Any], key: str) -> dict[str, Any]:
    """The manifest's ``key`` section; empty when it is missing or not a mapping."""
    section = manifest.get(key)
    return section if isinstance(section, dict) else {}


def index_type_of(manifest: dict[str, Any]) -> str | None:
    """The index type an output built: ``result.index_type`` (what finalize built), else
    ``index.type`` (what the run was configured to build); None when neither is recorded."""
    result = manifest.get("result")
    if isinstance(result, dict) and isinstance(result.get("index_type"), str):
        return result["index_type"]
    index = manifest.get("index")
    if isinstance(index, dict) and isinstance(index.get("type"), str):
        return index["type"]
    return None


@dataclass(frozen=True)
class OutputManifest:
    """What ``compare`` and ``search`` need from an output's ``manifest.json``, typed."""

    out: Path
    state: str
    model: str  # embedder spec, e.g. jina-api:jina-embeddings-v3
    task: str
    dimensions: int | None  # requested Matryoshka size (None: the model's own)
    max_tokens: int | None
    normalized: bool
    late_chunking: bool
    chunker: str | None
    embedding_type: str
    truncate: bool
    index_type: str | None
    index_params: dict[str, Any] = field(default_factory=dict)
    rows: int | None = None
    documents: int | None = None
    result_dimensions: int | None = None
    chunked: bool = False
    embedder: EmbedderRecord | None = None
    config_fingerprint: str | None = None
    version: str | None = None
    #: how the vectors are stored (``--precision``; outputs of earlier versions: float32)
    vector_format: VectorFormat = field(default_factory=VectorFormat)

    @classmethod
    def from_dict(cls, manifest: dict[str, Any], out: Path | str = ".") -> OutputManifest:
        """Read the sections a manifest really holds; a missing ``config.model`` is a StateError."""
        path = Path(out) / "manifest.json"
        cfg = manifest.get("config")
        if not isinstance(cfg, dict) or not isinstance(cfg.get("model"), str):
            raise StateError(f"{path}: no model recorded in its config section",
                             hint="this is not the manifest of a finished jina-migrate run")
        result = _section(manifest, "result")
        index = _section(manifest, "index")

        def opt_int(v: Any) -> int | None:
            return int(v) if isinstance(v, int) and not isinstance(v, bool) else None

        return cls(
            out=Path(out), state=str(manifest.get("state") or ""), model=cfg["model"],
            task=str(cfg.get("task") or "none"), dimensions=opt_int(cfg.get("dimensions")),
            max_tokens=opt_int(cfg.get("max_tokens")), normalized=bool(cfg.get("normalized", True)),
            late_chunking=bool(cfg.get("late_chunking", False)), chunker=cfg.get("chunker"),
            embedding_type=str(cfg.get("embedding_type") or "float"), truncate=bool(cfg.get("truncate", False)),
            index_type=index_type_of(manifest), index_params=dict(index.get("params") or {}),
            rows=opt_int(result.get("rows")), documents=opt_int(result.get("documents")),
            result_dimensions=opt_int(result.get("dimensions")), chunked=bool(result.get("chunked", False)),
            embedder=EmbedderRecord.from_mapping(manifest.get("embedder")),
            config_fingerprint=manifest.get("config_fingerprint"), version=manifest.get("version"),
            vector_format=VectorFormat.of(cfg, _section(manifest, "quantization"),
                                          dims=opt_int(result.get("dimensions"))),
        )

    @classmethod
    def load(cls, out: Path | str) -> OutputManifest:
        """The manifest of a *finished* output; says what is missing when it is not one."""
        from migrate.workspace import Workspace

        out = Path(out)
        if not out.is_dir():
            raise StateError(f"{out}: not a directory", hint="point --new at the --out directory of a finished run")
        ws = Workspace(out)
        if not ws.has_manifest():
            raise StateError(f"{out}: no manifest.json here", hint="point at the --out directory of a finished run")
        view = cls.from_dict(ws.manifest().as_json(), out)
        if view.state != "complete":
            raise StateError(f"{out}: migration is not finished (state: {view.state or 'unknown'})",
                             hint="run `jina-migrate status` to see what is left, then `jina-migrate finalize`")
        missing = [n for n in (INDEX, ID_MAP) if not (out / n).is_file()]
        if missing:
            raise StateError(f"{out}: migration is not finished: {' and '.join(missing)} missing",
                             hint="run `jina-migrate finalize --out DIR` to rebuild the outputs from the shards")
        return view


def _faiss_type(index: Any) -> str:
    """``IndexIDMap2(IndexHNSWFlat)``: the wrapper and the index doing the search."""
    import faiss

    inner = getattr(index, "index", None)
    if inner is None:
        return type(index).__name__
    if isinstance(index, faiss.IndexBinary):
        return f"{type(index).__name__}({type(faiss.downcast_IndexBinary(inner)).__name__})"
    return f"{type(index).__name__}({type(faiss.downcast_index(inner)).__name__})"


def read_faiss(path: Path, *, binary: bool = False) -> Any:
    """Read a FAISS index, memory-mapping flat vector storage when FAISS can (page cache, not RAM)."""
    import faiss

    flag = getattr(faiss, "IO_FLAG_MMAP_IFC", None)
    try:
        if binary:
            return faiss.read_index_binary(str(path))
        if flag is not None:
            try:
                return faiss.read_index(str(path), flag | faiss.IO_FLAG_READ_ONLY)
            except RuntimeError:
                pass  # an index type this FAISS cannot map: read it normally
        return faiss.read_index(str(path))
    except RuntimeError as exc:
        raise StateError(f"{path}: unreadable FAISS index ({str(exc).splitlines()[0][:160]})",
                         hint="run `jina-migrate verify`, then `jina-migrate finalize` again") from None


class OutputIndex:
    """The documents of a finished output: ids, searchable through ``index.faiss``.

    Row ``i`` of ``id_map.parquet`` is row ``i`` of ``embeddings.parquet``. Repeated ids
    (late chunking) make a chunked output: a document's score is its best chunk.
    """

    def __init__(self, manifest: OutputManifest) -> None:
        out = manifest.out
        self.manifest = manifest
        self.out = out
        try:
            idmap = pq.ParquetFile(out / ID_MAP).read(columns=["faiss_id", "id"], use_threads=False)
        except (OSError, pa.ArrowException, KeyError) as exc:
            raise StateError(f"{out / ID_MAP}: unreadable ({str(exc).splitlines()[0][:160]})",
                             hint="run `jina-migrate verify`, then `jina-migrate finalize` again") from None
        self.faiss_ids = idmap.column("faiss_id").to_numpy().astype(np.int64, copy=False)
        self._fid_order = np.argsort(self.faiss_ids, kind="stable")
        ids = idmap.column("id").combine_chunks().cast(pa.string())
        encoded = pc.dictionary_encode(ids)
        self.doc_ids: pa.Array = encoded.dictionary  # unique, in first-seen order
        self.n_vectors = len(ids)
        self.row_doc: np.ndarray | None = None
        if len(self.doc_ids) != len(ids):
            self.row_doc = encoded.indices.to_numpy().astype(np.int64)
        self.fmt = manifest.vector_format
        self.index = read_faiss(out / INDEX, binary=self.fmt.precision == "binary")
        if int(self.index.ntotal) != self.n_vectors:
            raise StateError(f"{out / INDEX}: holds {self.index.ntotal} vectors but {ID_MAP} names {self.n_vectors}",
                             hint="run `jina-migrate verify`, then `jina-migrate finalize` again")
        self.dim = int(self.index.d)
        import faiss

        self._labels_are_ids = isinstance(self.index, (faiss.IndexIDMap, faiss.IndexIDMap2))
        self.faiss_type = _faiss_type(self.index)
        #: an inner-product flat index answers exactly; HNSW / IVF answer approximately
        self.exact = self.faiss_type in ("IndexIDMap2(IndexFlatIP)", "IndexIDMap(IndexFlatIP)", "IndexFlatIP")
        del idmap, ids, encoded

    @property
    def n_docs(self) -> int:
        return len(self.doc_ids)

    def ids_at(self, positions: np.ndarray) -> list[str]:
        """Document ids at document ``positions`` (all >= 0)."""
        return self.doc_ids.take(pa.array(np.asarray(positions, dtype=np.int64))).to_pylist()

    def search_index(self, queries: np.ndarray, depth: int, *, nprobe: int | None = None,
                     ef_search: int | None = None) -> Ranking:
        """Top-``depth`` documents per query from ``index.faiss`` (exact for a flat index)."""
        import faiss

        if nprobe is not None:
            faiss.ParameterSpace().set_index_parameter(self.index, "nprobe", nprobe)
        if ef_search is not None:
            faiss.ParameterSpace().set_index_parameter(self.index, "efSearch", ef_search)
        q = np.ascontiguousarray(queries, dtype=np.float32)
        depth = min(depth, self.n_docs)
        kk = depth if self.row_doc is None else min(self.n_vectors, depth * 4)
        while True:
            scores, labels = self.index.search(q, kk)
            rows = map_labels(labels, self.faiss_ids, self._fid_order) if self._labels_are_ids else labels.astype(np.int64)
            if self.row_doc is None:
                return Ranking(rows, scores.astype(np.float32))
            ranking, complete = rows_to_docs(rows, scores, self.row_doc, depth)
            if complete or kk >= self.n_vectors:
                return ranking
            kk = min(self.n_vectors, kk * 4)

    def stream_vectors(self, rows: int = STREAM_ROWS) -> Iterator[tuple[int, np.ndarray]]:
        """``(first_row, vectors)`` batches of ``embeddings.parquet``, in id-map order.

        Read one row group at a time, single-threaded (pyarrow's ``iter_batches`` reads
        ahead and held the whole file in a test), then cut into ``rows``-row batches:
        memory is bounded by the largest row group (``finalize`` writes one per shard).
        """
        from migrate.workspace import arrow_to_vectors

        path = self.out / EMBEDDINGS
        if not path.is_file():
            raise StateError(f"{path}: missing although the manifest says complete",
                             hint="run `jina-migrate finalize` again to rebuild the outputs")
        start = 0
        try:
            pf = pq.ParquetFile(path)
            for rg in range(pf.metadata.num_row_groups):
                col = pf.read_row_group(rg, columns=["vector"], use_threads=False).column(0)
                for off in range(0, len(col), rows):
                    part = col.slice(off, rows)
                    v = self.fmt.decode(self.fmt.from_arrow(part), dims=self.dim) if self.fmt.reduced \
                        else arrow_to_vectors(part)
                    if v.shape[1] != self.dim:
                        raise StateError(f"{path}: vectors have {v.shape[1]} dims, {INDEX} has {self.dim}",
                                         hint="run `jina-migrate verify`")
                    yield start, v
                    start += len(v)
                del col
        except (OSError, pa.ArrowException, KeyError) as exc:
            raise StateError(f"{path}: unreadable ({str(exc).splitlines()[0][:160]})",
                             hint="run `jina-migrate verify`, then `jina-migrate finalize` again") from None
        if start != self.n_vectors:
            raise StateError(f"{path}: {start} rows but {ID_MAP} has {self.n_vectors}", hint="run `jina-migrate verify`")

    def search_streaming(self, queries_by_dims: dict[int | None, np.ndarray], depth: int,
                         rows: int = STREAM_ROWS) -> dict[int | None, Ranking]:
        """Exact top-``depth`` for query matrices keyed by Matryoshka size (None = full width),
        in one pass over ``embeddings.parquet``: one batch of vectors in memory at a time."""
        from migrate.embed.base import truncate_and_normalize

        depth = min(depth, self.n_docs)
        rescore = self.fmt.rescore and self.row_doc is None and None in queries_by_dims
        tops = {d: TopK(len(q), depth * RESCORE_FACTOR if rescore and d is None else depth)
                for d, q in queries_by_dims.items()}
        qs = {d: np.ascontiguousarray(q, dtype=np.float32) for d, q in queries_by_dims.items()}
        for start, v in self.stream_vectors(rows):
            row_doc = None if self.row_doc is None else self.row_doc[start:start + len(v)]
            for d, top in tops.items():
                part = truncate_and_normalize(v, d)
                pos = np.arange(start, start + len(v), dtype=np.int64) if row_doc is None else row_doc
                top.add(qs[d] @ part.T, pos, grouped=row_doc is not None)
        found = {d: t.ranking() for d, t in tops.items()}
        if rescore:  # the stored vectors pick the candidates, the float32 kept beside rank them
            found[None] = self._rescored(qs[None], found[None], depth)
        return found

    def _rescored(self, queries: np.ndarray, ranking: Ranking, depth: int) -> Ranking:
        """``ranking``'s candidates re-ranked by the float inner product (``rescore.npy``, rows as id_map)."""
        floats = np.load(self.out / "rescore.npy", mmap_mode="r")
        rows = ranking.doc_index
        scores = np.full(rows.shape, -np.inf, dtype=np.float32)
        for qi in range(len(rows)):
            keep = rows[qi] >= 0
            scores[qi, keep] = np.asarray(floats[rows[qi, keep]], dtype=np.float32) @ queries[qi]
        order = np.argsort(-scores, axis=1, kind="stable")[:, :depth]
        return Ranking(np.take_along_axis(rows, order, axis=1), np.take_along_axis(scores, order, axis=1))
