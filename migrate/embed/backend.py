"""What an embedding backend declares about itself: capabilities and typed options.

What:
* ``Capabilities``: what a model behind a backend can do (tasks that change its
  vectors, late chunking, the ``dimensions`` it accepts, its input limit), as far as it
  is known before the model is loaded.
* ``Backend``: one backend resolved for one spec (``jina-api:jina-embeddings-v3``): its
  name, whether it is an API over the network (``remote``) and may spend money
  (``billed``), its capabilities and its options type.
* ``BackendType``: what a backend module registers (``migrate.embed.registry``): the
  same facts plus the factory.
* ``parse_options``: a dict of options -> the backend's options dataclass; an unknown
  option, an ill-typed value or an impossible ``dimensions`` is a ``ConfigError``
  naming the option, never a silent coercion.

Why: callers (configuration, planner, CLI, executors, reports) ask the registry instead
of testing spec prefixes, so adding a backend is its module plus one registry line.
Options types are pydantic dataclasses in strict mode (``True`` is not 1, ``"8"`` is not
8, ``31.9`` is not 31).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, Strict, TypeAdapter, ValidationError

from migrate.models import ALL_TASKS, TASK_NONE
from migrate.errors import ConfigError
from migrate.secrets import Secret

#: Option value types (strict: no silent coercion between bool, int, float and str).
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]


def _to_secret(v: Any) -> Any:
    return Secret(v) if isinstance(v, str) else v


def _to_path(v: Any) -> Any:
    return Path(v) if isinstance(v, str) else v


def _path_to_str(v: Any) -> Any:
    return os.fspath(v) if isinstance(v, os.PathLike) else v


#: A path given as ``str`` or ``Path``.
PathArg = Annotated[Path, BeforeValidator(_to_path)]
#: A string, or a path kept as its string (e.g. a tokenizer path or the word "heuristic").
StrOrPath = Annotated[str, Strict(), BeforeValidator(_path_to_str)]
#: An API key given as ``str`` or ``Secret``; held as a ``Secret`` (never shown).
SecretArg = Annotated[Secret, BeforeValidator(_to_secret)]

#: Config for every options dataclass: unknown options are errors, options are read-only.
OPTIONS_CONFIG = ConfigDict(extra="forbid", arbitrary_types_allowed=True, frozen=True)

#: Options whose values must never appear in a message.
_SECRET_OPTIONS = frozenset({"api_key"})


@dataclass(frozen=True)
class Capabilities:
    """What a model can do, as far as is known without loading it.

    ``tasks``: the tasks that change this model's vectors; any other task of
    ``ALL_TASKS`` is accepted and ignored (``ignores``). ``dimensions``: inclusive range
    of sizes ``dimensions`` may take (None: known once the model is loaded).
    ``native_dimensions``: the model's own width. ``catalogued``: the facts come from the
    model catalogue (False: an unknown model name on a compatible server).
    """

    tasks: tuple[str, ...] = ALL_TASKS
    late_chunking: bool = True
    dimensions: tuple[int, int] | None = None
    native_dimensions: int | None = None
    max_tokens: int | None = None
    catalogued: bool = False

    def ignores(self, task: str) -> bool:
        """True when ``task`` is accepted but does not change the vectors."""
        return task != TASK_NONE and task not in self.tasks

    def check_dimensions(self, dimensions: int | None, model: str) -> None:
        """ConfigError when ``dimensions`` is outside what ``model`` accepts."""
        if dimensions is None or self.dimensions is None:
            return
        lo, hi = self.dimensions
        if not lo <= dimensions <= hi:
            accepted = f"only its own width, {hi}" if lo == hi else f"{lo}..{hi}"
            raise ConfigError(f"--dimensions {dimensions} is not possible for {model}: it accepts {accepted}",
                              hint="drop --dimensions or pick a size in that range")

    def as_dict(self) -> dict[str, Any]:
        return {"tasks": list(self.tasks), "late_chunking": self.late_chunking,
                "dimensions": list(self.dimensions) if self.dimensions else None,
                "native_dimensions": self.native_dimensions, "max_tokens": self.max_tokens,
                "catalogued": self.catalogued}


@dataclass(frozen=True)
class Backend:
    """One backend resolved for one spec (see module docstring)."""

    name: str
    model: str
    remote: bool
    billed: bool
    options_type: type
    capabilities: Capabilities
    description: str = ""

    @property
    def spec(self) -> str:
        return f"{self.name}:{self.model}"

    def option_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self.options_type))


@dataclass(frozen=True)
class BackendType:
    """What a backend module registers: facts, options type, factory, capabilities per model."""

    name: str
    remote: bool
    billed: bool
    options_type: type
    factory: Callable[[str, Any], Any]  # (model, options) -> Embedder
    capabilities: Callable[[str], Capabilities] = lambda model: Capabilities()
    description: str = ""

    def resolve(self, model: str) -> Backend:
        return Backend(self.name, model, self.remote, self.billed, self.options_type, self.capabilities(model),
                       self.description)


def parse_options(options_type: type, given: Mapping[str, Any] | None = None, *, base: Any = None,
                  where: str = "backend") -> Any:
    """``given`` (None values = not given) on top of ``base`` -> an ``options_type`` instance.

    Aliases listed in ``options_type.ALIASES`` (e.g. ``normalize`` for ``normalized``) are
    accepted; giving both with different values is an error.
    """
    if base is not None and not isinstance(base, options_type):
        raise ConfigError(f"{where}: options must be {options_type.__name__}, got {type(base).__name__}")
    raw = {k: v for k, v in (given or {}).items() if v is not None}
    aliases: dict[str, str] = getattr(options_type, "ALIASES", {})
    for alias, name in aliases.items():
        if alias in raw:
            value = raw.pop(alias)
            if name in raw and raw[name] != value:
                raise ConfigError(f"{where}: options {alias!r} and {name!r} disagree ({value!r} vs {raw[name]!r})")
            raw.setdefault(name, value)
    known = {f.name for f in fields(options_type)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where} does not take the option {unknown[0]!r}",
                          hint=f"it takes: {', '.join(sorted(known))}")
    try:
        if base is not None:
            merged = {f.name: getattr(base, f.name) for f in fields(options_type)} | raw
            return TypeAdapter(options_type).validate_python(merged)
        return TypeAdapter(options_type).validate_python(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err.get("loc") else "?"
        shown = "" if name in _SECRET_OPTIONS else f" (got {raw.get(name)!r})"
        raise ConfigError(f"{where}: option {name!r}: {err['msg'].lower()}{shown}") from None


def options_dict(options: Any) -> dict[str, Any]:
    """An options dataclass as a dict (for ``replace``-style updates and messages)."""
    if not is_dataclass(options):
        raise TypeError("not an options dataclass")
    return {f.name: getattr(options, f.name) for f in fields(options)}


__all__ = ["Backend", "BackendType", "Bool", "Capabilities", "Float", "Int", "OPTIONS_CONFIG", "PathArg",
           "SecretArg", "Str", "StrOrPath", "options_dict", "parse_options"]
