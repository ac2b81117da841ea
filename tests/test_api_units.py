"""Fast checks of the pieces under the jina-api client: wire codecs, packing, the limiter."""

from __future__ import annotations

import asyncio
import base64
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrate.embed.packing import StreamPacker, pack_requests, spread_tokens
from migrate.embed.ratelimit import request_token_budget
from migrate.embed.jina_tokens import TokenEstimator
from migrate.embed.jina_wire import decode_embedding, encode_embedding, error_detail
from migrate.embed.ratelimit import TIERS, AsyncRateLimiter, RateLimits, resolve_limits
from migrate.errors import ConfigError


@pytest.mark.parametrize("dims", [1, 7, 8, 9, 64, 100])
def test_codecs_round_trip(dims):
    rng = np.random.default_rng(dims)
    v = rng.standard_normal(dims).astype(np.float32)
    assert np.array_equal(decode_embedding(encode_embedding(v, "float"), "float"), v)
    assert np.array_equal(decode_embedding(encode_embedding(v, "base64"), "base64"), v)
    for t in ("binary", "ubinary"):
        enc = encode_embedding(v, t)
        assert len(enc) == (dims + 7) // 8
        assert np.array_equal(decode_embedding(enc, t, dims), np.where(v > 0, 1.0, -1.0).astype(np.float32))
    # llama-index's documented decoder reads our `binary` (jina-spec §1.3)
    bits = np.unpackbits((np.array(encode_embedding(v, "binary")) + 128).astype(np.uint8))[:dims]
    assert np.array_equal(bits, (v > 0).astype(np.uint8))


def test_decoders_reject_garbage():
    for value, t in (("not-a-list", "float"), ([1, 2], "base64"), ("!!!", "base64"),
                     (base64.b64encode(b"abc").decode(), "base64"), ([300], "ubinary"), ([-129], "binary")):
        with pytest.raises(ValueError):
            decode_embedding(value, t, 8)


def test_error_detail_shapes():
    assert error_detail(b'{"detail": "Invalid API key"}') == "Invalid API key"
    assert error_detail(b'{"detail": [{"loc": ["body", "task"], "msg": "bad"}]}') == "body.task: bad"
    assert error_detail(b'{"error": {"message": "Invalid input"}}') == "Invalid input"
    assert error_detail(b"<html>502 Bad Gateway</html>") == "<html>502 Bad Gateway</html>"


@given(st.lists(st.integers(1, 5000), max_size=300), st.integers(1, 50), st.integers(1, 20000))
@settings(max_examples=200, deadline=None)
def test_packing_keeps_order_and_limits(counts, max_inputs, max_tokens):
    batches = pack_requests(counts, max_inputs=max_inputs, max_tokens=max_tokens)
    assert [i for b in batches for i in range(b.start, b.end)] == list(range(len(counts)))
    for b in batches:
        assert b.end - b.start <= max_inputs
        assert b.tokens == sum(counts[b.start : b.end])
        assert b.tokens <= max_tokens or b.end - b.start == 1
    # the streaming packer, fed in arbitrary pieces, packs identically
    p = StreamPacker(max_inputs, max_tokens)
    streamed = []
    for c in range(0, len(counts), 7):
        streamed += p.feed(counts[c : c + 7])
    streamed += p.close()
    assert streamed == batches


@given(st.lists(st.integers(0, 1000), min_size=1, max_size=50), st.integers(0, 100000))
def test_spread_tokens_adds_up(estimates, billed):
    out = spread_tokens(estimates, billed)
    assert sum(out) == billed and len(out) == len(estimates) and min(out) >= 0


def test_heuristic_estimate_is_high_for_english():
    est = TokenEstimator("some-model", "heuristic")
    assert not est.exact
    text = "The quick brown fox jumps over the lazy dog."  # 12 tokens for a BERT tokenizer
    assert est.count([text])[0] >= 12


def test_request_budget_follows_the_limits():
    assert request_token_budget(TIERS["conservative"]) == 2000  # 2 x TPM/RPM: RPM never binds
    assert request_token_budget(RateLimits(rpm=3000, tpm=600_000, concurrency=8)) == 2500  # 0.25 s of TPM
    assert request_token_budget(TIERS["tier2"]) == 131_072


def test_resolve_limits():
    assert resolve_limits() == TIERS["conservative"]
    assert resolve_limits("tier1", tpm=123) == RateLimits(rpm=500, tpm=123, concurrency=50)
    with pytest.raises(ConfigError):
        resolve_limits("gold")
    with pytest.raises(ConfigError):
        RateLimits(rpm=0, tpm=1, concurrency=1)


def test_limiter_paces_tokens_per_minute(monkeypatch):
    """12 x 100 tokens at 1000 tokens/s, 100 of them free at the start: 1.1 s of waiting.

    In real time the limiter can never be faster than that (a slow machine only adds); that it
    waits no longer is checked on a clock that moves only when the limiter sleeps, so scheduler
    delays on a loaded machine cannot blur the upper bound.
    """
    limits = RateLimits(rpm=100_000, tpm=60_000, concurrency=4)

    async def go(lim: AsyncRateLimiter, clock) -> float:
        t0 = clock()
        for _ in range(12):
            p = await lim.acquire(100)
            p.settle(100)
            p.release()
        return clock() - t0

    assert asyncio.run(go(AsyncRateLimiter(limits, headroom=1.0, burst_s=0.1), time.monotonic)) >= 1.09
    now = [0.0]
    real_sleep = asyncio.sleep

    async def sleep(seconds: float, *args):
        now[0] += max(seconds, 1e-9)  # a float-sized remainder must still move the clock
        await real_sleep(0)

    with monkeypatch.context() as m:
        m.setattr(asyncio, "sleep", sleep)
        clock = lambda: now[0]  # noqa: E731
        elapsed = asyncio.run(go(AsyncRateLimiter(limits, headroom=1.0, burst_s=0.1, clock=clock), clock))
    assert elapsed == pytest.approx(1.1, abs=1e-6)


def test_limiter_settles_refunds_and_caps_concurrency():
    async def go() -> tuple[float, int]:
        lim = AsyncRateLimiter(RateLimits(rpm=100_000, tpm=60_000, concurrency=2), headroom=1.0, burst_s=1.0)
        p1 = await lim.acquire(900)
        p1.settle(100)  # estimate was high: 800 tokens come back
        level = lim.tokens.level
        p2 = await lim.acquire(1)
        blocked = asyncio.ensure_future(lim.acquire(1))
        await asyncio.sleep(0.05)
        assert not blocked.done()  # 2 in flight
        p1.release()
        p3 = await asyncio.wait_for(blocked, 30)
        p2.release()
        p3.release()
        return level, lim.stats.acquired

    level, n = asyncio.run(go())
    assert level > 850 and n == 3


def test_limiter_429_exhaustion_vs_transient():
    async def go() -> AsyncRateLimiter:
        lim = AsyncRateLimiter(RateLimits(rpm=600, tpm=60_000, concurrency=2))
        assert not lim.rate_limited(1.0, remaining_requests=10, remaining_tokens=5000, needed_tokens=100)
        assert lim.pause_until == 0.0 and lim.rate_factor == 1.0
        t0 = time.monotonic()
        assert lim.rate_limited(0.3, remaining_requests=10, remaining_tokens=50, needed_tokens=100)
        p = await lim.acquire(1)
        p.release()
        assert time.monotonic() - t0 >= 0.3  # everyone waited for Retry-After
        assert lim.rate_factor == pytest.approx(0.9)
        lim.succeeded()
        assert lim.rate_factor == pytest.approx(0.91)
        return lim

    lim = asyncio.run(go())
    assert lim.stats.transient_429 == 1 and lim.stats.rate_limited == 1


def test_decode_response_checks_every_defect():
    from migrate.embed.api_response import decode_response
    from migrate.embed.api_transport import Retryable
    from migrate.errors import EmbeddingError

    def body(vectors, total=7, index=None):
        return {"data": [{"index": i if index is None else index, "embedding": v} for i, v in enumerate(vectors)],
                "usage": {"total_tokens": total}}

    kw = dict(embedding_type="float", known_dims=None, asked_dims=None, normalized=True, model="m",
              server="127.0.0.1:9", scrub=lambda s: s)
    mat, used = decode_response(body([[0.6, 0.8], [1.0, 0.0]]), b"", 2, **kw)
    assert mat.shape == (2, 2) and used == 7
    for bad, n in ((body([[0.6, 0.8]]), 2), (body([[0.6, 0.8], [1.0, 0.0]], index=0), 2),
                   (body([[0.6, 0.8]], total=True), 1), (body([[3.0, 4.0]]), 1), (body([[float("nan"), 1.0]]), 1),
                   ({"detail": "x"}, 1)):
        with pytest.raises(Retryable):
            decode_response(bad, b"", n, **kw)
    with pytest.raises(EmbeddingError, match="embeddings server 127.0.0.1:9: m returned 2 dimensions, 4 asked"):
        decode_response(body([[0.6, 0.8]]), b"", 1, **(kw | {"asked_dims": 4}))


def test_server_label_and_redaction():
    from migrate.embed.api_transport import redact_url, server_label

    assert server_label("https://api.jina.ai") == "api.jina.ai"
    assert server_label("http://user:pw@127.0.0.1:8080/x") == "127.0.0.1:8080"
    assert server_label("http://[::1]:9000") == "[::1]:9000"
    assert "pw" not in redact_url("http://user:pw@host:1/v1")
