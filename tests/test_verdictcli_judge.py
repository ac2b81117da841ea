"""``compare --judge`` without qrels, ``jina-migrate label`` and ``compare --labels``, end to end.

Through the installed console script against the bundled server (fast: static stand-ins): both
sides are API models served by it (v2-small-en and v3 names), the judge is
``jina-api:jina-reranker-v2-base-multilingual`` through its ``/v1/rerank``. Checked against
computations made here, not by the tool: the judge's stand-in score is (1 + cosine) / 2 of the
static model run locally, graded by the documented cut points, and judged nDCG@10 is recomputed
from the TREC run files compare writes; the labels-alone estimate is recomputed from the pool
file's ranks. A judge server whose balance runs out mid-way leaves the finished batches in the
cache, and the next run scores only the rest.
"""

from __future__ import annotations

import csv
import json
import math
import sqlite3

import numpy as np
import pytest

from support.verdictcli import corpus, jm, ndcg_at_10, one_line_error, query_texts, read_run

pytest.importorskip("static_model")

V2R = "jina-reranker-v2-base-multilingual"
KEY = "jina_" + "ab" * 24


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from migrate.rehearsal.run import run_server

    d = tmp_path_factory.mktemp("verdictcli-judge")
    corpus(d, 60)
    texts = query_texts(40)
    # a log as teams have them: a repeat (other case and spacing) and blank lines are dropped
    (d / "log.txt").write_text("\n".join(texts[:20]) + "\n\n" + texts[3].upper() + "  \n" + "\n".join(texts[20:]) + "\n")
    (d / "key.txt").write_text(KEY + "\n")
    with run_server(fast=True, api_key=KEY) as srv:
        yield d, srv


def _compare(d, srv, cache: str, rep: str, *extra: str):
    return jm("compare", "--old-model", "jina-api:jina-embeddings-v2-small-en", "--new-model",
              "jina-api:jina-embeddings-v3", "--docs", d / "docs.jsonl", "--title-field", "title",
              "--queries", d / "log.txt", "--base-url", srv.base_url, "--api-key-file", d / "key.txt",
              "--old-option", "tier=tier2", "--new-option", "tier=tier2", "--judge", f"jina-api:{V2R}",
              "--judge-option", "tier=tier2", "--known-item-sample", "40", "--cache", d / cache,
              "--report-dir", d / rep, "--no-github-summary", *extra)


def _expected_grades(pool_file):
    """qid -> doc -> the stand-in judge's grade, computed here with the static model run locally."""
    from migrate.embed.registry import get_embedder

    emb = get_embedder("local:standin:static", device="cpu")
    pairs = [json.loads(x) for x in pool_file.read_text().splitlines()[1:]]
    q = emb.embed([p["query"] for p in pairs], task="none").vectors
    t = emb.embed([p["text"] for p in pairs], task="none").vectors
    cos = np.einsum("ij,ij->i", q, t) / (np.linalg.norm(q, axis=1) * np.linalg.norm(t, axis=1))
    out: dict[str, dict[str, int]] = {}
    for p, c in zip(pairs, cos):
        score = (1 + c) / 2
        out.setdefault(p["qid"], {})[p["doc_id"]] = sum(score >= x for x in (0.2, 0.5, 0.8))
    return out, pairs


def test_judge_labels_and_resume_through_the_cli(world, tmp_path):
    from migrate.rehearsal.run import run_server

    d, srv = world
    # ---- 1. a judged comparison of a query log: the verdict comes first, from the judge
    first = _compare(d, srv, "c1", "r1", "--pool-out", d / "pool.jsonl", "--fail-if", "judged.ndcg@10 < old - 0.5",
                     "--fail-if", "knownitem == regression")
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.splitlines()[0].startswith("verdict: ")
    rep = json.loads((d / "r1" / "report.json").read_text())
    v, j = rep["verdict"], rep["judged"]
    assert v["evidence"].startswith(f"judge jina-api:{V2R}") and v["n_queries"] == 40
    log = rep["config"]["query_log"]
    assert (log["read"], log["unique"], log["used"], log["format"]) == (41, 40, 40, "text")
    assert "stand-in 'static'" in j["description"] and any("never to decide" in w for w in j["warnings"])
    assert j["n_scored"] == j["n_pairs"] and j["n_cached"] == 0 and sum(j["grades"].values()) == j["n_pairs"]
    grades, pairs = _expected_grades(d / "pool.jsonl")
    lists = {s: read_run(d / "r1" / "runs" / f"{s}.run") for s in ("old", "new")}
    assert j["n_pairs"] == len(pairs) == sum(len(set(lists["old"][q]) | set(lists["new"][q])) for q in lists["old"])
    for qid, per in j["per_query"].items():
        for side in ("old", "new"):
            assert per[side]["ndcg@10"] == pytest.approx(ndcg_at_10(lists[side][qid], grades[qid]), abs=1e-6)
    assert [g["failed"] for g in rep["gates"]] == [False, False]
    # the logged queries stay out of every shareable output; the private pool file has them
    for name in ("report.json", "report.md", "report.html"):
        body = (d / "r1" / name).read_text()
        assert not any(p["query"] in body for p in pairs), name
    md = (d / "r1" / "report.md").read_text().splitlines()
    assert md[2].startswith(":white_circle: **Verdict: ") or md[2].startswith(":green_circle:") or \
        md[2].startswith(":red_circle:")
    html = (d / "r1" / "report.html").read_text()
    assert html.index("id='one-verdict'") < html.index("id='sides'") < html.index("id='agreement'")

    # ---- 2. a judge whose balance runs out mid-way: one error line, finished batches kept
    with run_server(fast=True, api_key=KEY, balance_tokens=j["tokens"] // 2) as poor:
        broke = _compare(d, srv, "c2", "r2", "--judge-base-url", poor.base_url)
        one_line_error(broke, f"judge jina-api:{V2R}", "402", code=4)
        with sqlite3.connect(d / "c2" / "label-free.sqlite") as db:
            kept = db.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
        assert 0 < kept < j["n_pairs"]
        # ---- 3. the key is topped up; the same command scores only what is missing
        for key in poor.server.balance:
            poor.server.balance[key] = 10**9
        again = _compare(d, srv, "c2", "r3", "--judge-base-url", poor.base_url)
    assert again.returncode == 0, again.stderr[-2000:]
    j3 = json.loads((d / "r3" / "report.json").read_text())["judged"]
    assert j3["n_cached"] == kept and j3["n_scored"] == j["n_pairs"] - kept
    assert j3["means"] == j["means"] and j3["per_query"] == j["per_query"]

    # ---- 4. label: a seeded sample exported to CSV, graded elsewhere, imported
    exp = jm("label", d / "pool.jsonl", "--export", tmp_path / "pairs.csv", "--sample", "60", "--seed", "3")
    assert exp.returncode == 0, exp.stderr
    rows = list(csv.DictReader((tmp_path / "pairs.csv").open(newline="")))
    assert len(rows) == 60 and {(r["qid"], r["doc_id"]) for r in rows} <= {(p["qid"], p["doc_id"]) for p in pairs}
    by_pair = {(p["qid"], p["doc_id"]): p for p in pairs}
    for r in rows:  # a "human" who finds only what new ranks in its top 3 relevant
        rank_new = by_pair[(r["qid"], r["doc_id"])]["ranks"]["new"]
        r["grade"] = "3" if rank_new is not None and rank_new <= 3 else "0"
    with (tmp_path / "pairs.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    imp = jm("label", d / "pool.jsonl", "--import", tmp_path / "pairs.csv", "--labels", tmp_path / "labels.jsonl")
    assert imp.returncode == 0, imp.stderr
    assert len((tmp_path / "labels.jsonl").read_text().splitlines()) == 60

    # ---- 5. label in the terminal: keys 0-3, s, b, q from standard input; it resumes where it stopped
    keys = jm("label", d / "pool.jsonl", "--labels", tmp_path / "typed.jsonl", "--sample", "6", "--seed", "3",
              stdin="2\n0\nb\n3\nx\ns\nq\n")
    assert keys.returncode == 0, keys.stderr
    assert "'x' is not a key here" in keys.stdout and "3 of 6 sampled pairs answered" in " ".join(keys.stdout.split())
    order = [(r["qid"], r["doc_id"]) for r in rows[:6]]  # the same seed draws the same pairs in the same order
    typed = [json.loads(x) for x in (tmp_path / "typed.jsonl").read_text().splitlines()]
    assert [(t["qid"], t["doc_id"], t["grade"]) for t in typed] == [
        (*order[0], 2), (*order[1], 0), (*order[1], 3), (*order[2], None)]
    resumed = jm("label", d / "pool.jsonl", "--labels", tmp_path / "typed.jsonl", "--sample", "6", "--seed", "3",
                 stdin="1\n")  # the end of input quits
    assert resumed.returncode == 0 and f"pair 4 of 6" in resumed.stdout
    assert json.loads((tmp_path / "typed.jsonl").read_text().splitlines()[-1]) == {
        "qid": order[3][0], "doc_id": order[3][1], "grade": 1}

    # ---- 6. labels + judge: prediction-powered inference decides the verdict's evidence
    ppi_run = _compare(d, srv, "c1", "r4", "--labels", tmp_path / "labels.jsonl", "--fail-if", "verdict == worse")
    assert ppi_run.returncode == 0, ppi_run.stderr[-2000:]
    rep4 = json.loads((d / "r4" / "report.json").read_text())
    p, j4 = rep4["ppi"], rep4["judged"]
    assert rep4["verdict"]["evidence"] == f"60 human labels + judge jina-api:{V2R} (prediction-powered inference)"
    assert j4["n_cached"] == j4["n_pairs"] and j4["n_scored"] == 0  # all from the cache, nothing paid again
    assert "stand-in 'static'" in j4["description"]  # still named though every score came from the cache
    assert p["n_labels"] == 60 and p["n_pairs"] == j["n_pairs"]
    # the labels-alone estimate, recomputed: mean over queries of sum(w * label) / (60 / pairs)
    z = 3 * sum(1 / math.log2(i + 1) for i in range(1, 11))
    pi = 60 / j["n_pairs"]
    per_q = {q: 0.0 for q in j["per_query"]}
    for r in rows:
        rk = by_pair[(r["qid"], r["doc_id"])]["ranks"]
        w = sum(sign / math.log2(rk[s] + 1) for s, sign in (("new", 1), ("old", -1)) if rk[s] is not None) / z
        per_q[r["qid"]] += w * int(r["grade"]) / pi
    assert p["labels_only"] == pytest.approx(sum(per_q.values()) / len(per_q), abs=1e-9)
    assert p["labels_only"] > 0  # this "human" rewards new's top results
