"""Payload values between Arrow columns and engines that store JSON-like documents.

Qdrant payloads, Milvus JSON/scalar fields and Chroma metadata hold Python scalars, lists and
dicts, not Arrow types. ``encode`` turns payload columns into one dict per row (timestamps and
dates as ISO-8601 text, bytes as base64, decimals as text, JSON values parsed; with
``nested="string"`` lists/structs/JSON become JSON text for engines that cannot nest); ``decode``
turns such dicts back into Arrow arrays of the exact types recorded in the collection's marker,
so a value read back equals the value written. ``infer_schema`` gives a stable schema for a
collection jina-migrate did not create, from a sample of its rows.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from migrate.errors import InputError

_SCALARS = (str, int, float, bool)


def _is_nested(t: pa.DataType) -> bool:
    return (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
            or pa.types.is_struct(t) or pa.types.is_map(t))


def to_jsonable(value: Any) -> Any:
    """A Python value with datetimes, bytes and decimals turned into JSON-safe forms (recursively)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        # map types come back as lists of (key, value) tuples
        return [to_jsonable(v) for v in value]
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return value


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def encode_column(col: pa.Array | pa.ChunkedArray, *, nested: str = "native") -> list[Any]:
    """Python values of one payload column in the engine-neutral JSON form (None stays None)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    t = col.type
    if isinstance(t, pa.JsonType):
        texts = col.storage.to_pylist()
        if nested == "string":
            return texts
        return [None if s is None else json.loads(s) for s in texts]
    values = col.to_pylist()
    if _is_nested(t):
        out = [None if v is None else to_jsonable(v) for v in values]
        return [None if v is None else canonical_json(v) for v in out] if nested == "string" else out
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_boolean(t) \
            or pa.types.is_integer(t) or pa.types.is_floating(t):
        return values
    return [None if v is None else to_jsonable(v) for v in values]


def encode(table: pa.Table | pa.RecordBatch, names: Sequence[str], *, nested: str = "native",
           keep_nulls: bool = False) -> list[dict[str, Any]]:
    """One dict per row over the payload columns ``names`` (None values left out unless ``keep_nulls``)."""
    cols = {n: encode_column(table.column(n), nested=nested) for n in names}
    out: list[dict[str, Any]] = []
    for i in range(table.num_rows):
        if keep_nulls:
            out.append({n: cols[n][i] for n in names})
        else:
            out.append({n: cols[n][i] for n in names if cols[n][i] is not None})
    return out


def _parse_time(v: Any, t: pa.DataType) -> Any:
    if v is None or not isinstance(v, str):
        return v
    if pa.types.is_timestamp(t):
        parsed = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
        if t.tz is None and parsed.tzinfo is not None:
            parsed = parsed.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return parsed
    if pa.types.is_date(t):
        return dt.date.fromisoformat(v)
    return dt.time.fromisoformat(v)


def decode_column(values: Sequence[Any], t: pa.DataType, *, nested: str = "native", name: str = "",
                  where: str = "") -> pa.Array:
    """Arrow array of type ``t`` from values written by ``encode_column`` (or by another application)."""
    try:
        if isinstance(t, pa.JsonType):
            if nested == "string":
                texts = [None if v is None else (v if isinstance(v, str) else canonical_json(v)) for v in values]
            else:
                texts = [None if v is None else canonical_json(v) for v in values]
            return pa.ExtensionArray.from_storage(t, pa.array(texts, type=t.storage_type))
        if _is_nested(t):
            vals = [json.loads(v) if nested == "string" and isinstance(v, str) else v for v in values]
            return pa.array(vals, type=t)
        if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_time(t):
            return pa.array([_parse_time(v, t) for v in values], type=t)
        if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
            return pa.array([base64.b64decode(v) if isinstance(v, str) else v for v in values], type=t)
        if pa.types.is_decimal(t):
            return pa.array([decimal.Decimal(v) if isinstance(v, (str, int, float)) else v for v in values], type=t)
        if pa.types.is_duration(t):
            return pa.array([dt.timedelta(seconds=v) if isinstance(v, (int, float)) else v for v in values], type=t)
        return pa.array(values, type=t)
    except (pa.ArrowException, ValueError, TypeError, json.JSONDecodeError) as exc:
        raise InputError(f"{where}payload field {name!r} holds a value that is not {t} ({str(exc)[:120]})",
                         hint="the field changes type within the collection; pick the fields to carry with "
                              "?payload=a,b in the address") from None


def decode(rows: Sequence[dict[str, Any] | None], schema: pa.Schema, *, nested: str = "native",
           where: str = "") -> list[pa.Array]:
    """One Arrow array per field of ``schema`` from row dicts (missing keys are null)."""
    present = [r or {} for r in rows]
    return [decode_column([r.get(f.name) for r in present], f.type, nested=nested, name=f.name, where=where)
            for f in schema]


def _infer_type(values: list[Any]) -> pa.DataType:
    present = [v for v in values if v is not None]
    if not present:
        return pa.string()
    kinds = {type(v) for v in present}
    if kinds == {bool}:
        return pa.bool_()
    if kinds == {int}:
        return pa.int64()
    if kinds <= {int, float}:
        return pa.float64()
    if kinds == {str}:
        return pa.string()
    if kinds == {list}:
        inner = [x for v in present for x in v]
        if all(isinstance(x, _SCALARS) for x in inner) and inner:
            it = _infer_type(inner)
            if it != pa.string() or all(isinstance(x, str) for x in inner):
                return pa.list_(it)
    return pa.json_()


def infer_schema(rows: Sequence[dict[str, Any]], exclude: Sequence[str] = ()) -> pa.Schema:
    """A schema for payload dicts of a foreign collection: scalars keep their type, homogeneous
    lists of scalars become lists, anything else (dicts, mixed types) becomes Arrow JSON."""
    names: list[str] = []
    for r in rows:
        for k in r:
            if k not in names and k not in exclude:
                names.append(k)
    return pa.schema([pa.field(n, _infer_type([r.get(n) for r in rows])) for n in names])


# --------------------------------------------------------------------------- frameworks' payload layouts

#: How a framework lays out the payload of each point/row it writes, told by its field names, and the field
#: holding the text it embedded: LangChain (``page_content`` + nested ``metadata``: ``langchain_qdrant``,
#: ``langchain_community.vectorstores.Qdrant``), LangChain's PGVector (``document`` + ``cmetadata``), LlamaIndex
#: (``_node_content``: the whole node as JSON, whose text and templates made the embedded text).
FRAMEWORK_LAYOUTS: tuple[tuple[str, frozenset[str], str], ...] = (
    ("llamaindex", frozenset({"_node_content"}), "_node_content"),
    ("langchain", frozenset({"page_content", "metadata"}), "page_content"),
    ("langchain-pgvector", frozenset({"document", "cmetadata"}), "document"),
)
#: The LlamaIndex field whose JSON value holds a node (its text is read through the node's templates).
NODE_FIELD = "_node_content"


def framework_layout(names: Sequence[str]) -> tuple[str, str] | None:
    """``(framework, text field)`` when payload field ``names`` are laid out as a framework writes them, else None."""
    have = set(names)
    return next(((name, text) for name, needs, text in FRAMEWORK_LAYOUTS if needs <= have), None)
