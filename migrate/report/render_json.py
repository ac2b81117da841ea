"""The report as strict JSON (no NaN/Infinity: they become ``null``), for CI and other tools."""

from __future__ import annotations

import json
import math
from typing import Any

from migrate.report.schema import CompareReport


def _clean(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if hasattr(x, "item") and callable(x.item):  # numpy scalars
        return _clean(x.item())
    return x


def render_json(report: CompareReport, *, indent: int | None = 2) -> str:
    """Serialise ``report.to_dict()``; raises if something is not JSON-representable (a bug)."""
    return json.dumps(_clean(report.to_dict()), indent=indent, ensure_ascii=False, allow_nan=False) + "\n"
