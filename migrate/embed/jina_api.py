"""``jina-api:MODEL``: embeddings through the Jina Embeddings API (or a compatible server).

What: ``JinaAPIEmbedder`` meets the ``Embedder`` contract over HTTP. One ``embed`` call
(one shard, possibly thousands of texts) is split into requests of at most 2048 inputs
and a token budget (``jina_tokens.pack_requests``), sent concurrently with asyncio +
httpx under an RPM/TPM/concurrency limiter (``ratelimit``), retried on transient
failures, validated, and reassembled in input order.

Why each rule (jina-spec §1):

* ``task`` is always sent, except when the caller chose ``task="none"``; the API's
  default task is [UNCONFIRMED], so relying on it would make vectors depend on it.
* With ``late_chunking`` the API embeds *all inputs of a request as one text*, so one
  request must hold exactly one document's chunks and at most 8192 tokens. A document
  that cannot fit raises ``InputError`` before anything is spent; it is never cut.
* Retries (tenacity): 429, 5xx, timeouts, connection errors, and responses that fail
  validation, with exponential backoff and jitter, honouring ``retry-after-ms`` /
  ``Retry-After``. 400/401/402/403/404/422 stop the run with the server's ``detail``
  and what to do.
* Validation: one embedding per input, every index exactly once, the asked dimension,
  finite values, unit norm when ``normalized``. A bad response is retried, then an
  error; it never becomes a wrong vector.
* The API key is read from an environment variable when first needed, sent only in the
  ``Authorization`` header, and scrubbed from every message; ``info()`` names the
  variable, never the value.

``EmbedResult.tokens`` per input: the request's billed ``usage.total_tokens`` spread
over its inputs in proportion to the estimated counts (the API reports only a total);
``total_tokens`` is the exact billed sum of the successful responses.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import threading
import warnings
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import numpy as np
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

from migrate.embed.base import TASK_NONE, V3_TASKS, EmbedderInfo, EmbedResult
from migrate.embed.jina_tokens import Batch, TokenEstimator, pack_requests, spread_tokens
from migrate.embed.jina_wire import (
    BINARY_TYPES,
    DEFAULT_BASE_URL,
    EMBEDDING_TYPES,
    ENDPOINT,
    MAX_INPUTS_PER_REQUEST,
    MAX_LATE_CHUNKING_TOKENS,
    MAX_TOKENS_PER_INPUT,
    STAND_IN_HEADER,
    decode_embedding,
    error_detail,
    packed_length,
)
from migrate.embed.ratelimit import AsyncRateLimiter, Permit, RateLimits, resolve_limits
from migrate.embed.registry import register
from migrate.errors import BudgetExceeded, ConfigError, EmbeddingError, InputError

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_API_KEY_ENV = "JINA_API_KEY"
PROBE_TEXT = "jina-migrate probe"

#: What to do after a non-retryable status (the server's own detail comes first).
_FATAL_HINTS = {
    400: "the request was rejected as invalid; check --model, and --truncate for texts over 8192 tokens",
    401: "the API key was refused: check the key in ${env} (or choose another variable with --api-key-env)",
    402: "the key's balance is used up: top it up or use another key, then run again to resume",
    403: "the key may not do this or its balance is used up: check the key, then run again to resume",
    404: "the endpoint was not found: check --base-url (it should not end in /v1/embeddings)",
    422: "a request field was rejected: check --dimensions, --embedding-type and --task",
}


class _Retryable(Exception):
    """A failure worth retrying; ``retry_after`` (seconds) if the server named one."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        return urlunsplit((parts.scheme, "***@" + host, parts.path, parts.query, parts.fragment))
    return url


def _header_int(headers: httpx.Headers, name: str) -> int | None:
    v = headers.get(name)
    try:
        return int(float(v)) if v is not None else None
    except ValueError:
        return None


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds form)."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    ra = headers.get("retry-after")
    if ra is not None:
        try:
            return max(0.0, float(ra))
        except ValueError:
            return None  # HTTP-date form: fall back to backoff
    return None


#: Texts counted per step when a big call is streamed into requests.
STREAM_CHUNK = 512


class _StreamPacker:
    """``pack_requests`` fed incrementally: yields each request as soon as it is full."""

    def __init__(self, max_inputs: int, max_tokens: int) -> None:
        self.max_inputs = max_inputs
        self.max_tokens = max_tokens
        self.pos = 0
        self.start = 0
        self.acc = 0

    def feed(self, counts: Sequence[int]) -> list[Batch]:
        out = []
        for n in counts:
            i = self.pos
            if i > self.start and (i - self.start >= self.max_inputs or self.acc + n > self.max_tokens):
                out.append(Batch(self.start, i, self.acc))
                self.start, self.acc = i, 0
            self.acc += n
            self.pos += 1
        return out

    def close(self) -> list[Batch]:
        return [Batch(self.start, self.pos, self.acc)] if self.pos > self.start else []


def request_token_budget(limits: RateLimits) -> int:
    """Default tokens per request: a quarter second of the TPM budget, so a request is
    always much smaller than the server's bucket (then arrival jitter cannot cause 429s
    while the long-run pace sits at the limit), but at least 2x TPM/RPM so the RPM limit
    is never the one that binds, and at most 131,072."""
    quarter_second = limits.tpm / 60.0 * 0.25
    rpm_floor = 2.0 * limits.tpm / limits.rpm
    return int(min(131_072, max(512, quarter_second, rpm_floor)))


@dataclass
class ProbeResult:
    """What the one-request probe learned."""

    model: str
    dimensions: int
    tokens: int
    stand_in: str | None


@dataclass
class ClientStats:
    """Counters for reports and benchmarks (no secrets)."""

    requests: int = 0
    retries: int = 0
    billed_tokens: int = 0
    failures: dict[str, int] = field(default_factory=dict)

    def failed(self, kind: str) -> None:
        self.failures[kind] = self.failures.get(kind, 0) + 1


class _LoopThread:
    """A private event loop in a daemon thread, so sync callers can use async I/O."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="jina-api-client", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result()
        except BaseException:
            fut.cancel()
            raise

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)


_KNOWN_OPTIONS = {
    "base_url", "api_key_env", "api_key_file", "dimensions", "embedding_type", "normalized", "normalize", "truncate",
    "tier", "rpm", "tpm", "concurrency", "max_retries", "timeout", "max_request_tokens", "max_inputs", "tokenizer",
    "max_tokens", "token_limit", "headroom", "backoff_max_s",
}


class JinaAPIEmbedder:
    """Embedder over the Jina Embeddings API (see module docstring)."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key_env: str = DEFAULT_API_KEY_ENV,
        api_key_file: str | os.PathLike[str] | None = None,
        dimensions: int | None = None,
        embedding_type: str = "float",
        normalized: bool = True,
        truncate: bool = False,
        tier: str | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        concurrency: int | None = None,
        max_retries: int = 8,
        timeout: float = 60.0,
        max_request_tokens: int | None = None,
        max_inputs: int = MAX_INPUTS_PER_REQUEST,
        tokenizer: str | None = None,
        max_tokens: int | None = None,
        token_limit: int | None = None,
        headroom: float = 0.98,
        backoff_max_s: float = 30.0,
    ) -> None:
        if not model:
            raise ConfigError("jina-api needs a model name", hint="e.g. jina-api:jina-embeddings-v3")
        if embedding_type not in EMBEDDING_TYPES:
            raise ConfigError(f"unknown embedding_type {embedding_type!r}", hint=f"choose one of {', '.join(EMBEDDING_TYPES)}")
        if dimensions is not None and int(dimensions) < 1:
            raise ConfigError(f"dimensions must be positive, got {dimensions}")
        if not 1 <= int(max_inputs) <= MAX_INPUTS_PER_REQUEST:
            raise ConfigError(f"max_inputs must be between 1 and {MAX_INPUTS_PER_REQUEST}, got {max_inputs}")
        if max_tokens is not None and int(max_tokens) < MAX_TOKENS_PER_INPUT:
            raise ConfigError(
                f"max_tokens={max_tokens}: the Jina API always reads up to {MAX_TOKENS_PER_INPUT} tokens per text",
                hint="drop --max-tokens for jina-api (use --truncate to let the API cut longer texts)",
            )
        if max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {max_retries}")
        self.model = model
        self.base_url = (base_url or os.environ.get("JINA_API_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        if self.base_url.endswith(ENDPOINT):
            self.base_url = self.base_url[: -len(ENDPOINT)]
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base URL {_redact_url(self.base_url)!r} must start with http:// or https://")
        self.api_key_env = api_key_env or DEFAULT_API_KEY_ENV
        self.api_key_file = api_key_file
        self.dimensions = int(dimensions) if dimensions is not None else None
        self.embedding_type = embedding_type
        self.normalized = bool(normalized)
        self.truncate = bool(truncate)
        self.limits: RateLimits = resolve_limits(tier, rpm=rpm, tpm=tpm, concurrency=concurrency)
        self.max_retries = int(max_retries)
        self.timeout = float(timeout)
        self.max_inputs = int(max_inputs)
        self.max_request_tokens = int(max_request_tokens or request_token_budget(self.limits))
        self.token_limit = token_limit
        self.headroom = headroom
        self.backoff_max_s = backoff_max_s
        self.estimator = TokenEstimator(model, tokenizer)
        self.stats = ClientStats()
        self.stand_in: str | None = None
        self._dims: int | None = self.dimensions
        self._calib = 1.0
        self._key: str | None = None
        self._loop: _LoopThread | None = None
        self._client: httpx.AsyncClient | None = None
        self._limiter: AsyncRateLimiter | None = None

    # ----------------------------------------------------------------- contract

    def info(self) -> EmbedderInfo:
        return EmbedderInfo(
            backend="jina-api",
            model=self.model,
            dimensions=self._dims or 0,
            normalized=self.normalized,
            max_tokens=MAX_TOKENS_PER_INPUT,
            prefixes={},  # the API applies task instructions server-side
            stand_in=self.stand_in,
            extra={
                "base_url": _redact_url(self.base_url),
                "api_key_env": self.api_key_env if self.api_key_file is None else None,
                "api_key_file": str(self.api_key_file) if self.api_key_file is not None else None,
                "embedding_type": self.embedding_type,
                "truncate": self.truncate,
                "requested_dimensions": self.dimensions,
                "rate_limits": {"rpm": self.limits.rpm, "tpm": self.limits.tpm, "concurrency": self.limits.concurrency},
                "token_estimate": self.estimator.source,
                "paid": self.paid,
            },
        )

    @property
    def paid(self) -> bool:
        """True unless the server is a known stand-in or on this machine."""
        host = (urlsplit(self.base_url).hostname or "").lower()
        return self.stand_in is None and host not in ("localhost", "127.0.0.1", "::1")

    def count_tokens(self, texts: Sequence[str], *, task: str) -> list[int]:
        return self.estimator.count(texts)

    def embed(
        self,
        texts: Sequence[str],
        *,
        task: str,
        late_chunking: bool = False,
        groups: Sequence[int] | None = None,
    ) -> EmbedResult:
        """Vectors for ``texts`` in order. With ``late_chunking``, ``texts`` are the chunks
        of one document, or of several consecutive documents whose chunk counts are
        ``groups`` (each document then travels in a request of its own)."""
        texts = list(texts)
        if not texts:
            return EmbedResult(np.zeros((0, self._dims or 0), np.float32), np.zeros(0, np.int64), 0)
        self._check_task(task)
        return self._run(self._embed_async(texts, task, late_chunking, groups))

    def probe(self, *, task: str = "retrieval.passage") -> ProbeResult:
        """One tiny request: checks key, model, dimensions; learns the stand-in marker."""
        self._check_task(task)
        res = self._run(self._embed_async([PROBE_TEXT], task, False, None))
        dims = int(res.vectors.shape[1])
        if self.dimensions is not None and dims != self.dimensions:
            raise EmbeddingError(f"probe: {self.model} returned {dims} dimensions, {self.dimensions} asked")
        return ProbeResult(self.model, dims, int(res.total_tokens), self.stand_in)

    def close(self) -> None:
        if self._loop is not None:
            if self._client is not None:
                try:
                    self._loop.run(self._client.aclose())
                except Exception:  # noqa: BLE001 - closing is best effort
                    pass
            self._loop.stop()
        self._loop = None
        self._client = None
        self._limiter = None

    def __enter__(self) -> JinaAPIEmbedder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:  # never shows the key
        return f"JinaAPIEmbedder(model={self.model!r}, base_url={_redact_url(self.base_url)!r})"

    # ----------------------------------------------------------------- helpers

    def _check_task(self, task: str) -> None:
        if task != TASK_NONE and task not in V3_TASKS:
            raise ConfigError(f"unknown task {task!r}", hint=f"choose one of {', '.join(V3_TASKS)} or {TASK_NONE}")

    def _api_key(self) -> str:
        if self._key is None:
            from migrate.secrets import read_api_key

            key = read_api_key(self.api_key_env, self.api_key_file, required=True)
            assert key is not None
            self._key = key
        return self._key

    def _scrub(self, text: str) -> str:
        from migrate.secrets import redact

        if self._key and self._key in text:
            text = text.replace(self._key, "[REDACTED]")
        return redact(text)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            self._loop = _LoopThread()
        return self._loop.run(coro)

    def _ensure_client(self) -> tuple[httpx.AsyncClient, AsyncRateLimiter]:
        if self._client is None:
            conns = min(1000, self.limits.concurrency + 4)
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout, connect=min(10.0, self.timeout)),
                limits=httpx.Limits(max_connections=conns, max_keepalive_connections=conns),
                headers={
                    "Authorization": f"Bearer {self._api_key()}",
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                    "User-Agent": "jina-migrate",
                },
            )
        if self._limiter is None:
            self._limiter = AsyncRateLimiter(self.limits, headroom=self.headroom)
        return self._client, self._limiter

    # ----------------------------------------------------------------- planning

    def _plan(self, texts: list[str], late_chunking: bool, groups: Sequence[int] | None) -> tuple[list[Batch], list[int]]:
        est = self.estimator.count(texts)
        if late_chunking:
            sizes = list(groups) if groups is not None else [len(texts)]
            if sum(sizes) != len(texts) or any(s <= 0 for s in sizes):
                raise ConfigError(f"late-chunking groups {sizes[:5]}... do not add up to the {len(texts)} texts")
            batches, start = [], 0
            for d, n in enumerate(sizes):
                chunk = texts[start : start + n]
                if n > MAX_INPUTS_PER_REQUEST:
                    raise InputError(
                        f"late chunking: document {d} has {n} chunks, the API takes at most {MAX_INPUTS_PER_REQUEST} per request",
                        hint="use bigger chunks or turn late chunking off for this index",
                    )
                joined = self.estimator.count_joined(chunk)
                if joined > MAX_LATE_CHUNKING_TOKENS:
                    kind = "has" if self.estimator.exact else "is estimated at"
                    raise InputError(
                        f"late chunking: document {d} (texts {start}..{start + n - 1}) {kind} {joined} tokens; "
                        f"one late-chunking request holds at most {MAX_LATE_CHUNKING_TOKENS}",
                        hint="split the document, or turn late chunking off; it is never cut silently",
                    )
                batches.append(Batch(start, start + n, joined))
                start += n
            return batches, est
        if self.estimator.exact and not self.truncate:
            too_long = [i for i, n in enumerate(est) if n > MAX_TOKENS_PER_INPUT]
            if too_long:
                raise InputError(
                    f"{len(too_long)} text(s) exceed {MAX_TOKENS_PER_INPUT} tokens (first: text {too_long[0]}, "
                    f"{est[too_long[0]]} tokens)",
                    hint="pass --truncate to let the API cut them, or split them",
                )
        return pack_requests(est, max_inputs=self.max_inputs, max_tokens=self.max_request_tokens), est

    def _precheck_long(self, texts: list[str]) -> None:
        """Refuse texts over the per-input limit before anything is sent. A text has at
        most one token per character plus its special tokens, so only texts longer than
        the limit in characters need counting."""
        if not self.estimator.exact or self.truncate:
            return
        idx = [i for i, t in enumerate(texts) if len(t) + 4 > MAX_TOKENS_PER_INPUT]
        if not idx:
            return
        counts = self.estimator.count([texts[i] for i in idx])
        too_long = [(i, n) for i, n in zip(idx, counts) if n > MAX_TOKENS_PER_INPUT]
        if too_long:
            raise InputError(
                f"{len(too_long)} text(s) exceed {MAX_TOKENS_PER_INPUT} tokens (first: text {too_long[0][0]}, "
                f"{too_long[0][1]} tokens)",
                hint="pass --truncate to let the API cut them, or split them",
            )

    # ----------------------------------------------------------------- sending

    async def _embed_async(
        self, texts: list[str], task: str, late_chunking: bool, groups: Sequence[int] | None
    ) -> EmbedResult:
        client, limiter = self._ensure_client()
        streaming = not late_chunking and self.token_limit is None and len(texts) > STREAM_CHUNK
        if streaming:
            self._precheck_long(texts)
            batches, est = [], []
        else:
            batches, est = self._plan(texts, late_chunking, groups)
            self._check_budget(sum(b.tokens for b in batches))
        if self._dims is None and self.embedding_type in BINARY_TYPES:
            await self._discover_dims(client, limiter, task)
        vectors: list[np.ndarray | None] = []
        billed: list[int] = []
        tasks: list[asyncio.Future] = []

        def launch(b: Batch) -> None:
            vectors.append(None)
            billed.append(0)
            tasks.append(asyncio.ensure_future(
                self._one_batch(client, limiter, texts, b, task, late_chunking, len(tasks), vectors, billed)))

        try:
            if streaming:
                # Count tokens chunk by chunk in a worker thread and send each request as
                # soon as it is packed: sending starts after one chunk, not after all texts.
                loop = asyncio.get_running_loop()
                packer = _StreamPacker(self.max_inputs, self.max_request_tokens)
                for c in range(0, len(texts), STREAM_CHUNK):
                    counts = await loop.run_in_executor(None, self.estimator.count, texts[c : c + STREAM_CHUNK])
                    est.extend(counts)
                    for b in packer.feed(counts):
                        batches.append(b)
                        launch(b)
                for b in packer.close():
                    batches.append(b)
                    launch(b)
            else:
                for b in batches:
                    launch(b)
            await asyncio.gather(*tasks)
        except BaseException:
            # First failure wins; stop the other requests before reporting it.
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        out = np.concatenate([v for v in vectors if v is not None], axis=0)
        tokens: list[int] = []
        for b, n in zip(batches, billed):
            tokens.extend(spread_tokens(est[b.start : b.end], n))
        return EmbedResult(out, np.asarray(tokens, np.int64), int(sum(billed)))

    async def _one_batch(
        self,
        client: httpx.AsyncClient,
        limiter: AsyncRateLimiter,
        texts: list[str],
        b: Batch,
        task: str,
        late_chunking: bool,
        slot: int,
        vectors: list[np.ndarray | None],
        billed: list[int],
    ) -> None:
        body: dict[str, Any] = {
            "model": self.model,
            "input": texts[b.start : b.end],
            "embedding_type": self.embedding_type,
            "normalized": self.normalized,
        }
        if task != TASK_NONE:
            body["task"] = task
        if self.dimensions is not None:
            body["dimensions"] = self.dimensions
        if late_chunking:
            body["late_chunking"] = True
        if self.truncate:
            body["truncate"] = True
        pace_tokens = max(1, int(math.ceil(b.tokens * self._calib)))
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception_type(_Retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        self.stats.retries += 1
                    vecs, used = await self._attempt(client, limiter, body, b.end - b.start, pace_tokens)
        except _Retryable as exc:
            raise EmbeddingError(
                f"Jina API: request for texts {b.start}..{b.end - 1} still failing after "
                f"{self.max_retries + 1} attempts: {self._scrub(str(exc))}",
                hint="the server or network is unhealthy; run again later to resume from the last finished shard",
            ) from None
        vectors[slot] = vecs
        billed[slot] = used
        self.stats.billed_tokens += used
        if b.tokens > 0 and used > 0:
            self._calib = 0.8 * self._calib + 0.2 * (used / b.tokens)

    async def _discover_dims(self, client: httpx.AsyncClient, limiter: AsyncRateLimiter, task: str) -> None:
        """Bits of a binary embedding do not say the dimension (the last byte is padded):
        learn the model's native size from one tiny float request."""
        saved = self.embedding_type
        self.embedding_type = "float"
        try:
            await self._one_batch(client, limiter, [PROBE_TEXT], Batch(0, 1, 8), task, False, 0, [None], [0])
        finally:
            self.embedding_type = saved

    def _check_budget(self, estimated: int) -> None:
        """Refuse a call whose (calibrated) estimate would take spending past ``max_tokens``.

        Checked before any request of the call is sent, so nothing is spent on a shard
        that cannot finish; earlier shards stay done.
        """
        if self.token_limit is None:
            return
        need = int(math.ceil(estimated * self._calib))
        if self.stats.billed_tokens + need > self.token_limit:
            raise BudgetExceeded(
                f"token budget: {self.stats.billed_tokens} tokens spent, the next shard needs about {need}, "
                f"the limit is {self.token_limit}",
                hint="raise --max-tokens and run again to resume",
            )

    def _wait(self, retry_state: Any) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        n = retry_state.attempt_number
        backoff = random.uniform(0, min(self.backoff_max_s, 0.25 * 2 ** (n - 1)))  # full jitter
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return min(self.backoff_max_s * 4, exc.retry_after + random.uniform(0, 0.1 + 0.1 * exc.retry_after))
        return backoff

    async def _attempt(
        self, client: httpx.AsyncClient, limiter: AsyncRateLimiter, body: dict[str, Any], n: int, pace_tokens: int
    ) -> tuple[np.ndarray, int]:
        permit = await limiter.acquire(pace_tokens)
        try:
            self.stats.requests += 1
            try:
                resp = await client.post(self.base_url + ENDPOINT, json=body)
            except httpx.TimeoutException as exc:
                self.stats.failed("timeout")
                raise _Retryable(f"timed out ({type(exc).__name__})") from None
            except httpx.TransportError as exc:  # connection refused/reset, protocol errors
                self.stats.failed("connection")
                raise _Retryable(f"connection failed ({type(exc).__name__})") from None
            self._observe(resp, limiter, permit)
            return self._handle(resp, limiter, permit, n)
        finally:
            permit.release()

    def _observe(self, resp: httpx.Response, limiter: AsyncRateLimiter, permit: Permit) -> None:
        limiter.observe(
            permit,
            remaining_requests=_header_int(resp.headers, "x-ratelimit-remaining-requests"),
            remaining_tokens=_header_int(resp.headers, "x-ratelimit-remaining-tokens"),
        )
        marker = resp.headers.get(STAND_IN_HEADER)
        if marker:
            self.stand_in = marker

    def _handle(self, resp: httpx.Response, limiter: AsyncRateLimiter, permit: Permit, n: int) -> tuple[np.ndarray, int]:
        status = resp.status_code
        if status == 429:
            self.stats.failed("429")
            needed = permit.tokens
            permit.settle(0)  # the server did not count a refused request
            ra = _retry_after(resp.headers)
            limiter.rate_limited(
                ra if ra is not None else 1.0,
                remaining_requests=_header_int(resp.headers, "x-ratelimit-remaining-requests"),
                remaining_tokens=_header_int(resp.headers, "x-ratelimit-remaining-tokens"),
                needed_tokens=needed,
            )
            raise _Retryable(f"429 {self._scrub(error_detail(resp.content))}", ra)
        if status >= 500 or status == 408:
            self.stats.failed(str(status))
            permit.settle(0)
            raise _Retryable(f"{status} {self._scrub(error_detail(resp.content))}", _retry_after(resp.headers))
        if status != 200:
            self.stats.failed(str(status))
            detail = self._scrub(error_detail(resp.content)) or resp.reason_phrase
            hint = _FATAL_HINTS.get(status, "see the server's message").replace("${env}", self.api_key_env)
            raise EmbeddingError(f"Jina API refused the request (HTTP {status}): {detail}", hint=hint)
        try:
            vecs, used = self._validate(resp, n)
        except _Retryable:
            self.stats.failed("bad_response")
            raise
        permit.settle(used)
        limiter.succeeded()
        return vecs, used

    def _validate(self, resp: httpx.Response, n: int) -> tuple[np.ndarray, int]:
        """Parse and check a 200 response; any defect is a retryable bad response."""
        try:
            obj = resp.json()
        except ValueError:
            raise _Retryable(f"response is not valid JSON ({len(resp.content)} bytes)") from None
        data = obj.get("data") if isinstance(obj, dict) else None
        if not isinstance(data, list):
            raise _Retryable(f"response has no 'data' list: {self._scrub(error_detail(resp.content))}")
        if len(data) != n:
            raise _Retryable(f"response has {len(data)} embeddings for {n} inputs")
        usage = obj.get("usage")
        used = usage.get("total_tokens") if isinstance(usage, dict) else None
        if not isinstance(used, int) or used < 0:
            raise _Retryable("response has no usage.total_tokens")
        rows: list[np.ndarray | None] = [None] * n
        want_dims = self._dims
        for item in data:
            idx = item.get("index") if isinstance(item, dict) else None
            if not isinstance(idx, int) or not 0 <= idx < n or rows[idx] is not None:
                raise _Retryable(f"response index {idx!r} is missing, out of range or repeated")
            value = item.get("embedding")
            if self.embedding_type in BINARY_TYPES:
                if want_dims is None:
                    raise EmbeddingError(
                        "binary embeddings need known dimensions",
                        hint="pass --dimensions, or let the probe run first",
                    )
                if not isinstance(value, list) or len(value) != packed_length(want_dims):
                    raise _Retryable(f"binary embedding {idx} is not {packed_length(want_dims)} bytes")
            try:
                vec = decode_embedding(value, self.embedding_type, want_dims)
            except (ValueError, TypeError) as exc:
                raise _Retryable(f"embedding {idx} cannot be decoded: {exc}") from None
            if want_dims is None:
                want_dims = int(vec.shape[0])
            if self.dimensions is not None and vec.shape[0] != self.dimensions:
                raise EmbeddingError(
                    f"{self.model} returned {vec.shape[0]} dimensions, {self.dimensions} asked",
                    hint="the server ignores 'dimensions' for this model: choose a model that supports it, or drop --dimensions",
                )
            if vec.shape != (want_dims,):
                raise _Retryable(f"embedding {idx} has {vec.shape[0]} dimensions, {want_dims} expected")
            if not np.all(np.isfinite(vec)):
                raise _Retryable(f"embedding {idx} has non-finite values")
            rows[idx] = vec
        mat = np.stack(rows).astype(np.float32)  # type: ignore[arg-type]
        if self.embedding_type in BINARY_TYPES:
            if self.normalized:
                mat /= np.float32(math.sqrt(mat.shape[1]))
        elif self.normalized:
            norms = np.linalg.norm(mat, axis=1)
            if np.any(np.abs(norms - 1.0) > 1e-3):
                bad = int(np.argmax(np.abs(norms - 1.0)))
                raise _Retryable(f"embedding {bad} has norm {norms[bad]:.4f}, but normalized=true was asked")
        if self._dims is None:
            self._dims = want_dims
        return mat, used


@register("jina-api")
def _factory(model: str, **options: Any) -> JinaAPIEmbedder:
    unknown = sorted(set(options) - _KNOWN_OPTIONS)
    if unknown:
        warnings.warn(f"jina-api ignores options it does not know: {', '.join(unknown)}", stacklevel=2)
    opts = {k: v for k, v in options.items() if k in _KNOWN_OPTIONS and v is not None}
    if "normalize" in opts:
        opts.setdefault("normalized", opts["normalize"])
        del opts["normalize"]
    return JinaAPIEmbedder(model, **opts)
