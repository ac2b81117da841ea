"""Find an embedding backend by spec string.

``local:PATH_OR_NAME``  sentence-transformers / transformers model on this machine
``jina-api:MODEL``      the Jina Embeddings API (or a compatible server via base_url)

Backends register a factory with ``@register("prefix")``; plugins can add more.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from migrate.embed.base import Embedder
from migrate.errors import ConfigError

Factory = Callable[..., Embedder]
_FACTORIES: dict[str, Factory] = {}


def register(prefix: str) -> Callable[[Factory], Factory]:
    def deco(factory: Factory) -> Factory:
        _FACTORIES[prefix] = factory
        return factory

    return deco


def _load_builtin() -> None:
    # Imported lazily so API-only installs never import torch.
    import migrate.embed.jina_v3  # noqa: F401
    import migrate.embed.local  # noqa: F401

    try:
        import migrate.embed.jina_api  # noqa: F401
    except ImportError:  # pragma: no cover - module not present yet
        pass


def backends() -> list[str]:
    _load_builtin()
    return sorted(_FACTORIES)


def split_spec(spec: str) -> tuple[str, str]:
    if ":" not in spec:
        raise ConfigError(f"embedder spec {spec!r} has no backend prefix", hint="use local:PATH or jina-api:MODEL")
    prefix, _, rest = spec.partition(":")
    return prefix, rest


def get_embedder(spec: str, **options: Any) -> Embedder:
    """Build the backend named by ``spec`` with backend-specific ``options``."""
    prefix, rest = split_spec(spec)
    _load_builtin()
    if prefix not in _FACTORIES:
        raise ConfigError(f"unknown embedding backend {prefix!r}", hint=f"known: {', '.join(sorted(_FACTORIES))}")
    return _FACTORIES[prefix](rest, **options)
