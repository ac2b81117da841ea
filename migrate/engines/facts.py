"""What jina-migrate knows about each vector database, one entry per engine: the engine registry.

An entry says where the adapter lives (imported only when an address of that engine is opened: the
clients are the optional ``[db]`` extra), which URI schemes name it, where its secret may come from,
which address options it takes besides the common ones, which client package to install, and its
naming rule. Everything else an engine knows (limits, what it can do with a name at cutover, how it
stores each precision) is declared by its adapter module itself (``LIMITS``, ``SWITCH``).

Adding an engine = its adapter module + one ``EngineFacts`` in :data:`ENGINES`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

#: The address options every engine takes (``table`` and ``collection`` are synonyms).
COMMON_OPTIONS = frozenset({"table", "collection", "id", "text", "vector", "payload", "alias"})


def _postgres_name(name: str, what: str) -> str | None:
    if any(c in name for c in "\"';"):
        return "quotes or semicolons"
    if len(name.encode("utf-8")) > 63:
        return "more than 63 bytes (PostgreSQL would silently cut it)"
    if name != name.strip():
        return "leading or trailing spaces"
    return None


_QDRANT_FORBIDDEN = set('/\\*<>:|?"\';')


def _qdrant_name(name: str, what: str) -> str | None:
    if any(c in _QDRANT_FORBIDDEN for c in name):
        return "one of / \\ * < > : | ? \" ' ;"
    if len(name) > 255 or name != name.strip() or name in (".", ".."):
        return "more than 255 characters, surrounding spaces, or a dot name"
    return None


_MILVUS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")


def _milvus_name(name: str, what: str) -> str | None:
    if not _MILVUS_NAME.fullmatch(name):
        return "characters Milvus does not allow (a letter or _ first, then letters, digits and _; ASCII only)"
    return None


_LANCE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,255}")


def _lance_name(name: str, what: str) -> str | None:
    if not _LANCE_NAME.fullmatch(name) or name in (".", ".."):
        return "characters LanceDB does not allow (letters, digits, _ . - only)"
    return None


_CHROMA_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._\-]{1,510})[A-Za-z0-9]")


def _chroma_name(name: str, what: str) -> str | None:
    if what == "field":
        return "a reserved prefix (chroma:, #)" if name.startswith(("chroma:", "#")) or len(name) > 512 else None
    if not _CHROMA_NAME.fullmatch(name):
        return "characters or a length Chroma does not allow (3-512 of a-z A-Z 0-9 . _ -, alphanumeric at both ends)"
    return None


@dataclass(frozen=True)
class EngineFacts:
    """One engine's entry in the registry (see the module docstring)."""

    name: str
    adapter: str  # "module:Class"
    package: str  # what to install when the client is missing (shown in the hint)
    schemes: tuple[str, ...]
    name_problem: Callable[[str, str], str | None]  # (name, what) -> why the engine refuses it, or None
    secret_env: tuple[str, ...] = ()  # environment variables a secret may come from (first non-empty wins)
    options: frozenset[str] = frozenset()  # address options besides COMMON_OPTIONS
    field_rule: str = "qdrant"  # the engine whose naming rule field names follow


ENGINES: dict[str, EngineFacts] = {f.name: f for f in (
    EngineFacts("postgres", "migrate.engines.postgres:PostgresEngine", "psycopg / pgvector",
                ("postgresql", "postgres"), _postgres_name, ("PGPASSWORD",),
                frozenset({"host", "port", "schema", "password_file", "sslmode", "sslrootcert", "sslcert", "sslkey",
                           "connect_timeout", "application_name", "target_session_attrs", "passfile", "options"}),
                field_rule="postgres"),
    EngineFacts("qdrant", "migrate.engines.qdrant:QdrantEngine", "qdrant-client", ("qdrant", "qdrants"),
                _qdrant_name, ("QDRANT_API_KEY",), frozenset({"https", "api_key_file", "timeout", "prefer_grpc"})),
    EngineFacts("milvus", "migrate.engines.milvus:MilvusEngine", "pymilvus", ("milvus", "milvuss"), _milvus_name,
                ("MILVUS_TOKEN", "MILVUS_PASSWORD"),
                frozenset({"https", "token_file", "password_file", "db_name", "timeout"}), field_rule="milvus"),
    EngineFacts("lancedb", "migrate.engines.lancedb:LanceEngine", "lancedb", ("lancedb",), _lance_name,
                field_rule="lancedb"),
    # upgrade=1: let this chromadb upgrade an older store in place (engines.chroma)
    EngineFacts("chroma", "migrate.engines.chroma:ChromaEngine", "chromadb", ("chroma",), _chroma_name,
                options=frozenset({"upgrade"})),
)}

#: URI scheme -> engine name.
SCHEMES: dict[str, str] = {scheme: f.name for f in ENGINES.values() for scheme in f.schemes}
