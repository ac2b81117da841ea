"""Databases as applications keep them: every id type and schema either migrates exactly or is refused
before anything is embedded (issue 18, items 1-4, and the acceptance's schema matrix per engine).

Each source is built with the engine's own client and its defaults, the way an application builds it
(pymilvus ``MilvusClient.create_collection`` quick setup: an INT64 key ``id`` with or without
``auto_id``; ``lancedb.create_table`` from a pandas frame with int64 ids; psycopg tables with
``text`` / ``bigserial`` / ``uuid`` keys; qdrant_client points with integer and UUID ids; chromadb
``add``). Then the installed ``jina-migrate run`` migrates it into a new collection of the same
engine (the local static stand-in model) and ``jina-migrate verify`` checks the output, and the
test reads both sides with the engine's own client again:

* a case that migrates: every row once, the ids of the source's own type (INT64 stays INT64, a
  PostgreSQL ``uuid`` stays ``uuid``, Qdrant integer / UUID point ids stay the point ids), every
  payload field with its type and value, a payload field named ``id`` carried unchanged, and no
  field or payload key the source did not have;
* a case that is refused (NULL / NaN vectors, vectors of two widths, an empty collection, a name
  the engine does not allow): exit 2, one ``error:`` line, no traceback, nothing embedded (no shard
  written) and no destination created.

Matrix (one source collection with many rows of different shapes per id type; N/A where the engine
cannot hold the case):

| engine | text ids | int64 ids | UUID ids | payload ``id`` | NULL vector | NaN vector | fixed / variable vector | empty | 1 MB text | unicode name |
|---|---|---|---|---|---|---|---|---|---|---|
| PostgreSQL | migrates | migrates (bigserial) | migrates (item 4) | migrates (item 3) | refused | N/A (pgvector refuses NaN) | vector(16) / vector (no width): migrate; two widths: refused | refused | migrates | migrates |
| Milvus | migrates (VARCHAR key) | migrates (item 1, auto_id or not) | N/A | migrates | refused | refused | fixed only | refused | N/A (VARCHAR holds 65,535 bytes) | refused |
| LanceDB | migrates | migrates (item 2) | N/A | migrates | refused | N/A (lancedb refuses NaN) | fixed_size_list / list<float>: migrate | refused | migrates | refused |
| Qdrant | migrates (payload key) | migrates (item 4) | migrates (items 3, 4) | migrates (item 3) | N/A | N/A (Qdrant refuses NaN) | fixed only | refused | migrates | migrates |
| Chroma | migrates | N/A (text ids only) | N/A | migrates | N/A | N/A (Chroma refuses NaN) | fixed only | refused | migrates | refused |
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pytest

from support.engines import jina_migrate, postgres_server

# the per-engine schema matrix: 13 full migrations (about 5 min on 2 cores): run with `pytest --slow` (the default suite stays ~20 min; issue 20)
pytestmark = pytest.mark.slow

pytest_plugins = ["reliability_plugin"]

DIM = 16  # the old vectors' width
NEW_DIM = 64  # the stand-in v3 model's width
N = 24
BIG = 1_000_000  # bytes of the one long text
RUN = ["--model", "local:standin:static", "--yes", "--json"]
UNICODE = "dökümanlar"


def _vectors(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _texts(n: int, *, big: bool = False) -> list[str]:
    """Short varied texts; with ``big`` the last one is 1 MB of words."""
    out = [f"document {i}: notes about {['rivers', 'engines', 'şehir', '日本の庭', 'tea'][i % 5]} number {i * 7}"
           for i in range(n)]
    if big:
        word = "longtext "
        out[-1] = (word * (BIG // len(word) + 1))[:BIG]
    return out


def _errors(proc) -> list[str]:
    return [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]


def _migrated(proc, out: Path) -> None:
    """``run`` succeeded, then ``verify`` of the same output passes."""
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    check = jina_migrate("verify", "--out", str(out))
    assert check.returncode == 0, (check.stdout[-2000:], check.stderr[-2000:])


def _refused(proc, out: Path, dest_exists: Callable[[], bool]) -> str:
    """Exit 2, one ``error:`` line, no traceback, nothing embedded, no destination."""
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    errors = _errors(proc)
    assert len(errors) == 1, proc.stderr[-2000:]
    shards = list((out / "shards").glob("*.parquet")) if (out / "shards").is_dir() else []
    assert shards == [], f"embedded before refusing: {shards}"
    assert not dest_exists(), "a destination was created by a refused run"
    return errors[0]


def _case(name: str) -> str:
    """A collection's name for the reliability table (the unicode one described, not spelled)."""
    return "a unicode name" if name == UNICODE else name


def _run(source: str, sink: str, out: Path, *more_sinks: str):
    sinks = [a for s in (sink, *more_sinks) for a in ("--sink", s)]
    return jina_migrate("run", "--old-index", source, *sinks, "--out", str(out), *RUN)


# =========================================================================== PostgreSQL

@pytest.fixture(scope="module")
def pg():
    """A private PostgreSQL + pgvector with the applications' tables, built with psycopg."""
    import psycopg
    from pgvector.psycopg import register_vector
    from psycopg.types.json import Jsonb

    with postgres_server() as (_srv, uri):
        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            register_vector(conn)
            base = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)
            # text key doc_id, a column that happens to be called id, a unicode table name, a 1 MB text
            conn.execute(f'CREATE TABLE "{UNICODE}" (doc_id text PRIMARY KEY, id integer, embedding vector({DIM}), '
                         'body text, tags text[], meta jsonb, published timestamptz, score double precision)')
            texts, vecs = _texts(N, big=True), _vectors(N, 1)
            with conn.cursor() as cur:
                cur.executemany(f'INSERT INTO "{UNICODE}" VALUES (%s, %s, %s, %s, %s, %s, %s, %s)',
                                [(f"doc-{i}" if i % 3 else f"o'brien \"{i}\" ü", None if i == 4 else 5000 - i, vecs[i],
                                  texts[i], [f"t{i}", "x"] if i % 2 else None, Jsonb({"rank": i, "ok": i % 2 == 0}),
                                  base + dt.timedelta(hours=i), i / 7) for i in range(N)])
            # bigserial key (the application never names the id), a vector column without a declared width
            conn.execute("CREATE TABLE docs_serial (id bigserial PRIMARY KEY, embedding vector, content text, "
                         "n integer)")
            texts, vecs = _texts(N), _vectors(N, 2)
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO docs_serial (embedding, content, n) VALUES (%s, %s, %s)",
                                [(vecs[i], texts[i], i * 11) for i in range(N)])
            conn.execute("DELETE FROM docs_serial WHERE id IN (3, 9)")  # keys with gaps, as in a live table
            # uuid key generated by the database
            conn.execute(f"CREATE TABLE docs_uuid (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), "
                         f"embedding vector({DIM}), text text, created date)")
            texts, vecs = _texts(N), _vectors(N, 3)
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO docs_uuid (embedding, text, created) VALUES (%s, %s, %s)",
                                [(vecs[i], texts[i], dt.date(2024, 1, 1) + dt.timedelta(days=i)) for i in range(N)])
            # refused: a NULL vector, vectors of two widths, no rows
            conn.execute(f"CREATE TABLE docs_nullvec (id integer PRIMARY KEY, embedding vector({DIM}), text text)")
            conn.execute("CREATE TABLE docs_widths (id integer PRIMARY KEY, embedding vector, text text)")
            conn.execute(f"CREATE TABLE docs_empty (id integer PRIMARY KEY, embedding vector({DIM}), text text)")
            vecs = _vectors(6, 4)
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO docs_nullvec VALUES (%s, %s, %s)",
                                [(i, None if i == 2 else vecs[i], f"text {i}") for i in range(6)])
                cur.executemany("INSERT INTO docs_widths VALUES (%s, %s, %s)",
                                [(i, vecs[i][: 8 if i == 4 else DIM], f"text {i}") for i in range(6)])
        yield uri


def _pg_columns(uri: str, table: str) -> dict[str, str]:
    import psycopg

    with psycopg.connect(uri) as conn:
        rows = conn.execute("SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                            "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped",
                            (f'"{table}"',)).fetchall()
    return dict(rows)


def _pg_rows(uri: str, table: str, key: str, vector: str) -> dict:
    """key -> every other column's value (the vector left out), read with psycopg."""
    import psycopg
    from psycopg import sql

    cols = [c for c in _pg_columns(uri, table) if c != vector]
    with psycopg.connect(uri) as conn:
        got = conn.execute(sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(map(sql.Identifier, cols)),
                                                               sql.Identifier(table))).fetchall()
    rows = [dict(zip(cols, r)) for r in got]
    by_key = {r[key]: r for r in rows}
    assert len(by_key) == len(rows), "a key came back twice"
    return by_key


def _pg_exists(uri: str, table: str) -> bool:
    return bool(_pg_columns(uri, table))


def _pg_address(uri: str, table: str, extra: str = "") -> str:
    return f"{uri}{'&' if '?' in uri else '?'}table={quote(table)}{extra}"


@pytest.mark.parametrize("case", ["text-key-payload-id-unicode-1mb", "bigserial-untyped-vector", "uuid-key"])
def test_postgres_keys_and_payload_migrate_exactly(pg, case, tmp_path, reliability):
    """Items 3 and 4: a column called ``id`` beside the ``doc_id`` key is payload like any other (it used to
    be a traceback); a ``uuid`` key stays ``uuid`` (it became ``text``), a ``bigint`` stays ``bigint``.
    The same run also writes a second destination of another engine (the id type crosses engines too)."""
    table, key, vector, src_opts, sink_opts = {
        "text-key-payload-id-unicode-1mb": (UNICODE, "doc_id", "embedding", "&id=doc_id&text=body",
                                            "&id=doc_id&vector=embedding"),
        "bigserial-untyped-vector": ("docs_serial", "id", "embedding", "", ""),
        "uuid-key": ("docs_uuid", "id", "embedding", "", ""),
    }[case]
    dest = f"{table}_v3"
    cross = f"lancedb://{tmp_path / 'lance'}?table=cross" if case.startswith("bigserial") else \
        f"qdrant://{tmp_path / 'q'}?collection=cross"
    proc = _run(_pg_address(pg, table, src_opts), _pg_address(pg, dest, sink_opts), tmp_path / "out", cross)
    _migrated(proc, tmp_path / "out")
    src_cols, dst_cols = _pg_columns(pg, table), _pg_columns(pg, dest)
    assert dst_cols.pop(vector) == f"vector({NEW_DIM})"
    src_cols.pop(vector)
    assert dst_cols == src_cols  # the same columns, the key and every payload column of the same type
    before, after = _pg_rows(pg, table, key, vector), _pg_rows(pg, dest, key, vector)
    assert after == before  # every row once, same keys, same values
    if case.startswith("text"):
        assert any(len(r["body"]) == BIG for r in after.values())
        assert sorted(r["id"] for r in after.values() if r["id"] is not None) == \
            sorted(r["id"] for r in before.values() if r["id"] is not None)
    _check_cross(case, cross, before, tmp_path)
    reliability.add("Databases", f"PostgreSQL source as applications keep it ({case})", 1,
                    "run + verify pass; same columns and types (uuid stays uuid, a payload column id is carried); "
                    "every row once with equal values")


def _check_cross(case: str, cross: str, before: dict, tmp_path: Path) -> None:
    """The second destination, read with its own client: int64 ids stay int64 in LanceDB; UUID ids are Qdrant's
    point ids themselves, with no payload key added; text ids (which Qdrant cannot hold) stay in a payload key
    named as the source's id column, and a payload column called ``id`` stays itself beside it."""
    if case.startswith("bigserial"):
        got = _lance_table(tmp_path / "lance", "cross")
        assert got.schema.field("id").type == pa.int64()
        assert sorted(got.column("id").to_pylist()) == sorted(before)
        assert dict(zip(got.column("id").to_pylist(), got.column("n").to_pylist())) == \
            {k: r["n"] for k, r in before.items()}
        return
    points = _qdrant_points(tmp_path / "q", "cross")
    if case == "uuid-key":
        assert {uuid.UUID(k) for k in points} == set(before)
        assert {k for p in points.values() for k in p} == {"text", "created"}
        return
    assert {k for p in points.values() for k in p} <= set(next(iter(before.values()))) - {"embedding"}
    by_doc = {p["doc_id"]: p for p in points.values()}
    assert sorted(by_doc) == sorted(before)
    assert {k: p.get("id") for k, p in by_doc.items()} == {k: r["id"] for k, r in before.items()}


@pytest.mark.parametrize("table", ["docs_nullvec", "docs_widths", "docs_empty"])
def test_postgres_refuses_before_embedding(pg, table, tmp_path, reliability):
    dest = f"{table}_v3"
    proc = _run(_pg_address(pg, table), _pg_address(pg, dest), tmp_path / "out")
    _refused(proc, tmp_path / "out", lambda: _pg_exists(pg, dest))
    reliability.add("Databases", f"PostgreSQL source that cannot migrate ({table})", 1,
                    "exit 2, one error line, nothing embedded, no destination")


# =========================================================================== Milvus

@contextmanager
def _milvus(path: Path) -> Iterator:
    """pymilvus's MilvusClient on a Milvus Lite file, its server released after (one process per file)."""
    from pymilvus import MilvusClient

    client = MilvusClient(str(path))
    try:
        yield client
    finally:
        client.close()
        try:
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(str(path))
        except Exception:  # noqa: BLE001 - an older milvus-lite stops its server at exit
            pass


@pytest.fixture(scope="module")
def milvus(tmp_path_factory) -> Path:
    from pymilvus import DataType, MilvusClient

    path = tmp_path_factory.mktemp("dbids-milvus") / "app.db"
    with _milvus(path) as c:
        # the quick setup: INT64 key "id", "vector", dynamic fields; ids far from 0..n
        c.create_collection("quick", dimension=DIM)
        v, texts = _vectors(N, 11), _texts(N)
        c.insert("quick", [{"id": 10 ** 12 + 7 * i, "vector": v[i].tolist(), "text": texts[i], "title": f"t{i}",
                            "n": i} for i in range(N)])
        # the quick setup with auto_id: Milvus makes the keys
        c.create_collection("auto", dimension=DIM, auto_id=True)
        v, texts = _vectors(N, 12), _texts(N)
        c.insert("auto", [{"vector": v[i].tolist(), "text": texts[i], "n": i * 3} for i in range(N)])
        # a VARCHAR key doc_id with a field that happens to be called id
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("doc_id", DataType.VARCHAR, is_primary=True, max_length=128)
        schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=DIM)
        schema.add_field("id", DataType.INT64, nullable=True)
        schema.add_field("text", DataType.VARCHAR, max_length=4096)
        schema.add_field("score", DataType.DOUBLE)
        schema.add_field("flag", DataType.BOOL)
        params = c.prepare_index_params()
        params.add_index(field_name="embedding", index_type="FLAT", metric_type="COSINE")
        c.create_collection("varkey", schema=schema, index_params=params)
        v, texts = _vectors(N, 13), _texts(N)
        c.insert("varkey", [{"doc_id": f"doc-{i}" if i % 3 else f"o'brien \"{i}\"", "embedding": v[i].tolist(),
                             "id": None if i == 5 else 900 + i, "text": texts[i], "score": i / 3, "flag": i % 2 == 0}
                            for i in range(N)])
        # refused: NaN in a vector, a NULL vector, no rows
        c.create_collection("nanvec", dimension=DIM)
        v = _vectors(6, 14)
        v[3, 5] = np.nan
        c.insert("nanvec", [{"id": i, "vector": v[i].tolist(), "text": f"text {i}"} for i in range(6)])
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM, nullable=True)
        params = c.prepare_index_params()
        params.add_index(field_name="vector", index_type="FLAT", metric_type="COSINE")
        c.create_collection("nullvec", schema=schema, index_params=params)
        v = _vectors(6, 15)
        c.insert("nullvec", [{"id": i, "vector": None if i == 2 else v[i].tolist(), "text": f"text {i}"}
                             for i in range(6)])
        c.create_collection("empty", dimension=DIM)
    return path


def _milvus_state(path: Path, name: str) -> tuple[dict, dict]:
    """(field name -> (type, is primary), key -> row without vectors) of a collection, read with pymilvus."""
    from pymilvus import DataType

    with _milvus(path) as c:
        fields = c.describe_collection(name)["fields"]
        c.load_collection(name)
        key = next(f["name"] for f in fields if f.get("is_primary"))
        vectors = {f["name"] for f in fields if f["type"] == DataType.FLOAT_VECTOR}
        rows = c.query(name, filter="", output_fields=["*"], limit=16384)
    by_key = {r[key]: {k: v for k, v in r.items() if k not in vectors} for r in rows}
    assert len(by_key) == len(rows), "a key came back twice"
    return {f["name"]: (f["type"], bool(f.get("is_primary"))) for f in fields}, by_key


def _milvus_exists(path: Path, name: str) -> bool:
    with _milvus(path) as c:
        return bool(c.has_collection(name))


@pytest.mark.parametrize("name", ["quick", "auto", "varkey"])
def test_milvus_keys_migrate_exactly(milvus, name, tmp_path, reliability):
    """Item 1: an INT64 key (Milvus's default, auto_id or not) used to end in exit 3 "documents [...] are gone
    from 'src'" on every try; the destination keeps the INT64 key and the same keys."""
    from pymilvus import DataType

    base = f"milvus://{milvus}?collection="
    proc = _run(f"{base}{name}&text=text", f"{base}{name}_v3", tmp_path / "out")
    _migrated(proc, tmp_path / "out")
    src_fields, before = _milvus_state(milvus, name)
    dst_fields, after = _milvus_state(milvus, f"{name}_v3")
    key = next(n for n, (_, pk) in src_fields.items() if pk)
    assert dst_fields[key] == src_fields[key]  # same key field, same type (INT64 / VARCHAR), still the key
    assert after == before  # every row once under the same key, every field (dynamic ones too) equal
    if name == "varkey":
        assert dst_fields["id"][0] == DataType.INT64 and dst_fields["embedding"][0] == DataType.FLOAT_VECTOR
        assert sum(r["id"] is None for r in after.values()) == 1
    reliability.add("Databases", f"Milvus collection as pymilvus makes it ({name})", 1,
                    "run + verify pass; the key field keeps its type (INT64 / VARCHAR); every row once, equal fields")


@pytest.mark.parametrize("name", ["nanvec", "nullvec", "empty", UNICODE])
def test_milvus_refuses_before_embedding(milvus, name, tmp_path, reliability):
    base = f"milvus://{milvus}?collection="
    source, dest = ("quick", UNICODE) if name == UNICODE else (name, f"{name}_v3")
    proc = _run(f"{base}{quote(source)}&text=text", f"{base}{quote(dest)}", tmp_path / "out")
    _refused(proc, tmp_path / "out", lambda: dest != UNICODE and _milvus_exists(milvus, dest))
    reliability.add("Databases", f"Milvus source or name that cannot migrate ({_case(name)})",
                    1, "exit 2, one error line, nothing embedded, no destination")


# =========================================================================== LanceDB

@pytest.fixture(scope="module")
def lance(tmp_path_factory) -> Path:
    import lancedb
    import pandas as pd

    path = tmp_path_factory.mktemp("dbids-lance") / "lance"
    db = lancedb.connect(str(path))
    # int64 ids from a pandas frame (fixed-size vectors, as lancedb infers them)
    v, texts = _vectors(N, 21), _texts(N)
    db.create_table("ints", data=pd.DataFrame({
        "id": np.array([-5] + [10 ** 10 + 3 * i for i in range(1, N)], dtype=np.int64), "vector": list(v),
        "text": texts, "n": np.arange(N, dtype=np.int32), "tags": [[f"t{i}", "x"] for i in range(N)]}))
    # text ids in doc_id, a column called id, a 1 MB text
    v, texts = _vectors(N, 22), _texts(N, big=True)
    db.create_table("strs", data=pa.table({
        "doc_id": pa.array([f"doc-{i}" if i % 3 else f"o'brien \"{i}\"" for i in range(N)]),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), DIM),
        "id": pa.array([None if i == 5 else 700 + i for i in range(N)], pa.int64()),
        "text": pa.array(texts)}))
    # a variable list<float> vector column (every row the same width)
    v, texts = _vectors(N, 23), _texts(N)
    db.create_table("listvec", data=pa.table({"id": pa.array([f"l{i}" for i in range(N)]),
                                              "vector": pa.array(v.tolist(), pa.list_(pa.float32())),
                                              "text": pa.array(texts)}))
    # refused: a NULL vector, no rows (lancedb itself refuses NaN vectors: create_table's on_bad_vectors)
    v = _vectors(6, 24)
    vec = pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), DIM)
    db.create_table("nullvec", data=pa.table({
        "id": pa.array(range(6), pa.int64()),
        "vector": pa.array([None if i == 2 else v[i].tolist() for i in range(6)], vec.type),
        "text": pa.array([f"text {i}" for i in range(6)])}), on_bad_vectors="null")  # lancedb's way to keep a NULL
    db.create_table("empty", schema=pa.schema([("id", pa.int64()), ("vector", pa.list_(pa.float32(), DIM)),
                                               ("text", pa.string())]))
    return path


def _lance_table(path: Path, name: str) -> pa.Table:
    import lancedb

    return lancedb.connect(str(path)).open_table(name).to_arrow()


@pytest.mark.parametrize("name,key", [("ints", "id"), ("strs", "doc_id"), ("listvec", "id")])
def test_lancedb_keys_migrate_exactly(lance, name, key, tmp_path, reliability):
    """Item 2: int64 ids used to be a traceback (``could not convert to literal of type 'Int64'``); they stay
    int64. A column called ``id`` beside the ``doc_id`` key is carried (item 3). ``listvec``'s list<float>
    vectors are H3's part of item 2."""
    base = f"lancedb://{lance}?table="
    opts = "&id=doc_id" if key == "doc_id" else ""
    proc = _run(f"{base}{name}{opts}", f"{base}{name}_v3", tmp_path / "out")
    _migrated(proc, tmp_path / "out")
    src, dst = _lance_table(lance, name), _lance_table(lance, f"{name}_v3")
    assert dst.schema.field("vector").type == pa.list_(pa.float32(), NEW_DIM)
    others = [n for n in src.column_names if n != "vector"]
    assert sorted(n for n in dst.column_names if n != "vector") == sorted(others)
    for n in others:
        assert dst.schema.field(n).type == src.schema.field(n).type, n
    keys = dst.column(key).to_pylist()
    assert len(keys) == len(set(keys)) == src.num_rows
    assert dst.select(others).sort_by(key).to_pylist() == src.select(others).sort_by(key).to_pylist()
    reliability.add("Databases", f"LanceDB table as lancedb makes it ({name})", 1,
                    "run + verify pass; the id column keeps its type (int64 stays int64); every row once, "
                    "equal columns")


@pytest.mark.parametrize("name", ["nullvec", "empty", UNICODE])
def test_lancedb_refuses_before_embedding(lance, name, tmp_path, reliability):
    import lancedb

    base = f"lancedb://{lance}?table="
    source, dest = ("ints", UNICODE) if name == UNICODE else (name, f"{name}_v3")
    proc = _run(f"{base}{quote(source)}", f"{base}{quote(dest)}", tmp_path / "out")
    _refused(proc, tmp_path / "out", lambda: dest in lancedb.connect(str(lance)).table_names())
    reliability.add("Databases", f"LanceDB source or name that cannot migrate ({_case(name)})",
                    1, "exit 2, one error line, nothing embedded, no destination")


# =========================================================================== Qdrant

@contextmanager
def _qdrant(path: Path) -> Iterator:
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(path))
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def qdrant(tmp_path_factory) -> Path:
    from qdrant_client import models

    path = tmp_path_factory.mktemp("dbids-qdrant") / "q"
    cfg = models.VectorParams(size=DIM, distance=models.Distance.COSINE)
    with _qdrant(path) as q:
        # UUID point ids, a payload key called id, a 1 MB text, a unicode collection name
        q.create_collection(UNICODE, vectors_config=cfg)
        v, texts = _vectors(N, 31), _texts(N, big=True)
        q.upsert(UNICODE, points=[models.PointStruct(id=str(uuid.uuid4()), vector=v[i].tolist(), payload={
            "id": f"ext-{i}" if i % 4 else i, "text": texts[i], "tags": ["a", f"t{i}"], "meta": {"rank": i},
            **({"score": i / 3} if i % 2 else {})}) for i in range(N)])
        # integer point ids
        q.create_collection("ints", vectors_config=cfg)
        v, texts = _vectors(N, 32), _texts(N)
        q.upsert("ints", points=[models.PointStruct(id=10 ** 9 + 5 * i, vector=v[i].tolist(),
                                                    payload={"text": texts[i], "n": i}) for i in range(N)])
        # the application's own text ids in payload key doc_id, random point ids
        q.create_collection("keyed", vectors_config=cfg)
        v, texts = _vectors(N, 33), _texts(N)
        q.upsert("keyed", points=[models.PointStruct(id=str(uuid.uuid4()), vector=v[i].tolist(), payload={
            "doc_id": f"doc-{i}" if i % 3 else f"o'brien \"{i}\"", "text": texts[i]}) for i in range(N)])
        q.create_collection("empty", vectors_config=cfg)
    return path


def _qdrant_points(path: Path, name: str) -> dict:
    """point id -> payload, read with qdrant_client (every point)."""
    with _qdrant(path) as q:
        points, _ = q.scroll(name, limit=10_000, with_payload=True, with_vectors=False)
    by_id = {p.id: p.payload for p in points}
    assert len(by_id) == len(points)
    return by_id


def _qdrant_exists(path: Path, name: str) -> bool:
    with _qdrant(path) as q:
        return q.collection_exists(name)


@pytest.mark.parametrize("name", [UNICODE, "ints", "keyed"])
def test_qdrant_ids_migrate_exactly(qdrant, name, tmp_path, reliability):
    """Item 3: UUID points with a payload key ``id`` used to be a traceback (``Field "id" exists 2 times``);
    item 4: the destination gained a payload key ``id``. Integer and UUID point ids stay the point ids and the
    payload is exactly the source's; ids kept in a payload key (``?id=doc_id``) stay in that key."""
    base = f"qdrant://{qdrant}?collection="
    opts = "&id=doc_id" if name == "keyed" else ""
    dest = f"{name}_v3"
    proc = _run(f"{base}{quote(name)}{opts}", f"{base}{quote(dest)}", tmp_path / "out")
    _migrated(proc, tmp_path / "out")
    before, after = _qdrant_points(qdrant, name), _qdrant_points(qdrant, dest)
    if name == "keyed":  # the key's values are the ids: same ids, same payload (no other key added)
        before = {p["doc_id"]: p for p in before.values()}
        after = {p["doc_id"]: p for p in after.values()}
    assert after == before
    with _qdrant(qdrant) as q:
        assert q.get_collection(dest).config.params.vectors.size == NEW_DIM
    if name == UNICODE:
        assert {type(k) for k in after} == {str} and sum(len(p["text"]) == BIG for p in after.values()) == 1
    if name == "ints":
        assert {type(k) for k in after} == {int}
    what = {UNICODE: "UUID ids, a payload key id, a 1 MB text, a unicode name", "ints": "integer ids",
            "keyed": "text ids in a payload key"}[name]
    reliability.add("Databases", f"Qdrant collection as qdrant_client makes it ({what})",
                    1, "run + verify pass; the same point ids (int / UUID), payload exactly the source's, no key added")


@pytest.mark.parametrize("name", ["empty"])
def test_qdrant_refuses_before_embedding(qdrant, name, tmp_path, reliability):
    base = f"qdrant://{qdrant}?collection="
    proc = _run(f"{base}{name}&text=text", f"{base}{name}_v3", tmp_path / "out")
    _refused(proc, tmp_path / "out", lambda: _qdrant_exists(qdrant, f"{name}_v3"))
    reliability.add("Databases", f"Qdrant source that cannot migrate ({name})", 1,
                    "exit 2, one error line, nothing embedded, no destination")


# =========================================================================== Chroma

@contextmanager
def _chroma(path: Path) -> Iterator:
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def chroma(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dbids-chroma") / "c"
    with _chroma(path) as client:
        col = client.create_collection("docs", embedding_function=None)
        v, texts = _vectors(N, 41), _texts(N, big=True)
        col.add(ids=[f"doc-{i}" if i % 3 else f"o'brien \"{i}\"" for i in range(N)], embeddings=v, documents=texts,
                metadatas=[{"id": 300 + i, "title": f"t{i}", "score": i / 3, **({"flag": True} if i % 2 else {})}
                           for i in range(N)])
        client.create_collection("empty", embedding_function=None)
    return path


def _chroma_get(path: Path, name: str) -> dict:
    with _chroma(path) as client:
        got = client.get_collection(name, embedding_function=None).get(include=["metadatas", "documents"])
    return {i: (m, d) for i, m, d in zip(got["ids"], got["metadatas"], got["documents"])}


def _chroma_exists(path: Path, name: str) -> bool:
    with _chroma(path) as client:
        return name in {c if isinstance(c, str) else c.name for c in client.list_collections()}


def test_chroma_ids_and_metadata_migrate_exactly(chroma, tmp_path, reliability):
    """A metadata key called ``id`` is carried unchanged (item 3); ids are Chroma's own text ids; the text
    stays the document (item 11's part) and the metadata is exactly the source's."""
    base = f"chroma://{chroma}?collection="
    proc = _run(f"{base}docs", f"{base}docs-v3", tmp_path / "out")
    _migrated(proc, tmp_path / "out")
    before, after = _chroma_get(chroma, "docs"), _chroma_get(chroma, "docs-v3")
    assert after == before
    assert sum(len(d) == BIG for _, d in after.values()) == 1
    reliability.add("Databases", "Chroma collection as chromadb makes it (text ids, metadata id, 1 MB document)", 1,
                    "run + verify pass; same ids, metadata and documents")


@pytest.mark.parametrize("name", ["empty", UNICODE])
def test_chroma_refuses_before_embedding(chroma, name, tmp_path, reliability):
    base = f"chroma://{chroma}?collection="
    source, dest = ("docs", UNICODE) if name == UNICODE else (name, f"{name}-v3")
    proc = _run(f"{base}{quote(source)}", f"{base}{quote(dest)}", tmp_path / "out")
    _refused(proc, tmp_path / "out", lambda: dest != UNICODE and _chroma_exists(chroma, dest))
    reliability.add("Databases", f"Chroma source or name that cannot migrate ({_case(name)})",
                    1, "exit 2, one error line, nothing embedded, no destination")
