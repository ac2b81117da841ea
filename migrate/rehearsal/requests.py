"""Parsing and checking an embeddings request the way the Jina API does (jina-spec §1.2-1.5).

What: ``parse_request`` validates the body's fields (422 with a FastAPI-style ``detail``
list for malformed ones, 400 for more than 2048 inputs); ``check_fields`` checks them
against what the named model accepts (``ServedModel``): ``task``, ``late_chunking`` and
``dimensions`` other than the model's own width are v3 fields, refused with 422 for v2
names; ``dimensions`` must lie in the model's range (v3: 32..1024).
``Reject`` is an error answer (status, ``detail``, headers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from migrate.models import V3_TASKS
from migrate.embed.jina_wire import EMBEDDING_TYPES
from migrate.rehearsal.models import ServedModel


class Reject(Exception):
    """An error answer: ``{"detail": detail}`` with ``status`` and ``headers``."""

    def __init__(self, status: int, detail: Any, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def invalid(field_name: str, msg: str) -> Reject:
    return Reject(422, [{"loc": ["body", field_name], "msg": msg, "type": "value_error"}])


@dataclass
class ParsedRequest:
    model: str
    texts: list[str]
    task: str | None
    dimensions: int | None
    late_chunking: bool
    embedding_types: list[str]
    type_is_list: bool
    normalized: bool
    truncate: bool


def parse_request(obj: Any, *, default_normalized: bool, max_inputs: int) -> ParsedRequest:
    """Validate a request body the way the API does (422 for malformed fields)."""
    if not isinstance(obj, dict):
        raise invalid("body", "request body must be a JSON object")
    model = obj.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model", "field required: a model name string")
    raw = obj.get("input")
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise invalid("input", "field required: an array of strings or {\"text\": ...} objects")
    texts: list[str] = []
    for i, item in enumerate(raw):
        if isinstance(item, dict) and isinstance(item.get("text"), str):
            texts.append(item["text"])
        elif isinstance(item, str):
            texts.append(item)
        else:
            raise invalid("input", f"input[{i}] must be a string or an object with a 'text' string")
    if not texts:
        raise invalid("input", "input must contain at least one text")
    if len(texts) > max_inputs:
        raise Reject(400, f"input length is larger than the largest allowed size {max_inputs}")
    etype: Any = "float"
    for alias in ("embedding_type", "encoding_type", "encoding_format"):
        if obj.get(alias) is not None:
            etype = obj[alias]
            break
    type_is_list = isinstance(etype, list)
    types = etype if type_is_list else [etype]
    if not types or any(t not in EMBEDDING_TYPES for t in types):
        raise invalid("embedding_type", f"must be one of {', '.join(EMBEDDING_TYPES)} (or a list of them)")
    task = obj.get("task")
    if task is not None and task not in V3_TASKS:
        raise invalid("task", f"must be one of {', '.join(V3_TASKS)}")
    dims = obj.get("dimensions")
    if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or dims < 1):
        raise invalid("dimensions", "must be a positive integer")
    flags = {}
    for name, default in (("late_chunking", False), ("normalized", default_normalized), ("truncate", False)):
        v = obj.get(name, default)
        if v is None:
            v = default
        if not isinstance(v, bool):
            raise invalid(name, "must be a boolean")
        flags[name] = v
    return ParsedRequest(model=model, texts=texts, task=task, dimensions=dims, late_chunking=flags["late_chunking"],
                         embedding_types=list(types), type_is_list=type_is_list, normalized=flags["normalized"],
                         truncate=flags["truncate"])


def check_fields(req: ParsedRequest, model: ServedModel, stand_in_width: int) -> None:
    """Refuse what the real model refuses: v3-only fields on other models, sizes out of range."""
    if req.task is not None and not model.supports_task:
        raise invalid("task", f"task is only supported by jina-embeddings-v3; {req.model} has no task adapters")
    if req.late_chunking and not model.late_chunking:
        raise invalid("late_chunking", f"late_chunking is only supported by jina-embeddings-v3, not {req.model}")
    if req.dimensions is not None:
        lo, hi = model.accepted_dimensions(stand_in_width)
        if not lo <= req.dimensions <= hi:
            what = f"{req.model} only has its own width, {hi}" if lo == hi else f"must be between {lo} and {hi} for {req.model}"
            raise invalid("dimensions", what)
