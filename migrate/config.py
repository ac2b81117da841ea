"""Run configuration: flags > TOML file > environment (JINA_MIGRATE_*) > defaults.

``RunConfig`` is the one object the runner reads. Only the fields in
``EMBEDDING_FIELDS`` decide what the vectors are; they make the configuration
fingerprint that the manifest pins (a change there needs ``--restart``).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from migrate.embed.base import ALL_TASKS
from migrate.errors import ConfigError

ENV_PREFIX = "JINA_MIGRATE_"
DEFAULT_MODEL = "jina-api:jina-embeddings-v3"

#: Fields that change the vectors. Everything else (paths, speed, budgets) may vary between reruns.
EMBEDDING_FIELDS = ("model", "task", "dimensions", "normalized", "max_input_tokens", "late_chunking", "chunker",
                    "embedding_type", "truncate")
#: Names these fields carry in a manifest's ``config`` (and so in its fingerprint). Kept as
#: version 0.1.0 wrote them, so outputs of that version still resume.
MANIFEST_KEYS = {"max_input_tokens": "max_tokens"}


@dataclass
class RunConfig:
    docs: Path | None = None
    out: Path | None = None
    old_index: Path | None = None
    id_map: Path | None = None
    id_field: str | None = None
    text_field: str | None = None
    title_field: str | None = None
    model: str = DEFAULT_MODEL  # embedder spec: local:PATH | jina-api:MODEL
    task: str = "text-matching"
    dimensions: int | None = None
    allow_any_dimensions: bool = False
    normalized: bool = True
    max_input_tokens: int | None = None
    late_chunking: bool = False
    chunker: str | None = None
    embedding_type: str = "float"
    truncate: bool = False
    shard_size: int = 1000
    shard: str | None = None  # "I/N"
    restart: bool = False
    on_missing: str = "fail"
    on_empty: str = "fail"
    cache: list[Path] = field(default_factory=list)
    index_type: str = "flat"  # flat | hnsw | ivfpq
    hnsw_m: int = 32
    hnsw_ef_construction: int = 200
    ivf_nlist: int | None = None
    pq_m: int | None = None
    pq_nbits: int = 8
    # backend options
    device: str = "auto"
    dtype: str = "auto"
    token_budget: int = 16384
    base_url: str | None = None
    api_key_env: str = "JINA_API_KEY"
    api_key_file: Path | None = None
    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None
    tier: str | None = None
    # budgets
    max_tokens: int | None = None
    max_cost: float | None = None
    price_per_million: float | None = None
    yes: bool = False
    json: bool = False

    def validate(self) -> None:
        if self.task not in ALL_TASKS:
            raise ConfigError(f"unknown task {self.task!r}", hint=f"choose one of {', '.join(ALL_TASKS)}")
        if self.on_missing not in ("fail", "skip") or self.on_empty not in ("fail", "skip"):
            raise ConfigError("--on-missing/--on-empty take fail or skip")
        if self.index_type not in ("flat", "hnsw", "ivfpq"):
            raise ConfigError(f"unknown index type {self.index_type!r}", hint="use flat, hnsw or ivfpq")
        if self.shard_size < 1:
            raise ConfigError("--shard-size must be at least 1")
        if self.dimensions is not None and self.dimensions < 1:
            raise ConfigError("--dimensions must be positive")
        if self.chunker and not self.late_chunking:
            raise ConfigError("--chunker only applies with --late-chunking")
        if self.late_chunking and not self.chunker:
            self.chunker = "sentences:3"
        if self.chunker:
            from migrate.embed.chunking import parse_chunker

            self.chunker = parse_chunker(self.chunker).describe()
        if self.max_cost is not None and not self.price_per_million:
            raise ConfigError("--max-cost needs --price-per-million (no price is assumed)")
        self.worker()

    def worker(self) -> tuple[int, int]:
        """``--shard I/N`` -> (I, N); (0, 1) when unset."""
        if not self.shard:
            return 0, 1
        try:
            i, n = (int(x) for x in self.shard.split("/"))
        except ValueError:
            raise ConfigError(f"--shard {self.shard!r} is not of the form I/N (e.g. 0/4)") from None
        if n < 1 or not 0 <= i < n:
            raise ConfigError(f"--shard {self.shard}: need 0 <= I < N")
        return i, n

    def embedding_config(self) -> dict[str, Any]:
        d = asdict(self)
        return {MANIFEST_KEYS.get(k, k): d[k] for k in EMBEDDING_FIELDS}

    @classmethod
    def from_manifest(cls, config: dict[str, Any], **extra: Any) -> RunConfig:
        """The run configuration a manifest's ``config`` section describes."""
        back = {v: k for k, v in MANIFEST_KEYS.items()}
        return cls(**{back.get(k, k): v for k, v in config.items()}, **extra)

    def backend_options(self) -> dict[str, Any]:
        """Options passed to ``get_embedder``; each backend takes what it knows."""
        opts: dict[str, Any] = {"dimensions": self.dimensions, "normalized": self.normalized,
                                "normalize": self.normalized, "max_tokens": self.max_input_tokens}
        from migrate.embed.registry import backend_for

        if not backend_for(self.model).remote:
            opts |= {"device": self.device, "dtype": self.dtype, "token_budget": self.token_budget,
                     "allow_any_dimensions": self.allow_any_dimensions or None}
        else:
            opts |= {"base_url": self.base_url, "api_key_env": self.api_key_env, "api_key_file": self.api_key_file,
                     "rpm": self.rpm, "tpm": self.tpm, "concurrency": self.concurrency, "tier": self.tier,
                     "embedding_type": self.embedding_type, "truncate": self.truncate}
        return {k: v for k, v in opts.items() if v is not None}


def _coerce(name: str, value: Any, template: Any) -> Any:
    kind = {f.name: f.type for f in fields(RunConfig)}[name]
    if value is None:
        return None
    try:
        if "Path" in str(kind) and "list" in str(kind):
            return [Path(v) for v in (value if isinstance(value, list) else str(value).split(","))]
        if "Path" in str(kind):
            return Path(value)
        if "bool" in str(kind):
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
        if "int" in str(kind) and "str" not in str(kind):
            return int(value)
        if "float" in str(kind):
            return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: cannot use {value!r}") from None
    return value


def load_config(flags: dict[str, Any], toml_path: Path | None = None, environ: dict[str, str] | None = None) -> RunConfig:
    """Merge sources; ``flags`` holds only options the user actually gave (None = not given)."""
    environ = dict(os.environ if environ is None else environ)
    known = {f.name for f in fields(RunConfig)}
    values: dict[str, Any] = {}
    for f in fields(RunConfig):
        env_val = environ.get(ENV_PREFIX + f.name.upper())
        if env_val is not None:
            values[f.name] = _coerce(f.name, env_val, None)
    if toml_path is not None:
        try:
            data = tomllib.loads(Path(toml_path).read_text())
        except OSError as exc:
            raise ConfigError(f"{toml_path}: cannot read config ({exc.strerror})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{toml_path}: invalid TOML ({exc})") from None
        section = data.get("migrate", data)
        for key, val in section.items():
            name = key.replace("-", "_")
            if name not in known:
                raise ConfigError(f"{toml_path}: unknown setting {key!r}")
            values[name] = _coerce(name, val, None)
    for name, val in flags.items():
        if val is not None and name in known:
            values[name] = _coerce(name, val, None) if not isinstance(val, (list, bool)) or name == "cache" else val
    cfg = RunConfig(**values)
    cfg.validate()
    return cfg
