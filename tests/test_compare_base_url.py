"""``compare`` sends every API request, of the old side and of the new side, to the base URL it
was given (``--base-url`` or ``$JINA_API_BASE_URL``), never elsewhere; and the report says which
stand-in served each side.

A real loopback proxy (``tests/support/proxy.py``) forwards to the bundled server and is also
the child process's HTTP(S) proxy, so a request for any other address is caught and recorded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reliability_util import needs_static
from support.proxy import LoopbackProxy

REPO = Path(__file__).resolve().parents[1]
V2, V3 = "jina-embeddings-v2-base-en", "jina-embeddings-v3"
TEXTS = ["solar panels turn sunlight into power", "the heart pumps blood", "volcanoes erupt lava",
         "bees pollinate flowers", "interest rates and mortgages", "black holes bend light",
         "vaccines train immunity", "glaciers carve valleys", "neural networks learn", "coffee has caffeine"]


def _compare(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("JINA_API_BASE_URL",)}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "migrate", "compare", *args], capture_output=True, text=True,
                          env=full, cwd=REPO, timeout=600)


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    """A fast bundled server, a v3 migration made through it, and an old v2 index embedded by it."""
    from migrate.embed.registry import get_embedder
    from migrate.rehearsal.run import run_server
    from reliability_util import cli_inproc

    d = tmp_path_factory.mktemp("compare-base-url")
    docs = [{"id": f"d{i}", "text": f"{t}, part {j}"} for i, t in enumerate(TEXTS) for j in range(3)]
    for n, x in enumerate(docs):
        x["id"] = f"doc{n}"
    (d / "docs.jsonl").write_text("".join(json.dumps(x) + "\n" for x in docs))
    (d / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": t.split()[0] + " " + t.split()[-1]})
                                             + "\n" for i, t in enumerate(TEXTS)))
    with run_server(fast=True) as server:
        old_key = os.environ.get("JINA_API_KEY")
        os.environ["JINA_API_KEY"] = server.api_key
        try:
            rc, _, err = cli_inproc("run", "--docs", d / "docs.jsonl", "--out", d / "out", "--model", f"jina-api:{V3}",
                                    "--task", "retrieval.passage", "--base-url", server.base_url, "--yes")
            assert rc == 0, err
            emb = get_embedder(f"jina-api:{V2}", base_url=server.base_url)
            vecs = emb.embed([x["text"] for x in docs], task="none").vectors
            emb.close()
        finally:
            os.environ.pop("JINA_API_KEY", None)
            if old_key is not None:
                os.environ["JINA_API_KEY"] = old_key
        pq.write_table(pa.table({"id": [x["id"] for x in docs],
                                 "vector": pa.array(list(vecs), type=pa.list_(pa.float32(), vecs.shape[1]))}),
                       d / "old.parquet")
        yield d, server


def _check(proxy: LoopbackProxy, proc: subprocess.CompletedProcess, report: Path) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proxy.elsewhere == [], f"requests left for another address: {proxy.elsewhere}"
    models = {s.model for s in proxy.forwarded if s.path.startswith("/v1/embeddings")}
    assert {V2, V3} <= models, f"both sides must go through the given URL, saw {models}"
    assert all(s.had_key for s in proxy.forwarded if s.path.startswith("/v1/embeddings"))
    rep = json.loads(report.read_text())
    return rep


@needs_static
def test_base_url_flag_carries_both_sides(rehearsal):
    d, server = rehearsal
    with LoopbackProxy(server.base_url) as proxy:
        proc = _compare(["--new", str(d / "out"), "--old-index", str(d / "old.parquet"), "--old-model", f"jina-api:{V2}",
                         "--queries", str(d / "queries.jsonl"), "--docs", str(d / "docs.jsonl"), "-k", "5",
                         "--base-url", proxy.base_url, "--report-dir", str(d / "rep-flag"), "--no-github-summary"],
                        {**proxy.env(), "JINA_API_KEY": server.api_key})
        rep = _check(proxy, proc, d / "rep-flag" / "report.json")
    assert rep["config"]["k"] == 5
    new, old = rep["sides"]["new"]["description"], rep["sides"]["old"]["description"]
    # the fast server answers every name with its 'static' stand-in, and says so in a header
    assert new["stand_in"] == "static" and old["stand_in"] == "static"
    assert new["docs"]["stand_in"] == "static" and new["docs"]["model"] == V3
    assert "stand-in 'static'" in new["identity"] and V3 in new["identity"]
    assert new["dimensions"] == rep["sides"]["new"]["dim"] > 0  # measured, not 0
    html = (d / "rep-flag" / "report.html").read_text()
    assert server.api_key not in html and "api_key" not in html


@needs_static
def test_jina_api_base_url_environment_carries_both_sides(rehearsal):
    d, server = rehearsal
    with LoopbackProxy(server.base_url) as proxy:
        proc = _compare(["--new", str(d / "out"), "--old", str(d / "old.parquet"), "--old-model", f"jina-api:{V2}",
                         "--queries", str(d / "queries.jsonl"), "--corpus", str(d / "docs.jsonl"),
                         "--report-dir", str(d / "rep-env"), "--no-github-summary"],
                        {**proxy.env(), "JINA_API_KEY": server.api_key, "JINA_API_BASE_URL": proxy.base_url})
        _check(proxy, proc, d / "rep-env" / "report.json")


@needs_static
def test_an_old_side_embedded_from_documents_uses_the_base_url_too(rehearsal):
    d, server = rehearsal
    with LoopbackProxy(server.base_url) as proxy:
        proc = _compare(["--new", str(d / "out"), "--old-model", f"jina-api:{V2}", "--docs", str(d / "docs.jsonl"),
                         "--queries", str(d / "queries.jsonl"), "--base-url", proxy.base_url,
                         "--cache", str(d / "cache"), "--report-dir", str(d / "rep-docs"), "--no-github-summary"],
                        {**proxy.env(), "JINA_API_KEY": server.api_key})
        rep = _check(proxy, proc, d / "rep-docs" / "report.json")
    assert rep["sides"]["old"]["description"]["source"].startswith("corpus embedded now")


@needs_static
@pytest.mark.parametrize("how", ["flag", "environment"])
def test_search_sends_both_sides_to_the_given_base_url_with_the_key_file(rehearsal, tmp_path, how):
    """`search` used to send the old side's query, with the key, to the public endpoint: never again."""
    d, server = rehearsal
    key_file = tmp_path / "key.txt"
    key_file.write_text(server.api_key + "\n")
    with LoopbackProxy(server.base_url) as proxy:
        args = ["search", "solar power", "--out", str(d / "out"), "--old-index", str(d / "old.parquet"),
                "--old-model", f"jina-api:{V2}", "--api-key-file", str(key_file), "--json", "-k", "3"]
        env = {k: v for k, v in os.environ.items() if k not in ("JINA_API_BASE_URL", "JINA_API_KEY")}
        env |= proxy.env()
        if how == "flag":
            args += ["--base-url", proxy.base_url]
        else:
            env["JINA_API_BASE_URL"] = proxy.base_url
        proc = subprocess.run([sys.executable, "-m", "migrate", *args], capture_output=True, text=True, env=env,
                              cwd=REPO, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proxy.elsewhere == [], f"requests left for another address: {proxy.elsewhere}"
        models = {s.model for s in proxy.forwarded if s.path.startswith("/v1/embeddings")}
        assert {V2, V3} <= models, models
    result = json.loads(proc.stdout)
    assert len(result["new"]) == 3 and len(result["old"]) == 3
    assert server.api_key not in proc.stdout + proc.stderr
    assert "resume" not in proc.stderr
