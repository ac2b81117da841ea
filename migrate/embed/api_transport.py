"""Transport pieces of the Jina API client: the event-loop thread, retry signals, headers, errors.

What:
* ``LoopThread``: a private asyncio loop in a daemon thread, so sync callers (the runner,
  a Ray worker) can use async HTTP.
* ``Retryable``: a failure worth retrying (429, 5xx, timeouts, dropped connections, bad
  responses), with the server's ``Retry-After`` if it named one; ``retry_after`` and
  ``header_int`` read the headers. ``TimedOut`` is the timeout kind: a request of several
  inputs that times out is not sent again as it was but in halves (the caller splits it:
  a loaded server answers smaller requests in time), and one that cannot be split gets
  ``TIMEOUT_TRIES`` tries, each already a whole timeout long.
* ``server_label`` / ``redact_url``: how a server is named in messages (scheme + host +
  port, never credentials or a key).
* ``Sender``: one request with retries: pace through the limiter, POST, read the
  rate-limit headers, classify the answer (retry, refuse, or decode).
* ``refused``: the ``EmbeddingError`` for a non-retryable status (400/401/402/403/404/422),
  naming the server and saying what to do. Hints never promise "resume from the last
  finished shard": the same client serves ``search`` and ``compare``, which have no
  shards; ``run`` adds its own resume advice.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
from tenacity import AsyncRetrying, retry_if_exception

from migrate.embed.jina_wire import error_detail
from migrate.errors import EmbeddingError

T = TypeVar("T")


class Retryable(Exception):
    """A failure worth retrying; ``retry_after`` (seconds) if the server named one."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TimedOut(Retryable):
    """The server did not answer within the client's timeout."""


#: Tries of a request that cannot be split further when each one times out: every try already
#: waited a whole timeout, so nine of them (the retry budget) would keep a shard waiting for minutes.
TIMEOUT_TRIES = 3


def redact_url(url: str) -> str:
    """``url`` without user:password."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        return urlunsplit((parts.scheme, "***@" + host, parts.path, parts.query, parts.fragment))
    return url


def server_label(base_url: str) -> str:
    """``host[:port]`` of ``base_url`` (what messages name)."""
    parts = urlsplit(base_url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{parts.port}" if parts.port else host


def header_int(headers: httpx.Headers, name: str) -> int | None:
    v = headers.get(name)
    try:
        return int(float(v)) if v is not None else None
    except ValueError:
        return None


def retry_after(headers: httpx.Headers) -> float | None:
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


#: What to do after a non-retryable status (the server's own detail comes first).
FATAL_HINTS = {
    400: "the request was rejected as invalid; check --model, and --truncate for texts over 8192 tokens",
    401: "the API key was refused: check {key_source}",
    402: "the key's balance is used up: top it up or use another key, then run the command again",
    403: "the key may not do this or its balance is used up: check the key, then run the command again",
    404: "the endpoint was not found: check --base-url (it should not end in /v1/embeddings)",
    422: "a request field was rejected: check --dimensions, --embedding-type and --task",
}


def refused(status: int, detail: str, *, server: str, key_source: str) -> EmbeddingError:
    """The error for a non-retryable answer from ``server``."""
    hint = FATAL_HINTS.get(status, "see the server's message").format(key_source=key_source)
    return EmbeddingError(f"embeddings server {server} refused the request (HTTP {status}): {detail}", hint=hint)


@dataclass
class ClientStats:
    """Counters for reports and benchmarks (no secrets)."""

    requests: int = 0
    retries: int = 0
    splits: int = 0  # requests sent again in halves after a timeout
    billed_tokens: int = 0
    failures: dict[str, int] = field(default_factory=dict)

    def failed(self, kind: str) -> None:
        self.failures[kind] = self.failures.get(kind, 0) + 1


class LoopThread:
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


class Sender:
    """Sends one request body until it succeeds, is refused, or the retries run out.

    ``decode(obj, raw)`` turns a parsed 200 body into ``(vectors, billed tokens)`` or raises
    ``Retryable``; ``on_response`` sees every response (e.g. to read a stand-in header).
    """

    def __init__(self, stats: ClientStats, *, max_retries: int, backoff_max_s: float, server: str, key_source: str,
                 scrub: Callable[[str], str], on_response: Callable[[httpx.Response], None] | None = None) -> None:
        self.stats = stats
        self.max_retries = max_retries
        self.backoff_max_s = backoff_max_s
        self.server = server
        self.key_source = key_source
        self.scrub = scrub
        self.on_response = on_response

    async def send(self, client: httpx.AsyncClient, limiter: Any, url: str, body: dict[str, Any], pace_tokens: int,
                   decode: Callable[[Any, bytes], tuple[Any, int]], *, split_on_timeout: bool = False) -> tuple[Any, int]:
        """The decoded answer. With ``split_on_timeout`` a timeout is raised at once (``TimedOut``) for the
        caller to send the inputs in halves; otherwise it is retried like any transient failure, at most
        ``TIMEOUT_TRIES`` times in all."""

        def retry(exc: BaseException) -> bool:
            if not isinstance(exc, Retryable):
                return False
            return not isinstance(exc, TimedOut) or not split_on_timeout

        def stop(state: Any) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, TimedOut):
                timeouts[0] += 1
            return state.attempt_number >= self.max_retries + 1 or timeouts[0] >= TIMEOUT_TRIES

        timeouts = [0]
        retrying = AsyncRetrying(stop=stop, wait=self._wait, retry=retry_if_exception(retry), reraise=True)
        async for attempt in retrying:
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    self.stats.retries += 1
                return await self._attempt(client, limiter, url, body, pace_tokens, decode)
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, retry_state: Any) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, Retryable) and exc.retry_after is not None:
            return min(self.backoff_max_s * 4, exc.retry_after + random.uniform(0, 0.1 + 0.1 * exc.retry_after))
        return random.uniform(0, min(self.backoff_max_s, 0.25 * 2 ** (retry_state.attempt_number - 1)))  # full jitter

    async def _attempt(self, client: httpx.AsyncClient, limiter: Any, url: str, body: dict[str, Any],
                       pace_tokens: int, decode: Callable[[Any, bytes], tuple[Any, int]]) -> tuple[Any, int]:
        permit = await limiter.acquire(pace_tokens)
        try:
            self.stats.requests += 1
            try:
                resp = await client.post(url, json=body)
            except httpx.TimeoutException as exc:
                self.stats.failed("timeout")
                raise TimedOut(f"timed out ({type(exc).__name__})") from None
            except httpx.TransportError as exc:  # connection refused/reset, protocol errors
                self.stats.failed("connection")
                raise Retryable(f"connection failed ({type(exc).__name__})") from None
            remaining = {"remaining_requests": header_int(resp.headers, "x-ratelimit-remaining-requests"),
                         "remaining_tokens": header_int(resp.headers, "x-ratelimit-remaining-tokens")}
            limiter.observe(permit, **remaining)
            if self.on_response is not None:
                self.on_response(resp)
            return self._handle(resp, limiter, permit, remaining, decode)
        finally:
            permit.release()

    def _handle(self, resp: httpx.Response, limiter: Any, permit: Any, remaining: dict[str, int | None],
                decode: Callable[[Any, bytes], tuple[Any, int]]) -> tuple[Any, int]:
        status = resp.status_code
        if status != 200:
            detail = self.scrub(error_detail(resp.content))
            self.stats.failed(str(status))
            if status == 429:
                needed = permit.tokens
                permit.settle(0)  # the server did not count a refused request
                ra = retry_after(resp.headers)
                limiter.rate_limited(ra if ra is not None else 1.0, needed_tokens=needed, **remaining)
                raise Retryable(f"429 {detail}", ra)
            if status >= 500 or status == 408:
                permit.settle(0)
                raise Retryable(f"{status} {detail}", retry_after(resp.headers))
            raise refused(status, detail or resp.reason_phrase, server=self.server, key_source=self.key_source)
        try:
            obj = resp.json()
        except ValueError:
            self.stats.failed("bad_response")
            raise Retryable(f"response is not valid JSON ({len(resp.content)} bytes)") from None
        try:
            vecs, used = decode(obj, resp.content)
        except Retryable:
            self.stats.failed("bad_response")
            raise
        permit.settle(used)
        limiter.succeeded()
        return vecs, used


def gave_up(exc: Retryable, *, server: str, first: int, last: int, halved: bool, timeout: float, timeout_setting: str,
            attempts: int, scrub: Callable[[str], str]) -> EmbeddingError:
    """The one error line for a request that kept failing: after timeouts it names the setting to raise."""
    where = f"embeddings server {server}: request for texts {first}..{last} still failing"
    if isinstance(exc, TimedOut):
        return EmbeddingError(
            f"{where}{' (sent again in halves down to single texts)' if halved else ''}: each try timed out after "
            f"{timeout:g} s ({scrub(str(exc))}); raise {timeout_setting} (now {timeout:g} s)",
            hint="the server or the network is slow: a longer request timeout, or try again later")
    return EmbeddingError(f"{where} after {attempts} attempts: {scrub(str(exc))}",
                          hint="the server or the network is unhealthy: try again later")

