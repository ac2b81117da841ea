"""``plan`` with vector-database collections: a collection as the source (no ``--docs``), and the
destination's storage estimated for ``--sink URI``, against real engines (Qdrant local mode and
PostgreSQL + pgvector from a private server).

The estimate for pgvector is checked against what PostgreSQL itself reports
(``pg_total_relation_size``) after the real migration wrote the collection, and at 384 and 1024
dimensions on the adapter's own write path.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from support.engines import payload_schema, postgres_server, sample_rows

from migrate.engines import IndexSpec, open_engine, parse_address

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "sample"
MODEL = "standin:static"  # 64-d, fast: the plan is for this local model (no calibration run)
SECRET = "pw-marker-51c0de"


def _cli(argv: list[str]) -> int:
    from migrate.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    return int(exc.value.code or 0)


def _make_collection(uri: str, rows: pa.Table, run: str = "app-v2") -> None:
    engine = open_engine(uri)
    try:
        name = engine.address.collection
        engine.create(name, dim=rows.schema.field("vector").type.list_size, payload=payload_schema(rows),
                      index=IndexSpec(), run=run)
        engine.upsert(name, rows)
        engine.build_index(name, IndexSpec())
    finally:
        engine.close()


@pytest.fixture(scope="module")
def pg():
    with postgres_server() as (_srv, uri):
        yield uri


@pytest.fixture(scope="module")
def sources(tmp_path_factory, pg):
    d = tmp_path_factory.mktemp("plan-db")
    uris = {"qdrant": f"qdrant://{d / 'qdrant'}?collection=docs_v2", "postgres": f"{pg}&table=docs_v2"}
    for uri in uris.values():
        _make_collection(uri, sample_rows())
    return {"dir": d, "uris": uris, "pg": pg}


def _plan(out: Path, *args: str) -> tuple[int, dict | None]:
    rc = _cli(["plan", *args, "--from-model", "custom:384", "--local-model", MODEL, "--no-calibration",
               "--out", str(out), "--json"])
    return rc, (json.loads(out.read_text()) if out.exists() else None)


@pytest.mark.parametrize("engine", ["qdrant", "postgres"])
def test_plan_reads_a_collection_and_sizes_the_destination(sources, engine, capsys):
    d, src = sources["dir"], sources["uris"][engine]
    dst = src.replace("docs_v2", "docs_v3")
    rc, plan = _plan(d / f"plan-{engine}.json", "--old-index", src, "--title-field", "title", "--sink", dst)
    assert rc == 0, capsys.readouterr().err
    # the source: the collection's own statistics, read through run's validation, no --docs
    assert plan["sources"]["documents"] == 320
    stats = plan["sources"]["old_index"]["collection"]
    assert stats["address"] == str(parse_address(src)) and stats["engine"] == engine
    assert stats["rows"] == 320 and stats["dim"] == 384 and stats["bytes"] > 320 * 384 * 4
    assert {"title", "text", "tags", "published"} <= set(stats["payload"])
    assert stats["payload_bytes_per_row"] > 500  # text + title + 10 more fields
    assert plan["sources"]["validation"]["documents"] == 320
    # the same fingerprint `run` pins: the row count and the engine's checksum over ids, vectors and payload
    from migrate.engines import open_engine

    eng = open_engine(src)
    digest = eng.checksum(parse_address(src).collection)
    eng.close()
    assert plan["sources"]["fingerprint"] == [{"path": str(parse_address(src)), "size": 320,
                                               "sha256": f"collection:{digest}"}]
    # the same texts as the documents file: the same token count
    rc, from_file = _plan(d / f"plan-file-{engine}.json", "--docs", str(SAMPLE / "docs.jsonl"),
                          "--title-field", "title")
    assert rc == 0
    assert plan["tokens"]["total"] == from_file["tokens"]["total"]
    # the destination: what run will create, estimated; run --plan carries the sink
    (dest,) = plan["destinations"]
    assert dest["address"] == str(parse_address(dst)) and dest["exists"] is False
    assert (dest["rows"], dest["dimensions"], dest["index"]["kind"], dest["index"]["m"]) == (320, 64, "hnsw", 16)
    assert dest["total_bytes"] == dest["data_bytes"] + dest["index_bytes"] > 320 * 64 * 4
    assert plan["run_config"]["docs"] is None and plan["run_config"]["sink"] == [dst]
    out = d / f"out-{engine}"
    assert _cli(["run", "--plan", str(d / f"plan-{engine}.json"), "--out", str(out), "--json"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["uri"] for s in manifest["sinks"]] == [dst]
    target = open_engine(dst)
    try:
        info = target.describe(target.address.collection)
        assert target.count(target.address.collection) == 320 and info.dim == 64
        if engine == "postgres":  # PostgreSQL reports its real size: the estimate must be close
            assert info.bytes == pytest.approx(dest["total_bytes"], rel=0.15), (info.bytes, dest)
    finally:
        target.close()
    # now the destination exists: a new plan says so (run would only continue that run's output)
    rc, again = _plan(d / f"plan-again-{engine}.json", "--old-index", src, "--title-field", "title", "--sink", dst,
                      "--fail-on", "never")
    assert again["destinations"][0]["exists"] is True
    assert any(f["code"] == "sink-exists" and f["severity"] == "warning" for f in again["findings"])


@pytest.mark.parametrize("dims", [384, 1024])
def test_pgvector_size_estimate_matches_postgres(pg, dims):
    """The adapter's own write path (COPY in batches, HNSW after the load) at two widths: one where rows
    stay in the heap, one where vectors go to TOAST and each HNSW element fills a page."""
    from migrate.engines.base import vector_array
    from migrate.planning.destinations import estimate

    rng = np.random.default_rng(dims)
    n = 2000
    v = rng.standard_normal((n, dims)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    texts = [("word " * int(rng.integers(20, 120))).strip() for _ in range(n)]
    rows = pa.table({"id": pa.array([f"doc-{i:06d}" for i in range(n)]), "vector": vector_array(v),
                     "text": pa.array(texts)})
    name = f"size_{dims}"
    engine = open_engine(f"{pg}&table={name}")
    try:
        engine.create(name, dim=dims, payload=pa.schema([("text", pa.string())]), index=IndexSpec(), run="r")
        for start in range(0, n, 500):
            engine.upsert(name, rows.slice(start, 500))
        engine.build_index(name, IndexSpec())
        real = engine.describe(name).bytes
    finally:
        engine.close()
    payload = rows.column("text").nbytes / n
    est = estimate("postgres", rows=n, dims=dims, id_bytes=10, payload_bytes=payload, index=IndexSpec())
    assert est["total_bytes"] == pytest.approx(real, rel=0.05), (real, est)


def test_validation_and_refusals_name_the_collection(sources, capsys, monkeypatch):
    d, pg = sources["dir"], sources["pg"]
    # a collection with empty texts: run would refuse; the plan says so, naming the collection and ids
    rows = sample_rows(40)
    texts = rows.column("text").to_pylist()
    texts[3], texts[11] = "", None
    uri = f"qdrant://{d / 'qdrant'}?collection=docs_empty"
    _make_collection(uri, rows.set_column(rows.column_names.index("text"), "text", pa.array(texts, pa.string())))
    rc, plan = _plan(d / "plan-empty.json", "--old-index", uri, "--fail-on", "never")
    assert rc == 0
    (refused,) = [f for f in plan["findings"] if f["code"] == "sources-invalid"]
    assert "docs_empty" in refused["message"] and rows.column("id")[3].as_py() in refused["message"]
    assert plan["sources"]["documents"] == 38  # what a lenient run would embed
    # the declared v2 model does not match the collection's width
    rc, plan = _cli(["plan", "--old-index", sources["uris"]["qdrant"], "--from-model", "base-en", "--json",
                     "--estimate-only"]), None
    assert rc == 8
    # a destination that is the source, or a table the application made: errors before run
    src = sources["uris"]["postgres"]
    rc, plan = _plan(d / "plan-self.json", "--old-index", src, "--sink", src, "--fail-on", "never")
    assert [f["code"] for f in plan["findings"] if f["severity"] == "error"] == ["sink-is-source"]
    app = open_engine(pg)
    try:  # a table the application made itself, with its own client
        app._db().execute("CREATE TABLE app_docs (id text PRIMARY KEY, embedding vector(3))")
    finally:
        app.close()
    rc, plan = _plan(d / "plan-foreign.json", "--old-index", src, "--sink", f"{pg}&table=app_docs",
                     "--fail-on", "never")
    (found,) = [f for f in plan["findings"] if f["code"] == "sink-exists"]
    assert found["severity"] == "error" and "app_docs" in found["message"]
    assert plan["destinations"][0]["exists"] is True
    capsys.readouterr()
    # user mistakes: one error line, exit 2, nothing written
    for argv, words in [
        (["--old-index", src.replace("docs_v2", "docs_nope")], "docs_nope"),
        (["--old-index", src, "--sink", f"postgresql://app:{SECRET}@db.example/shop?table=docs_v3"], "password"),
        (["--old-index", str(SAMPLE / "old_index.faiss")], "--docs"),
    ]:
        out = d / "plan-mistake.json"
        rc = _cli(["plan", *argv, "--out", str(out), "--estimate-only"])
        err = capsys.readouterr().err
        lines = [x for x in err.splitlines() if x.strip()]
        assert rc == 2, err
        assert lines[0].startswith("error:") and words in err and "Traceback" not in err
        assert SECRET not in err and not out.exists()
