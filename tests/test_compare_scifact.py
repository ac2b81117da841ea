"""SciFact acceptance (slow): compare's nDCG@10 for all-MiniLM-L6-v2 matches MTEB's published 0.6451.

Needs ../shared/data/scifact (skipped without it). Corpus vectors are cached under
$JINA_MIGRATE_CACHE/compare, so only the first run pays the ~4 min MiniLM encoding.
The other side is the static model (seconds); bench/scifact_compare.py runs the full
MiniLM vs e5-small report.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pytrec_eval

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"
MTEB_MINILM_NDCG10 = 0.6451

pytestmark = pytest.mark.slow


@pytest.mark.skipif(not (SCIFACT / "corpus.jsonl").exists(), reason="SciFact not available (../shared/data/scifact)")
def test_scifact_minilm_ndcg_matches_mteb(tmp_path):
    from migrate.report.build import cache_dir, side_from_model
    from migrate.report.data import read_corpus, read_qrels, read_queries
    from migrate.report.engine import CompareConfig, compare
    from migrate.embed.standins import model_dir

    corpus = read_corpus(SCIFACT)
    qrels = read_qrels(SCIFACT, split="test")
    queries = read_queries(SCIFACT, only=set(qrels))
    assert len(queries) == 300 and len(corpus.ids) == 5183
    minilm = side_from_model(f"local:{model_dir('minilm')}", corpus, name="minilm", doc_task="none", query_task="none",
                             options={"max_tokens": 256, "device": "cpu"}, cache=cache_dir())
    static = side_from_model("local:standin:static", corpus, name="static", doc_task="none", query_task="none",
                             options={"device": "cpu"}, cache=cache_dir())
    rep = compare(static, minilm, queries, qrels, CompareConfig(), run_dir=tmp_path)
    ndcg = rep.metrics.means["minilm"]["ndcg@10"]
    assert abs(ndcg - MTEB_MINILM_NDCG10) <= 0.005, ndcg
    # and the value is trec_eval's on the written run file
    with open(tmp_path / "minilm.run") as fh:
        run = pytrec_eval.parse_run(fh)
    ref = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_10"}).evaluate(run)
    assert ndcg == pytest.approx(sum(v["ndcg_cut_10"] for v in ref.values()) / len(ref), abs=1e-6)
    assert rep.metrics.headline.p_randomization < 0.001  # MiniLM >> static
