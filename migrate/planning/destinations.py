"""A database destination (``--sink URI``) before anything is written: its size, and whether ``run`` could create it.

What: ``destination_section`` estimates, for each ``--sink``, the rows, the data and the index a
NEW collection of the v3 vectors will take in that engine (``estimate``), and checks that the
collection does not exist yet (``run`` never writes into a collection it did not create) and that
the engine's declared limits hold (``migrate.engines.limits``: width, field names and count, text
length, NUL; the check ``run`` makes before it embeds anything).
Why: a migration doubles the index while old and new live side by side; the storage is the
question a database owner asks first.

Sizes per engine (bytes; ``n`` rows, ``d`` dimensions, ``m`` HNSW links, ``p`` payload bytes a row):

* **PostgreSQL + pgvector**: the heap packs ``24 + id + (4d + 8) + p`` byte tuples into 8 KB pages;
  a tuple over 2 KB moves its vector to TOAST (chunks of 1,996 bytes, packed page by page as
  PostgreSQL does); the primary key is a B-tree (about 75 % full after bulk loads); pgvector's HNSW
  keeps each element (``80 + 4d`` bytes) and its neighbour list (``4 + 6·m·(2 + 1/ln m)``) on
  one page, so 1024-d vectors take one 8 KB page each. Measured against ``pg_total_relation_size``
  (``tests/test_plan_db.py``).
* **Qdrant, Milvus, Chroma** (HNSW graphs in the style of hnswlib): vectors ``4d``, graph links
  ``4·(2m + m/ln m)`` a row, payload and id; Milvus' HNSW also keeps a copy of each vector.
  Qdrant's capacity guide adds 50 % on top for point versions and optimizer segments (``ram_bytes``).
* **LanceDB**: Arrow columns (``4d + p + id``); ``IVF_HNSW_SQ`` (one byte a dimension + graph) or
  ``IVF_PQ`` from 5,000 rows (below that jina-migrate builds no index: exact search).

The index settings are what the sink will use: ``--index-type flat`` (the FAISS default) still gets
an HNSW index in a database unless the address says ``&index=flat`` (``migrate.sinks.database``).
"""

from __future__ import annotations

import math
from typing import Any

from migrate.engines import IndexSpec, collection_address, parse_address
from migrate.errors import ConfigError, MigrateError
from migrate.planning.mapping import Finding

PAGE = 8192
PAGE_USABLE = PAGE - 24  # page header
HNSW_PAGE_USABLE = PAGE_USABLE - 8  # pgvector's page special space
TOAST_THRESHOLD = 2032  # a heap tuple over this moves its largest value out of line
TOAST_CHUNK = 1996
BTREE_FILL = 0.75  # leaf fill of a B-tree filled by unsorted bulk loads (measured)
LANCE_MIN_INDEX_ROWS = 5000  # the LanceDB adapter builds no ANN index below this (exact search)


def sink_index(index_type: str | None, hnsw_m: int | None, ef_construction: int | None, ivf_nlist: int | None,
               override: str | None = None) -> IndexSpec:
    """The index a destination builds (``IndexSpec.for_run``, the rule the sink itself uses)."""
    return IndexSpec.for_run(index_type, hnsw_m, ef_construction, ivf_nlist, override)


def _align(x: float) -> int:
    return int(math.ceil(x / 8.0) * 8)


def _varlena(n: float) -> float:
    """Bytes of a text value of ``n`` bytes inside a tuple (1-byte header up to 126 bytes, else 4)."""
    return n + (1 if n < 127 else 4)


def _links(m: int) -> float:
    """Graph links a row in an hnswlib-style HNSW: 2m on layer 0, m on each of the 1/ln(m) upper layers on average."""
    return 2 * m + m / math.log(m)


def _pack(sizes: list[int], usable: int) -> int:
    """Pages a run of tuples fills when each goes on the current page if it fits, else a new one."""
    pages, free = 0, 0
    for s in sizes:
        if s > free:
            pages, free = pages + 1, usable
        free -= s
    return pages


def _postgres(n: int, d: int, id_bytes: float, payload: float, index: IndexSpec) -> dict[str, Any]:
    vector = 4 * d + 8
    ident = _varlena(id_bytes)
    inline = _align(24 + ident + vector + payload)
    toast_rows = 0
    toast_chunks: list[int] = []
    if inline > TOAST_THRESHOLD:  # the vector goes to TOAST (pgvector stores it uncompressed)
        inline = _align(24 + ident + 18 + payload)
        full, rest = divmod(vector, TOAST_CHUNK)
        toast_chunks = [TOAST_CHUNK] * full + ([rest] if rest else [])
        toast_rows = len(toast_chunks)
    per_page = max(1, PAGE_USABLE // (inline + 4))
    heap = math.ceil(n / per_page) * PAGE
    toast = 0
    if toast_chunks:
        tuples = [_align(24 + 4 + 4 + 4 + c) + 4 for c in toast_chunks]
        sample = min(n, 2000)
        pages = _pack(tuples * sample, PAGE_USABLE)
        toast = math.ceil(pages * n / sample) * PAGE
        toast += math.ceil(n * toast_rows * (_align(8 + 8) + 4) / BTREE_FILL / PAGE + 1) * PAGE  # its B-tree
    pkey = math.ceil(n * (_align(8 + ident) + 4) / BTREE_FILL / PAGE + 1) * PAGE
    vindex = 0
    if index.kind == "hnsw":
        element = _align(80 + 4 * d) + 4
        neighbours = _align(4 + 6 * index.m * (2 + 1 / math.log(index.m))) + 4
        per = max(1, HNSW_PAGE_USABLE // (element + neighbours))
        vindex = (math.ceil(n / per) + 1) * PAGE
    elif index.kind == "ivfpq":  # pgvector IVFFlat: the vectors again, in lists, plus the centroids
        lists = index.nlist or max(1, min(int(4 * math.sqrt(max(n, 1))), max(1, n // 39)))
        tuple_ = _align(8 + vector + 6) + 4
        vindex = (math.ceil(n / max(1, HNSW_PAGE_USABLE // tuple_)) + lists + math.ceil(lists * tuple_ / PAGE) + 1) * PAGE
    return {"data_bytes": heap + toast + pkey, "index_bytes": vindex,
            "parts": {"heap": heap, "toast": toast, "primary_key": pkey, "vector_index": vindex},
            "basis": "8 KB pages: heap tuples, TOAST chunks for vectors over 2 KB, B-tree primary key, pgvector "
                     + ("HNSW (element + neighbour list on one page)" if index.kind == "hnsw"
                        else "IVFFlat" if index.kind == "ivfpq" else "no vector index (exact scan)")}


def _graph(n: int, d: int, m: int) -> int:
    return int(n * 4 * _links(m))


def estimate(engine: str, *, rows: int, dims: int, id_bytes: float, payload_bytes: float,
             index: IndexSpec) -> dict[str, Any]:
    """Estimated bytes of a new collection: ``data_bytes``, ``index_bytes``, ``total_bytes`` and how (``basis``)."""
    n, d, p = int(rows), int(dims), float(payload_bytes)
    vectors = n * d * 4
    out: dict[str, Any]
    if engine == "postgres":
        out = _postgres(n, d, id_bytes, p, index)
    elif engine == "qdrant":
        graph = _graph(n, d, index.m) if index.kind != "flat" else 0
        data = int(vectors + n * (p * 1.2 + id_bytes + 48))  # payload as JSON, id tracker and versions
        out = {"data_bytes": data, "index_bytes": graph, "ram_bytes": int(vectors * 1.5 + graph),
               "basis": "vectors 4·d, payload as JSON, HNSW links 4·(2m + m/ln m); ram_bytes: Qdrant's capacity "
                        "rule (vectors x 1.5) plus the graph"}
    elif engine == "milvus":
        if index.kind == "hnsw":
            idx = vectors + _graph(n, d, index.m)
        elif index.kind == "ivfpq":
            pq = next((s for s in (64, 48, 32, 16, 8, 4, 2, 1) if d % s == 0), 1)
            idx = n * (pq + 8) + (index.nlist or 1024) * d * 4
        else:
            idx = vectors
        out = {"data_bytes": int(vectors + n * (p + id_bytes + 16)), "index_bytes": int(idx),
               "basis": "segments (vectors 4·d, payload, id) plus the loaded index (HNSW keeps the vectors and "
                        "4·(2m + m/ln m) link bytes a row)"}
    elif engine == "lancedb":
        idx = 0
        if n >= LANCE_MIN_INDEX_ROWS and index.kind == "hnsw":
            idx = int(n * (d + 4 * _links(index.m) + 8))
        elif n >= LANCE_MIN_INDEX_ROWS and index.kind == "ivfpq":
            sub = next(s for s in (96, 64, 48, 32, 16, 8, 4, 2, 1) if d % s == 0)
            idx = n * (sub + 8) + max(1, n // 4096) * d * 4
        out = {"data_bytes": int(vectors + n * (p + id_bytes + 4)), "index_bytes": int(idx),
               "basis": "Arrow columns; IVF_HNSW_SQ (1 byte a dimension + graph) or IVF_PQ from "
                        f"{LANCE_MIN_INDEX_ROWS:,} rows, none below (exact search)"}
    elif engine == "chroma":
        idx = int(n * (d * 4 + 4 * _links(index.m) + 12))
        out = {"data_bytes": int(n * (p * 1.5 + id_bytes + 32)), "index_bytes": idx,
               "basis": "SQLite metadata (ids, payload) plus the hnswlib index (vectors 4·d, links, labels)"}
    else:  # pragma: no cover - parse_address knows only the engines above
        raise ConfigError(f"no size model for engine {engine!r}")
    out["total_bytes"] = int(out["data_bytes"] + out["index_bytes"])
    return out


def _exists(uri: str) -> tuple[bool | None, str | None, str | None]:
    """(exists, created_by_run, why not checked). An embedded engine's folder is not created to find out. A
    destination ``run`` would refuse to open (a bad setting, a store it must not upgrade) raises ConfigError."""
    from migrate.engines import collection_name, open_engine

    addr = parse_address(uri)
    collection = collection_name(addr, "--sink")
    if addr.path is not None and not addr.path.exists():  # embedded
        return False, None, None
    try:
        engine = open_engine(addr)
    except ConfigError:
        raise
    except MigrateError as exc:
        return None, None, exc.message
    try:
        if not engine.exists(collection):
            return False, None, None
        return True, engine.describe(collection).created_by_run, None
    except MigrateError as exc:
        return None, None, exc.message
    finally:
        engine.close()


def _alias_problem(addr: Any, src: Any) -> MigrateError | None:
    """Why cutover could never take the sink's ``&alias=`` as it is now (None: it could, or it cannot be read)."""
    from migrate.engines import open_engine
    from migrate.engines.names import own_source_name, refusal

    if addr.embedded and not addr.path.exists():
        return None
    try:
        engine = open_engine(addr)
    except MigrateError:
        return None
    try:
        state = engine.name_state(addr.alias)
        return refusal(engine, addr, addr.alias, state, own_source=own_source_name(src, addr))
    except MigrateError:
        return None
    finally:
        engine.close()


class _Payload:
    """What the destinations will be given (schema, text field, string extents), read once and only when asked."""

    def __init__(self, source: Any) -> None:
        self.source = source  # a source collection's address, or the documents' DocumentSpec; None: unknown
        self._schema: tuple[Any, str | None] | None = None
        self._extents: Any = None

    def schema(self) -> tuple[Any, str | None]:
        from migrate.sources.database import destination_payload

        if self._schema is None:
            self._schema = destination_payload(self.source) if self.source is not None else (None, None)
        return self._schema

    def extents(self) -> Any:
        from migrate.sources.database import payload_extents

        if self._extents is None and self.source is not None:
            self._extents = payload_extents(self.source)
        return self._extents


def _limit_findings(addr: Any, dims: int, index_kind: str, payload: _Payload,
                    precision: str = "float32") -> list[Finding]:
    """Every limit of the destination's engine the run would break (``migrate.engines.limits``: the check
    ``run`` makes before embedding), as error findings."""
    from migrate.engines.limits import limits_of, problems

    lim = limits_of(addr.engine)
    schema, text_field = payload.schema()
    found = problems(addr, dim=dims, payload=schema, index_kind=index_kind, text_field=addr.text_field or text_field,
                     extents=payload.extents() if lim.measures_text else None, precision=precision)
    return [Finding("sink-limit", "error", exc.message, exc.hint or "") for exc in found]


def destination_section(sinks: list[str], *, rows: int, dims: int, id_bytes: float, payload_bytes: float,
                        index: dict[str, Any], source: str | None,
                        documents: Any = None, precision: str = "float32") -> tuple[list[dict[str, Any]], list[Finding]]:
    """One entry per ``--sink`` (address without secrets, index, estimated bytes, whether it exists) and the
    findings: a destination that exists already or is the source, or whose engine's limits the payload or the
    width breaks, is an error (``run`` would refuse it). ``documents``: the DocumentSpec of a documents source."""
    out, findings = [], []
    src = parse_address(source) if source else None
    payload = _Payload(source if source else documents)
    for uri in sinks:
        addr = collection_address(uri, "--sink")
        spec = sink_index(**index, override=addr.option("index"))
        entry: dict[str, Any] = {
            "address": str(addr), "engine": addr.engine, "collection": addr.collection, "alias": addr.alias,
            "rows": rows, "dimensions": dims,
            "index": {"kind": spec.kind, "metric": spec.metric, "m": spec.m, "ef_construction": spec.ef_construction},
            "payload_bytes_per_row": round(payload_bytes, 1),
        } | estimate(addr.engine, rows=rows, dims=dims, id_bytes=id_bytes, payload_bytes=payload_bytes, index=spec)
        if src is not None and (src.engine, src.collection) == (addr.engine, addr.collection) \
                and str(src).split("?")[0] == str(addr).split("?")[0]:
            findings.append(Finding("sink-is-source", "error", f"--sink {addr} is the source collection",
                                    "name a NEW collection: jina-migrate never writes into the old one"))
            entry["exists"] = True
        else:
            try:
                exists, run, why = _exists(uri)
            except ConfigError as exc:  # `run` would refuse to open it: say why, with the fix
                findings.append(Finding("sink-refused", "error", exc.message, exc.hint or ""))
                entry["exists"] = None
                out.append(entry)
                continue
            entry["exists"] = exists
            if not exists:
                try:
                    findings += _limit_findings(addr, dims, spec.kind, payload, precision)
                except ConfigError as exc:  # the destination engine's client is not installed
                    findings.append(Finding("sink-refused", "error", exc.message, exc.hint or ""))
            if why:
                findings.append(Finding("sink-unchecked", "warning", f"--sink {addr}: could not check whether "
                                        f"{addr.collection!r} exists ({why})", "make sure the server is reachable "
                                        "before `run`"))
            elif exists and run is None:
                findings.append(Finding("sink-exists", "error", f"--sink {addr}: {addr.collection!r} already exists "
                                        "and was not created by jina-migrate; `run` never writes into it",
                                        "name a new collection for the destination"))
            elif exists:
                findings.append(Finding("sink-exists", "warning", f"--sink {addr}: {addr.collection!r} exists, made "
                                        f"by jina-migrate run {run}; only that run's --out can continue it",
                                        "rerun with that run's --out, or name a new collection"))
            alias = _alias_problem(addr, src) if addr.alias and not why else None
            if alias is not None:  # the rule run and cutover apply (migrate.engines.names.refusal)
                findings.append(Finding("sink-alias", "error", alias.message, alias.hint or ""))
        out.append(entry)
    return out, findings
