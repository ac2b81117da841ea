"""Judges: models that grade (query, document) pairs where no human did.

What: the ``Judge`` protocol (``score`` a batch of (query, documents) requests, ``grade`` a
score into 0-3, say what really scored and which model family it belongs to) and three
implementations, made from a spec by ``make_judge``:

* ``jina-api:MODEL`` (``JinaRerankJudge``): Jina's ``POST /v1/rerank`` (wire format in
  ``../shared/docs/evaluation.md``), through the embeddings client's transport: the same
  rate limiter, retries with backoff and ``Retry-After``, key handling and scrubbing
  (``migrate.embed.api_transport``, ``ratelimit``). A response with a wrong count, a
  repeated or out-of-range index or a non-finite score is retried like a truncated body,
  then refused in one line. ``jina-reranker-v3`` is listwise: its scores are relative to
  the documents sent together, so a query's whole pool goes in one request (up to 64).
* ``local:PATH`` (``CrossEncoderJudge``): a sentence-transformers CrossEncoder folder
  (one output label), scores passed through a sigmoid. A bi-encoder folder is refused: an
  embedding model as judge crowns itself and its family (5 of 15 verdicts reversed on
  SciFact, ``evaluation.md``).
* ``llm:MODEL`` (``LLMJudge``): an OpenAI-compatible ``/chat/completions`` endpoint
  (``--judge-base-url``) with the UMBRELA prompt (Upadhyay et al. 2024, arXiv 2406.06519,
  the zero-shot "bing" prompt of castorini/umbrela), temperature 0; the grade is the
  answer's ``##final score: N``. An answer without one is retried, then refused (UMBRELA
  itself silently counts it as 0: that would hide a broken endpoint).

Grades: an LLM answers 0-3 itself; a reranker's score (a probability for v2 and for
cross-encoders) becomes a grade by ``DEFAULT_THRESHOLDS``: below 0.2 is 0 (not relevant),
0.2-0.5 is 1 (related), 0.5-0.8 is 2 (partly answers), 0.8 and above is 3 (answers). A
starting point named in every report; the calibration bench replaces it.

Families (``families_of``): a judge shares a family with a side when a name token matches
(``jina``, ``e5``, ``bge``, ...); ``family_warnings`` says so, because rerankers favour their
own family (Meng et al. 2026, arXiv 2601.04455): a Jina reranker judging Jina models is that case.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import re
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import httpx
import numpy as np

from migrate.embed.api_transport import ClientStats, LoopThread, Retryable, Sender, redact_url, server_label
from migrate.embed.jina_wire import DEFAULT_BASE_URL, STAND_IN_HEADER
from migrate.embed.ratelimit import AsyncRateLimiter, RateLimits, resolve_limits
from migrate.errors import ConfigError, EmbeddingError

T = TypeVar("T")
Request = tuple[str, Sequence[str]]

#: Score cut points for grades 1, 2, 3 (see the module docstring).
DEFAULT_THRESHOLDS: tuple[float, float, float] = (0.2, 0.5, 0.8)
RERANK_ENDPOINT = "/v1/rerank"
#: Listwise rerankers and the most documents they score together.
LISTWISE = {"jina-reranker-v3": 64}
#: Documents per request for pointwise rerankers.
POINTWISE_DOCS = 256
RERANKERS = ("jina-reranker-v2-base-multilingual", "jina-reranker-v3", "jina-reranker-m0", "jina-colbert-v2")
SPEC_HINT = ("--judge jina-api:jina-reranker-v2-base-multilingual, jina-api:jina-reranker-v3, "
             "local:PATH (a CrossEncoder folder) or llm:MODEL with --judge-base-url URL")

#: The UMBRELA zero-shot prompt (castorini/umbrela, prompts/qrel_zeroshot_bing.txt; arXiv 2406.06519).
UMBRELA_PROMPT = (
    "Given a query and a passage, you must provide a score on an integer scale of 0 to 3 with the following "
    "meanings:\n"
    "0 = represent that the passage has nothing to do with the query, \n"
    "1 = represents that the passage seems related to the query but does not answer it, \n"
    "2 = represents that the passage has some answer for the query, but the answer may be a bit unclear, or "
    "hidden amongst extraneous information and \n"
    "3 = represents that the passage is dedicated to the query and contains the exact answer.\n\n"
    "Important Instruction: Assign category 1 if the passage is somewhat related to the topic but not "
    "completely, category 2 if passage presents something very important related to the entire topic but also "
    "has some extra information and category 3 if the passage only and entirely refers to the topic. If none of "
    "the above satisfies give it category 0.\n\n"
    "Query: {query}\nPassage: {passage}\n\n"
    "Split this problem into steps:\n"
    "Consider the underlying intent of the search.\n"
    "Measure how well the content matches a likely intent of the query (M).\n"
    "Measure how trustworthy the passage is (T).\n"
    "Consider the aspects above and the relative importance of each, and decide on a final score (O). Final "
    "score must be an integer value only.\n"
    "Do not provide any code in result. Provide each score in the format of: ##final score: score without "
    "providing any reasoning."
)
UMBRELA_SYSTEM = "You are a helpful assistant."
_FINAL_SCORE = (re.compile(r"##\s*final\s*score\s*:\s*\**\s*([0-3])\b", re.I),
                re.compile(r"final\s*score\s*[:=]\s*\**\s*([0-3])\b", re.I),
                re.compile(r"^\s*\**([0-3])\**\s*\.?\s*$"))

# --------------------------------------------------------------------------- families

#: Name tokens -> model family (a judge warns when it shares one with a side).
_FAMILY_TOKENS = {
    "jina": "jina", "jinaai": "jina", "e5": "e5", "bge": "bge", "minilm": "minilm", "mpnet": "mpnet",
    "gte": "gte", "nomic": "nomic", "cohere": "cohere", "voyage": "voyage", "mxbai": "mxbai", "qwen": "qwen",
    "qwen2": "qwen", "qwen3": "qwen", "llama": "llama", "gpt": "openai", "openai": "openai", "gemini": "google",
    "gemma": "google", "mistral": "mistral", "static": "static", "model2vec": "static", "colbert": "colbert",
}


def families_of(*names: str | None) -> set[str]:
    """Families named by any of ``names`` (model names, stand-in names, folder names)."""
    out: set[str] = set()
    for name in names:
        if not name:
            continue
        low = str(name).lower()
        if "text-embedding" in low:
            out.add("openai")
        for tok in re.split(r"[^a-z0-9]+", low):
            fam = _FAMILY_TOKENS.get(tok)
            if fam is None and tok.startswith("qwen"):
                fam = "qwen"
            if fam:
                out.add(fam)
    return out


def family_warnings(judge: Judge, sides: Mapping[str, Iterable[str | None]]) -> list[str]:
    """Warnings for a judge sharing a family with the sides (``sides``: name -> the model and
    stand-in names that made it), and for a judge that is only a stand-in."""
    mine = judge.families()
    out: list[str] = []
    shared = {name: mine & families_of(*models) for name, models in sides.items()}
    hit = [n for n, fams in shared.items() if fams]
    if hit:
        fams = sorted(set().union(*(shared[n] for n in hit)))
        who = "both sides" if len(hit) == len(sides) > 1 else " and ".join(hit)
        favour = ("its labels may favour either side's results" if len(hit) > 1 else
                  f"its labels may favour {hit[0]}'s results")
        out.append(f"the judge {judge.spec} belongs to the {'/'.join(fams)} family, like {who}: rerankers favour "
                   f"their own family, so {favour}")
    stand_in = getattr(judge, "stand_in", None)
    if stand_in:
        out.append(f"the judge is the bundled server's stand-in '{stand_in}' (cosine of stand-in embeddings), not "
                   f"{judge.spec.split(':', 1)[-1]}: an embedding model as judge favours its own family; use it to "
                   f"rehearse, never to decide")
    return out


# --------------------------------------------------------------------------- the protocol


@runtime_checkable
class Judge(Protocol):
    """Grades (query, document) pairs: ``score`` answers one list of scores per request, in order."""

    spec: str
    listwise: bool
    thresholds: tuple[float, ...] | None  # None: ``score`` already is the grade (0-3)

    def identity(self) -> str:
        """What decides its scores (model, version, settings): the cache key's first part."""
        ...

    def describe(self) -> str:
        """What really scored, in one sentence (after ``score`` ran: a server may name a stand-in)."""
        ...

    def families(self) -> set[str]: ...

    def score(self, requests: Sequence[Request]) -> list[list[float]]: ...

    def grade(self, score: float) -> int: ...

    @property
    def tokens(self) -> int:
        """Tokens billed so far (0 for a local judge)."""
        ...

    def close(self) -> None: ...


def check_thresholds(thresholds: Sequence[float] | None) -> tuple[float, ...] | None:
    if thresholds is None:
        return None
    t = tuple(float(x) for x in thresholds)
    if len(t) != 3 or not all(math.isfinite(x) for x in t) or not t[0] < t[1] < t[2]:
        raise ConfigError(f"judge thresholds {list(thresholds)} must be three increasing numbers",
                          hint=f"score cut points for grades 1, 2 and 3, e.g. {','.join(map(str, DEFAULT_THRESHOLDS))}")
    return t


class BaseJudge:
    """Grading by thresholds, families from the spec, nothing to close."""

    spec = ""
    listwise = False
    thresholds: tuple[float, ...] | None = DEFAULT_THRESHOLDS

    def grade(self, score: float) -> int:
        if self.thresholds is None:
            return int(min(3, max(0, round(score))))
        return int(sum(score >= t for t in self.thresholds))

    def families(self) -> set[str]:
        return families_of(self.spec.split(":", 1)[-1])

    @property
    def tokens(self) -> int:
        return 0

    def close(self) -> None:
        pass

    def __enter__(self) -> BaseJudge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _finite_scores(values: Any, n: int, what: str) -> list[float]:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size != n:
        raise EmbeddingError(f"{what} returned {arr.size} scores for {n} documents",
                             hint="the judge must score every document it is given")
    if not np.all(np.isfinite(arr)):
        raise EmbeddingError(f"{what} returned a score that is not a finite number", hint="check the judge model")
    return [float(x) for x in arr]


# --------------------------------------------------------------------------- HTTP judges


class _HTTPJudge(BaseJudge):
    """The embeddings client's transport (private loop thread, limiter, retrying sender) for a judge."""

    server: str  # the endpoint's label (``server_label``), set by each judge from its base URL

    def __init__(self, *, limits: RateLimits, max_retries: int, timeout: float, backoff_max_s: float,
                 key: str | None, key_source: str) -> None:
        if max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {max_retries}")
        self.limits, self.max_retries, self.timeout, self.backoff_max_s = limits, max_retries, timeout, backoff_max_s
        self.stats = ClientStats()
        self.stand_in: str | None = None
        self._key, self._key_source = key, key_source
        self._loop: LoopThread | None = None
        self._client: httpx.AsyncClient | None = None
        self._limiter: AsyncRateLimiter | None = None

    @property
    def tokens(self) -> int:
        return self.stats.billed_tokens

    def _scrub(self, text: str) -> str:
        from migrate.secrets import redact

        return redact(text.replace(self._key, "[REDACTED]") if self._key else text)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            self._loop = LoopThread()
        try:
            return self._loop.run(coro)
        finally:
            coro.close()

    def _ensure_client(self) -> tuple[httpx.AsyncClient, AsyncRateLimiter]:
        if self._client is None:
            conns = min(1000, self.limits.concurrency + 4)
            headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": "jina-migrate"}
            if self._key:
                headers["Authorization"] = f"Bearer {self._key}"
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout, connect=min(10.0, self.timeout)),
                                             limits=httpx.Limits(max_connections=conns,
                                                                 max_keepalive_connections=conns),
                                             headers=headers)
        if self._limiter is None:
            self._limiter = AsyncRateLimiter(self.limits)
        return self._client, self._limiter

    def _sender(self) -> Sender:
        return Sender(self.stats, max_retries=self.max_retries, backoff_max_s=self.backoff_max_s, server=self.server,
                      key_source=self._key_source, scrub=self._scrub, on_response=self._observe)

    def _observe(self, resp: httpx.Response) -> None:
        self.stand_in = resp.headers.get(STAND_IN_HEADER) or self.stand_in

    async def _gather(self, coros: list[Coroutine[Any, Any, None]]) -> None:
        tasks = [asyncio.ensure_future(c) for c in coros]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:  # the first failure wins; stop the others before reporting it
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _send(self, url: str, body: dict[str, Any], pace: int, decode: Any, what: str) -> Any:
        client, limiter = self._ensure_client()
        try:
            value, used = await self._sender().send(client, limiter, url, body, pace, decode)
        except Retryable as exc:
            raise EmbeddingError(f"judge {self.spec}: {self.server}: {what} still failing after "
                                 f"{self.max_retries + 1} attempts: {self._scrub(str(exc))}",
                                 hint="the judge's server or the network is unhealthy: try again later (finished "
                                      "judgments are cached and not paid for again)") from None
        except EmbeddingError as exc:
            raise self._refusal(exc) from None
        self.stats.billed_tokens += used
        return value

    def _refusal(self, exc: EmbeddingError) -> EmbeddingError:
        """The transport's refusal, worded for a judge."""
        m = re.search(r"\(HTTP (\d{3})\)", exc.message)
        status = int(m.group(1)) if m else 0
        hint = {400: "the request was rejected: check the model name in --judge",
                404: "the endpoint was not found: check --judge-base-url (a base URL, without the endpoint's path)",
                422: "a request field was rejected: check the model name in --judge"}.get(status, exc.hint)
        message = exc.message.replace("embeddings server", "judge server")
        return EmbeddingError(f"judge {self.spec}: {message}", hint=hint)

    def close(self) -> None:
        if self._loop is not None:
            if self._client is not None:
                try:
                    self._loop.run(self._client.aclose())
                except Exception:  # noqa: BLE001 - closing is best effort
                    pass
            self._loop.stop()
        self._loop, self._client, self._limiter = None, None, None


def _base_url(url: str, endpoints: Sequence[str], flag: str) -> str:
    url = url.rstrip("/")
    for e in endpoints:
        if url.endswith(e):
            url = url[: -len(e)]
    if not url.startswith(("http://", "https://")) or not httpx.URL(url).host:
        raise ConfigError(f"{flag} {redact_url(url)!r} must be an http:// or https:// URL naming a host",
                          hint="e.g. http://127.0.0.1:8080")
    return url


def _estimate_tokens(texts: Iterable[str]) -> int:
    """A deliberately high token estimate for pacing (utf-8 bytes / 3 + 2 per text, as ``jina_tokens``)."""
    return sum(len(t.encode("utf-8")) // 3 + 2 for t in texts)


class JinaRerankJudge(_HTTPJudge):
    """``jina-api:MODEL``: Jina's rerank endpoint (or the bundled server's stand-in) as judge."""

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 api_key_env: str = "JINA_API_KEY", api_key_file: str | Path | None = None, tier: str | None = None,
                 rpm: int | None = None, tpm: int | None = None, concurrency: int | None = None,
                 max_retries: int = 8, timeout: float = 60.0, backoff_max_s: float = 30.0,
                 thresholds: Sequence[float] | None = DEFAULT_THRESHOLDS) -> None:
        if not model:
            raise ConfigError("jina-api judge needs a reranker name", hint=SPEC_HINT)
        if "embeddings" in model or "clip" in model:
            raise ConfigError(f"--judge jina-api:{model} is an embedding model: an embedding model as judge favours "
                              f"itself and its family (5 of 15 verdicts reversed on SciFact)",
                              hint=f"use a reranker: {', '.join(RERANKERS[:2])}")
        from migrate.secrets import read_api_key

        key = api_key or read_api_key(api_key_env, api_key_file, required=True)
        source = (f"the key in the file {api_key_file}" if api_key_file else
                  "the key handed to this process" if api_key else f"the key in ${api_key_env}")
        super().__init__(limits=resolve_limits(tier, rpm=rpm, tpm=tpm, concurrency=concurrency),
                         max_retries=max_retries, timeout=timeout, backoff_max_s=backoff_max_s, key=key,
                         key_source=source)
        self.model = model
        self.spec = f"jina-api:{model}"
        self.listwise = model in LISTWISE
        self.max_documents = LISTWISE.get(model, POINTWISE_DOCS)
        self.thresholds = check_thresholds(thresholds)
        url = base_url or os.environ.get("JINA_API_BASE_URL") or DEFAULT_BASE_URL
        self.base_url = _base_url(url, (RERANK_ENDPOINT, "/v1/embeddings"), "--judge-base-url")
        self.server = server_label(self.base_url)

    def identity(self) -> str:
        return json.dumps({"judge": "jina-api", "model": self.model, "base_url": redact_url(self.base_url)},
                          sort_keys=True)

    def describe(self) -> str:
        if self.stand_in:
            return (f"stand-in '{self.stand_in}' of the bundled server answering for {self.model} (cosine of "
                    f"stand-in embeddings, not a reranker)")
        return f"{self.model} through {self.server}/v1/rerank" + (" (listwise)" if self.listwise else "")

    def families(self) -> set[str]:
        return families_of(self.model, self.stand_in)

    def score(self, requests: Sequence[Request]) -> list[list[float]]:
        out: list[list[float]] = [[0.0] * len(docs) for _, docs in requests]
        jobs = [(qi, start, query, list(docs[start:start + self.max_documents]))
                for qi, (query, docs) in enumerate(requests) for start in range(0, len(docs), self.max_documents)]
        if jobs:
            self._run(self._gather([self._one(qi, start, query, docs, out) for qi, start, query, docs in jobs]))
        return out

    async def _one(self, qi: int, start: int, query: str, docs: list[str], out: list[list[float]]) -> None:
        body = {"model": self.model, "query": query, "documents": docs, "top_n": len(docs), "return_documents": False}
        pace = _estimate_tokens([query] * len(docs) + docs)
        scores = await self._send(self.base_url + RERANK_ENDPOINT, body, pace, partial(self._decode, n=len(docs)),
                                  f"rerank request {qi} ({len(docs)} documents)")
        out[qi][start:start + len(docs)] = scores

    @staticmethod
    def _decode(obj: Any, raw: bytes, *, n: int) -> tuple[list[float], int]:
        """``results`` in input order (by ``index``), and the billed tokens; anything malformed is retried."""
        results = obj.get("results") if isinstance(obj, dict) else None
        if not isinstance(results, list):
            raise Retryable("the response has no 'results' list")
        if len(results) != n:
            raise Retryable(f"the response holds {len(results)} results for {n} documents")
        scores: list[float | None] = [None] * n
        for r in results:
            idx = r.get("index") if isinstance(r, dict) else None
            s = r.get("relevance_score") if isinstance(r, dict) else None
            if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx < n or scores[idx] is not None:
                raise Retryable(f"result index {idx!r} is not one of 0..{n - 1} or repeats")
            if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s):
                raise Retryable(f"relevance_score {s!r} of result {idx} is not a finite number")
            scores[idx] = float(s)
        usage = obj.get("usage") if isinstance(obj.get("usage"), dict) else {}
        used = usage.get("total_tokens")
        return [float(s) for s in scores if s is not None], int(used) if isinstance(used, int) and used >= 0 else 0


class LLMJudge(_HTTPJudge):
    """``llm:MODEL``: an OpenAI-compatible chat endpoint grading each pair with the UMBRELA prompt."""

    thresholds: tuple[float, ...] | None = None  # the model answers the grade itself

    def __init__(self, model: str, *, base_url: str | None, api_key: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY", api_key_file: str | Path | None = None,
                 rpm: int | None = 600, tpm: int | None = 1_000_000, concurrency: int = 4, max_retries: int = 4,
                 timeout: float = 120.0, backoff_max_s: float = 30.0, max_tokens: int = 100) -> None:
        if not model:
            raise ConfigError("llm judge needs a model name", hint="e.g. --judge llm:gpt-4o --judge-base-url URL")
        if not base_url:
            raise ConfigError(f"--judge llm:{model} needs --judge-base-url",
                              hint="an OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (vLLM, Ollama, ...)")
        from migrate.secrets import read_api_key

        key = api_key or read_api_key(api_key_env, api_key_file, required=api_key_file is not None)
        source = f"the key in the file {api_key_file}" if api_key_file else f"the key in ${api_key_env}"
        super().__init__(limits=RateLimits(rpm=rpm or 600, tpm=tpm or 1_000_000, concurrency=concurrency),
                         max_retries=max_retries, timeout=timeout, backoff_max_s=backoff_max_s, key=key,
                         key_source=source)
        self.model, self.spec, self.max_tokens = model, f"llm:{model}", max_tokens
        self.base_url = _base_url(base_url, ("/chat/completions",), "--judge-base-url")
        self.server = server_label(self.base_url)

    def identity(self) -> str:
        prompt = hashlib.sha256(UMBRELA_PROMPT.encode()).hexdigest()[:16]
        return json.dumps({"judge": "llm", "model": self.model, "base_url": redact_url(self.base_url),
                           "prompt": f"umbrela-zeroshot-bing:{prompt}", "temperature": 0}, sort_keys=True)

    def describe(self) -> str:
        return f"{self.model} through {self.server} (OpenAI-compatible chat, UMBRELA prompt, temperature 0)"

    def score(self, requests: Sequence[Request]) -> list[list[float]]:
        out: list[list[float]] = [[0.0] * len(docs) for _, docs in requests]
        coros = [self._one(qi, di, query, doc, out) for qi, (query, docs) in enumerate(requests)
                 for di, doc in enumerate(docs)]
        if coros:
            self._run(self._gather(coros))
        return out

    async def _one(self, qi: int, di: int, query: str, doc: str, out: list[list[float]]) -> None:
        prompt = UMBRELA_PROMPT.format(query=query, passage=doc)
        body = {"model": self.model, "temperature": 0, "top_p": 1, "max_tokens": self.max_tokens,
                "messages": [{"role": "system", "content": UMBRELA_SYSTEM}, {"role": "user", "content": prompt}]}
        out[qi][di] = await self._send(self.base_url + "/chat/completions", body,
                                       _estimate_tokens([prompt]) + self.max_tokens, self._decode,
                                       f"grading pair {di} of query {qi}")

    @staticmethod
    def _decode(obj: Any, raw: bytes) -> tuple[float, int]:
        try:
            content = obj["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise Retryable("the response has no choices[0].message.content") from None
        grade = parse_grade(content)
        if grade is None:
            snippet = " ".join(str(content or "").split())[:80]
            raise Retryable(f"the answer has no '##final score: 0-3' (it read {snippet!r})")
        usage = obj.get("usage") if isinstance(obj.get("usage"), dict) else {}
        used = usage.get("total_tokens")
        return float(grade), int(used) if isinstance(used, int) and used >= 0 else 0


def parse_grade(content: Any) -> int | None:
    """The 0-3 grade of an UMBRELA answer (``##final score: N``), or None."""
    if not isinstance(content, str):
        return None
    for pattern in _FINAL_SCORE:
        m = pattern.search(content)
        if m:
            return int(m.group(1))
    return None


# --------------------------------------------------------------------------- local cross-encoder


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class CrossEncoderJudge(BaseJudge):
    """``local:PATH``: a sentence-transformers CrossEncoder folder (one label) as judge."""

    def __init__(self, path: str | Path, *, device: str = "cpu", batch_size: int = 32, max_length: int | None = None,
                 thresholds: Sequence[float] | None = DEFAULT_THRESHOLDS) -> None:
        self.path = Path(path).expanduser()
        self.spec = f"local:{path}"
        self.thresholds = check_thresholds(thresholds)
        self.batch_size, self.max_length = batch_size, max_length
        config = self._check_folder()
        self.name = str(config.get("_name_or_path") or self.path.name)
        try:
            from sentence_transformers import CrossEncoder
        except ImportError:
            raise ConfigError("--judge local:PATH needs sentence-transformers", hint="pip install '.[local]'") from None
        kwargs: dict[str, Any] = {"device": device}
        if max_length is not None:
            kwargs["max_length"] = max_length
        try:
            self.model = CrossEncoder(str(self.path), **kwargs)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--judge {self.spec}: cannot load the CrossEncoder ({exc})",
                              hint="a folder saved by CrossEncoder.save or a *ForSequenceClassification model") from None
        self._identity = self._digest()

    def _check_folder(self) -> dict[str, Any]:
        """The folder's config.json when it is a one-label sequence classifier; ConfigError otherwise."""
        p = self.path
        if not p.is_dir():
            raise ConfigError(f"--judge {self.spec}: {p} is not a folder", hint="point local: at a CrossEncoder folder")
        modules = p / "modules.json"
        if modules.is_file() and "Pooling" in modules.read_text(encoding="utf-8", errors="replace"):
            raise ConfigError(f"--judge {self.spec}: this is an embedding model (it pools token vectors), not a "
                              f"cross-encoder: an embedding model as judge favours itself and its family",
                              hint="use a CrossEncoder (reranker) folder")
        try:
            config = json.loads((p / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise ConfigError(f"--judge {self.spec}: no readable config.json in {p}",
                              hint="point local: at a CrossEncoder folder (config.json + weights)") from None
        archs = config.get("architectures") or []
        labels = config.get("num_labels", len(config.get("id2label") or {}) or 1)
        if not any(str(a).endswith("ForSequenceClassification") for a in archs) or labels != 1:
            raise ConfigError(f"--judge {self.spec}: not a one-label sequence classifier (architectures {archs}, "
                              f"{labels} labels)", hint="a reranker scores a pair with one number")
        return config

    def _digest(self) -> str:
        """Content hash of the config and weights: a changed model never reuses cached scores."""
        h = hashlib.sha256()
        for f in sorted(self.path.iterdir()):
            if f.is_file() and (f.suffix in (".json", ".safetensors", ".bin") or f.name == "vocab.txt"):
                h.update(f.name.encode())
                with open(f, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        h.update(block)
        return json.dumps({"judge": "local-cross-encoder", "content": h.hexdigest(), "max_length": self.max_length,
                           "activation": "sigmoid"}, sort_keys=True)

    def identity(self) -> str:
        return self._identity

    def describe(self) -> str:
        return f"cross-encoder {self.name} from {self.path} (sigmoid of its score)"

    def families(self) -> set[str]:
        return families_of(self.name, self.path.name)

    def score(self, requests: Sequence[Request]) -> list[list[float]]:
        import inspect

        import torch

        pairs = [(q, d) for q, docs in requests for d in docs]
        if not pairs:
            return [[] for _ in requests]
        # raw scores (identity activation; the keyword changed name across sentence-transformers versions)
        act = "activation_fn" if "activation_fn" in inspect.signature(self.model.predict).parameters else "activation_fct"
        raw = self.model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False, convert_to_numpy=True,
                                 **{act: torch.nn.Identity()})
        flat = _finite_scores(_sigmoid(np.asarray(raw, dtype=np.float64).reshape(-1)), len(pairs), f"judge {self.spec}")
        out, i = [], 0
        for _, docs in requests:
            out.append(flat[i:i + len(docs)])
            i += len(docs)
        return out


# --------------------------------------------------------------------------- specs


def make_judge(spec: str, *, base_url: str | None = None, api_key_env: str | None = None,
               api_key_file: str | Path | None = None, thresholds: Sequence[float] | None = None,
               options: Mapping[str, Any] | None = None, api_base_url: str | None = None) -> Judge:
    """The judge a ``--judge`` spec names; ``ConfigError`` for anything else, before anything is sent.

    ``base_url`` (``--judge-base-url``): where ``jina-api:`` (default: ``api_base_url``, the comparison's
    own Jina API address, else ``$JINA_API_BASE_URL``, else the Jina API) and ``llm:`` (required)
    requests go. ``thresholds``: score cut points (rerankers and cross-encoders).
    """
    kind, sep, name = (spec or "").partition(":")
    if not sep or not name:
        raise ConfigError(f"--judge {spec!r} is not KIND:NAME", hint=SPEC_HINT)
    opts = dict(options or {})
    key: dict[str, Any] = {k: v for k, v in (("api_key_env", api_key_env), ("api_key_file", api_key_file))
                           if v is not None}
    if kind == "jina-api":
        return JinaRerankJudge(name, base_url=base_url or api_base_url, thresholds=thresholds or DEFAULT_THRESHOLDS, **key, **opts)
    if kind == "local":
        return CrossEncoderJudge(name, thresholds=thresholds or DEFAULT_THRESHOLDS, **opts)
    if kind == "llm":
        if thresholds is not None:
            raise ConfigError("an llm judge answers grades 0-3 itself: thresholds do not apply",
                              hint="drop the judge thresholds")
        return LLMJudge(name, base_url=base_url, **key, **opts)
    raise ConfigError(f"--judge {spec!r}: unknown judge kind {kind!r}", hint=SPEC_HINT)
