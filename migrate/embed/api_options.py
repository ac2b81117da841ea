"""Typed options of the ``jina-api:`` backend and what the API accepts per model.

What: ``APIOptions`` (validated by ``backend.parse_options``: unknown or ill-typed options
are ``ConfigError``s) and ``api_capabilities(model)``: tasks, late chunking and
``dimensions`` per catalogued model (jina-spec §1.2: ``task``, ``dimensions`` and
``late_chunking`` are v3 fields; v2 models have their own width only).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic.dataclasses import dataclass as options_dataclass

from migrate.embed.backend import OPTIONS_CONFIG, Bool, Capabilities, Float, Int, PathArg, SecretArg, Str, StrOrPath
from migrate.embed.jina_wire import EMBEDDING_TYPES, MAX_INPUTS_PER_REQUEST, MAX_TOKENS_PER_INPUT
from migrate.errors import ConfigError

DEFAULT_API_KEY_ENV = "JINA_API_KEY"


@options_dataclass(config=OPTIONS_CONFIG)
class APIOptions:
    """Options of ``jina-api:`` (``normalize`` is accepted for ``normalized``)."""

    ALIASES: ClassVar[dict[str, str]] = {"normalize": "normalized"}
    base_url: Str | None = None  # default: $JINA_API_BASE_URL, else https://api.jina.ai
    api_key: SecretArg | None = None  # the key itself (e.g. handed to a Ray worker); wins over file and env
    api_key_file: PathArg | None = None
    api_key_env: Str = DEFAULT_API_KEY_ENV
    limiter: Any = None  # a shared limiter with AsyncRateLimiter's methods (e.g. ray_limiter.SharedLimiterProxy)
    dimensions: Int | None = None
    embedding_type: Str = "float"
    normalized: Bool = True
    truncate: Bool = False
    tier: Str | None = None
    rpm: Int | None = None
    tpm: Int | None = None
    concurrency: Int | None = None
    max_retries: Int = 8
    timeout: Float = 60.0  # seconds per request; a request that times out is sent again in halves
    timeout_setting: Str = "--request-timeout"  # how messages name the timeout knob (run's setting)
    max_request_tokens: Int | None = None
    max_inputs: Int = MAX_INPUTS_PER_REQUEST
    tokenizer: StrOrPath | None = None  # a tokenizer.json, its folder, or "heuristic"
    max_tokens: Int | None = None  # per input; the API always reads 8192
    token_limit: Int | None = None  # budget of billed tokens for this client
    headroom: Float = 0.98
    backoff_max_s: Float = 30.0

    def __post_init__(self) -> None:
        """The values the API can take, checked once where they are declared."""
        if self.embedding_type not in EMBEDDING_TYPES:
            raise ConfigError(f"unknown embedding_type {self.embedding_type!r}", hint=f"choose one of {', '.join(EMBEDDING_TYPES)}")
        if self.dimensions is not None and self.dimensions < 1:
            raise ConfigError(f"dimensions must be positive, got {self.dimensions}")
        if not 1 <= self.max_inputs <= MAX_INPUTS_PER_REQUEST:
            raise ConfigError(f"max_inputs must be between 1 and {MAX_INPUTS_PER_REQUEST}, got {self.max_inputs}")
        if self.max_tokens is not None and self.max_tokens < MAX_TOKENS_PER_INPUT:
            raise ConfigError(f"max_tokens={self.max_tokens}: the Jina API always reads up to {MAX_TOKENS_PER_INPUT} tokens per text",
                              hint="drop --max-tokens for jina-api (use --truncate to let the API cut longer texts)")
        if self.max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {self.max_retries}")
        if not self.timeout > 0:
            raise ConfigError(f"{self.timeout_setting}: the request timeout must be positive, got {self.timeout}")


def api_capabilities(model: str) -> Capabilities:
    """What the API accepts for ``model``, from the catalogue (jina-spec §1.2, §2, §3)."""
    from migrate.models import get_model

    try:
        m = get_model(model)
    except ConfigError:
        return Capabilities(max_tokens=MAX_TOKENS_PER_INPUT)
    if m.name != model:  # an alias: the API wants the exact name
        return Capabilities(max_tokens=MAX_TOKENS_PER_INPUT)
    if m.tasks:
        lo = min(m.matryoshka_dims) if m.matryoshka_dims else m.dimensions
        return Capabilities(tuple(m.tasks), True, (lo, m.dimensions), m.dimensions, m.max_tokens, catalogued=True)
    return Capabilities((), False, (m.dimensions, m.dimensions), m.dimensions, m.max_tokens, catalogued=True)
