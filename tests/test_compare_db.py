"""``compare`` with vector-database collections as sides, against real engines.

Qdrant (local mode) and PostgreSQL + pgvector (a private server) each hold the bundled sample as
a v2 collection (all-MiniLM-L6-v2 vectors + payload). A real migration (``run --old-index URI
--sink URI``) writes the v3 collection next to it; ``compare`` then searches both collections with
their engines' own indexes, with the sample's queries and judgments. The same comparison made
from the files (the old vectors as Parquet, the migration's FAISS output) is the reference: the
vectors are the same, so the numbers must be too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.engines import payload_schema, postgres_server, sample_rows

from migrate.engines import IndexSpec, open_engine, parse_address
from migrate.report.render_md import md_escape

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "sample"
OLD_MODEL = "local:standin:minilm"  # the model that made the sample's old vectors
NEW_MODEL = "local:standin:static"  # the "v3" model of the migration (64 dims, fast)
SECRET = "pw-marker-7f3a91"


def _cli(argv: list[str]) -> int:
    from migrate.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    return int(exc.value.code or 0)


def _make_source(uri: str) -> None:
    """The v2 collection an application queries: the sample's ids, vectors and payload."""
    engine = open_engine(uri)
    try:
        rows = sample_rows()
        name = engine.address.collection
        engine.create(name, dim=384, payload=payload_schema(rows), index=IndexSpec(), run="app-v2")
        engine.upsert(name, rows)
        engine.build_index(name, IndexSpec())
    finally:
        engine.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Both engines with a v2 collection, each migrated into a new collection by ``run --sink``."""
    d = tmp_path_factory.mktemp("compare-db")
    mp = pytest.MonkeyPatch()
    mp.setenv("PGPASSWORD", SECRET)  # trust auth ignores it: it must still never reach a report
    with postgres_server() as (_srv, pg):
        addrs = {
            "qdrant": (f"qdrant://{d / 'qdrant'}?collection=docs_v2", f"qdrant://{d / 'qdrant'}?collection=docs_v3"),
            "postgres": (f"{pg}&table=docs_v2", f"{pg}&table=docs_v3"),
        }
        outs = {}
        for name, (src, dst) in addrs.items():
            _make_source(src)
            outs[name] = d / f"out-{name}"
            rc = _cli(["run", "--old-index", src, "--title-field", "title", "--sink", dst, "--model", NEW_MODEL,
                       "--task", "retrieval.passage", "--out", str(outs[name]), "--yes", "--json"])
            assert rc == 0
        yield {"dir": d, "addrs": addrs, "outs": outs}
    mp.undo()


def _compare(world, old: str, new: str, tag: str, *extra: str, old_model: str = OLD_MODEL,
             new_model: str | None = NEW_MODEL) -> tuple[int, dict | None, Path]:
    rep = world["dir"] / f"rep-{tag}"
    args = ["compare", "--old", old, "--old-model", old_model, "--new", new,
            "--queries", str(SAMPLE / "queries.jsonl"), "--qrels", str(SAMPLE / "qrels.tsv"),
            "--report-dir", str(rep), "--no-github-summary", *extra]
    if new_model:
        args += ["--new-model", new_model]
    rc = _cli(args)
    path = rep / "report.json"
    return rc, (json.loads(path.read_text()) if path.exists() else None), rep


def _files_reference(world, engine: str, *extra: str) -> dict:
    """The same comparison from files: the old vectors (Parquet) and the migration's FAISS output."""
    rc, rep, _ = _compare(world, str(SAMPLE / "old_vectors.parquet"), str(world["outs"][engine]),
                          f"files-{engine}-{len(extra)}", *extra, new_model=None)
    assert rc == 0
    return rep


@pytest.mark.parametrize("engine", ["qdrant", "postgres"])
def test_collection_against_collection_equals_the_files(world, engine):
    src, dst = world["addrs"][engine]
    rc, rep, folder = _compare(world, src, dst, f"db-{engine}")
    assert rc == 0
    ref = _files_reference(world, engine)
    # the report names the collection each side searched, without the password
    for side, uri in (("old", src), ("new", dst)):
        desc = rep["sides"][side]["description"]
        assert desc["collection"] == str(parse_address(uri))
        assert desc["source"] == f"collection {parse_address(uri)}"
        assert "engine's own index" in desc["search"]
        assert desc["settings"]["collection rows (engine statistics)"].split()[0] == "320"
        assert rep["sides"][side]["n_docs"] == 320
    assert rep["sides"]["new"]["dim"] == 64 and rep["sides"]["old"]["dim"] == 384
    assert rep["metrics"]["n_judged"] == 24
    # same vectors, same queries: the engines' own indexes find what exact search over the files finds
    tol = 1e-4 if engine == "qdrant" else 0.02  # Qdrant's local mode is exact; pgvector's HNSW is approximate
    for side in ("old", "new"):
        for metric, value in ref["metrics"]["means"][side].items():
            assert rep["metrics"]["means"][side][metric] == pytest.approx(value, abs=tol), (side, metric)
    assert rep["agreement"]["overlap_mean"] == pytest.approx(ref["agreement"]["overlap_mean"], abs=tol * 5)
    # snippets come from the collections' text field when --docs is not given
    shown = rep["examples"][0]["sides"]["new"]
    assert shown and all(r["text"] for r in shown)
    for name in ("report.json", "report.md", "report.html"):
        text = (folder / name).read_text()
        assert SECRET not in text
    assert md_escape(f"collection {parse_address(dst)}") in (folder / "report.md").read_text()


def test_mixed_sides_collection_and_files(world):
    q_src, _ = world["addrs"]["qdrant"]
    _, pg_dst = world["addrs"]["postgres"]
    ref = _files_reference(world, "postgres")
    # old: a collection; new: the FAISS output of a run
    rc, a, _ = _compare(world, q_src, str(world["outs"]["postgres"]), "mixed-a", new_model=None)
    assert rc == 0
    assert a["sides"]["old"]["description"]["collection"] == str(parse_address(q_src))
    assert a["sides"]["new"]["description"]["collection"] is None
    assert a["metrics"]["means"]["new"] == pytest.approx(ref["metrics"]["means"]["new"], abs=1e-6)
    assert a["metrics"]["means"]["old"] == pytest.approx(ref["metrics"]["means"]["old"], abs=1e-4)
    # old: the Parquet file; new: a collection
    rc, b, _ = _compare(world, str(SAMPLE / "old_vectors.parquet"), pg_dst, "mixed-b")
    assert rc == 0
    assert b["sides"]["old"]["description"]["collection"] is None
    assert b["sides"]["new"]["description"]["collection"] == str(parse_address(pg_dst))
    assert b["metrics"]["means"]["new"]["ndcg@10"] == pytest.approx(ref["metrics"]["means"]["new"]["ndcg@10"],
                                                                     abs=0.02)


def test_gates_sweep_and_ann_on_collections(world, capsys):
    src, dst = world["addrs"]["postgres"]
    extra = ("--dims", "32,16", "--ann")
    capsys.readouterr()
    rc, rep, _ = _compare(world, src, dst, "gates", *extra, "--fail-if", "ndcg@10 < old + 0.5",
                          "--fail-if", "overlap@10 < 0.01")
    assert rc == 7  # the new model cannot beat the old by 0.5 nDCG
    err = capsys.readouterr().err
    assert "ndcg@10 < old + 0.5" in err and "Traceback" not in err
    assert [g["failed"] for g in rep["gates"]] == [True, False]
    # --ann: the sides' results are exact streamed passes; pgvector's HNSW is measured against them
    for side in ("old", "new"):
        assert rep["sides"][side]["description"]["search"].startswith("exact: a streamed pass")
        ann = rep["ann"][side]
        assert ann["description"]["collection"] == str(parse_address(src if side == "old" else dst))
        assert ann["recall@10_vs_exact"] >= 0.9
    # the Matryoshka sweep streams the collection: the same numbers as the sweep over the FAISS output
    ref = _files_reference(world, "postgres", "--dims", "32,16")
    assert [r["dims"] for r in rep["matryoshka"]] == [64, 32, 16]
    for got, want in zip(rep["matryoshka"], ref["matryoshka"]):
        assert got["ndcg@10"] == pytest.approx(want["ndcg@10"], abs=1e-6)
        assert got["overlap_vs_full"] == pytest.approx(want["overlap_vs_full"], abs=1e-6)
    # exact passes over the collections equal exact search over the files
    assert rep["metrics"]["means"]["new"] == pytest.approx(ref["metrics"]["means"]["new"], abs=1e-6)
    assert rep["metrics"]["means"]["old"] == pytest.approx(ref["metrics"]["means"]["old"], abs=1e-4)
    # passing gates: exit 0
    rc, _, _ = _compare(world, src, dst, "gates-pass", "--fail-if", "ndcg@10 < old - 1")
    assert rc == 0


@pytest.mark.parametrize("engine", ["qdrant", "postgres"])
def test_unknown_collection_is_one_error_line(world, engine, capsys):
    src, dst = world["addrs"][engine]
    missing = dst.replace("docs_v3", "docs_nope")
    capsys.readouterr()
    rc, rep, folder = _compare(world, src, missing, f"missing-{engine}")
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2
    assert lines[0].startswith("error:") and "docs_nope" in lines[0]
    assert not any(line.startswith("error:") for line in lines[1:])
    assert "Traceback" not in err and SECRET not in err
    assert rep is None and not (folder / "report.html").exists()
    # a collection side needs the model that embedded it, for the queries
    rc, rep, _ = _compare(world, src, dst, f"nomodel-{engine}", new_model=None)
    err = capsys.readouterr().err
    assert rc == 2 and "--new-model" in err and rep is None
