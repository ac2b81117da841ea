"""Command-line options generated from the settings: one declaration per setting, shared by commands.

The option of setting ``max_input_tokens`` (``migrate.config.RunConfig``) is ``--max-input-tokens``;
its help is the field's description plus its choices and default, so there is no renaming table
and no second copy of the help. Values reach the command as the text the user typed and are parsed
by the settings layer, so the command line, the TOML file and the environment accept exactly the
same values and give the same one-line messages (typer would turn ``--dimensions 31.0`` into 31
and ``--out ''`` into the current directory).

* ``option(name)`` (or ``OPTS.name``) is the ``Annotated`` declaration of one setting's option,
  for any command: ``plan`` can share ``--docs``, ``--dimensions``, ``--tier``... as
  ``def plan_command(docs: OPTS.docs = None, tier: OPTS.tier = None, ...)`` and parse the
  values with ``migrate.config.parse_flags``.
* ``settings_command(names)`` gives a command one option per listed setting (``run``: all of
  them); the function receives them as one ``settings`` dict, ready for ``load_config``.
* ``FlagFriendlyCommand``/``FlagFriendlyGroup`` drop the ``<bool>`` placeholder that typer
  >= 0.29 prints next to every flag (``--help`` included).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperCommand, TyperGroup

from migrate.config import RunConfig, choices_of, kind_of

#: Short aliases (kept from version 0.1.0).
SHORT = {"docs": "-d", "out": "-o", "model": "-m"}
#: Booleans that can be switched both ways (``--truncate/--no-truncate``); the others only switch on.
PAIRED = frozenset({"normalized", "late_chunking", "truncate"})
#: Help panels, in the order ``run --help`` shows them.
PANELS: dict[str, tuple[str, ...]] = {
    "Sources": ("docs", "out", "old_index", "id_map", "id_field", "text_field", "title_field", "faiss_id_field",
                "delimiter", "id_map_faiss_field", "id_map_id_field", "on_missing", "on_empty", "cache"),
    "Model": ("model", "task", "dimensions", "allow_any_dimensions", "normalized", "max_input_tokens",
              "late_chunking", "chunker", "embedding_type", "truncate"),
    "Shards": ("shard_size", "shard", "restart"),
    "Destinations": ("sink", "delete_missing"),
    "Index": ("precision", "rescore", "index_type", "hnsw_m", "hnsw_ef_construction", "ivf_nlist", "pq_m", "pq_nbits"),
    "Local models": ("device", "dtype", "token_budget"),
    "API": ("base_url", "api_key_env", "api_key_file", "tier", "rpm", "tpm", "concurrency", "request_timeout"),
    "Budget": ("max_tokens", "max_cost", "price_per_million", "yes"),
    "Output": ("json",),
}
_PANEL_OF = {name: panel for panel, names in PANELS.items() for name in names}
_METAVAR = {"int": "INT", "float": "NUMBER", "path": "PATH", "paths": "DIR", "texts": "URI", "str": "TEXT"}
_METAVAR_MAX = 30


def option_name(name: str) -> str:
    """``max_input_tokens`` -> ``--max-input-tokens``."""
    return "--" + name.replace("_", "-")


def help_text(name: str) -> str:
    """The field's description, with its choices (the default marked) or its default value."""
    f = RunConfig.model_fields[name]
    text = (f.description or "").rstrip()
    choices = choices_of(name)
    if choices:
        listed = ", ".join(f"{c} (default)" if c == f.default else c for c in choices)
        return f"{text} One of: {listed}."
    if kind_of(name) not in ("bool", "paths", "texts") and f.default is not None:
        return f"{text} Default: {f.default}."
    return text


@functools.cache
def option(name: str, panel: str | None = None) -> Any:
    """``Annotated`` declaration of setting ``name``'s option (text, or a bool for flags; None = not given)."""
    if name not in RunConfig.model_fields:
        raise KeyError(f"no setting {name!r}")
    decls = [option_name(name)]
    kind = kind_of(name)
    panel = panel or _PANEL_OF.get(name)
    if kind == "bool":
        if name in PAIRED:
            decls = [f"{decls[0]}/--no-{decls[0][2:]}"]
        info = typer.Option(*decls, help=help_text(name), metavar="", show_default=False, rich_help_panel=panel)
        return Annotated[Optional[bool], info]
    if name in SHORT:
        decls.append(SHORT[name])
    metavar = "|".join(choices_of(name))
    if not metavar or len(metavar) > _METAVAR_MAX:  # long lists are in the help text
        metavar = _METAVAR[kind]
    info = typer.Option(*decls, help=help_text(name), metavar=metavar, show_default=False, rich_help_panel=panel)
    if kind in ("paths", "texts"):
        return Annotated[Optional[list[str]], info]
    return Annotated[Optional[str], info]


class _Options:
    """``OPTS.dimensions`` is ``option("dimensions")``: attribute access keeps annotations lint-clean."""

    def __getattr__(self, name: str) -> Any:
        try:
            return option(name)
        except KeyError:
            raise AttributeError(name) from None

    def __dir__(self) -> list[str]:
        return list(RunConfig.model_fields)


OPTS = _Options()


def settings_command(names: Iterable[str] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give ``fn(settings, *, other options...)`` one option per setting in ``names`` (default: all).

    The command line shows the settings' options first (in settings order, by panel), then
    ``fn``'s own keyword options. ``fn`` receives the settings as one dict: text or bool as
    typed, ``None`` where not given (on-only flags that are off are ``None`` too).
    """
    chosen = tuple(names) if names is not None else tuple(RunConfig.model_fields)

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        own = list(inspect.signature(fn, eval_str=True).parameters.values())[1:]
        params = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=option(n))
                  for n in chosen]
        params += [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]

        @functools.wraps(fn)
        def command(**kwargs: Any) -> Any:
            settings = {n: kwargs.pop(n) for n in chosen}
            for n in chosen:
                if settings[n] is False and n not in PAIRED:
                    settings[n] = None  # an on-only flag left off was not given
            return fn(settings, **kwargs)

        del command.__wrapped__  # typer must see the generated signature, not fn's
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return deco


class _NoBoolPlaceholder:
    """Flags take no value: show nothing where typer >= 0.29 prints ``<bool>``."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)  # type: ignore[misc]
        for p in params:
            if getattr(p, "is_flag", False) and getattr(p, "metavar", None) is None:
                p.metavar = ""
        return params


class FlagFriendlyCommand(_NoBoolPlaceholder, TyperCommand):
    """A command whose help shows no ``<bool>`` next to flags."""


class FlagFriendlyGroup(_NoBoolPlaceholder, TyperGroup):
    """The top-level group, same fix."""
