"""Vector databases as sources and destinations: one address spelling, one adapter protocol.

``open_engine("qdrant:///data/q?collection=docs")`` parses the address (validation first, so a
bad one fails before anything connects) and returns the adapter for its scheme. Adapters are
imported lazily: the engines' client libraries are the optional ``[db]`` extra.
"""

from __future__ import annotations

import importlib

from migrate.engines.address import Address, parse_address, validate_name
from migrate.engines.base import CollectionInfo, Engine, EngineUnavailable, IndexSpec
from migrate.engines.facts import ENGINES
from migrate.errors import ConfigError

#: engine name -> "module:Class" and the client package it needs: from the registry (``migrate.engines.facts``).
ADAPTERS = {name: f.adapter for name, f in ENGINES.items()}
_PACKAGES = {name: f.package for name, f in ENGINES.items()}


def is_address(text: str) -> bool:
    """True when ``text`` looks like a database address rather than a file path."""
    from migrate.engines.facts import SCHEMES

    return isinstance(text, str) and "://" in text and text.split("://", 1)[0].lower() in SCHEMES


def collection_address(value: str | Address, where: str = "") -> Address:
    """``value`` parsed as an address that names a collection: the one rule every flag that takes a
    database address (``--old-index``, ``--sink``, ``--new``) applies before anything connects.
    ``where`` (a flag or a setting's source) prefixes the message."""
    prefix = f"{where}: " if where else ""
    try:
        addr = parse_address(value) if isinstance(value, str) else value
    except ConfigError as exc:
        raise ConfigError(f"{prefix}{exc.message}", hint=exc.hint) from None
    collection_name(addr, where)
    return addr


def collection_name(addr: Address, where: str = "") -> str:
    """The collection ``addr`` names; ConfigError (prefixed with ``where``) when it names none."""
    if addr.collection is None:
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}{addr} names no collection",
                          hint="add ?collection=NAME (or ?table=NAME) to the address")
    return addr.collection


def open_engine(address: str | Address) -> Engine:
    """The connected adapter for ``address`` (a URI or a parsed Address)."""
    addr = parse_address(address) if isinstance(address, str) else address
    module_name, cls_name = ADAPTERS[addr.engine].split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{addr.engine} support is not installed ({_PACKAGES[addr.engine]}: {exc.name})",
                          hint="pip install 'jina-migrate[db]'") from None
    return getattr(module, cls_name)(addr)


__all__ = ["ADAPTERS", "Address", "CollectionInfo", "Engine", "EngineUnavailable", "IndexSpec", "collection_address",
           "collection_name", "is_address",
           "open_engine", "parse_address", "validate_name"]
