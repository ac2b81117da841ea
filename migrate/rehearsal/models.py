"""Which real stand-in model answers for each Jina model name, and what the name accepts.

What: ``ServedModel`` joins a Jina model name to a stand-in (``migrate.embed.standins``),
its task-prefix style, and what the *real* model accepts (its width, the ``dimensions``
range, task and late chunking), so a rehearsal accepts and refuses what the real API does.
``default_model_map`` is the documented mapping; ``load_model_map`` reads a user's.

Default mapping:

* ``jina-embeddings-v2-*`` -> ``minilm`` (all-MiniLM-L6-v2, uncased WordPiece like
  v2-base-en). v2 has no tasks, no ``dimensions`` other than its own width, and no late
  chunking through the API (jina-spec §1.2: "v3 introduces three new parameters in the
  API: task, dimensions, and late_chunking"): the server answers 422 to those fields.
* ``jina-embeddings-v3`` -> ``e5-small`` (multilingual-e5-small, XLM-R Unigram like v3).
  Task prefixes use **e5's own prompts** (``prefixes = "e5"``): ``retrieval.query`` ->
  ``"query: "``, ``retrieval.passage`` -> ``"passage: "``, the symmetric tasks ->
  ``"query: "``, no task -> no prefix; ``prefixes = "v3"`` uses v3's own instructions
  instead (jina-spec §3.3), which e5 was not trained on. ``dimensions`` 32..1024.
* ``fast=True`` serves every name with ``static`` (64-d) for load tests.

Widths: a stand-in is narrower than the real model (384 or 64 vs 1024/768/512). Without
``dimensions`` a v3 name answers in the real default width, 1024, as the API does (the
stand-in's vector zero-padded: ``server.default_dimensions``), and a v2 name in the
stand-in's width (so an index built with a v2 stand-in can be searched with the same name);
with ``dimensions`` it answers in exactly that size: narrower = the first N values
re-normalised, wider = zero-padded (cosine and norm unchanged). ``/v1/models`` says all of
this per name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migrate.models import V3_TASK_PREFIXES
from migrate.embed.standins import STAND_IN_DESCRIPTIONS
from migrate.errors import ConfigError

E5_PREFIXES: dict[str, str] = {
    "retrieval.query": "query: ",
    "retrieval.passage": "passage: ",
    "text-matching": "query: ",
    "classification": "query: ",
    "separation": "query: ",
}
PREFIX_STYLES = ("e5", "v3", "none")



@dataclass(frozen=True)
class ServedModel:
    """One Jina model name, the real stand-in that answers for it, and what the name accepts.

    ``dimensions``: the real model's width (the largest ``dimensions`` accepted; None: the
    stand-in's width). ``min_dimensions``: the smallest accepted (None: only the real
    width). ``supports_task`` / ``late_chunking``: whether those fields are accepted.
    """

    name: str
    stand_in: str
    prefixes: str = "none"  # "e5" | "v3" | "none"
    supports_task: bool = False
    max_tokens: int = 8192
    dimensions: int | None = None
    min_dimensions: int | None = None
    late_chunking: bool = False

    def prefix_for(self, task: str | None) -> str:
        if not task or self.prefixes == "none":
            return ""
        if self.prefixes == "e5":
            return E5_PREFIXES.get(task, "")
        return V3_TASK_PREFIXES.get(task, "")

    def accepted_dimensions(self, stand_in_width: int) -> tuple[int, int]:
        hi = self.dimensions or stand_in_width
        return (self.min_dimensions or hi, hi)

    def describe(self) -> str:
        return STAND_IN_DESCRIPTIONS.get(self.stand_in, self.stand_in)

    def as_dict(self) -> dict[str, Any]:
        return {"stand_in": self.stand_in, "prefixes": self.prefixes, "supports_task": self.supports_task,
                "max_tokens": self.max_tokens, "dimensions": self.dimensions, "min_dimensions": self.min_dimensions,
                "late_chunking": self.late_chunking}


def _catalogue_facts(name: str) -> dict[str, Any]:
    """What the real model ``name`` accepts, from the catalogue ({} for names it does not know)."""
    from migrate.models import CATALOGUE

    m = CATALOGUE.get(name)
    if m is None:
        return {}
    if m.tasks:
        return {"dimensions": m.dimensions, "min_dimensions": min(m.matryoshka_dims or (m.dimensions,)),
                "supports_task": True, "late_chunking": True, "max_tokens": m.max_tokens}
    return {"dimensions": m.dimensions, "min_dimensions": None, "supports_task": False, "late_chunking": False,
            "max_tokens": m.max_tokens}


def served(name: str, stand_in: str, prefixes: str = "none", **overrides: Any) -> ServedModel:
    """A ``ServedModel`` with the catalogue's facts for ``name``, then ``overrides``."""
    facts = _catalogue_facts(name)
    if not facts:  # a name the catalogue does not know: v3-like if it has task prefixes
        v3_like = overrides.get("supports_task", prefixes != "none")
        facts = {"supports_task": v3_like, "late_chunking": v3_like, "min_dimensions": 1 if v3_like else None}
    facts.update({k: v for k, v in overrides.items() if v is not None})
    return ServedModel(name, stand_in, prefixes, **facts)


V2_NAMES = (
    "jina-embeddings-v2-base-en",
    "jina-embeddings-v2-small-en",
    "jina-embeddings-v2-base-de",
    "jina-embeddings-v2-base-es",
    "jina-embeddings-v2-base-zh",
    "jina-embeddings-v2-base-code",
)


def default_model_map(*, fast: bool = False) -> dict[str, ServedModel]:
    """The documented default mapping; ``fast`` serves everything with the static model."""
    out = {n: served(n, "static" if fast else "minilm") for n in V2_NAMES}
    out["jina-embeddings-v3"] = served("jina-embeddings-v3", "static" if fast else "e5-small", prefixes="e5")
    return out


_MAP_KEYS = {"stand_in", "prefixes", "supports_task", "max_tokens", "dimensions", "min_dimensions", "late_chunking"}


def model_from_dict(name: str, spec: Any, where: str) -> ServedModel:
    """One entry of a model map (``{"stand_in": ..., "prefixes": ..., ...}``), validated."""
    from migrate.embed.standins import STANDINS

    if not isinstance(spec, dict) or spec.get("stand_in") not in STANDINS:
        raise ConfigError(f"{where}: model {name!r} needs stand_in = one of {', '.join(STANDINS)}")
    unknown = sorted(set(spec) - _MAP_KEYS)
    if unknown:
        raise ConfigError(f"{where}: model {name!r} has unknown key {unknown[0]!r}", hint=f"keys: {', '.join(sorted(_MAP_KEYS))}")
    prefixes = spec.get("prefixes", "none")
    if prefixes not in PREFIX_STYLES:
        raise ConfigError(f"{where}: model {name!r} prefixes must be one of {', '.join(PREFIX_STYLES)}")
    for key in ("max_tokens", "dimensions", "min_dimensions"):
        v = spec.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ConfigError(f"{where}: model {name!r} {key} must be a positive integer, got {v!r}")
    for key in ("supports_task", "late_chunking"):
        v = spec.get(key)
        if v is not None and not isinstance(v, bool):
            raise ConfigError(f"{where}: model {name!r} {key} must be true or false, got {v!r}")
    return served(name, spec["stand_in"], prefixes, **{k: spec.get(k) for k in _MAP_KEYS - {"stand_in", "prefixes"}})


def load_model_map(path: Path | str) -> dict[str, ServedModel]:
    """Read ``{"models": {NAME: {"stand_in": ..., "prefixes": ..., ...}}}`` (JSON, or TOML for ``.toml``)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
        if p.suffix == ".toml":
            import tomllib

            raw = tomllib.loads(text)
        else:
            raw = json.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read server model config {p}: {exc}", hint="give a JSON or TOML file with a 'models' table") from None
    models = raw.get("models") if isinstance(raw, dict) else None
    if not isinstance(models, dict) or not models:
        raise ConfigError(f"server model config {p} has no 'models' table")
    return {name: model_from_dict(name, spec, str(p)) for name, spec in models.items()}
