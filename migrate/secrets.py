"""API keys: read from the environment or a file, never from a visible flag; redact everywhere.

Every string that leaves the process (log line, exception, JSON, report) passes through
``redact`` when a key is loaded, so even a server echoing the key back cannot leak it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from migrate.errors import ConfigError

_KNOWN_KEYS: set[str] = set()
_JINA_KEY_RE = re.compile(r"jina_[A-Za-z0-9_\-]{8,}")


def register_secret(value: str) -> None:
    if value:
        _KNOWN_KEYS.add(value)


def read_api_key(env: str = "JINA_API_KEY", file: str | Path | None = None, *, required: bool = True) -> str | None:
    """The key from ``file`` (first line) if given, else from the environment variable ``env``."""
    key: str | None = None
    if file is not None:
        try:
            key = Path(file).read_text(encoding="utf-8").strip().splitlines()[0].strip()
        except (OSError, IndexError, UnicodeDecodeError):
            raise ConfigError(f"{file}: cannot read an API key from this file") from None
    else:
        key = os.environ.get(env, "").strip() or None
    if key is None and required:
        raise ConfigError(f"no API key: the environment variable {env} is empty",
                          hint=f"export {env}=... or pass --api-key-file FILE")
    if key:
        register_secret(key)
    return key


def redact(text: str) -> str:
    """Replace every loaded key, and anything shaped like a Jina key, with a marker."""
    for key in sorted(_KNOWN_KEYS, key=len, reverse=True):
        text = text.replace(key, "[REDACTED]")
    return _JINA_KEY_RE.sub("jina_[REDACTED]", text)
