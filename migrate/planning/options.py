"""What ``build_plan`` reads: paths and numbers, never a key or a client.

``PlanOptions.validate`` refuses impossible values before any file is read (exit 2).
Rate-limit tiers are ``migrate.embed.ratelimit.TIERS`` (the client's own presets).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from migrate.embed.ratelimit import TIERS
from migrate.errors import ConfigError
from migrate.sources.scan import POLICIES
from migrate.tokens import DEFAULT_SAMPLE_SIZE, FULL_COUNT_MAX_CHARS

#: Inputs per API request (jina-spec 1.5).
MAX_INPUTS_PER_REQUEST = 2048
DEPLOYMENTS = ("api", "local")


@dataclass
class PlanOptions:
    """Everything ``build_plan`` reads. Paths and numbers only: no key, no client.

    ``deployment`` None means: ``local`` when ``local_model`` is given (the plan is then
    for that model: its width, tokenizer, input limit and prompts), else ``api``.
    ``on_missing``/``on_empty`` are ``run``'s validation policies, so the plan reports
    exactly what ``run`` would refuse.
    """

    documents: Path | None = None  # None: the old index is a collection that holds the text
    id_field: str | None = None
    faiss_id_field: str | None = None  # documents column holding each document's FAISS id (as in run)
    delimiter: str | None = None  # CSV/TSV delimiter (sniffed when not given)
    id_map_faiss_field: str | None = None
    id_map_id_field: str | None = None
    text_field: str | None = None
    title_field: str | None = None
    old_index: Path | str | None = None  # a file, or a vector-database address (text: a Path would fold its //)
    id_map: Path | None = None
    from_model: str | None = None
    use_case: str | None = None
    task: str | None = None
    dimensions: int | None = None
    late_chunking: bool = False
    truncate: bool = False
    deployment: str | None = None  # api | local | None (see the class doc)
    commercial: bool = True
    tokenizer: Path | None = None
    estimate_only: bool = False
    sample_size: int = DEFAULT_SAMPLE_SIZE
    full_max_chars: int = FULL_COUNT_MAX_CHARS
    seed: int = 0
    price_per_million: float | None = None
    tier: str | None = None
    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None
    inputs_per_request: int = MAX_INPUTS_PER_REQUEST
    request_tokens: int | None = None
    shard_size: int = 1000
    local_model: str | None = None  # embedder spec or folder: the model that runs (deployment local)
    calibrate: bool = True  # time a sample with local_model (False: only plan the run with it)
    calibration_seconds: float = 20.0
    calibration_max_docs: int = 2048
    bill_prefix: bool = False
    on_missing: str = "fail"
    on_empty: str = "fail"
    sink: list[str] = field(default_factory=list)  # database destinations (``--sink URI``): sizes estimated
    index_type: str | None = None  # run's --index-type (the sink maps it to the engine's own index)
    hnsw_m: int | None = None
    hnsw_ef_construction: int | None = None
    ivf_nlist: int | None = None
    precision: str = "float32"  # run's --precision: storage priced in it, destinations checked for it
    rescore: bool = False

    @property
    def resolved_deployment(self) -> str:
        return self.deployment or ("local" if self.local_model else "api")

    @property
    def runs_local_model(self) -> bool:
        """The run will embed with ``local_model`` (not only time it next to the API)."""
        return bool(self.local_model) and self.resolved_deployment == "local"

    def validate(self) -> None:
        if self.deployment is not None and self.deployment not in DEPLOYMENTS:
            raise ConfigError(f"--deployment {self.deployment!r}", hint="use api or local")
        if not 1 <= self.inputs_per_request <= MAX_INPUTS_PER_REQUEST:
            raise ConfigError(f"--inputs-per-request must be 1..{MAX_INPUTS_PER_REQUEST}")
        if self.shard_size < 1:
            raise ConfigError("--shard-size must be at least 1")
        if self.sample_size < 10:
            raise ConfigError("--sample-size must be at least 10")
        if self.full_max_chars < 0:
            raise ConfigError("--full-max-chars must not be negative")
        if self.price_per_million is not None and self.price_per_million < 0:
            raise ConfigError("--price-per-million must not be negative")
        if self.tier is not None and self.tier not in TIERS:
            raise ConfigError(f"unknown --tier {self.tier!r}", hint=f"choose one of {', '.join(TIERS)}")
        for name in ("rpm", "tpm", "concurrency", "request_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.calibration_seconds <= 0:
            raise ConfigError("--calibration-seconds must be positive")
        for name in ("on_missing", "on_empty"):
            if getattr(self, name) not in POLICIES:
                raise ConfigError(f"--{name.replace('_', '-')} {getattr(self, name)!r}",
                                  hint=f"use {' or '.join(POLICIES)}")
