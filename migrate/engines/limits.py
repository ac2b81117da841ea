"""What a destination engine accepts, declared once per engine and asked before anything is embedded.

Each adapter module declares its engine's ``LIMITS`` (a :class:`Limits`): the widest vector a
collection and its ANN index take, how many payload fields, the longest text value, whether text
may hold U+0000, and whether the text goes into a field of its own (Chroma's ``documents``). Field
names follow the engine's own rule (:func:`~migrate.engines.address.validate_name`, the rule
``create`` applies). ``plan`` reports every limit a destination would break as an error finding, and
``run`` refuses the first one before embedding: without this a Milvus destination refused a long
text only at the end, after every vector was paid for.

:func:`problems` is the one check; :class:`TextExtents` measures what it needs from the payload that
will be written (the longest string of each field, NUL bytes), streamed batch by batch, and only
for engines that declare a text limit (:attr:`Limits.measures_text`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from migrate.engines.address import Address, validate_name
from migrate.errors import ConfigError
from migrate.precision import VectorFormat


@dataclass(frozen=True)
class Limits:
    """One engine's limits for a collection jina-migrate creates (None: no limit below memory)."""

    engine: str
    max_dim: int | None = None  # widest vector a collection stores
    max_index_dim: int | None = None  # widest vector its ANN index takes (flat search: max_dim only)
    max_payload_fields: int | None = None  # payload fields besides the id and the vector
    max_text_bytes: int | None = None  # longest string payload value, in UTF-8 bytes
    text_nul: bool = True  # whether a string may hold U+0000
    text_is_document: bool = False  # the text field is stored as the engine's document (must be a string)
    #: the ``--precision`` values its collections store natively (``migrate.precision``); others are refused
    precisions: tuple[str, ...] = ("float32",)
    #: of those, the ones kept as the float32 vectors beside an index the engine quantises itself (Qdrant's
    #: scalar and binary quantisation): read back, such a collection holds the float32 vectors
    keeps_float32: tuple[str, ...] = ()
    #: why the other precisions are refused (one clause, said in the refusal)
    precision_note: str = ""

    @property
    def measures_text(self) -> bool:
        """Whether checking needs the payload's strings (a pass over the source before embedding)."""
        return self.max_text_bytes is not None or not self.text_nul


def limits_of(engine: str) -> Limits:
    """The ``LIMITS`` the adapter module of ``engine`` declares (imported as ``open_engine`` would)."""
    from migrate.engines import _PACKAGES

    try:
        module = module_of(engine)
    except ImportError as exc:
        raise ConfigError(f"{engine} support is not installed ({_PACKAGES[engine]}: {exc.name})",
                          hint="pip install 'jina-migrate[db]'") from None
    return getattr(module, "LIMITS", None) or Limits(engine)


def readback_format(engine: str, fmt: VectorFormat | None) -> VectorFormat:
    """The format whose :meth:`~VectorFormat.roundtrip` a collection of ``engine`` written at ``fmt`` reads back
    (``fmt`` itself, or float32 where the engine keeps the float vectors beside its quantised index)."""
    if fmt is None or fmt.precision in limits_of(engine).keeps_float32:
        return VectorFormat(dims=fmt.dims if fmt else None)
    return fmt


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


class TextExtents:
    """The longest value (UTF-8 bytes, and the id holding it) and the first value holding NUL, for each
    string column of the payload batches given to :meth:`add`; memory is one batch."""

    def __init__(self) -> None:
        self.longest: dict[str, tuple[int, str]] = {}
        self.nul: dict[str, str] = {}
        self.rows = 0

    def add(self, columns: dict[str, pa.Array | pa.ChunkedArray], ids: list[str] | pa.Array) -> None:
        """One batch: ``columns`` (field -> values) and the ids of its rows."""
        n = len(ids)
        for name, col in columns.items():
            if not _is_text(col.type) or n == 0 or col.null_count == len(col):
                continue
            lengths = pc.binary_length(col)
            top = pc.max(lengths).as_py() or 0
            if top > self.longest.get(name, (-1, ""))[0]:
                at = pc.index(lengths, top).as_py()
                self.longest[name] = (int(top), str(ids[at]))
            if name not in self.nul:
                has = pc.match_substring(col, "\x00")
                if pc.any(has).as_py():
                    self.nul[name] = str(ids[pc.index(has, True).as_py()])
        self.rows += n


def problems(address: Address, *, dim: int | None, payload: pa.Schema | None, index_kind: str = "hnsw",
             text_field: str | None = None, extents: TextExtents | None = None,
             precision: str = "float32") -> list[ConfigError]:
    """Every limit of ``address``'s engine that a destination of ``dim``-wide vectors at ``precision`` and this
    payload (field names as the engine will see them) breaks: one ConfigError each, with the fix; [] when none."""
    from migrate.engines.base import field_name

    lim = limits_of(address.engine)
    out: list[ConfigError] = []
    where = f"--sink {address}"
    if precision not in lim.precisions:
        why = f" ({lim.precision_note})" if lim.precision_note else ""
        out.append(ConfigError(f"{where}: {address.engine} destinations store {', '.join(lim.precisions)} vectors; "
                               f"--precision {precision} is not supported there{why}",
                               hint=f"use --precision {' or '.join(lim.precisions)} with this destination; the FAISS "
                                    "+ Parquet output in --out (without --sink) stores every precision"))
    if dim is not None:
        if lim.max_dim is not None and dim > lim.max_dim:
            out.append(ConfigError(f"{where}: {address.engine} stores vectors of at most {lim.max_dim} dimensions, "
                                   f"this run writes {dim}", hint="pass --dimensions with a smaller size"))
        elif lim.max_index_dim is not None and index_kind != "flat" and dim > lim.max_index_dim:
            out.append(ConfigError(f"{where}: {address.engine}'s {index_kind} index takes at most "
                                   f"{lim.max_index_dim} dimensions, this run writes {dim}",
                                   hint="pass --dimensions with a smaller size, or add &index=flat to --sink"))
    if payload is None:
        return out
    names = [field_name(n) for n in payload.names]  # as the engine will name them (``payload:id`` -> ``id``)
    text_field = field_name(text_field) if text_field else None
    if lim.max_payload_fields is not None and len(names) > lim.max_payload_fields:
        out.append(ConfigError(f"{where}: {address.engine} takes at most {lim.max_payload_fields} payload fields, "
                               f"the source has {len(names)}", hint="carry fewer with &payload=a,b on --old-index"))
    for name in names:
        try:
            validate_name(address.engine, name, "field")
        except ConfigError as exc:
            why = exc.message.split("is not allowed: ", 1)[-1]
            out.append(ConfigError(f"{where}: payload field {name!r} is not a valid {address.engine} field name ({why})",
                                   hint="leave it out with &payload=a,b on --old-index (the fields to carry), "
                                        "or choose another destination engine"))
    types = dict(zip(names, payload.types))
    if lim.text_is_document and text_field in types and not _is_text(types[text_field]):
        out.append(ConfigError(f"{where}: the text field {text_field!r} holds {types[text_field]}, "
                               f"{address.engine} keeps the text as a string document",
                               hint="name a string field with &text=FIELD on --sink"))
    if extents is not None:
        for column, (size, rid) in sorted(extents.longest.items()):
            name = field_name(column)
            if lim.max_text_bytes is not None and size > lim.max_text_bytes:
                fix = "shorten or split that document" if name == text_field else \
                    f"shorten that value, or leave {name!r} out with &payload=a,b on --old-index"
                out.append(ConfigError(
                    f"{where}: {name!r} of id {rid!r} is {size:,} bytes; {address.engine} text fields hold at most "
                    f"{lim.max_text_bytes:,} bytes", hint=f"{fix}; or choose another destination engine"))
        if not lim.text_nul:
            for column, rid in sorted(extents.nul.items()):
                name = field_name(column)
                out.append(ConfigError(f"{where}: {name!r} of id {rid!r} holds a NUL character (U+0000), which "
                                       f"{address.engine} text cannot store",
                                       hint=f"remove the NUL characters from {name!r} in the source, or leave it out "
                                            "with &payload=a,b on --old-index"))
    return out


def check(address: Address, **kw: Any) -> None:
    """Raise the first of :func:`problems` (``run``: refused before anything is embedded, exit 2)."""
    found = problems(address, **kw)
    if found:
        raise found[0]


def module_of(engine: str) -> Any:
    """The adapter module of ``engine`` (its client library is imported with it)."""
    from migrate.engines import ADAPTERS

    return importlib.import_module(ADAPTERS[engine].split(":")[0])


#: Payload-schema metadata naming the field that holds the text (set by the sink from the sources' own rule), for
#: engines that keep the text as their document (:attr:`Limits.text_is_document`) when ``--sink`` names none.
TEXT_FIELD_KEY = b"jina_migrate_text_field"


def with_text_field(schema: pa.Schema, name: str | None) -> pa.Schema:
    """``schema`` marked with the field that holds the text (unchanged when ``name`` is None)."""
    if not name:
        return schema
    return schema.with_metadata({**(schema.metadata or {}), TEXT_FIELD_KEY: name.encode("utf-8")})


def text_field_in(schema: pa.Schema) -> str | None:
    """The field :func:`with_text_field` marked, or None."""
    value = (schema.metadata or {}).get(TEXT_FIELD_KEY)
    return value.decode("utf-8") if value else None
