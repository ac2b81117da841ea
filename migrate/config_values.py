"""Reading one setting's value strictly, from any layer, with one message naming where it came from.

What: the value types of the settings (``Positive``, ``Shard``, ``BaseUrl``...), ``Origin`` (how
the user wrote a key: ``--dimensions``, ``run.toml: dimensions``, ``JINA_MIGRATE_DIMENSIONS``)
and ``read_value(name, field, raw, origin)``: the value in the field's Python type, or a
``ConfigError`` that names the origin, what is expected and what was given.

Why here: ``migrate.config`` holds the settings model and its layers; this module is the one
place that decides what counts as an integer, a boolean, a path... so flags, TOML and the
environment accept exactly the same values. Rules: text (flags, environment) is parsed exactly
(``31.0`` is not an integer, ``nan`` not a number, ``1_000`` not a number); typed values (TOML,
manifests, Python callers) must already have the type (``true`` is not 1, ``"256"`` not 256);
booleans in the environment may also be 1/0, yes/no, on/off; blanks around text are stripped,
nothing else is changed.
"""

from __future__ import annotations

import math
import numbers
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import AfterValidator, Field, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from migrate.errors import ConfigError

# --------------------------------------------------------------------------- value types


def _custom(message: str) -> PydanticCustomError:
    return PydanticCustomError("setting", message)


def check_shard(value: str) -> str:
    """``I/N`` with 0 <= I < N (the worker's number and the number of workers)."""
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
Shard = Annotated[str, AfterValidator(check_shard)]
BaseUrl = Annotated[str, AfterValidator(_check_base_url)]
Device = Annotated[str, AfterValidator(_check_device)]
EnvName = Annotated[str, AfterValidator(_check_env_name)]
ModelSpec = Annotated[str, AfterValidator(_check_model)]
Positive = Annotated[int, Field(ge=1)]
Money = Annotated[float, Field(gt=0, allow_inf_nan=False)]


# --------------------------------------------------------------------------- where a value came from


@dataclass(frozen=True)
class Origin:
    """Where one value came from, as the user wrote it (for messages)."""

    label: str  # --dimensions | settings.toml: dimensions | JINA_MIGRATE_DIMENSIONS
    layer: Literal["flag", "file", "env"]  # flag: text or typed values; file: typed only; env: text only


def flag_origin(name: str) -> Origin:
    return Origin("--" + name.replace("_", "-"), "flag")


# --------------------------------------------------------------------------- parsing one value

_BLANKS = " \t\r\n"  # stripped around text values; nothing else is
_INT_RE = re.compile(r"[+-]?[0-9]+")
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_TRUE, _FALSE = ("true",), ("false",)
_ENV_TRUE, _ENV_FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")

Kind = Literal["int", "float", "bool", "path", "paths", "texts", "str"]


def _strip_optional(annotation: Any) -> Any:
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) is not None and type(None) in get_args(annotation) and len(args) == 1:
        return args[0]
    return annotation


def kind_of_field(info: FieldInfo) -> Kind:
    """What a field holds: int, float, bool, path, paths (a list) or str (text and choices)."""
    ann = _strip_optional(info.annotation)
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
        return "paths" if _strip_annotated(get_args(ann)[0]) is Path else "texts"
    return "str"


def _strip_annotated(ann: Any) -> Any:
    while get_origin(ann) is Annotated:
        ann = get_args(ann)[0]
    return ann


def choices_of_field(info: FieldInfo) -> tuple[str, ...]:
    """The allowed values of a choice field (empty for free text)."""
    ann = _strip_optional(info.annotation)
    return tuple(get_args(ann)) if get_origin(ann) is Literal else ()


_EXPECT = {"int": "a whole number", "float": "a number", "bool": "true or false", "path": "a path",
           "paths": "a list of paths", "texts": "a list of addresses", "str": "text"}


def _expected(info: FieldInfo, origin: Origin) -> str:
    kind = kind_of_field(info)
    if kind == "bool" and origin.layer == "env":
        return "true or false (or 1/0, yes/no, on/off)"
    choices = choices_of_field(info)
    if choices:
        return "one of " + ", ".join(choices)
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    return str(extra.get("expect") or _EXPECT[kind])


def show(raw: Any) -> str:
    """A value as a message shows it: text quoted and cut, numbers with their type."""
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


def _parse(kind: Kind, raw: Any, origin: Origin) -> Any:
    """Turn ``raw`` into a value of ``kind`` without any lossy coercion; ValueError when it cannot."""
    text = isinstance(raw, str) and (origin.layer == "env" or (origin.layer == "flag" and kind != "str"))
    if kind == "paths":
        if isinstance(raw, (str, os.PathLike)):
            items: list[Any] = str(raw).split(",") if origin.layer == "env" else [raw]
        elif isinstance(raw, (list, tuple)):
            items = list(raw)
        else:
            raise ValueError
        return [_parse_path(x) for x in items]
    if kind == "path":
        return _parse_path(raw)
    if kind == "texts":  # repeatable text (database addresses); the environment separates them with spaces
        if isinstance(raw, str):
            items = raw.split() if origin.layer == "env" else [raw]
        elif isinstance(raw, (list, tuple)):
            items = list(raw)
        else:
            raise ValueError
        if not items or not all(isinstance(x, str) and x.strip() and "\x00" not in x for x in items):
            raise ValueError
        return items
    if kind == "str":
        if isinstance(raw, os.PathLike) and origin.layer == "flag":
            raw = os.fspath(raw)  # a path given from Python to a text setting that also takes addresses
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
    if isinstance(raw, numbers.Real):  # float
        value = float(raw)
        if isinstance(raw, numbers.Integral) and value != raw:
            raise ValueError  # an integer past 2**53 would be rounded: refused, not changed
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


_ADAPTERS: dict[int, tuple[FieldInfo, TypeAdapter]] = {}


def _adapter(info: FieldInfo) -> TypeAdapter:
    """Strict validator of the field's type with its constraints (ranges, choices, checks)."""
    if id(info) not in _ADAPTERS:
        ann: Any = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        _ADAPTERS[id(info)] = (info, TypeAdapter(ann, config={"strict": True}))
    return _ADAPTERS[id(info)][1]


def _problem(err: Mapping[str, Any], info: FieldInfo) -> str:
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
        return "expected one of " + ", ".join(choices_of_field(info))
    if kind == "finite_number":
        return "must be a finite number"
    return str(err["msg"])


def read_value(info: FieldInfo, raw: Any, origin: Origin) -> Any:
    """``raw`` as a value of the field; one ``ConfigError`` naming ``origin`` when it is not valid."""
    if raw is None and info.default is None:
        return None
    try:
        value = _parse(kind_of_field(info), raw, origin)
    except ValueError:
        raise ConfigError(f"{origin.label}: expected {_expected(info, origin)}, got {show(raw)}") from None
    try:
        return _adapter(info).validate_python(value)
    except ValidationError as exc:
        got = show(raw if not isinstance(raw, Path) else str(raw))
        raise ConfigError(f"{origin.label}: {_problem(exc.errors()[0], info)}, got {got}") from None
