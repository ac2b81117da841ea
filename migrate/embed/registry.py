"""Find an embedding backend by spec string: the only place that knows spec prefixes.

``local:PATH_OR_NAME``    sentence-transformers / transformers model on this machine
                          (jina-embeddings-v3/v2 folders go to the Jina local backend)
``jina-local:PATH``       jina-embeddings-v3/v2 folder, task adapters and all
``jina-api:MODEL``        the Jina Embeddings API (or a compatible server via ``base_url``)

Public API:

* ``backend_for(spec) -> Backend``: name, ``remote``, ``billed``, capabilities and the
  options type, without loading a model (callers ask this instead of testing prefixes).
* ``get_embedder(spec, options=None, **kw) -> Embedder``: options validated against the
  backend's options type (unknown or ill-typed option, impossible ``dimensions`` ->
  ``ConfigError`` naming it), then the backend built.
* ``backends()``: the registered names.

Backends are listed by name -> ``"module:ATTRIBUTE"`` (a ``BackendType``) and imported
only when asked for, so this module imports no backend (no cycle, and API-only installs
never import torch). Adding a backend = its module + one line in ``BUILTIN``; from outside
the package, a plugin declares the same line as an entry point of its own distribution::

    [project.entry-points."jina_migrate.backends"]
    mybackend = "my_package.module:BACKEND"

and ``jina-migrate run --model mybackend:MODEL`` finds it (``register`` does the same in-process).
"""

from __future__ import annotations

import importlib
from typing import Any

from migrate.embed.backend import Backend, BackendType, parse_options
from migrate.embed.base import Embedder
from migrate.errors import ConfigError

#: name -> "module:attribute" of its BackendType.
BUILTIN: dict[str, str] = {
    "jina-api": "migrate.embed.jina_api:BACKEND",
    "local": "migrate.embed.local:BACKEND",
    "jina-local": "migrate.embed.jina_v3:BACKEND",
}
_LOADED: dict[str, BackendType] = {}
#: The entry-point group of backend plugins (name -> "module:attribute" of a BackendType).
PLUGIN_GROUP = "jina_migrate.backends"


def _plugins() -> dict[str, str]:
    """Backends other distributions declare (``PLUGIN_GROUP``); a built-in name cannot be taken over."""
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=PLUGIN_GROUP) if ep.name not in BUILTIN}


def register(backend: BackendType) -> BackendType:
    """Add (or replace) a backend at run time, e.g. from a plugin."""
    _LOADED[backend.name] = backend
    return backend


def backends() -> list[str]:
    return sorted(set(BUILTIN) | set(_LOADED) | set(_plugins()))


def split_spec(spec: str) -> tuple[str, str]:
    """``"jina-api:jina-embeddings-v3"`` -> ``("jina-api", "jina-embeddings-v3")``."""
    if not isinstance(spec, str) or ":" not in spec:
        raise ConfigError(f"embedder spec {spec!r} has no backend prefix",
                          hint=f"use one of {', '.join(f'{b}:...' for b in backends())}")
    prefix, _, rest = spec.partition(":")
    return prefix, rest


def _backend_type(name: str) -> BackendType:
    if name in _LOADED:
        return _LOADED[name]
    target = BUILTIN.get(name) or _plugins().get(name)
    if target is None:
        raise ConfigError(f"unknown embedding backend {name!r}", hint=f"known: {', '.join(backends())}")
    module, _, attr = target.partition(":")
    try:
        bt = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:  # a plugin that is broken or half-installed
        raise ConfigError(f"embedding backend {name!r} ({target}) cannot be loaded: {str(exc).splitlines()[0][:200]}",
                          hint="reinstall the package that provides it") from None
    if not isinstance(bt, BackendType) or bt.name != name:
        raise ConfigError(f"embedding backend {name!r} ({target}) is not a BackendType named {name!r}",
                          hint="a plugin's entry point names a migrate.embed.backend.BackendType with that name")
    _LOADED[name] = bt
    return bt


def backend_for(spec: str) -> Backend:
    """What the backend of ``spec`` is and can do (no model is loaded)."""
    name, model = split_spec(spec)
    return _backend_type(name).resolve(model)


def get_embedder(spec: str, options: Any = None, /, **kw: Any) -> Embedder:
    """Build the backend named by ``spec``.

    ``options``: an instance of the backend's options type or a dict; ``kw`` are more
    options on top (None values mean "not given").
    """
    name, model = split_spec(spec)
    bt = _backend_type(name)
    if isinstance(options, dict):
        kw = {**options, **kw}
        options = None
    opts = parse_options(bt.options_type, kw, base=options, where=name)
    bt.capabilities(model).check_dimensions(getattr(opts, "dimensions", None), model or spec)
    return bt.factory(model, opts)
