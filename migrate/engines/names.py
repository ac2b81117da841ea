"""The application's name in a database (``--sink ...&alias=NAME``): what stands there, and what cutover may do.

Each adapter declares its switch once (``SWITCH``, a :class:`Switch`): an engine alias (Qdrant,
Milvus), a view (PostgreSQL) or a pointer record (LanceDB, Chroma), and whether a real table of
the application's name can be renamed aside (PostgreSQL only). ``name_state`` says what the name is
now (:class:`NameState`). :func:`refusal` is the one rule for which names cutover may take, used by
``plan`` (a finding), by ``run`` before anything is embedded, and by ``cutover`` itself:

* nothing of that name yet, or an alias / view / pointer that can be re-pointed: yes;
* a real collection: only on an engine that moves it aside, and only the run's own source (cutover
  then also proves it is unchanged by its checksum); never anything else, since replacing it would
  mean dropping or renaming data this run never read;
* anything else (a view or materialized view jina-migrate did not create): no.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from migrate.engines.address import Address
from migrate.errors import ConfigError


@dataclass(frozen=True)
class Switch:
    """What an engine can do with an application's name (declared by its adapter)."""

    mechanism: str  # "alias" | "view" | "pointer": what the name becomes
    container: str = "collection"  # the engine's word for a collection ("table" for PostgreSQL, LanceDB)
    moves_aside: bool = False  # a real table of the name can be renamed aside in the switch's transaction
    aside_suffix: str = "_pre_jm"


@dataclass(frozen=True)
class NameState:
    """What the application's name is now: ``absent``; an ``alias`` (alias, our view or our pointer) of
    ``target``; a real ``collection``; or ``other`` (``what`` says what, e.g. a view jina-migrate did not create)."""

    kind: str
    target: str | None = None
    what: str = ""

    def points_at(self, collection: str) -> bool:
        return self.kind == "alias" and self.target == collection

    def describe(self) -> str:
        """In words, for messages and ``status``."""
        if self.kind == "absent":
            return "does not exist"
        if self.kind == "alias":
            return f"points at {self.target!r}"
        return f"is a {self.what or self.kind}"


def switch_of(engine: Any) -> Switch:
    return getattr(type(engine), "SWITCH", Switch("alias"))


def refusal(engine: Any, address: Address, name: str, state: NameState, *,
            own_source: str | None) -> ConfigError | None:
    """Why cutover may not take ``name`` as it is now (None: it may). ``own_source`` is the run's source
    collection when it lives in the same database as the destination. One line, no secret."""
    sw = switch_of(engine)
    if state.kind in ("absent", "alias"):
        return None
    if state.kind == "collection":
        if sw.moves_aside and own_source == name:
            return None
        if sw.moves_aside:
            return ConfigError(f"--sink {address}: alias {name!r} is a {sw.container} this run does not read; cutover "
                               f"only moves aside the run's own source {sw.container}, never another",
                               hint=f"name an alias no {sw.container} uses, or migrate {name!r} itself")
        if sw.mechanism == "alias":
            return ConfigError(f"--sink {address}: alias {name!r} is a real {sw.container}, not an alias: cutover "
                               "cannot take its name without dropping it, which jina-migrate never does",
                               hint=f"let your application query an alias of {name!r} (e.g. {name}_live), then "
                                    f"pass &alias={name}_live")
        return ConfigError(f"--sink {address}: alias {name!r} is a real {sw.container}: cutover takes only a name "
                           f"that is free or already jina-migrate's {sw.mechanism} (it never hides a {sw.container})",
                           hint=f"name an alias no {sw.container} uses: the application opens the {sw.container} "
                                f"the {sw.mechanism} names (see README)")
    return ConfigError(f"--sink {address}: alias {name!r} {state.describe()} that jina-migrate did not create; "
                       "cutover never replaces it", hint=f"name an alias no {sw.container} or view uses")


def check_alias(engine: Any, address: Address, *, own_source: str | None) -> NameState:
    """The state of ``address.alias``; ConfigError when cutover could never take it (see :func:`refusal`)."""
    alias = address.alias
    assert alias is not None, "check_alias needs an address with an alias"
    state = engine.name_state(alias)
    problem = refusal(engine, address, alias, state, own_source=own_source)
    if problem is not None:
        raise problem
    return state


def place(address: Address) -> str:
    """The database an address is in, canonical (engine, server or absolute path, database, schema): two
    addresses of the same database give the same text whatever their collection, fields, user or options."""
    path = address.path.resolve() if address.path is not None else None
    return str(replace(address, collection=None, alias=None, id_field=None, text_field=None, vector_field=None,
                       payload=None, options=(), user=None, path=path, framework_collection=None,
                       scheme={"postgres": "postgresql", "qdrant": "qdrant", "milvus": "milvus"}.get(address.engine,
                                                                                                   address.scheme)))


def same_database(a: Address, b: Address) -> bool:
    return place(a) == place(b)


def own_source_name(source: Address | None, destination: Address) -> str | None:
    """The run's source collection when it lives in the destination's database (the only real table cutover
    may move aside), else None."""
    return source.collection if source is not None and same_database(source, destination) else None
