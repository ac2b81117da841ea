"""``POST /v1/rerank`` in the bundled server, and the ``jina-api:`` judge that talks to it.

The route answers Jina's exact shape with a stand-in score named as such: (1 + cosine of the
static stand-in's embeddings) / 2, checked here against the stand-in run locally
(``local:standin:static``), not against the server's own code. The judge is the real client
(the embeddings client's transport); faults come from the server's seeded fault injection.
Judged evaluation pools, caches and resumes through it.
"""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

pytest.importorskip("static_model")

from migrate.errors import ConfigError, EmbeddingError, InputError  # noqa: E402
from migrate.rehearsal.faults import FaultConfig  # noqa: E402
from migrate.rehearsal.run import run_server  # noqa: E402
from migrate.report.data import Query  # noqa: E402
from migrate.report.judged import judge_pooled, pool_of  # noqa: E402
from migrate.report.judges import JinaRerankJudge, family_warnings, make_judge  # noqa: E402
from migrate.report.scorecache import ScoreCache  # noqa: E402

V2R, V3R = "jina-reranker-v2-base-multilingual", "jina-reranker-v3"
FAST = {"tier": "tier2"}  # the client's pacing at the fast tier: the local server is unlimited
QUERY = "how do glaciers melt"
DOCS = ["Glaciers melt when summer heat exceeds winter snowfall.", "The stock market fell on Tuesday.",
        "Ice sheets lose mass through melting and calving.", "A recipe for lemon cake."]


@pytest.fixture(scope="module")
def srv():
    with run_server(fast=True) as h:
        yield h


def post(h, body, key=True):
    headers = {"Authorization": f"Bearer {h.api_key}"} if key else {}
    return httpx.post(h.base_url + "/v1/rerank", json=body, headers=headers, timeout=60)


_LOCAL = []


def expected_scores(query, docs):
    """(1 + cos) / 2 with the static stand-in run locally (not through the server)."""
    from migrate.embed.registry import get_embedder

    if not _LOCAL:
        _LOCAL.append(get_embedder("local:standin:static", device="cpu"))
    e = _LOCAL[0]
    q = e.embed([query], task="none").vectors[0]
    d = e.embed(docs, task="none").vectors
    return (1 + d @ q / (np.linalg.norm(d, axis=1) * np.linalg.norm(q))) / 2


def test_rerank_answers_jinas_shape_with_a_named_stand_in(srv):
    r = post(srv, {"model": V2R, "query": QUERY, "documents": [DOCS[0], {"text": DOCS[1]}, *DOCS[2:]]})
    assert r.status_code == 200 and r.headers["x-jina-migrate-stand-in"] == "static"
    j = r.json()
    assert set(j) == {"model", "usage", "results"} and j["model"] == V2R
    assert set(j["usage"]) == {"total_tokens"} and j["usage"]["total_tokens"] > 0
    got = {x["index"]: x["relevance_score"] for x in j["results"]}
    assert sorted(got) == [0, 1, 2, 3]
    assert np.allclose([got[i] for i in range(4)], expected_scores(QUERY, DOCS), atol=1e-5)
    assert [x["relevance_score"] for x in j["results"]] == sorted(got.values(), reverse=True)  # best first
    assert all(x["document"] == {"text": DOCS[x["index"]]} for x in j["results"])
    short = post(srv, {"model": V3R, "query": QUERY, "documents": DOCS, "top_n": 2, "return_documents": False}).json()
    assert [x["index"] for x in short["results"]] == [x["index"] for x in j["results"][:2]]
    assert all(set(x) == {"index", "relevance_score"} for x in short["results"])
    models = {m["id"]: m for m in httpx.get(srv.base_url + "/v1/models").json()["data"]}
    for name in (V2R, V3R):
        assert models[name]["stand_in"] == "static" and "NOT" in models[name]["note"]
        assert "stand-in" in models[name]["owned_by"] and models[name]["endpoint"] == "/v1/rerank"
    assert models[V3R]["listwise"] is True and models[V3R]["max_documents"] == 64


@pytest.mark.parametrize("body, key, status, words", [
    ({"model": V2R, "query": QUERY, "documents": DOCS}, False, 401, "API key"),
    ({"model": V2R, "query": QUERY, "documents": []}, True, 422, "documents"),
    ({"model": V2R, "query": "  ", "documents": DOCS}, True, 422, "query"),
    ({"model": V2R, "query": QUERY, "documents": [3]}, True, 422, "documents[0]"),
    ({"model": V2R, "query": QUERY, "documents": DOCS, "top_n": 0}, True, 422, "top_n"),
    ({"model": "jina-embeddings-v3", "query": QUERY, "documents": DOCS}, True, 400, "not found"),
    ({"model": V3R, "query": QUERY, "documents": ["x"] * 65}, True, 400, "64"),
])
def test_rerank_errors_are_json_details(srv, body, key, status, words):
    r = post(srv, body, key=key)
    assert r.status_code == status and words in json.dumps(r.json()["detail"])


def test_judge_scores_through_the_real_client_and_names_the_stand_in(srv, monkeypatch):
    monkeypatch.setenv("JINA_API_KEY", srv.api_key)
    with make_judge(f"jina-api:{V2R}", base_url=srv.base_url, options=FAST) as judge:
        got = judge.score([(QUERY, DOCS), ("lemon cake", DOCS[3:])])
        assert np.allclose(got[0], expected_scores(QUERY, DOCS), atol=1e-5)
        assert np.allclose(got[1], expected_scores("lemon cake", DOCS[3:]), atol=1e-5)
        assert judge.tokens > 0 and judge.stand_in == "static"
        assert "stand-in 'static'" in judge.describe() and "not a reranker" in judge.describe()
        assert [judge.grade(s) for s in (0.0, 0.19, 0.2, 0.5, 0.79, 0.8, 1.0)] == [0, 0, 1, 2, 2, 3, 3]
        warns = family_warnings(judge, {"old": ["jina-embeddings-v2-base-en"], "new": ["jina-embeddings-v3", "e5-small"]})
        assert "like both sides" in warns[0] and "jina" in warns[0]
        assert "rehearse, never to decide" in warns[1]
        only_new = family_warnings(judge, {"old": ["bm25"], "new": ["jina-embeddings-v3"]})
        assert "may favour new's results" in only_new[0]


def test_judge_retries_wrong_counts_and_refuses_in_one_line(monkeypatch):
    with run_server(fast=True, faults=FaultConfig(wrong_count=0.5, truncated=0.2, seed=4)) as h:
        monkeypatch.setenv("JINA_API_KEY", h.api_key)
        with JinaRerankJudge(V2R, base_url=h.base_url, max_retries=10, backoff_max_s=0.05, **FAST) as judge:
            got = judge.score([(QUERY, DOCS), (f"{QUERY}?", DOCS), ("cake", DOCS)])
        assert np.allclose(got[0], expected_scores(QUERY, DOCS), atol=1e-5)
        faults = h.usage()["faults"]
        assert faults["wrong_count"] + faults["truncated"] >= 1  # the faults happened, and were retried
    with run_server(fast=True, faults=FaultConfig(wrong_count=1.0)) as h:
        monkeypatch.setenv("JINA_API_KEY", h.api_key)
        with JinaRerankJudge(V2R, base_url=h.base_url, max_retries=2, backoff_max_s=0.01, **FAST) as judge:
            with pytest.raises(EmbeddingError) as e:
                judge.score([(QUERY, DOCS)])
    msg = str(e.value)
    assert "3 results for 4 documents" in msg and "after 3 attempts" in msg and "\n" not in msg
    assert h.api_key not in msg


def test_judge_refusals_and_bad_specs_are_one_line(srv, monkeypatch):
    monkeypatch.setenv("JINA_API_KEY", "jina_" + "0" * 48)
    with make_judge(f"jina-api:{V2R}", base_url=srv.base_url, options=FAST) as judge:
        with pytest.raises(EmbeddingError, match=r"judge jina-api:.*refused the request \(HTTP 401\)"):
            judge.score([(QUERY, DOCS)])
    monkeypatch.setenv("JINA_API_KEY", srv.api_key)
    with make_judge("jina-api:jina-reranker-v9", base_url=srv.base_url, options=FAST) as judge:
        with pytest.raises(EmbeddingError, match="HTTP 400.*not found") as e:
            judge.score([(QUERY, DOCS)])
        assert "model name in --judge" in e.value.hint
    for spec, words in (("reranker", "KIND:NAME"), ("bm25:x", "unknown judge kind"),
                        ("jina-api:jina-embeddings-v3", "embedding model"), ("llm:gpt-4o", "--judge-base-url")):
        with pytest.raises(ConfigError, match=words):
            make_judge(spec)
    with pytest.raises(ConfigError, match="three increasing"):
        make_judge(f"jina-api:{V2R}", base_url=srv.base_url, thresholds=(0.5, 0.2, 0.9))
    monkeypatch.delenv("JINA_API_KEY")
    with pytest.raises(ConfigError, match="no API key"):
        make_judge(f"jina-api:{V2R}", base_url=srv.base_url, options=FAST)


def test_pool_interleaves_both_sides_and_dedupes():
    assert pool_of([["a", "b", "c"], ["b", "d", "a"]], 2) == ["a", "b", "d"]
    assert pool_of([["a"], []], 10) == ["a"]


class FailsOnCall:
    """The real judge, made to fail on its ``n``-th call (a crash half-way through)."""

    def __init__(self, judge, n: int) -> None:
        self.judge, self.n, self.calls = judge, n, 0

    def __getattr__(self, name):
        return getattr(self.judge, name)

    def score(self, requests):
        self.calls += 1
        if self.calls == self.n:
            raise EmbeddingError("judge server went away")
        return self.judge.score(requests)


def test_judged_evaluation_scores_each_pair_once_and_resumes(srv, monkeypatch, tmp_path):
    monkeypatch.setenv("JINA_API_KEY", srv.api_key)
    texts = {f"d{i}": t for i, t in enumerate(DOCS + ["Melting glaciers raise sea levels worldwide.",
                                                       "Cake needs flour, eggs and sugar."])}
    queries = [Query("q1", QUERY), Query("q2", "lemon cake recipe"), Query("q3", "sea level rise")]
    lists = {"old": {"q1": ["d1", "d0", "d3"], "q2": ["d3", "d5", "d1"], "q3": ["d4", "d0", "d1"]},
             "new": {"q1": ["d0", "d2", "d4"], "q2": ["d5", "d3", "d0"], "q3": ["d4", "d2", "d0"]}}
    cache = ScoreCache(tmp_path / "judge.sqlite")
    with make_judge(f"jina-api:{V2R}", base_url=srv.base_url, options=FAST) as judge:
        with pytest.raises(EmbeddingError):
            judge_pooled(queries, lists, texts, FailsOnCall(judge, 2), k=3, cache=cache, batch_queries=1)
        assert cache.counts()["scores"] == len(pool_of([lists["old"]["q1"], lists["new"]["q1"]], 3))  # batch 1 kept
        before = srv.usage()["requests"]
        res = judge_pooled(queries, lists, texts, judge, k=3, cache=cache, batch_queries=1,
                           side_models={"old": ["jina-embeddings-v2-base-en"], "new": ["jina-embeddings-v3"]})
        assert srv.usage()["requests"] - before == 2  # only q2 and q3 were sent
        r = res.result
        assert r.n_cached == 5 and r.n_scored == r.n_pairs - 5 and r.n_pairs == 5 + 4 + 4
        again = judge_pooled(queries, lists, texts, judge, k=3, cache=cache)
        assert again.result.n_scored == 0 and again.scores == res.scores and srv.usage()["requests"] - before == 2
    # the scores are the stand-in's, pair by pair, and the grades follow the thresholds
    exp = expected_scores(QUERY, [texts[d] for d in res.pools["q1"]])
    assert np.allclose([res.scores["q1"][d] for d in res.pools["q1"]], exp, atol=1e-5)
    assert res.grades["q1"] == {d: judge.grade(s) for d, s in res.scores["q1"].items()}
    assert set(r.stats) == {"ndcg@10", "mrr@10"} and r.stats["ndcg@10"].n == 3
    assert any("jina" in w for w in r.warnings) and r.judge == f"jina-api:{V2R}"
    assert json.dumps(r.as_dict()) and QUERY not in json.dumps(r.as_dict())


def test_judged_evaluation_hostile_inputs(srv, monkeypatch):
    monkeypatch.setenv("JINA_API_KEY", srv.api_key)
    lists = {"old": {"q": ["a"]}, "new": {"q": ["b"]}}
    with make_judge(f"jina-api:{V2R}", base_url=srv.base_url, options=FAST) as judge:
        with pytest.raises(InputError, match="no queries"):
            judge_pooled([], lists, {}, judge)
        with pytest.raises(InputError, match="document 'b'.*no text"):
            judge_pooled([Query("q", "x")], lists, {"a": "text a"}, judge)
        with pytest.raises(InputError, match="no results for query 'z'"):
            judge_pooled([Query("z", "x")], lists, {"a": "A", "b": "B"}, judge)
        one = judge_pooled([Query("q", "glaciers")], lists, {"a": DOCS[0], "b": DOCS[1]}, judge)
        assert one.result.n_queries == 1 and one.result.stats["ndcg@10"].n == 1
