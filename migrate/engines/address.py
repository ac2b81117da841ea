"""One spelling for a vector-database source or destination: ``scheme://...?collection=...``.

``parse_address`` turns a URI into a typed, validated ``Address`` *before* anything connects,
so a hostile or mistyped address fails with one ``ConfigError`` and no side effect:

* ``postgresql://[user@]HOST[:PORT]/DB?table=docs&id=id&text=content&vector=embedding``
  (``?host=/socket/dir`` as libpq does; ``postgres://`` is the same)
* ``qdrant:///local/path?collection=docs`` (embedded), ``qdrant://host:6333?collection=docs``
  (``qdrants://`` or ``?https=1`` for TLS)
* ``milvus:///path/milvus.db?collection=docs`` (Milvus Lite), ``milvus://host:19530?collection=docs``
* ``lancedb:///path?table=docs``, ``chroma:///path?collection=docs``

``table`` and ``collection`` are synonyms everywhere. A path after ``://.`` is relative
(``lancedb://./data/db``). Field options: ``id``, ``text``, ``vector``, ``payload`` (comma list);
``alias`` names what the application queries (for cutover). Passwords and API keys never come
from the URI: they come from the environment (``PGPASSWORD``, ``QDRANT_API_KEY``, ``MILVUS_TOKEN``)
or a file (``?password_file=PATH``); a URI holding one is refused without echoing it.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from migrate.engines.facts import COMMON_OPTIONS, ENGINES, SCHEMES
from migrate.errors import ConfigError
from migrate.secrets import register_secret

#: Per-engine facts (schemes, secret variables, options, naming rules) live in ``migrate.engines.facts``.
SECRET_ENV = {name: f.secret_env for name, f in ENGINES.items()}
_SECRET_OPTS = {"password", "api_key", "apikey", "token", "secret", "key"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _show(name: str) -> str:
    """A name as it may appear in an error line: escaped, never raw control characters."""
    shown = ascii(name)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def validate_name(engine: str, name: str, what: str = "collection") -> str:
    """Return ``name`` if ``engine`` accepts it as a table/collection/alias/field name, else ConfigError.

    Control and invisible characters are refused everywhere; the rest is the engine's own rule
    (``EngineFacts.name_problem`` in :mod:`migrate.engines.facts`).
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{engine}: empty {what} name")
    bad = None
    if _CONTROL.search(name) or any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        bad = "control or invisible characters"
    elif engine in ENGINES:
        bad = ENGINES[engine].name_problem(name, what)
    if bad:
        raise ConfigError(f"{engine}: {what} name {_show(name)} is not allowed: {bad}",
                          hint="pick a plain name such as docs_v3")
    return name


@dataclass(frozen=True)
class Address:
    """A parsed, validated database address. ``secret`` is never part of ``str()`` or ``repr()``."""

    engine: str  # postgres | qdrant | milvus | lancedb | chroma
    scheme: str
    collection: str | None = None
    host: str | None = None  # network host, or a Unix-socket directory for postgres
    port: int | None = None
    path: Path | None = None  # embedded engines: the database file or directory
    database: str | None = None  # postgres database / milvus db_name
    user: str | None = None
    schema: str | None = None  # postgres schema
    https: bool = False
    id_field: str | None = None
    text_field: str | None = None
    vector_field: str | None = None
    payload: tuple[str, ...] | None = None
    alias: str | None = None
    #: postgres: ``?table=T&collection=NAME`` reads only the rows of LangChain collection NAME of the shared table
    #: (``langchain_pg_embedding`` selected through ``langchain_pg_collection``)
    framework_collection: str | None = None
    options: tuple[tuple[str, str], ...] = ()  # remaining engine options (libpq ssl*, timeouts...)
    secret: str | None = field(default=None, repr=False, compare=False)

    @property
    def embedded(self) -> bool:
        """True when the engine runs inside this process on a local path (no server)."""
        return self.path is not None

    def option(self, name: str, default: str | None = None) -> str | None:
        return dict(self.options).get(name, default)

    def with_collection(self, collection: str) -> "Address":
        from dataclasses import replace

        return replace(self, collection=validate_name(self.engine, collection))

    def __str__(self) -> str:
        """The address without any secret: safe for logs, manifests and error lines."""
        if self.path is not None:
            rel = "" if self.path.is_absolute() else "./"
            base = f"{self.scheme}://{rel}{quote(str(self.path))}"
        else:
            user = f"{quote(self.user)}@" if self.user else ""
            host = "" if self.host and self.host.startswith("/") else (self.host or "")
            port = f":{self.port}" if self.port and host else ""
            db = f"/{quote(self.database)}" if self.database and self.engine == "postgres" else ""
            base = f"{self.scheme}://{user}{host}{port}{db}"
        q = []
        if self.host and self.host.startswith("/"):
            q.append(f"host={quote(self.host)}")
        if self.collection:
            q.append(f"{'table' if self.engine in ('postgres', 'lancedb') else 'collection'}={quote(self.collection)}")
        if self.framework_collection is not None:
            q.append(f"collection={quote(self.framework_collection)}")
        for key, value in (("schema", self.schema), ("id", self.id_field), ("text", self.text_field),
                           ("vector", self.vector_field), ("alias", self.alias),
                           ("payload", ",".join(self.payload) if self.payload is not None else None)):
            if value is not None:
                q.append(f"{key}={quote(value)}")
        if self.engine == "milvus" and self.database and self.path is None:
            q.append(f"db_name={quote(self.database)}")
        if self.https and self.scheme not in ("qdrants", "milvuss"):
            q.append("https=1")
        q += [f"{k}={quote(v)}" for k, v in self.options]
        return base + ("?" + "&".join(q) if q else "")


def _refuse_secret(uri: str, where: str, engine: str) -> ConfigError:
    env = " or ".join(SECRET_ENV.get(engine) or ("an environment variable",))
    file_opt = {"postgres": "password_file", "qdrant": "api_key_file", "milvus": "token_file"}.get(engine)
    hint = f"remove it from the address and export {env}" + (f", or add ?{file_opt}=PATH" if file_opt else "")
    return ConfigError(f"{engine} address holds a {where}; secrets are never accepted in an address "
                       "(they would show in the process list and in logs)", hint=hint)


def _read_secret_file(path: str, engine: str) -> str:
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        raise ConfigError(f"{engine}: cannot read the secret file {_show(path)}") from None
    secret = text.splitlines()[0].strip() if text else ""
    if not secret:
        raise ConfigError(f"{engine}: the secret file {_show(path)} is empty")
    return secret


def parse_address(uri: str) -> Address:
    """Parse and validate ``uri``; ConfigError (one line, no secret) for anything wrong."""
    if not isinstance(uri, str) or "://" not in uri:
        raise ConfigError(f"not a database address: {_show(str(uri)[:60])}",
                          hint="use e.g. postgresql://HOST/DB?table=docs or qdrant:///path?collection=docs")
    if _CONTROL.search(uri):
        raise ConfigError("database address contains control characters")
    scheme = uri.split("://", 1)[0].lower()
    engine = SCHEMES.get(scheme)
    if engine is None:
        raise ConfigError(f"unknown database scheme {_show(scheme)}",
                          hint="supported: " + ", ".join(sorted(SCHEMES)))
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        raise ConfigError(f"{engine}: the address is malformed (bad host or port)") from None
    if parts.password:  # an empty password (user:@host) is no secret
        raise _refuse_secret(uri, "password", engine)
    query = parse_qsl(parts.query, keep_blank_values=True)
    keys = [k for k, _ in query]
    if any(k.lower() in _SECRET_OPTS for k in keys):
        raise _refuse_secret(uri, "secret option", engine)
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ConfigError(f"{engine}: option {_show(dup)} is given twice in the address")
    opts = dict(query)
    allowed = COMMON_OPTIONS | ENGINES[engine].options
    unknown = sorted(set(opts) - allowed)
    if unknown:
        raise ConfigError(f"{engine}: unknown address option {_show(unknown[0])}",
                          hint="allowed: " + ", ".join(sorted(allowed)))
    if parts.fragment:
        raise ConfigError(f"{engine}: the address must not have a #fragment")

    coll = opts.pop("table", None)
    other = opts.pop("collection", None)
    framework_collection = None
    if engine == "postgres" and coll is not None and other is not None:
        framework_collection, other = other, None  # a LangChain collection inside the table (PGVector)
    if coll is not None and other is not None and coll != other:
        raise ConfigError(f"{engine}: both table= and collection= are given and differ")
    coll = coll if coll is not None else other
    if coll is not None:
        validate_name(engine, coll)
    alias = opts.pop("alias", None)
    if alias is not None:
        validate_name(engine, alias, "alias")
    fields: dict[str, str | None] = {}
    for key in ("id", "text", "vector"):
        value = opts.pop(key, None)
        if value is not None:
            validate_name(ENGINES[engine].field_rule, value, "field")
        fields[key] = value
    payload = None
    if "payload" in opts:
        payload = tuple(p for p in opts.pop("payload").split(",") if p)
        for p in payload:
            validate_name(ENGINES[engine].field_rule, p, "field")

    https = scheme in ("qdrants", "milvuss") or opts.pop("https", "0").lower() in ("1", "true", "yes")
    netloc_host = parts.hostname
    user = unquote(parts.username) if parts.username else None
    path_text = unquote(parts.path)
    secret: str | None = None
    common = _Common(engine=engine, scheme=scheme, collection=coll, id_field=fields["id"], text_field=fields["text"],
                     vector_field=fields["vector"], payload=payload, alias=alias, https=https)

    if engine == "postgres":
        host = opts.pop("host", None) or netloc_host
        if opts.get("port"):
            try:
                port = int(opts.pop("port"))
            except ValueError:
                raise ConfigError("postgres: port must be a number") from None
        database = path_text.lstrip("/") or None
        if database is not None:
            validate_name("postgres", database, "database")
        if user is not None:
            validate_name("postgres", user, "user")
        schema = opts.pop("schema", None)
        if schema is not None:
            validate_name("postgres", schema, "schema")
        if coll is not None and "." in coll:
            raise ConfigError(f"postgres: table name {_show(coll)} has a dot",
                              hint="give the schema separately: ?schema=NAME&table=NAME")
        pw_file = opts.pop("password_file", None)
        if pw_file:
            secret = _read_secret_file(pw_file, engine)
        return _done(Address(host=host, port=port, database=database, user=user, schema=schema,
                             framework_collection=framework_collection,
                             options=tuple(sorted(opts.items())), secret=secret, **common))

    if engine in ("qdrant", "milvus"):
        secret_file = opts.pop("api_key_file", None) or opts.pop("token_file", None) or opts.pop("password_file", None)
        if secret_file:
            secret = _read_secret_file(secret_file, engine)
        else:
            secret = next((os.environ[e].strip() for e in SECRET_ENV[engine] if os.environ.get(e, "").strip()), None)
        if engine == "milvus" and user and secret and ":" not in secret:
            secret = f"{user}:{secret}"
        database = opts.pop("db_name", None) if engine == "milvus" else None
        if database is not None:
            validate_name("milvus", database, "database")
        if netloc_host in (None, "") or parts.netloc in ("", "."):
            if port is not None or user:
                raise ConfigError(f"{engine}: an embedded (path) address takes no user or port")
            return _done(Address(path=_local_path(parts.netloc, path_text, engine), database=database,
                                 options=tuple(sorted(opts.items())), secret=secret, **common))
        if path_text not in ("", "/"):
            raise ConfigError(f"{engine}: a server address has no path (got {_show(path_text)})",
                              hint=f"{scheme}://HOST:PORT?collection=NAME, or {scheme}:///abs/path for local mode")
        return _done(Address(host=netloc_host, port=port, user=user, database=database,
                             options=tuple(sorted(opts.items())), secret=secret, **common))

    # lancedb, chroma: embedded only
    if parts.netloc not in ("", ".") or user or port:
        raise ConfigError(f"{engine}: only local paths are supported ({scheme}:///abs/path or {scheme}://./rel/path)")
    return _done(Address(path=_local_path(parts.netloc, path_text, engine),
                         options=tuple(sorted(opts.items())), **common))


class _Common(TypedDict):
    """The :class:`Address` fields every engine's address sets the same way."""

    engine: str
    scheme: str
    collection: str | None
    id_field: str | None
    text_field: str | None
    vector_field: str | None
    payload: tuple[str, ...] | None
    alias: str | None
    https: bool


def _local_path(netloc: str, path_text: str, engine: str) -> Path:
    if not path_text or path_text == "/":
        raise ConfigError(f"{engine}: the address has no path", hint=f"{engine}:///abs/path?...")
    if netloc == ".":
        return Path(path_text.lstrip("/"))
    return Path(path_text)


def _done(addr: Address) -> Address:
    if addr.secret:
        register_secret(addr.secret)
    return addr
