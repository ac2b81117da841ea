"""``jina-migrate compare`` end to end: a real migration output (MiniLM, via ``run``), a real old
index (static model vectors in Parquet), real query embedding, reports, gates and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

TOPICS = [
    "solar panels convert sunlight into electricity", "the heart pumps blood through the arteries",
    "volcanoes erupt molten lava and ash", "bees pollinate flowering plants", "interest rates change mortgage payments",
    "black holes bend light with gravity", "vaccines train the immune system", "glaciers carve valleys over millennia",
    "neural networks learn patterns from data", "coffee contains caffeine, a stimulant",
]
QUERIES = ["how do solar cells make power", "what does the heart do", "lava from eruptions", "pollination by insects",
           "mortgage and interest", "gravity bending light", "immune response to vaccination",
           "how valleys form from ice", "machine learning models", "stimulant in coffee <script>alert(1)</script>"]


def _cli(argv: list[str]) -> int:
    from migrate.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    return int(exc.value.code or 0)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    from migrate.embed.registry import get_embedder

    d = tmp_path_factory.mktemp("compare-cli")
    docs = [{"id": f"d{i}-{j}", "text": f"{t}{v} <b>note {j}</b>"}
            for i, t in enumerate(TOPICS) for j, v in enumerate(["", " in detail", " explained simply", " for beginners"])]
    (d / "docs.jsonl").write_text("".join(json.dumps(x) + "\n" for x in docs))
    (d / "queries.csv").write_text("id,text\n" + "".join(f'q{i},"{q}"\n' for i, q in enumerate(QUERIES)))
    (d / "qrels.trec").write_text("".join(f"q{i} 0 d{i}-{j} {2 if j == 0 else 1}\n" for i in range(10) for j in range(4)))
    static = get_embedder("local:standin:static", device="cpu")
    vecs = static.embed([x["text"] for x in docs], task="none").vectors
    pq.write_table(pa.table({"id": [x["id"] for x in docs],
                             "vector": pa.array(list(vecs), type=pa.list_(pa.float32(), vecs.shape[1]))}),
                   d / "old.parquet")
    rc = _cli(["run", "--docs", str(d / "docs.jsonl"), "--out", str(d / "out"), "--model", "local:standin:minilm",
               "--task", "retrieval.passage", "--yes"])
    assert rc == 0 and (d / "out" / "index.faiss").exists()
    return d


def test_compare_cli_writes_reports_and_gates_set_exit_code(workspace: Path, monkeypatch, capsys):
    d = workspace
    summary = d / "step_summary.md"
    summary.write_text("previous step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    args = ["compare", "--new", str(d / "out"), "--old", str(d / "old.parquet"), "--old-model", "local:standin:static",
            "--queries", str(d / "queries.csv"), "--qrels", str(d / "qrels.trec"), "--corpus", str(d / "docs.jsonl"),
            "--dims", "256,64", "--ann", "--report-dir", str(d / "rep")]
    rc = _cli([*args, "--fail-if", "ndcg@10 < old + 0.5", "--fail-if", "overlap@10 < 0.05"])
    err = capsys.readouterr().err
    assert rc == 7
    assert "ndcg@10 < old + 0.5" in err and "Traceback" not in err
    rep = json.loads((d / "rep" / "report.json").read_text())
    assert [g["failed"] for g in rep["gates"]] == [True, False]
    new_desc = rep["sides"]["new"]["description"]
    assert new_desc["doc_task"] == "retrieval.passage" and new_desc["query_task"] == "retrieval.query"
    assert "all-MiniLM-L6-v2" in new_desc["model_identity"] and new_desc["dimensions"] == 384
    assert rep["sides"]["old"]["description"]["model"] == "standin:static"
    assert rep["metrics"]["n_judged"] == 10
    # a semantic model must retrieve these paraphrases well; the 4 judged docs per query are found
    assert rep["metrics"]["means"]["new"]["recall@10"] >= 0.9
    assert rep["ann"]["new"]["recall@10_vs_exact"] == 1.0  # flat index = exact
    assert [r["dims"] for r in rep["matryoshka"]] == [384, 256, 64]
    html = (d / "rep" / "report.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert "&lt;b&gt;note" in html  # document text escaped too
    md = summary.read_text()
    assert md.startswith("previous step\n") and "Quality gate failed" in md
    assert (d / "rep" / "runs" / "new.run").exists() and (d / "rep" / "runs" / "qrels.txt").exists()

    # passing gates -> exit 0, and --json prints the report
    rc = _cli([*args, "--no-github-summary", "--json", "--fail-if", "recall@100 < old - 0.5"])
    out = capsys.readouterr().out
    assert rc == 0 and json.loads(out)["gates"][0]["failed"] is False


def test_compare_cli_without_judgments_and_user_errors(workspace: Path, capsys):
    d = workspace
    base = ["compare", "--new", str(d / "out"), "--old", str(d / "old.parquet"), "--old-model", "local:standin:static",
            "--queries", str(d / "queries.csv"), "--report-dir", str(d / "rep2"), "--no-github-summary"]
    assert _cli([*base, "--fail-if", "rbo < 0.01"]) == 0
    rep = json.loads((d / "rep2" / "report.json").read_text())
    assert rep["metrics"] is None and 0 < rep["agreement"]["overlap_mean"] <= 1
    assert len(rep["examples"]) == 8 and rep["examples"][0]["sides"]["new"][0]["score"] > 0
    capsys.readouterr()
    # a gate on a judged metric without --qrels: one-line config error (exit 2), no traceback
    assert _cli([*base, "--fail-if", "ndcg@10 < old"]) == 2
    err = capsys.readouterr().err
    assert "needs relevance judgments" in err and "Traceback" not in err
    # a malformed gate fails before any embedding
    assert _cli([*base, "--fail-if", "ndcg@10 <<< old"]) == 2
    # the old index without the model that made it
    assert _cli(["compare", "--new", str(d / "out"), "--old", str(d / "old.parquet"),
                 "--queries", str(d / "queries.csv"), "--report-dir", str(d / "rep3")]) == 2
    assert "--old-model" in capsys.readouterr().err


def test_corpus_embedding_cache_resumes_after_interruption(tmp_path: Path):
    import numpy as np

    from migrate.embed.registry import get_embedder
    from migrate.report.build import embed_corpus
    from migrate.report.data import Corpus

    emb = get_embedder("local:standin:static", device="cpu")
    corpus = Corpus([f"d{i}" for i in range(50)], [f"{TOPICS[i % 10]} number {i}" for i in range(50)])
    fresh, meta = embed_corpus(emb, corpus, doc_task="none", spec="local:standin:static", cache=None)
    assert not meta["cached"] and fresh.shape == (50, 64)

    class Stop(Exception):
        pass

    def stop_after_two(done: int, total: int) -> None:
        if done >= 32:
            raise Stop

    with pytest.raises(Stop):
        embed_corpus(emb, corpus, doc_task="none", spec="local:standin:static", cache=tmp_path, batch=16,
                     progress=stop_after_two)
    assert len(list(tmp_path.glob("*.part*.npy"))) == 2
    assert not [p for p in tmp_path.glob("*.npy") if ".part" not in p.name]  # no final file yet
    resumed, meta = embed_corpus(emb, corpus, doc_task="none", spec="local:standin:static", cache=tmp_path, batch=16)
    assert meta["resumed_blocks"] == 2 and np.allclose(resumed, fresh, atol=1e-6)
    assert not list(tmp_path.glob("*.part*.npy"))
    again, meta = embed_corpus(emb, corpus, doc_task="none", spec="local:standin:static", cache=tmp_path, batch=16)
    assert meta["cached"] and np.array_equal(again, resumed)
    # a different task (or corpus) is a different cache entry
    _, meta = embed_corpus(emb, corpus, doc_task="retrieval.passage", spec="local:standin:static", cache=tmp_path)
    assert not meta["cached"]
