"""Run configuration: typed settings from flags > TOML file > environment (JINA_MIGRATE_*) > defaults.

``RunConfig`` is the one object the runner reads. It is a pydantic-settings model: every value
is checked strictly, whatever layer it comes from, and a bad one raises ONE ``ConfigError`` that
names the key the way the user wrote it and what is expected::

    --dimensions: expected a whole number, got '31.9'
    settings.toml: normalized: expected true or false, got 'maybe'
    JINA_MIGRATE_NORMALIZED: expected true or false (or 1/0, yes/no, on/off), got 'banana'

Nothing is coerced silently: integers refuse floats and booleans, booleans refuse numbers and
words (the environment alone may say 1/0, yes/no, on/off), TOML values must have their TOML
type (``dimensions = "256"`` is refused), text from the command line or the environment is
parsed exactly (``31.0`` is not an integer; ``nan`` is not a number).

Layers (highest first): ``flags`` given to ``load_config`` (command line or in-process
callers; ``None`` means "not given"), the TOML file's ``[migrate]`` table (or its top level),
``JINA_MIGRATE_<FIELD>`` environment variables, then the defaults below. ``JINA_MIGRATE_CACHE``
is NOT read as ``cache``: that variable already names the stand-in models' cache folder.

``validate_for_run()`` adds the checks that need the model catalogue (dimensions the model can
make, unknown ``jina-api:`` names, index parameters against the output width, files that must
exist) so that a run is refused before anything is written. ``check_index_params(config, dims)``
is the part that needs the output width; call it again once a local model's width is known.

Only the fields in ``EMBEDDING_FIELDS`` decide what the vectors are; they make the configuration
fingerprint that the manifest pins (a change there needs ``--restart``).
"""

from __future__ import annotations

import math
import numbers
import os
import re
import tomllib
import warnings
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import AfterValidator, Field, PrivateAttr, TypeAdapter, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from migrate.embed.base import ALL_TASKS
from migrate.errors import ConfigError, StateError

ENV_PREFIX = "JINA_MIGRATE_"
DEFAULT_MODEL = "jina-api:jina-embeddings-v3"

#: Fields that change the vectors. Everything else (paths, speed, budgets) may vary between reruns.
EMBEDDING_FIELDS = ("model", "task", "dimensions", "normalized", "max_input_tokens", "late_chunking", "chunker",
                    "embedding_type", "truncate")
#: Names these fields carry in a manifest's ``config`` (and so in its fingerprint). Kept as
#: version 0.1.0 wrote them, so outputs of that version still resume.
MANIFEST_KEYS = {"max_input_tokens": "max_tokens"}
#: Settings never read from the environment (the variable means something else there).
ENV_EXCLUDED = frozenset({"cache"})  # JINA_MIGRATE_CACHE is the stand-in model cache folder

#: Choices, kept here so the settings can be checked without importing the backends.
EMBEDDING_TYPES = ("float", "base64", "binary", "ubinary")  # = migrate.embed.jina_wire.EMBEDDING_TYPES
RATE_TIERS = ("conservative", "free", "tier1", "tier2")  # = migrate.embed.ratelimit.TIERS
INDEX_TYPES = ("flat", "hnsw", "ivfpq")
DTYPES = ("auto", "fp32", "fp16", "bf16")
BUILTIN_BACKENDS = ("jina-api", "local", "jina-local")
#: Bounds of the FAISS parameters: HNSW M of -3 asked for 23 GB, 0 aborts inside FAISS.
HNSW_M_MAX = 512
PQ_NBITS_MAX = 16
#: Sizes the API makes for v3 (jina-spec 1.2; the local model only accepts its Matryoshka sizes).
V3_API_DIMS = (32, 1024)


# --------------------------------------------------------------------------- value checks


def _custom(message: str) -> PydanticCustomError:
    return PydanticCustomError("setting", message)


def _check_shard(value: str) -> str:
    m = re.fullmatch(r"([0-9]+)/([0-9]+)", value)
    if not m:
        raise _custom("expected I/N, the worker's number and the number of workers (e.g. 0/4)")
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1 or i >= n:
        raise _custom("need 0 <= I < N (e.g. 0/4 .. 3/4)")
    return value


def _check_base_url(value: str) -> str:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # raises ValueError for a port that is not a number
    except ValueError:
        ok = False
    if not ok or any(c.isspace() for c in value):
        raise _custom("expected an http:// or https:// URL with a host")
    return value


def _check_device(value: str) -> str:
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
        raise _custom("expected auto, cpu, mps, cuda or cuda:N")
    return value


def _check_env_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise _custom("expected the name of an environment variable (letters, digits, _)")
    return value


def _check_model(value: str) -> str:
    prefix, sep, rest = value.partition(":")
    if not sep or not prefix or not rest.strip():
        raise _custom("expected BACKEND:NAME, e.g. jina-api:jina-embeddings-v3 or local:PATH")
    return value


Text = Annotated[str, Field(min_length=1)]
Shard = Annotated[str, AfterValidator(_check_shard)]
BaseUrl = Annotated[str, AfterValidator(_check_base_url)]
Device = Annotated[str, AfterValidator(_check_device)]
EnvName = Annotated[str, AfterValidator(_check_env_name)]
ModelSpec = Annotated[str, AfterValidator(_check_model)]
Positive = Annotated[int, Field(ge=1)]
Money = Annotated[float, Field(gt=0, allow_inf_nan=False)]

TaskName = Literal[ALL_TASKS]  # type: ignore[valid-type]
OnProblem = Literal["fail", "skip"]


# --------------------------------------------------------------------------- where a value came from


@dataclass(frozen=True)
class Origin:
    """Where one value came from, as the user wrote it (for messages)."""

    label: str  # --dimensions | settings.toml: dimensions | JINA_MIGRATE_DIMENSIONS
    layer: Literal["flag", "file", "env"]  # flag: text or typed values; file: typed only; env: text only


def flag_origin(name: str) -> Origin:
    return Origin("--" + name.replace("_", "-"), "flag")


@dataclass
class _Layers:
    """The sources of one ``load_config`` call, and the origin of every value that won."""

    toml: dict[str, Any] = field(default_factory=dict)
    toml_keys: dict[str, str] = field(default_factory=dict)  # field -> key as written
    toml_label: str = ""
    environ: Mapping[str, str] = field(default_factory=dict)
    origins: dict[str, Origin] = field(default_factory=dict)

    def origin(self, name: str) -> Origin:
        return self.origins.get(name) or flag_origin(name)


_LAYERS: ContextVar[_Layers | None] = ContextVar("jina_migrate_settings_layers", default=None)


def _origins_now() -> _Layers:
    return _LAYERS.get() or _Layers()


# --------------------------------------------------------------------------- the settings


with warnings.catch_warnings():  # the field ``json`` (--json) shadows BaseModel.json, a deprecated v1 method
    warnings.filterwarnings("ignore", message='Field name "json"', category=UserWarning)

    class RunConfig(BaseSettings):
        """Everything one run needs. Field names are the CLI's option names (``--max-input-tokens``)."""

        model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, case_sensitive=True, extra="forbid", strict=True,
                                          validate_default=False, env_ignore_empty=False)

        docs: Path | None = Field(None, description="Documents: Parquet, JSONL or CSV/TSV.")
        out: Path | None = Field(None, description="Output directory (created).")
        old_index: Path | None = Field(None, description="The v2 index: FAISS file or Parquet/JSONL with vectors.")
        id_map: Path | None = Field(None, description="File mapping FAISS int64 ids to document ids (faiss_id, id).")
        id_field: Text | None = Field(None, description="Document id field (default: id or _id).")
        text_field: Text | None = Field(None, description="Document text field (default: text).")
        title_field: Text | None = Field(None, description="Title field, joined before the text with a space.")
        model: ModelSpec = Field(DEFAULT_MODEL, description="Embedder: jina-api:MODEL or local:PATH.")
        task: TaskName = Field("text-matching", description="v3 task of the documents (text-matching mimics v2).")
        dimensions: Positive | None = Field(None, description="Output size (v3 API: 32..1024, default 1024; "
                                                               "768 keeps v2's width; v2 models: their own width).")
        allow_any_dimensions: bool = Field(False, description="Local v3: allow sizes outside the model's "
                                                              "Matryoshka list.")
        normalized: bool = Field(True, description="L2-normalise the vectors (cosine = inner product).")
        max_input_tokens: Positive | None = Field(None, description="Cut each input at this many tokens "
                                                                    "(local models).")
        late_chunking: bool = Field(False, description="Embed chunks of each document in one context.")
        chunker: Text | None = Field(None, description="With --late-chunking: tokens:256, sentences:3, boundaries, "
                                                       "paragraphs (default sentences:3).")
        embedding_type: Literal[EMBEDDING_TYPES] = Field("float", description="API wire format of the vectors.")  # type: ignore[valid-type]
        truncate: bool = Field(False, description="API: cut inputs over 8192 tokens instead of failing.")
        shard_size: Positive = Field(1000, description="Documents per shard.")
        shard: Shard | None = Field(None, description="Run only worker I of N (I/N), for a CI matrix; "
                                                      "then `finalize`.")
        restart: bool = Field(False, description="Discard shards of another configuration and start over.")
        on_missing: OnProblem = Field("fail", description="Vectors with no document.")
        on_empty: OnProblem = Field("fail", description="Documents with empty text.")
        cache: list[Path] = Field(default_factory=list, description="Earlier output folder whose vectors may be "
                                                                    "reused (repeatable).")
        index_type: Literal[INDEX_TYPES] = Field("flat", description="FAISS index of the new vectors.")  # type: ignore[valid-type]
        hnsw_m: Annotated[int, Field(ge=2, le=HNSW_M_MAX)] = Field(32, description="HNSW: links per node (M).")
        hnsw_ef_construction: Positive = Field(200, description="HNSW: candidates while building (efConstruction).")
        ivf_nlist: Positive | None = Field(None, description="IVF-PQ: inverted lists (default about 4*sqrt(N)).")
        pq_m: Positive | None = Field(None, description="IVF-PQ: sub-quantizers; must divide the dimensions.")
        pq_nbits: Annotated[int, Field(ge=1, le=PQ_NBITS_MAX)] = Field(8, description="IVF-PQ: bits per "
                                                                                      "sub-quantizer code.")
        device: Device = Field("auto", description="Local models: auto, cpu, cuda, cuda:N or mps.")
        dtype: Literal[DTYPES] = Field("auto", description="Local models: weights' precision.")  # type: ignore[valid-type]
        token_budget: Positive = Field(16384, description="Local models: padded tokens per batch.")
        base_url: BaseUrl | None = Field(None, description="API base URL (default https://api.jina.ai).")
        api_key_env: EnvName = Field("JINA_API_KEY", description="Environment variable holding the API key.")
        api_key_file: Path | None = Field(None, description="File holding the API key (instead of the environment).")
        rpm: Positive | None = Field(None, description="API: requests per minute (overrides the tier).")
        tpm: Positive | None = Field(None, description="API: tokens per minute (overrides the tier).")
        concurrency: Positive | None = Field(None, description="API: concurrent requests (overrides the tier).")
        tier: Literal[RATE_TIERS] = Field("conservative", description="API rate-limit preset.")  # type: ignore[valid-type]
        max_tokens: Positive | None = Field(None, description="Stop before spending more tokens than this "
                                                              "(resumable).")
        max_cost: Money | None = Field(None, description="Stop before this cost (needs --price-per-million).")
        price_per_million: Money | None = Field(None, description="Price per million tokens (none assumed).")
        yes: bool = Field(False, description="Confirm a paid run (required without a terminal).")
        json: bool = Field(False, description="Machine-readable progress (JSON lines) on stdout.")

        _origins: dict[str, Origin] = PrivateAttr(default_factory=dict)

        # ------------------------------------------------------------- layering

        def __init__(self, **values: Any) -> None:
            if _LAYERS.get() is not None:  # load_config / from_manifest set the layers
                super().__init__(**values)
                return
            # Plain RunConfig(...): keyword arguments, then the process environment, then defaults.
            token = _LAYERS.set(_Layers(environ=dict(os.environ)))
            try:
                super().__init__(**values)
            finally:
                _LAYERS.reset(token)

        @classmethod
        def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                       file_secret_settings):  # noqa: ANN001 - pydantic-settings hook
            """Flags (keyword arguments) > the TOML file > JINA_MIGRATE_* variables (no .env, no secrets dir)."""
            layers = _origins_now()
            return init_settings, _TomlSource(settings_cls, layers), _EnvironSource(settings_cls, layers)

        @model_validator(mode="before")
        @classmethod
        def _check_each_value(cls, data: Any) -> Any:
            """Parse and check every given value against its field, naming where it came from."""
            if not isinstance(data, dict):
                return data
            layers = _origins_now()
            return {name: check_value(name, raw, layers.origin(name)) for name, raw in data.items()}

        @model_validator(mode="after")
        def _check_together(self) -> RunConfig:
            """Checks between fields; the chunker spec is normalised (it is part of the fingerprint)."""
            where = _origins_now().origin
            if self.chunker and not self.late_chunking:
                raise ConfigError(f"{where('chunker').label}: a chunker only applies with late chunking",
                                  hint="add --late-chunking, or drop the chunker")
            if self.late_chunking and not self.chunker:
                self.chunker = "sentences:3"
            if self.chunker:
                from migrate.embed.chunking import parse_chunker

                try:
                    self.chunker = parse_chunker(self.chunker).describe()
                except ConfigError as exc:
                    raise ConfigError(f"{where('chunker').label}: {exc.message}", hint=exc.hint) from None
            if self.max_cost is not None and self.price_per_million is None:
                raise ConfigError(f"{where('max_cost').label} needs --price-per-million (no price is assumed)")
            return self

        def model_post_init(self, context: Any, /) -> None:
            self._origins = dict(_origins_now().origins)

        # ------------------------------------------------------------- API used by the pipeline

        def where(self, name: str) -> str:
            """How the user wrote setting ``name`` (``--pq-m``, ``run.toml: pq_m``, ``JINA_MIGRATE_PQ_M``)."""
            return (self._origins.get(name) or flag_origin(name)).label

        def worker(self) -> tuple[int, int]:
            """``--shard I/N`` -> (I, N); (0, 1) when unset."""
            if not self.shard:
                return 0, 1
            i, n = (int(x) for x in _check_shard(self.shard).split("/"))
            return i, n

        def embedding_config(self) -> dict[str, Any]:
            """The fields that decide the vectors, under their manifest names (pinned in fingerprints)."""
            return {MANIFEST_KEYS.get(k, k): getattr(self, k) for k in EMBEDDING_FIELDS}

        @classmethod
        def from_manifest(cls, config: dict[str, Any], **extra: Any) -> RunConfig:
            """The run configuration a manifest's ``config`` section describes.

            Values are checked like TOML values; a bad one is a ``StateError`` (the output
            directory holds it), and the environment is not read.
            """
            if not isinstance(config, dict):
                raise StateError("manifest.json: its config is not a table",
                                 hint="restore it, or rerun `jina-migrate run` with --restart")
            back = {v: k for k, v in MANIFEST_KEYS.items()}
            values = {back.get(k, k): v for k, v in config.items()}
            layers = _Layers(origins={k: Origin(MANIFEST_KEYS.get(k, k), "file") for k in values})
            token = _LAYERS.set(layers)
            try:
                return cls(**values, **extra)
            except ConfigError as exc:
                raise StateError(f"manifest.json: its config is damaged or was edited by hand: {exc.message}",
                                 hint="restore it, or rerun `jina-migrate run` with --restart") from None
            finally:
                _LAYERS.reset(token)

        def backend_options(self) -> dict[str, Any]:
            """Options passed to ``get_embedder``; each backend takes what it knows."""
            opts: dict[str, Any] = {"dimensions": self.dimensions, "normalized": self.normalized,
                                    "normalize": self.normalized, "max_tokens": self.max_input_tokens}
            if self.model.startswith(("local:", "jina-local:")):
                opts |= {"device": self.device, "dtype": self.dtype, "token_budget": self.token_budget,
                         "allow_any_dimensions": self.allow_any_dimensions or None}
            else:
                opts |= {"base_url": self.base_url, "api_key_env": self.api_key_env, "api_key_file": self.api_key_file,
                         "rpm": self.rpm, "tpm": self.tpm, "concurrency": self.concurrency, "tier": self.tier,
                         "embedding_type": self.embedding_type, "truncate": self.truncate}
            return {k: v for k, v in opts.items() if v is not None}

        def output_dimensions(self) -> int | None:
            """The width of the new vectors when it is known before any model loads."""
            if self.dimensions is not None:
                return self.dimensions
            info = _api_model(self.model)
            return info.dimensions if info is not None else None

        def validate_for_run(self) -> None:
            """Refuse, before anything is written, what the model or the files cannot do."""
            prefix, _, name = self.model.partition(":")
            _check_backend(prefix, self.where("model"))
            if prefix == "jina-api":
                self._check_api_model(name)
            if self.out is not None and self.out.exists() and not self.out.is_dir():
                raise ConfigError(f"{self.where('out')}: {self.out} exists and is not a directory")
            for d in self.cache:
                if not d.is_dir():
                    raise ConfigError(f"{self.where('cache')}: {d} is not a directory",
                                      hint="give the output folder of an earlier run")
            if self.api_key_file is not None and prefix == "jina-api" and not self.api_key_file.is_file():
                raise ConfigError(f"{self.where('api_key_file')}: {self.api_key_file} is not a readable file")
            check_index_params(self, self.output_dimensions())

        def _check_api_model(self, name: str) -> None:
            from migrate.models import CATALOGUE, V3_NAME

            info = CATALOGUE.get(name)
            if info is None:
                try:
                    from migrate.models import get_model

                    alias = get_model(name).name
                    hint = f"the API wants the full name: jina-api:{alias}"
                except ConfigError:
                    hint = f"known: {', '.join(CATALOGUE)}; see `jina-migrate models`"
                raise ConfigError(f"{self.where('model')}: unknown Jina API model {name!r}", hint=hint)
            if self.dimensions is not None:
                lo, hi = V3_API_DIMS
                if info.name == V3_NAME and not lo <= self.dimensions <= hi:
                    raise ConfigError(f"{self.where('dimensions')}: {self.dimensions} is outside {lo}..{hi}, "
                                      f"the sizes the API makes with {info.name}", hint="e.g. 1024, 768, 512 or 256")
                if info.generation == "v2" and self.dimensions != info.dimensions:
                    raise ConfigError(f"{self.where('dimensions')}: {info.name} makes {info.dimensions}-d vectors "
                                      f"and is not trained for {self.dimensions}",
                                      hint="drop --dimensions for v2 models; only v3 can be truncated")
            if self.max_input_tokens is not None:
                from migrate.models import MAX_TOKENS

                if self.max_input_tokens < MAX_TOKENS:
                    raise ConfigError(f"{self.where('max_input_tokens')}: the Jina API always reads up to "
                                      f"{MAX_TOKENS} tokens per text",
                                      hint="drop it for jina-api (use --truncate to let the API cut longer texts)")


def _api_model(spec: str):
    """Catalogue entry of a ``jina-api:NAME`` spec (None for other backends and unknown names)."""
    prefix, _, name = spec.partition(":")
    if prefix != "jina-api":
        return None
    from migrate.models import CATALOGUE

    return CATALOGUE.get(name)


def _check_backend(prefix: str, label: str) -> None:
    known = set(BUILTIN_BACKENDS)
    from migrate.embed import registry

    known |= set(getattr(registry, "_FACTORIES", {}))  # plugins that registered a prefix
    if prefix not in known:
        raise ConfigError(f"{label}: unknown embedding backend {prefix!r}",
                          hint="known: " + ", ".join(f"{p}:..." for p in sorted(known)))


def check_index_params(config: RunConfig, dims: int | None, rows: int | None = None) -> None:
    """Refuse index parameters FAISS cannot build, before any vector is embedded.

    ``dims`` is the output width when known (explicit ``--dimensions``, the API model's width,
    or a loaded local model's); ``rows`` the number of vectors, when known. Each message names
    the setting as the user gave it. Ranges of single values are checked by ``RunConfig``.
    """
    if config.index_type != "ivfpq":
        return
    if dims is not None and config.pq_m is not None:
        if config.pq_m > dims or dims % config.pq_m:
            divisors = [m for m in (4, 8, 16, 32, 48, 64, 96, 128) if m <= dims and dims % m == 0]
            raise ConfigError(f"{config.where('pq_m')}: {config.pq_m} does not divide the {dims} output dimensions",
                              hint=f"choose a divisor of {dims}" + (f", e.g. {', '.join(map(str, divisors))}"
                                                                    if divisors else ""))
    if rows is not None:
        nlist = config.ivf_nlist or max(1, min(int(4 * math.sqrt(rows)), rows // 39 or 1))
        need = max(nlist * 39, 2 ** config.pq_nbits)
        if rows < need:
            raise ConfigError(f"IVF-PQ with nlist={nlist}, nbits={config.pq_nbits} needs at least {need} vectors "
                              f"to train; this run has {rows}",
                              hint="use --index-type flat or hnsw for small corpora, or lower --ivf-nlist/--pq-nbits")


# --------------------------------------------------------------------------- sources (pydantic-settings)


class _LayerSource(PydanticBaseSettingsSource):
    """One layer's raw values (checked later by ``check_value``), recording where each came from.

    Built on the public source interface only, so pydantic-settings' own parsing (JSON for
    lists, lax booleans) never touches the values.
    """

    def __init__(self, settings_cls: type[BaseSettings], layers: _Layers) -> None:
        super().__init__(settings_cls)
        self._layers = layers

    def origin(self, name: str) -> Origin:  # pragma: no cover - overridden
        raise NotImplementedError

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, info in self.settings_cls.model_fields.items():
            value, _, _ = self.get_field_value(info, name)
            if value is not None:
                values[name] = value
                self._layers.origins.setdefault(name, self.origin(name))  # sources run highest first
        return values


class _TomlSource(_LayerSource):
    """The TOML file's values (read by ``load_config``: ``[migrate]`` table, ``-`` or ``_`` in keys)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._layers.toml.get(field_name), field_name, False

    def origin(self, name: str) -> Origin:
        return Origin(f"{self._layers.toml_label}: {self._layers.toml_keys[name]}", "file")


class _EnvironSource(_LayerSource):
    """``JINA_MIGRATE_<FIELD>`` (exact case) from the given environment, as text."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name in ENV_EXCLUDED:
            return None, field_name, False
        return self._layers.environ.get(ENV_PREFIX + field_name.upper()), field_name, False

    def origin(self, name: str) -> Origin:
        return Origin(ENV_PREFIX + name.upper(), "env")


# --------------------------------------------------------------------------- parsing one value

_BLANKS = " \t\r\n"  # stripped around text values; nothing else is
_INT_RE = re.compile(r"[+-]?[0-9]+")
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_TRUE, _FALSE = ("true",), ("false",)
_ENV_TRUE, _ENV_FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")

Kind = Literal["int", "float", "bool", "path", "paths", "str"]


def _strip_optional(annotation: Any) -> Any:
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) is not None and type(None) in get_args(annotation) and len(args) == 1:
        return args[0]
    return annotation


def kind_of(name: str) -> Kind:
    """What a setting holds: int, float, bool, path, paths (a list) or str (text and choices)."""
    ann = _strip_optional(RunConfig.model_fields[name].annotation)
    while get_origin(ann) is Annotated:
        ann = get_args(ann)[0]
    if ann is bool:
        return "bool"
    if ann is int:
        return "int"
    if ann is float:
        return "float"
    if ann is Path:
        return "path"
    if get_origin(ann) is list:
        return "paths"
    return "str"


def choices_of(name: str) -> tuple[str, ...]:
    """The allowed values of a choice setting (empty for free text)."""
    ann = _strip_optional(RunConfig.model_fields[name].annotation)
    return tuple(get_args(ann)) if get_origin(ann) is Literal else ()


_EXPECT = {"int": "a whole number", "float": "a number", "bool": "true or false", "path": "a path",
           "paths": "a list of paths", "str": "text"}
_EXPECT_TEXT = {"shard": "text I/N such as 0/4", "base_url": "a URL as text", "model": "text BACKEND:NAME",
                "chunker": "text such as sentences:3", "device": "text such as cpu or cuda:0",
                "api_key_env": "the name of an environment variable"}


def _expected(name: str, origin: Origin) -> str:
    kind = kind_of(name)
    if kind == "bool" and origin.layer == "env":
        return "true or false (or 1/0, yes/no, on/off)"
    choices = choices_of(name)
    if choices:
        return "one of " + ", ".join(choices)
    return _EXPECT_TEXT.get(name, _EXPECT[kind])


def _show(raw: Any) -> str:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, str):
        return repr(raw) if len(raw) <= 60 else repr(raw[:57]) + "..."
    if isinstance(raw, list):
        return "a list"
    if isinstance(raw, dict):
        return "a table"
    kind = {int: "an integer", float: "a float"}.get(type(raw), f"a {type(raw).__name__}")
    return f"{raw!r} ({kind})"


def _parse(name: str, raw: Any, origin: Origin) -> Any:
    """Turn ``raw`` into the Python type of ``name`` without any lossy coercion; ValueError when it cannot."""
    kind = kind_of(name)
    text = isinstance(raw, str) and (origin.layer == "env" or (origin.layer == "flag" and kind != "str"))
    if kind == "paths":
        if isinstance(raw, (str, os.PathLike)):
            items: list[Any] = [s for s in str(raw).split(",")] if origin.layer == "env" else [raw]
        elif isinstance(raw, (list, tuple)):
            items = list(raw)
        else:
            raise ValueError
        return [_parse_path(x) for x in items]
    if kind == "path":
        return _parse_path(raw)
    if kind == "str":
        if not isinstance(raw, str):
            raise ValueError
        return raw
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        if not text:
            raise ValueError
        word = raw.strip(_BLANKS).lower()
        yes, no = (_ENV_TRUE, _ENV_FALSE) if origin.layer == "env" else (_TRUE, _FALSE)
        if word in yes or word in no:
            return word in yes
        raise ValueError
    if isinstance(raw, bool):
        raise ValueError  # True is not 1
    if kind == "int":
        if isinstance(raw, numbers.Integral):
            return int(raw)
        if text and _INT_RE.fullmatch(raw.strip(_BLANKS)):
            return int(raw.strip(_BLANKS))
        raise ValueError
    # float
    if isinstance(raw, numbers.Real):
        value = float(raw)
    elif text and _FLOAT_RE.fullmatch(raw.strip(_BLANKS)):
        value = float(raw.strip(_BLANKS))
    else:
        raise ValueError
    if not math.isfinite(value):
        raise ValueError
    return value


def _parse_path(raw: Any) -> Path:
    if isinstance(raw, Path):
        value = str(raw)
    elif isinstance(raw, (str, os.PathLike)):
        value = os.fspath(raw)
    else:
        raise ValueError
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise ValueError
    try:
        os.fsencode(value)  # a lone surrogate cannot name a file
    except UnicodeEncodeError:
        raise ValueError from None
    return Path(value)


_ADAPTERS: dict[str, TypeAdapter] = {}


def _adapter(name: str) -> TypeAdapter:
    if name not in _ADAPTERS:
        f = RunConfig.model_fields[name]
        ann = Annotated[(f.annotation, *f.metadata)] if f.metadata else f.annotation
        _ADAPTERS[name] = TypeAdapter(ann, config={"strict": True})
    return _ADAPTERS[name]


def _problem(err: dict[str, Any], name: str) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "greater_than_equal":
        return f"must be at least {ctx['ge']}"
    if kind == "greater_than":
        return f"must be greater than {ctx['gt']}"
    if kind == "less_than_equal":
        return f"must be at most {ctx['le']}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "literal_error":
        return "expected one of " + ", ".join(choices_of(name))
    if kind == "finite_number":
        return "must be a finite number"
    return str(err["msg"])


def check_value(name: str, raw: Any, origin: Origin) -> Any:
    """The checked value of setting ``name``; ``ConfigError`` naming ``origin`` when it is not valid."""
    if name not in RunConfig.model_fields:
        raise ConfigError(f"{origin.label}: unknown setting {name!r}",
                          hint="see `jina-migrate run --help`; TOML keys are the option names")
    if raw is None and RunConfig.model_fields[name].default is None:
        return None
    try:
        value = _parse(name, raw, origin)
    except ValueError:
        raise ConfigError(f"{origin.label}: expected {_expected(name, origin)}, got {_show(raw)}") from None
    try:
        return _adapter(name).validate_python(value)
    except ValidationError as exc:
        err = exc.errors()[0]
        got = _show(raw if not isinstance(raw, Path) else str(raw))
        raise ConfigError(f"{origin.label}: {_problem(err, name)}, got {got}") from None


def parse_flags(flags: dict[str, Any]) -> dict[str, Any]:
    """Check command-line values (text or typed) of settings, one by one; ``None`` = not given (dropped).

    For commands that share the settings' options without building a whole ``RunConfig``.
    """
    return {k: check_value(k, v, flag_origin(k)) for k, v in flags.items() if v is not None}


# --------------------------------------------------------------------------- loading


def _read_toml(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    label = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{label}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{label}: is a directory, not a TOML file") from None
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read config ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{label}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{label}: invalid TOML ({exc})") from None
    section = data.get("migrate", data)
    if not isinstance(section, dict):
        raise ConfigError(f"{label}: migrate: expected a table ([migrate]), got {_show(section)}")
    values: dict[str, Any] = {}
    keys: dict[str, str] = {}
    for key, val in section.items():
        name = key.replace("-", "_")
        if name not in RunConfig.model_fields:
            raise ConfigError(f"{label}: unknown setting {key!r}",
                              hint="the keys are the `jina-migrate run` option names, e.g. shard_size or shard-size")
        if name in values:
            raise ConfigError(f"{label}: {key!r} is given twice (as {keys[name]!r} too)")
        values[name], keys[name] = val, key
    return values, keys


def load_config(flags: dict[str, Any], toml_path: Path | None = None,
                environ: Mapping[str, str] | None = None) -> RunConfig:
    """Merge the layers into a checked ``RunConfig``, refused before anything is written.

    ``flags`` holds the options the user gave (``None`` = not given), as text from the command
    line or typed values from Python callers. ``environ`` defaults to ``os.environ``. Raises one
    ``ConfigError`` naming the first bad value and where it came from.
    """
    layers = _Layers(environ=dict(os.environ if environ is None else environ))
    if toml_path is not None:
        layers.toml, layers.toml_keys = _read_toml(Path(toml_path))
        layers.toml_label = str(toml_path)
    given: dict[str, Any] = {}
    for name, val in flags.items():
        if val is None:
            continue
        if name not in RunConfig.model_fields:
            raise ConfigError(f"unknown setting {name!r}")
        given[name] = val
        layers.origins[name] = flag_origin(name)
    token = _LAYERS.set(layers)
    try:
        cfg = RunConfig(**given)
        cfg.validate_for_run()
    except ValidationError as exc:  # checks above name the value first; this is a safety net
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else ""
        label = layers.origin(name).label if name else "settings"
        raise ConfigError(f"{label}: {_problem(err, name) if name in RunConfig.model_fields else err['msg']}") from None
    finally:
        _LAYERS.reset(token)
    return cfg
