"""API keys: read from the environment or a file, never from a visible flag; redact everywhere.

Every string that leaves the process (log line, exception, JSON, report) passes through
``redact`` when a key is loaded, so even a server echoing the key back cannot leak it.
``Secret`` carries a key between objects and processes (a Ray worker, the API client)
without ever showing it: its ``repr``/``str`` are a marker, and unpickling it in another
process registers the key there for redaction too.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from migrate.errors import ConfigError

_KNOWN_KEYS: set[str] = set()
_JINA_KEY_RE = re.compile(r"jina_[A-Za-z0-9_\-]{8,}")


def register_secret(value: str) -> None:
    if value:
        _KNOWN_KEYS.add(value)


class Secret:
    """A key whose ``repr``/``str`` never show it; ``reveal()`` gives the value.

    Pickles as its value (Ray sends constructor arguments pickled) and registers the
    value for ``redact`` wherever it is created or unpickled.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value.strip():
            raise ConfigError("an API key must be a non-empty string")
        self._value = value.strip()
        register_secret(self._value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (Secret, (self._value,))


def read_key_file(file: str | Path) -> str:
    """The first non-blank, non-comment line of ``file``; errors name the file, never a variable."""
    p = Path(file)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: API key file not found", hint="give --api-key-file a file holding the key") from None
    except IsADirectoryError:
        raise ConfigError(f"{p}: is a directory, not an API key file", hint="give --api-key-file a file holding the key") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the API key file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: the API key file is not UTF-8 text") from None
    for line in text.splitlines():
        s = line.strip()
        if s and not s.startswith("#"):
            return s
    raise ConfigError(f"{p}: the API key file holds no key", hint="put the key on the first line")


def read_api_key(env: str = "JINA_API_KEY", file: str | Path | None = None, *, required: bool = True) -> str | None:
    """The key from ``file`` if given, else from the environment variable ``env``."""
    key: str | None
    if file is not None:
        key = read_key_file(file)
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
