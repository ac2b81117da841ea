"""The real ``jina-api`` client against the real local server over loopback.

Happy path for each field combination, every error class, every fault type, the
mixed-fault idempotency run, rate-limit adaptation, and the key never leaking.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest

pytest.importorskip("static_model")

from migrate.embed.jina_api import JinaAPIEmbedder  # noqa: E402
from migrate.embed.registry import get_embedder  # noqa: E402
from migrate.errors import BudgetExceeded, ConfigError, EmbeddingError, InputError  # noqa: E402
from migrate.rehearsal.faults import FaultConfig  # noqa: E402
from migrate.rehearsal.limits import ServerLimits  # noqa: E402
from migrate.rehearsal.run import run_server  # noqa: E402
from migrate.embed.standins import model_dir  # noqa: E402

V3 = "jina-embeddings-v3"
ENV = "JINA_MIGRATE_TEST_KEY"
TEXTS = [f"Document {i}: a note about topic {i % 13}, with a few more words {i * 7}." for i in range(300)]


@pytest.fixture(scope="module")
def srv():
    with run_server(fast=True) as h:
        yield h


@pytest.fixture
def key(srv, monkeypatch):
    monkeypatch.setenv(ENV, srv.api_key)
    return srv.api_key


def client(h, **kw) -> JinaAPIEmbedder:
    kw.setdefault("tokenizer", str(model_dir("static")))  # the server's tokenizer: exact counts
    kw.setdefault("tier", "tier1")
    kw.setdefault("timeout", 10.0)
    kw.setdefault("backoff_max_s", 0.5)
    return JinaAPIEmbedder(V3, base_url=h.base_url, api_key_env=ENV, **kw)


def raw(h, body):
    r = httpx.post(h.base_url + "/v1/embeddings", json=body, headers={"Authorization": f"Bearer {h.api_key}"}, timeout=60)
    assert r.status_code == 200, r.text
    return np.array([d["embedding"] for d in sorted(r.json()["data"], key=lambda d: d["index"])], np.float32), r.json()


# ----------------------------------------------------------------------------- happy paths


@pytest.mark.parametrize("etype", ["float", "base64", "binary", "ubinary"])
@pytest.mark.parametrize("dims", [None, 32, 256])
@pytest.mark.parametrize("late", [False, True])
def test_field_combinations(srv, key, etype, dims, late):
    texts = TEXTS[:40] if not late else TEXTS[:6]
    with client(srv, dimensions=dims, embedding_type=etype, max_request_tokens=200) as e:
        res = e.embed(texts, task="retrieval.passage", late_chunking=late)
    body = {"model": V3, "input": texts, "task": "retrieval.passage", "normalized": True, "late_chunking": late}
    if dims:
        body["dimensions"] = dims
    ref, j = raw(srv, body)
    d = dims or 1024  # no `dimensions`: v3's default width, as the API answers
    assert res.vectors.shape == (len(texts), d) and res.vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(res.vectors, axis=1), 1.0, atol=1e-5)
    if etype in ("float", "base64"):
        assert np.array_equal(res.vectors, ref)
    else:  # sign bits, scaled to unit length
        assert np.array_equal(res.vectors > 0, ref > 0)
    assert res.tokens.shape == (len(texts),) and int(res.tokens.sum()) == res.total_tokens
    if late:
        assert res.total_tokens == j["usage"]["total_tokens"]  # one request, one bill


def test_total_tokens_is_the_servers_bill(srv, key):
    before = srv.usage()["total_tokens"]
    with client(srv, max_request_tokens=100) as e:
        res = e.embed(TEXTS[:50], task="retrieval.passage")
        assert e.stats.requests > 1
    assert res.total_tokens == srv.usage()["total_tokens"] - before


def test_normalized_false_and_task_none(srv, key):
    with client(srv, normalized=False) as e:
        none = e.embed(TEXTS[:5], task="none")
        tm = e.embed(TEXTS[:5], task="text-matching")
    ref_none, _ = raw(srv, {"model": V3, "input": TEXTS[:5], "normalized": False})
    ref_tm, _ = raw(srv, {"model": V3, "input": TEXTS[:5], "normalized": False, "task": "text-matching"})
    assert np.array_equal(none.vectors, ref_none) and np.array_equal(tm.vectors, ref_tm)
    assert not np.allclose(none.vectors, tm.vectors)  # task really sent (e5 prompt), and really omitted for none
    assert not np.allclose(np.linalg.norm(none.vectors, axis=1), 1.0)


def test_big_shard_is_split_and_reassembled_in_order(srv, key):
    texts = [f"t{i} " + "w " * (i % 50) for i in range(2500)]
    with client(srv, max_request_tokens=10**7) as e:
        res = e.embed(texts, task="retrieval.passage")
        assert e.stats.requests == 2  # 2048 inputs, then 452: the count limit alone splits it
    ref = np.concatenate([raw(srv, {"model": V3, "input": texts[i : i + 2000], "task": "retrieval.passage",
                                    "normalized": True})[0] for i in range(0, 2500, 2000)])
    assert np.array_equal(res.vectors, ref)


def test_truncate_flag(srv, key):
    long_text = "word " * 9000
    with client(srv, truncate=True) as e:
        assert e.embed(["short", long_text], task="retrieval.passage").vectors.shape == (2, 1024)
    with client(srv) as e, pytest.raises(InputError, match="exceed 8192 tokens"):
        e.embed(["short", long_text], task="retrieval.passage")  # exact tokenizer: refused before sending
    with client(srv, tokenizer="heuristic") as e:  # no tokenizer: the server has to refuse it
        with pytest.raises(EmbeddingError, match="HTTP 400.*Single text cannot exceed 8192"):
            e.embed(["short", long_text], task="retrieval.passage")


def test_probe_and_info_mark_the_stand_in(srv, key):
    with client(srv, dimensions=32) as e:
        p = e.probe(task="retrieval.passage")
        info = e.info().as_dict()
    assert p.dimensions == 32 and p.stand_in == "static" and p.tokens > 0
    assert info["stand_in"] == "static" and info["paid"] is False and info["dimensions"] == 32
    assert info["api_key_env"] == ENV


def test_registry_builds_the_client(srv, key):
    e = get_embedder(f"jina-api:{V3}", base_url=srv.base_url, api_key_env=ENV, tier="tier1", normalize=True)
    try:
        assert e.embed(TEXTS[:3], task="retrieval.query").vectors.shape == (3, 1024)
    finally:
        e.close()


# ----------------------------------------------------------------------------- late chunking packing


def test_late_chunking_documents_travel_whole(srv, key):
    docs = [TEXTS[0:3], TEXTS[3:8], TEXTS[8:9]]
    flat = [t for d in docs for t in d]
    with client(srv) as e:
        res = e.embed(flat, task="retrieval.passage", late_chunking=True, groups=[len(d) for d in docs])
        assert e.stats.requests == 3
    ref = np.concatenate([raw(srv, {"model": V3, "input": d, "late_chunking": True, "task": "retrieval.passage",
                                    "normalized": True})[0] for d in docs])
    assert np.array_equal(res.vectors, ref)


def test_late_chunking_document_too_long_is_reported_not_cut(srv, key):
    doc = ["word " * 3000, "word " * 3000, "word " * 3000]
    with client(srv) as e:
        with pytest.raises(InputError, match="document 0 .* 8192"):
            e.embed(doc, task="retrieval.passage", late_chunking=True)
        assert e.stats.requests == 0  # nothing was spent
    with client(srv) as e, pytest.raises(InputError, match="at most 2048"):
        e.embed(["x"] * 2049, task="retrieval.passage", late_chunking=True)


# ----------------------------------------------------------------------------- errors


def test_wrong_key_stops_with_401_and_hint(srv, monkeypatch):
    monkeypatch.setenv(ENV, "jina_wrong_key_0123456789")
    with client(srv) as e, pytest.raises(EmbeddingError) as ei:
        e.embed(TEXTS[:3], task="retrieval.passage")
    msg = str(ei.value)
    assert "HTTP 401" in msg and "Invalid API key" in msg and ENV in msg
    assert "jina_wrong_key_0123456789" not in msg
    assert e.stats.requests == 1  # not retried


def test_missing_key_is_a_config_error(srv, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    with client(srv) as e, pytest.raises(ConfigError, match=ENV):
        e.embed(TEXTS[:3], task="retrieval.passage")


@pytest.mark.parametrize("status", [402, 403])
def test_balance_errors_stop_the_run(monkeypatch, status):
    with run_server(fast=True, balance_tokens=200, balance_status=status) as h:
        monkeypatch.setenv(ENV, h.api_key)
        with client(h) as e:
            with pytest.raises(EmbeddingError, match=f"HTTP {status}.*Insufficient balance") as ei:
                e.embed(TEXTS[:100], task="retrieval.passage")
            msg = str(ei.value)
            assert "run the command again" in msg and "last finished shard" not in msg
            assert urlsplit(h.base_url).netloc in msg and h.api_key not in msg  # names the server, never the key


def test_400_and_422_are_not_retried(srv, key):
    e = JinaAPIEmbedder("jina-embeddings-v9", base_url=srv.base_url, api_key_env=ENV)
    with e, pytest.raises(EmbeddingError, match=r"HTTP 400.*not found.*check --model"):
        e.embed(TEXTS[:2], task="retrieval.passage")
    assert e.stats.requests == 1
    with pytest.raises(ConfigError, match=r"--dimensions 2000 is not possible for jina-embeddings-v3: it accepts 32..1024"):
        client(srv, dimensions=2000)  # refused before anything is sent
    custom = JinaAPIEmbedder("my-model", base_url=srv.base_url, api_key_env=ENV, dimensions=999)  # not catalogued
    with custom, pytest.raises(EmbeddingError, match=r"HTTP 400.*not found.*check --model"):
        custom.embed(TEXTS[:2], task="retrieval.passage")


def test_config_errors(srv):
    with pytest.raises(ConfigError):
        JinaAPIEmbedder(V3, embedding_type="int4")
    with pytest.raises(ConfigError):
        JinaAPIEmbedder(V3, max_tokens=512)
    with pytest.raises(ConfigError):
        JinaAPIEmbedder(V3, base_url="ftp://x")
    with pytest.raises(ConfigError), client(srv) as e:
        e.embed(["a"], task="retrieval")


def test_token_limit_stops_before_spending(srv, key):
    with client(srv, token_limit=500) as e:
        e.embed(TEXTS[:10], task="retrieval.passage")
        spent = e.stats.billed_tokens
        with pytest.raises(BudgetExceeded, match="raise --max-tokens"):
            e.embed(TEXTS[:200], task="retrieval.passage")
        assert e.stats.billed_tokens == spent


# ----------------------------------------------------------------------------- faults


@pytest.fixture(scope="module")
def clean_vectors(srv):
    _ = srv
    with run_server(fast=True) as h:
        import os

        os.environ[ENV] = h.api_key
        try:
            with client(h, max_request_tokens=300) as e:
                return e.embed(TEXTS, task="retrieval.passage").vectors
        finally:
            del os.environ[ENV]


@pytest.mark.parametrize("kind", ["p429", "p500", "p503", "drop", "slow", "truncated", "wrong_count"])
def test_each_fault_type_is_survived(monkeypatch, clean_vectors, kind):
    faults = FaultConfig(**{kind: 0.3}, slow_s=1.5, retry_after_s=0.05, seed=3)
    with run_server(fast=True, faults=faults) as h:
        monkeypatch.setenv(ENV, h.api_key)
        with client(h, max_request_tokens=300, timeout=1.0) as e:
            res = e.embed(TEXTS, task="retrieval.passage")
        injected = h.usage()["faults"]
    name = kind[1:] if kind.startswith("p") else kind
    assert injected[name] >= 1
    assert e.stats.retries + e.stats.splits >= injected[name]  # a timed-out request is sent again in halves
    assert np.array_equal(res.vectors, clean_vectors)


def test_mixed_10pct_faults_full_run_identical(monkeypatch, clean_vectors, caplog):
    caplog.set_level(logging.DEBUG)
    with run_server(fast=True, faults=FaultConfig.mixed(0.10, seed=11, slow_s=1.5)) as h:
        monkeypatch.setenv(ENV, h.api_key)
        with client(h, max_request_tokens=60, timeout=1.0) as e:
            res = e.embed(TEXTS, task="retrieval.passage")
            n_requests = e.stats.requests
        usage = h.usage()
    assert n_requests >= 80 and sum(usage["faults"].values()) >= 5
    assert res.vectors.shape == clean_vectors.shape  # every vector present, none twice
    assert np.array_equal(res.vectors, clean_vectors)  # and identical to the fault-free run
    assert n_requests == usage["requests"]
    assert h.api_key not in caplog.text


def test_gives_up_with_a_clear_error_after_max_retries(monkeypatch):
    with run_server(fast=True, faults=FaultConfig(p503=1.0)) as h:
        monkeypatch.setenv(ENV, h.api_key)
        with client(h, max_retries=2) as e, pytest.raises(EmbeddingError, match="after 3 attempts: 503") as ei:
            e.embed(TEXTS[:5], task="retrieval.passage")
    msg = str(ei.value)
    assert urlsplit(h.base_url).netloc in msg and h.api_key not in msg
    assert "resume" not in msg  # the same client serves search/compare, which have no shards


def test_key_and_shared_limiter_as_arguments(srv, monkeypatch):
    """What a Ray worker does: the key as an argument (no environment variable), one limiter shared."""
    from migrate.embed.ratelimit import AsyncRateLimiter, resolve_limits
    from migrate.secrets import Secret

    monkeypatch.delenv(ENV, raising=False)
    shared = AsyncRateLimiter(resolve_limits("tier1"))
    with client(srv, api_key=Secret(srv.api_key), limiter=shared, max_request_tokens=100) as e:
        res = e.embed(TEXTS[:30], task="retrieval.passage")
        assert e._limiter is shared and e.info().as_dict()["shared_limiter"] is True
        assert e.info().as_dict()["api_key_env"] is None  # the key came from no variable
    assert res.vectors.shape == (30, 1024)
    assert shared.stats.acquired == e.stats.requests > 1  # every request paced through the given limiter
    other = AsyncRateLimiter(resolve_limits("tier1"))
    with client(srv, api_key=srv.api_key) as e2:
        e2.use_limiter(other)
        e2.embed(TEXTS[:3], task="retrieval.passage")
    assert other.stats.acquired == 1


def test_refused_key_from_a_file_names_the_file(srv, tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    f = tmp_path / "wrong-key.txt"
    f.write_text("jina_wrong_key_in_a_file_123\n")
    with client(srv, api_key_file=f) as e, pytest.raises(EmbeddingError) as ei:
        e.embed(TEXTS[:2], task="retrieval.passage")
    msg = str(ei.value)
    assert "HTTP 401" in msg and str(f) in msg and "JINA_API_KEY" not in msg and ENV not in msg
    assert "jina_wrong_key_in_a_file_123" not in msg


# ----------------------------------------------------------------------------- rate limits


def test_client_paces_under_server_limits_without_429(monkeypatch):
    with run_server(fast=True, limits=ServerLimits(rpm=600, tpm=60_000, concurrency=4, window_s=2.0)) as h:
        monkeypatch.setenv(ENV, h.api_key)
        with client(h, rpm=600, tpm=60_000, concurrency=4) as e:
            res = e.embed(TEXTS[:200], task="retrieval.passage")
        assert res.vectors.shape == (200, 1024)
        assert h.usage()["rate_limited"] == 0


def test_client_adapts_when_it_believes_a_higher_limit(monkeypatch):
    # The client thinks it may send 10x what the server allows: 429s must slow it, not fail it.
    with run_server(fast=True, limits=ServerLimits(tpm=30_000, window_s=1.0)) as h:
        monkeypatch.setenv(ENV, h.api_key)
        with client(h, tpm=300_000, rpm=6000, concurrency=8, max_retries=20, max_request_tokens=300) as e:
            res = e.embed(TEXTS[:120], task="retrieval.passage")
            assert e._limiter is not None
            stats = e._limiter.stats
        assert res.vectors.shape == (120, 1024)
        assert h.usage()["rate_limited"] >= 1 and (stats.rate_limited + stats.header_clamps) >= 1
