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
exist) so that a run is refused before anything is written. ``plan`` builds this very object
(``load_config``, with ``apply_use_case`` as ``run`` does), so it refuses exactly what ``run`` refuses. ``check_index_params(config, dims)``
is the part that needs the output width; call it again once a local model's width is known.

Only the fields in ``EMBEDDING_FIELDS`` decide what the vectors are; they make the configuration
fingerprint that the manifest pins (a change there needs ``--restart``).
"""

from __future__ import annotations

import os
import tomllib
import warnings
from abc import abstractmethod
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from migrate.config_values import (BaseUrl, Device, EnvName, Kind, ModelSpec, Money, Origin, Positive, Shard, Text,
                                   check_shard, choices_of_field, flag_origin, kind_of_field, read_value, show)
from migrate.models import ALL_TASKS
from migrate.embed.jina_wire import EMBEDDING_TYPES
from migrate.embed.ratelimit import TIERS
from migrate.errors import ConfigError, StateError
from migrate.precision import PRECISIONS, VectorFormat, precision_problem

ENV_PREFIX = "JINA_MIGRATE_"
DEFAULT_MODEL = "jina-api:jina-embeddings-v3"

#: Fields that change the vectors. Everything else (paths, speed, budgets) may vary between reruns.
EMBEDDING_FIELDS = ("model", "task", "dimensions", "normalized", "max_input_tokens", "late_chunking", "chunker",
                    "embedding_type", "truncate", "precision", "rescore")
#: Embedding fields added after version 0.2: a manifest holds them only when they differ from these defaults,
#: so outputs of earlier versions (float32, no precision recorded) keep their fingerprint and still resume.
LATER_DEFAULTS: dict[str, Any] = {"precision": "float32", "rescore": False}
#: Names these fields carry in a manifest's ``config`` (and so in its fingerprint). Kept as
#: version 0.1.0 wrote them, so outputs of that version still resume.
MANIFEST_KEYS = {"max_input_tokens": "max_tokens"}
#: Settings never read from the environment (the variable means something else there).
ENV_EXCLUDED = frozenset({"cache"})  # JINA_MIGRATE_CACHE is the stand-in model cache folder

#: Choices.
RATE_TIERS = tuple(TIERS)
INDEX_TYPES = ("flat", "hnsw", "ivfpq")
DTYPES = ("auto", "fp32", "fp16", "bf16")
#: Bounds of the FAISS parameters: HNSW M of -3 asked for 23 GB, 0 aborts inside FAISS.
HNSW_M_MAX = 512
PQ_NBITS_MAX = 16
#: Sizes the API makes for v3 (jina-spec 1.2; the local model only accepts its Matryoshka sizes).
V3_API_DIMS = (32, 1024)


TaskName = Literal[ALL_TASKS]  # type: ignore[valid-type]
OnProblem = Literal["fail", "skip"]
#: Seconds (a positive, finite number).
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
#: Default seconds one API request may take before it is retried in halves.
DEFAULT_REQUEST_TIMEOUT = 60.0


# --------------------------------------------------------------------------- the layers of one load


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
        old_index: Text | None = Field(None, description="The v2 index: a FAISS file, Parquet/JSONL with vectors, or a "
                                                         "vector-database collection (postgresql://..., qdrant://..., "
                                                         "milvus://..., lancedb://..., chroma://...).")
        id_map: Path | None = Field(None, description="File mapping FAISS int64 ids to document ids (faiss_id, id).")
        id_field: Text | None = Field(None, description="Document id field (default: id or _id).")
        text_field: Text | None = Field(None, description="Document text field (default: text).")
        title_field: Text | None = Field(None, description="Title field, joined before the text with a space.")
        faiss_id_field: Text | None = Field(None, description="Documents column holding each document's FAISS "
                                                              "int64 id (instead of an --id-map file).")
        delimiter: Text | None = Field(None, description="CSV delimiter, e.g. ';' or '\\t' (default: sniffed from "
                                                         "the header; .tsv files use a tab).")
        id_map_faiss_field: Text | None = Field(None, description="Id-map column holding the FAISS id "
                                                                  "(default: faiss_id).")
        id_map_id_field: Text | None = Field(None, description="Id-map column holding the document id (default: id).")
        model: ModelSpec = Field(DEFAULT_MODEL, description="Embedder: jina-api:MODEL or local:PATH.",
                                 json_schema_extra={"expect": "text BACKEND:NAME"})
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
                                                       "paragraphs (default sentences:3).",
                                     json_schema_extra={"expect": "text such as sentences:3"})
        embedding_type: Literal[EMBEDDING_TYPES] = Field("float", description="API wire format of the vectors.")  # type: ignore[valid-type]
        truncate: bool = Field(False, description="API: cut inputs over 8192 tokens instead of failing.")
        precision: Literal[PRECISIONS] = Field("float32", description="How the new vectors are stored in the "  # type: ignore[valid-type]
                                               "output and destinations: float16 (cast), int8 (scalar, calibrated "
                                               "on the first shard) or binary (sign bits; the API's ubinary).")
        rescore: bool = Field(False, description="With --precision: keep the float32 vectors beside the reduced "
                                                 "ones (rescore.npy) to re-rank the top results.")
        shard_size: Positive = Field(1000, description="Documents per shard.")
        shard: Shard | None = Field(None, description="Run only worker I of N (I/N), for a CI matrix; "
                                                      "then `finalize`.", json_schema_extra={"expect": "text I/N such as 0/4"})
        restart: bool = Field(False, description="Discard shards of another configuration and start over.")
        on_missing: OnProblem = Field("fail", description="Vectors with no document.")
        on_empty: OnProblem = Field("fail", description="Documents with empty text.")
        sink: list[Text] = Field(default_factory=list, description="Also write the vectors into a NEW collection of "
                                 "a vector database (repeatable), e.g. postgresql://HOST/DB?table=docs_v3&alias=docs; "
                                 "the FAISS + Parquet output in --out is always written.")
        delete_missing: bool = Field(False, description="Database destinations: delete rows whose documents are gone "
                                                        "(incremental re-index).")
        cache: list[Path] = Field(default_factory=list, description="Earlier output folder whose vectors may be "
                                                                    "reused (repeatable).")
        index_type: Literal[INDEX_TYPES] = Field("flat", description="FAISS index of the new vectors.")  # type: ignore[valid-type]
        hnsw_m: Annotated[int, Field(ge=2, le=HNSW_M_MAX)] = Field(32, description="HNSW: links per node (M).")
        hnsw_ef_construction: Positive = Field(200, description="HNSW: candidates while building (efConstruction).")
        ivf_nlist: Positive | None = Field(None, description="IVF-PQ: inverted lists (default about 4*sqrt(N)).")
        pq_m: Positive | None = Field(None, description="IVF-PQ: sub-quantizers; must divide the dimensions.")
        pq_nbits: Annotated[int, Field(ge=1, le=PQ_NBITS_MAX)] = Field(8, description="IVF-PQ: bits per "
                                                                                      "sub-quantizer code.")
        device: Device = Field("auto", description="Local models: auto, cpu, cuda, cuda:N or mps.",
                               json_schema_extra={"expect": "text such as cpu or cuda:0"})
        dtype: Literal[DTYPES] = Field("auto", description="Local models: weights' precision.")  # type: ignore[valid-type]
        token_budget: Positive = Field(16384, description="Local models: padded tokens per batch.")
        base_url: BaseUrl | None = Field(None, description="API base URL (default https://api.jina.ai).",
                                         json_schema_extra={"expect": "a URL as text"})
        api_key_env: EnvName = Field("JINA_API_KEY", description="Environment variable holding the API key.",
                                     json_schema_extra={"expect": "the name of an environment variable"})
        api_key_file: Path | None = Field(None, description="File holding the API key (instead of the environment).")
        rpm: Positive | None = Field(None, description="API: requests per minute (overrides the tier).")
        tpm: Positive | None = Field(None, description="API: tokens per minute (overrides the tier).")
        concurrency: Positive | None = Field(None, description="API: concurrent requests (overrides the tier).")
        request_timeout: Seconds = Field(DEFAULT_REQUEST_TIMEOUT, description="API: seconds one request may take; "
                                         "a request that times out is sent again in halves (a loaded server or "
                                         "network answers smaller requests in time).")
        tier: Literal[RATE_TIERS] = Field("conservative", description="API rate-limit preset.")  # type: ignore[valid-type]
        max_tokens: Positive | None = Field(None, description="Stop before spending more tokens than this "
                                                              "(resumable).")
        max_cost: Money | None = Field(None, description="Stop before this cost (needs --price-per-million).")
        price_per_million: Money | None = Field(None, description="Price per million tokens (none assumed).")
        yes: bool = Field(False, description="Confirm a paid run (required without a terminal).")
        # the field replaces pydantic's deprecated v1 ``BaseModel.json()`` method (pydantic allows it: the warning is
        # silenced above); its name is the option users see (--json, TOML json, JINA_MIGRATE_JSON), and every
        # layer is keyed by field name, so it keeps it
        json: bool = Field(False, description="Machine-readable progress (JSON lines) on stdout.")  # type: ignore[assignment]

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

        def given(self) -> frozenset[str]:
            """The settings a layer gave (flag, TOML file, environment); the others hold their defaults."""
            return frozenset(self._origins)

        def worker(self) -> tuple[int, int]:
            """``--shard I/N`` -> (I, N); (0, 1) when unset."""
            if not self.shard:
                return 0, 1
            i, n = (int(x) for x in check_shard(self.shard).split("/"))
            return i, n

        def embedding_config(self) -> dict[str, Any]:
            """The fields that decide the vectors, under their manifest names (pinned in fingerprints)."""
            return {MANIFEST_KEYS.get(k, k): getattr(self, k) for k in EMBEDDING_FIELDS
                    if k not in LATER_DEFAULTS or getattr(self, k) != LATER_DEFAULTS[k]}

        def changed_from(self, recorded: dict[str, Any]) -> list[str]:
            """The embedding fields (manifest names) whose value differs from a manifest's ``config``."""
            now = self.embedding_config()
            fallback = {MANIFEST_KEYS.get(k, k): v for k, v in LATER_DEFAULTS.items()}
            return sorted(k for k in set(now) | set(recorded)
                          if recorded.get(k, fallback.get(k)) != now.get(k, fallback.get(k)))

        def vector_format(self, dims: int | None = None) -> VectorFormat:
            """How this run's vectors are stored (``migrate.precision``); ``dims`` once the width is known."""
            return VectorFormat.of(self.embedding_config(), dims=dims or self.output_dimensions())

        def api_embedding_type(self) -> str:
            """The API wire format: binary precision asks for the API's own ``ubinary`` sign bits unless the
            floats are kept for rescoring or ``--embedding-type`` was given."""
            if self.precision == "binary" and not self.rescore and "embedding_type" not in self.given():
                return "ubinary"
            return self.embedding_type

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
            from migrate.embed.registry import backend_for

            if not backend_for(self.model).remote:
                opts |= {"device": self.device, "dtype": self.dtype, "token_budget": self.token_budget,
                         "allow_any_dimensions": self.allow_any_dimensions or None}
            else:
                opts |= {"base_url": self.base_url, "api_key_env": self.api_key_env, "api_key_file": self.api_key_file,
                         "rpm": self.rpm, "tpm": self.tpm, "concurrency": self.concurrency, "tier": self.tier,
                         "embedding_type": self.api_embedding_type(), "truncate": self.truncate,
                         "timeout": self.request_timeout, "timeout_setting": self.where("request_timeout")}
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
            from migrate.embed.registry import backend_for

            remote = backend_for(self.model).remote
            if remote:
                self._check_api_model(name)
            if self.out is not None and self.out.exists() and not self.out.is_dir():
                raise ConfigError(f"{self.where('out')}: {_path_text(self.out)} exists and is not a directory")
            for d in self.cache:
                if not d.is_dir():
                    raise ConfigError(f"{self.where('cache')}: {_path_text(d)} is not a directory",
                                      hint="give the output folder of an earlier run")
            if self.api_key_file is not None and remote and not self.api_key_file.is_file():
                raise ConfigError(f"{self.where('api_key_file')}: {_path_text(self.api_key_file)} is not a readable file")
            check_index_params(self, self.output_dimensions())
            self._check_addresses()

        def _check_addresses(self) -> None:
            """Database addresses parse (no password in them, valid names) before anything connects."""
            from migrate.engines import collection_address, is_address

            for name, value in [("old_index", self.old_index)] + [("sink", s) for s in self.sink]:
                if value is not None and (name == "sink" or is_address(value)):
                    collection_address(value, self.where(name))
            if self.late_chunking and self.sink:
                raise ConfigError(f"{self.where('sink')}: database destinations take one vector per document; "
                                  "late chunking makes several", hint="drop --late-chunking, or --sink")

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


def _path_text(path: Path) -> str:
    """A path for a one-line message: as is when printable, else quoted with escapes."""
    text = str(path)
    return text if text.isprintable() else repr(text)


def _api_model(spec: str):
    """Catalogue entry of a ``jina-api:NAME`` spec (None for other backends and unknown names)."""
    prefix, _, name = spec.partition(":")
    if prefix != "jina-api":
        return None
    from migrate.models import CATALOGUE

    return CATALOGUE.get(name)


def _check_backend(prefix: str, label: str) -> None:
    from migrate.embed.registry import backends

    known = backends()  # the registry's: built-in, registered in-process, and plugins' entry points
    if prefix not in known:
        raise ConfigError(f"{label}: unknown embedding backend {prefix!r}",
                          hint="known: " + ", ".join(f"{p}:..." for p in sorted(known)))


def check_index_params(config: RunConfig, dims: int | None, rows: int | None = None) -> None:
    """Refuse index parameters FAISS cannot build, before any vector is embedded (``migrate.index_rules``).

    ``dims`` is the output width when known (explicit ``--dimensions``, the API model's width,
    or a loaded local model's); ``rows`` the number of vectors, when known. The message names
    the setting as the user gave it. Ranges of single values are checked by ``RunConfig``.
    """
    from migrate.index_rules import index_problem

    problem = index_problem(config.index_type, ivf_nlist=config.ivf_nlist, pq_m=config.pq_m,
                            pq_nbits=config.pq_nbits, vectors=rows, dims=dims)
    if problem is not None:
        raise ConfigError(f"{config.where(problem.setting)}: {problem.message}", hint=problem.hint)
    found = precision_problem(config.precision, dims=dims, index_type=config.index_type, rescore=config.rescore)
    if found is not None:
        setting, message, hint = found
        raise ConfigError(f"{config.where(setting)}: {message}", hint=hint)


# --------------------------------------------------------------------------- sources (pydantic-settings)


class _LayerSource(PydanticBaseSettingsSource):
    """One layer's raw values (checked later by ``check_value``), recording where each came from.

    Built on the public source interface only, so pydantic-settings' own parsing (JSON for
    lists, lax booleans) never touches the values.
    """

    def __init__(self, settings_cls: type[BaseSettings], layers: _Layers) -> None:
        super().__init__(settings_cls)
        self._layers = layers

    @abstractmethod
    def origin(self, name: str) -> Origin:
        """Where a value of this layer came from (for messages)."""

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


def kind_of(name: str) -> Kind:
    """What setting ``name`` holds: int, float, bool, path, paths (a list) or str (text and choices)."""
    return kind_of_field(RunConfig.model_fields[name])


def choices_of(name: str) -> tuple[str, ...]:
    """The allowed values of choice setting ``name`` (empty for free text)."""
    return choices_of_field(RunConfig.model_fields[name])


def check_value(name: str, raw: Any, origin: Origin) -> Any:
    """The checked value of setting ``name``; ``ConfigError`` naming ``origin`` when it is not valid."""
    if name not in RunConfig.model_fields:
        raise ConfigError(f"{origin.label}: unknown setting {name!r}",
                          hint="see `jina-migrate run --help`; TOML keys are the option names")
    return read_value(RunConfig.model_fields[name], raw, origin)


def apply_use_case(flags: dict[str, Any], use_case: str | None) -> dict[str, Any]:
    """``flags`` with the task a ``--use-case`` stands for; both flags at once are refused.

    ``run`` and ``plan`` both call this, so they accept and refuse the same combinations.
    """
    if not use_case:
        return flags
    if flags.get("task"):
        raise ConfigError("give --task or --use-case, not both")
    from migrate.models import task_for_use_case

    return {**flags, "task": task_for_use_case(use_case)}


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
        raise ConfigError(f"{label}: migrate: expected a table ([migrate]), got {show(section)}")
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
        raise ConfigError(f"{label}: {err['msg']}") from None
    finally:
        _LAYERS.reset(token)
    return cfg
