"""``jina-api:MODEL``: embeddings through the Jina Embeddings API (or a compatible server).

What: ``JinaAPIEmbedder`` meets the ``Embedder`` contract over HTTP. One ``embed`` call
(one shard, possibly thousands of texts) is split into requests (``api_plan``,
``packing``), sent concurrently with asyncio + httpx under an RPM/TPM/concurrency
limiter (``ratelimit``; or a shared one passed as ``limiter=``), retried on transient
failures (tenacity, ``api_transport``), validated (``api_response``) and reassembled in
input order. Options are the typed ``APIOptions``; what each model accepts comes from
the catalogue (``capabilities``).

Why each rule (jina-spec §1):

* ``task`` is sent for models with task adapters (v3), except for ``task="none"``; the
  API's default task is [UNCONFIRMED]. v2 models have no tasks: a task is not sent and
  ``info().ignored_tasks`` says so. ``dimensions`` and ``late_chunking`` are v3 fields:
  v2 models accept only their own width and no late chunking (refused before sending).
* With ``late_chunking`` one request holds exactly one document's chunks (≤ 8192 tokens).
* Retries: 429, 5xx, timeouts, connection errors and bad responses, with exponential
  backoff and jitter, honouring ``Retry-After``. 400/401/402/403/404/422 stop with the
  server's ``detail``, the server's host and what to do.
* Timeouts (``timeout`` seconds per request, the ``request_timeout`` setting): a request
  of several inputs that times out is sent again as two halves, recursively, instead of
  again whole (a loaded server or network answers smaller requests in time); a late-chunking
  request is one document and is never split. When one input still times out
  (``api_transport.TIMEOUT_TRIES`` tries), the error names the setting to raise.
* The key comes from ``api_key`` (a ``Secret``), a file or an environment variable, is
  sent only in the ``Authorization`` header and scrubbed from every message.

``EmbedResult.tokens`` per input: the request's billed ``usage.total_tokens`` spread over
its inputs in proportion to the estimated counts; ``total_tokens`` is the billed sum.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import os
from collections.abc import Coroutine, Sequence
from functools import partial
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import numpy as np

from migrate.embed.api_plan import plan_requests, precheck_long
from migrate.embed.api_response import decode_response
from migrate.embed.api_transport import ClientStats, LoopThread, Retryable, Sender, gave_up, redact_url, server_label
from migrate.embed.api_options import DEFAULT_API_KEY_ENV, APIOptions, api_capabilities
from migrate.embed.backend import BackendType, parse_options
from migrate.embed.base import EmbedderInfo, EmbedResult
from migrate.models import ALL_TASKS, TASK_NONE, V3_TASKS
from migrate.embed.jina_tokens import TokenEstimator
from migrate.embed.jina_wire import (BINARY_TYPES, request_body, DEFAULT_BASE_URL, EMBEDDING_TYPES, ENDPOINT, MAX_INPUTS_PER_REQUEST,
                                     MAX_TOKENS_PER_INPUT, STAND_IN_HEADER)
from migrate.embed.packing import Batch, StreamPacker, halving_on_timeout, spread_tokens
from migrate.embed.ratelimit import AsyncRateLimiter, RateLimits, request_token_budget, resolve_limits
from migrate.errors import BudgetExceeded, ConfigError, EmbeddingError

T = TypeVar("T")
PROBE_TEXT = "jina-migrate probe"
#: Texts counted per step when a big call is streamed into requests.
STREAM_CHUNK = 512
__all__ = ["APIOptions", "BACKEND", "DEFAULT_API_KEY_ENV", "JinaAPIEmbedder", "PROBE_TEXT", "ProbeResult", "api_capabilities",
           "request_token_budget"]


@dataclass
class ProbeResult:
    """What the one-request probe learned."""

    model: str
    dimensions: int
    tokens: int
    stand_in: str | None


class JinaAPIEmbedder:
    """Embedder over the Jina Embeddings API (see module docstring)."""

    def __init__(self, model: str, options: APIOptions | None = None, /, **kw: Any) -> None:
        if not model:
            raise ConfigError("jina-api needs a model name", hint="e.g. jina-api:jina-embeddings-v3")
        o: APIOptions = parse_options(APIOptions, kw, base=options, where="jina-api")
        self.options = o
        self.model = model
        self.capabilities = api_capabilities(model)
        self.capabilities.check_dimensions(o.dimensions, model)
        url = (o.base_url or os.environ.get("JINA_API_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.base_url = url[: -len(ENDPOINT)] if url.endswith(ENDPOINT) else url
        if not self.base_url.startswith(("http://", "https://")) or not urlsplit(self.base_url).hostname:
            raise ConfigError(f"base URL {redact_url(self.base_url)!r} must be http:// or https:// and name a host")
        self.server = server_label(self.base_url)
        self.dimensions, self.embedding_type = o.dimensions, o.embedding_type
        self.normalized, self.truncate = o.normalized, o.truncate
        self.limits: RateLimits = resolve_limits(o.tier, rpm=o.rpm, tpm=o.tpm, concurrency=o.concurrency)
        self.max_retries, self.timeout, self.max_inputs = o.max_retries, o.timeout, o.max_inputs
        self.max_request_tokens = o.max_request_tokens or request_token_budget(self.limits)
        self.token_limit, self.headroom, self.backoff_max_s = o.token_limit, o.headroom, o.backoff_max_s
        self.api_key_env, self.api_key_file = o.api_key_env, o.api_key_file
        self.estimator = TokenEstimator(model, o.tokenizer)
        self.stats = ClientStats()
        self.stand_in: str | None = None
        self._dims: int | None = o.dimensions
        self._calib = 1.0
        self._key: str | None = o.api_key.reveal() if o.api_key is not None else None
        self._loop: LoopThread | None = None
        self._client: httpx.AsyncClient | None = None
        self._limiter: Any = o.limiter

    # ----------------------------------------------------------------- contract

    def info(self) -> EmbedderInfo:
        key_from = "argument" if self.options.api_key is not None else None
        return EmbedderInfo(
            backend="jina-api", model=self.model, dimensions=self._dims or 0, normalized=self.normalized,
            max_tokens=MAX_TOKENS_PER_INPUT, prefixes={}, stand_in=self.stand_in,  # instructions are applied server-side
            ignored_tasks=tuple(t for t in V3_TASKS if self.capabilities.ignores(t)) if self.capabilities.catalogued else (),
            extra={
                "base_url": redact_url(self.base_url),
                "api_key_env": self.api_key_env if self.api_key_file is None and key_from is None else None,
                "api_key_file": str(self.api_key_file) if self.api_key_file is not None and key_from is None else None,
                "embedding_type": self.embedding_type, "truncate": self.truncate,
                "requested_dimensions": self.dimensions,
                "rate_limits": {"rpm": self.limits.rpm, "tpm": self.limits.tpm, "concurrency": self.limits.concurrency},
                "shared_limiter": self.options.limiter is not None,
                "token_estimate": self.estimator.source, "paid": self.paid,
            },
        )

    @property
    def paid(self) -> bool:
        """True unless the server is a known stand-in or on this machine."""
        host = (urlsplit(self.base_url).hostname or "").lower()
        return self.stand_in is None and host not in ("localhost", "127.0.0.1", "::1") and not host.startswith("127.")

    def count_tokens(self, texts: Sequence[str], *, task: str) -> list[int]:
        return self.estimator.count(texts)

    def embed(self, texts: Sequence[str], *, task: str, late_chunking: bool = False,
              groups: Sequence[int] | None = None) -> EmbedResult:
        """Vectors for ``texts`` in order. With ``late_chunking``, ``texts`` are the chunks of
        one document, or of consecutive documents whose chunk counts are ``groups``."""
        texts = list(texts)
        sent_task = self._sent_task(task, late_chunking)
        if not texts:
            return EmbedResult(np.zeros((0, self._dims or 0), np.float32), np.zeros(0, np.int64), 0)
        return self._run(self._embed_async(texts, sent_task, late_chunking, groups))

    def probe(self, *, task: str = "retrieval.passage") -> ProbeResult:
        """One tiny request: checks key, model, dimensions; learns the stand-in marker."""
        res = self._run(self._embed_async([PROBE_TEXT], self._sent_task(task, False), False, None))
        return ProbeResult(self.model, int(res.vectors.shape[1]), int(res.total_tokens), self.stand_in)

    def use_limiter(self, limiter: Any) -> None:
        """Pace through ``limiter`` (e.g. one budget shared by several workers) from now on."""
        self._limiter = limiter

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
        if self.options.limiter is None:
            self._limiter = None

    def __enter__(self) -> JinaAPIEmbedder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:  # never shows the key
        return f"JinaAPIEmbedder(model={self.model!r}, base_url={redact_url(self.base_url)!r})"

    # ----------------------------------------------------------------- helpers

    def _sent_task(self, task: str, late_chunking: bool) -> str | None:
        """The ``task`` field to send (None: omit), after checking the model accepts the call."""
        if task not in ALL_TASKS:
            raise ConfigError(f"unknown task {task!r}", hint=f"choose one of {', '.join(ALL_TASKS)}")
        if late_chunking and not self.capabilities.late_chunking and self.capabilities.catalogued:
            raise ConfigError(f"late chunking is not available for {self.model} through the API (jina-embeddings-v3 only)",
                              hint="drop --late-chunking, or use jina-embeddings-v3")
        return None if task == TASK_NONE or self.capabilities.ignores(task) else task

    def _key_source(self) -> str:
        if self.options.api_key is not None:
            return "the key handed to this process"
        if self.api_key_file is not None:
            return f"the key in the file {self.api_key_file}"
        return f"the key in ${self.api_key_env} (or choose another variable with --api-key-env)"

    def _api_key(self) -> str:
        if self._key is None:
            from migrate.secrets import read_api_key

            self._key = read_api_key(self.api_key_env, self.api_key_file, required=True)
        assert self._key is not None
        return self._key

    def _scrub(self, text: str) -> str:
        from migrate.secrets import redact

        return redact(text.replace(self._key, "[REDACTED]") if self._key else text)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            self._loop = LoopThread()
        try:
            return self._loop.run(coro)
        finally:
            # Close it only if the loop never started it (no "never awaited" warning). One that is
            # suspended belongs to the loop thread, where a Ctrl-C has just cancelled it: closing it
            # from here raised "coroutine ignored GeneratorExit" over the KeyboardInterrupt (issue 20).
            if inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
                coro.close()

    def _ensure_client(self) -> tuple[httpx.AsyncClient, Any]:
        if self._client is None:
            conns = min(1000, self.limits.concurrency + 4)
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout, connect=min(10.0, self.timeout)),
                limits=httpx.Limits(max_connections=conns, max_keepalive_connections=conns),
                headers={"Authorization": f"Bearer {self._api_key()}", "Content-Type": "application/json",
                         "Accept": "application/json", "User-Agent": "jina-migrate"})
        if self._limiter is None:
            self._limiter = AsyncRateLimiter(self.limits, headroom=self.headroom)
        return self._client, self._limiter

    # ----------------------------------------------------------------- sending

    async def _embed_async(self, texts: list[str], task: str | None, late_chunking: bool,
                           groups: Sequence[int] | None) -> EmbedResult:
        client, limiter = self._ensure_client()
        streaming = not late_chunking and self.token_limit is None and len(texts) > STREAM_CHUNK
        batches: list[Batch] = []
        est: list[int] = []
        if streaming:
            precheck_long(texts, self.estimator, truncate=self.truncate)
        else:
            batches, est = plan_requests(texts, self.estimator, late_chunking=late_chunking, groups=groups,
                                         truncate=self.truncate, max_inputs=self.max_inputs,
                                         max_request_tokens=self.max_request_tokens)
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
            if streaming:  # count chunk by chunk in a worker thread; send each request as soon as it is packed
                loop = asyncio.get_running_loop()
                packer = StreamPacker(self.max_inputs, self.max_request_tokens)
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
            for t in tasks:  # first failure wins; stop the other requests before reporting it
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        out = np.concatenate([v for v in vectors if v is not None], axis=0)
        tokens: list[int] = []
        for b, n in zip(batches, billed):
            tokens.extend(spread_tokens(est[b.start : b.end], n))
        return EmbedResult(out, np.asarray(tokens, np.int64), int(sum(billed)))

    async def _one_batch(self, client: httpx.AsyncClient, limiter: Any, texts: list[str], b: Batch, task: str | None,
                         late_chunking: bool, slot: int, vectors: list[np.ndarray | None], billed: list[int]) -> None:
        """One packed request (its halves after a timeout; never for late chunking, whose chunks travel together)."""
        try:
            vectors[slot], billed[slot] = await halving_on_timeout(
                lambda part, may_split: self._request(client, limiter, texts, part, task, late_chunking, may_split),
                b, splittable=not late_chunking, stats=self.stats)
        except Retryable as exc:
            raise gave_up(exc, server=self.server, first=b.start, last=b.end - 1, halved=b.end - b.start > 1
                          and not late_chunking, timeout=self.timeout, timeout_setting=self.options.timeout_setting,
                          attempts=self.max_retries + 1, scrub=self._scrub) from None

    async def _request(self, client: httpx.AsyncClient, limiter: Any, texts: list[str], b: Batch, task: str | None,
                       late_chunking: bool, split_on_timeout: bool) -> tuple[np.ndarray, int]:
        """One request for the inputs of ``b``, retried by the ``Sender``; billed tokens are counted here."""
        body = request_body(self.model, texts[b.start : b.end], embedding_type=self.embedding_type,
                            normalized=self.normalized, task=task, dimensions=self.dimensions,
                            late_chunking=late_chunking, truncate=self.truncate)
        pace_tokens = max(1, int(math.ceil(b.tokens * self._calib)))
        decode = partial(self._decode, n=b.end - b.start)
        vecs, used = await self._sender().send(client, limiter, self.base_url + ENDPOINT, body, pace_tokens, decode,
                                               split_on_timeout=split_on_timeout)
        self.stats.billed_tokens += used
        if b.tokens > 0 and used > 0:
            self._calib = 0.8 * self._calib + 0.2 * (used / b.tokens)
        return vecs, used

    def _sender(self) -> Sender:
        return Sender(self.stats, max_retries=self.max_retries, backoff_max_s=self.backoff_max_s, server=self.server,
                      key_source=self._key_source(), scrub=self._scrub, on_response=self._observe_headers)

    def _observe_headers(self, resp: httpx.Response) -> None:
        self.stand_in = resp.headers.get(STAND_IN_HEADER) or self.stand_in

    def _decode(self, obj: Any, raw: bytes, *, n: int) -> tuple[np.ndarray, int]:
        vecs, used = decode_response(obj, raw, n, embedding_type=self.embedding_type, known_dims=self._dims,
                                     asked_dims=self.dimensions, normalized=self.normalized, model=self.model,
                                     server=self.server, scrub=self._scrub)
        if self._dims is None:
            self._dims = int(vecs.shape[1])
        return vecs, used

    async def _discover_dims(self, client: httpx.AsyncClient, limiter: Any, task: str | None) -> None:
        """Binary embeddings do not say their width (the last byte is padded): learn it from one float request."""
        saved, self.embedding_type = self.embedding_type, "float"
        try:
            await self._one_batch(client, limiter, [PROBE_TEXT], Batch(0, 1, 8), task, False, 0, [None], [0])
        finally:
            self.embedding_type = saved

    def _check_budget(self, estimated: int) -> None:
        """Refuse a call whose (calibrated) estimate would pass ``token_limit``, before sending any of it."""
        if self.token_limit is None:
            return
        need = int(math.ceil(estimated * self._calib))
        if self.stats.billed_tokens + need > self.token_limit:
            raise BudgetExceeded(f"token budget: {self.stats.billed_tokens} tokens spent, the next shard needs about "
                                 f"{need}, the limit is {self.token_limit}", hint="raise --max-tokens and run again to resume")


BACKEND = BackendType(
    name="jina-api", remote=True, billed=True, options_type=APIOptions,
    factory=lambda model, options: JinaAPIEmbedder(model, options),
    capabilities=api_capabilities,
    description="the Jina Embeddings API, or a compatible server (--base-url)",
)
