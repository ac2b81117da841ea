"""A plan's identity and its use by ``run --plan``.

Reproducible: everything except ``created_at`` and the ``measured`` section (timings of the
local calibration) is a function of the inputs; ``plan_sha256`` hashes exactly that part.
``load_plan`` reads a plan and refuses anything else or an edited plan;
``check_plan_matches`` refuses when a source file changed since (size or sha256).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from migrate.errors import InputError, StateError
from migrate.planning.schema import SCHEMA_VERSION

_VOLATILE = ("created_at", "measured", "plan_sha256")


def deterministic_part(plan: dict[str, Any]) -> dict[str, Any]:
    """The plan without timestamps and measurements: equal inputs give equal parts."""
    return {k: v for k, v in plan.items() if k not in _VOLATILE}


def plan_hash(plan: dict[str, Any]) -> str:
    from migrate.shards import canonical_hash

    return canonical_hash(deterministic_part(plan))


def load_plan(path: str | Path) -> dict[str, Any]:
    """Read a plan written by ``jina-migrate plan --out``; refuse anything else or an edited plan."""
    p = Path(path)
    try:
        plan = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{p}: plan file not found", hint="write one with `jina-migrate plan ... --out plan.json`") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{p}: not a readable JSON plan ({exc})") from None
    if not isinstance(plan, dict) or plan.get("tool") != "jina-migrate" or plan.get("kind") != "plan":
        raise InputError(f"{p}: not a jina-migrate plan", hint="write one with `jina-migrate plan ... --out plan.json`")
    if plan.get("schema_version") != SCHEMA_VERSION:
        raise InputError(f"{p}: plan schema version {plan.get('schema_version')} (this tool reads {SCHEMA_VERSION})",
                         hint="re-create the plan with this version of jina-migrate")
    if plan.get("plan_sha256") != plan_hash(plan):
        raise StateError(f"{p}: the plan was edited after it was made (plan_sha256 does not match)",
                         hint="re-create the plan and review it again")
    return plan


def check_plan_matches(plan: dict[str, Any], sources_fingerprint: list[dict[str, Any]]) -> None:
    """Raise ``StateError`` unless the sources are byte-for-byte those the plan was made from."""
    planned = plan.get("sources", {}).get("fingerprint", [])
    if len(planned) != len(sources_fingerprint):
        raise StateError(f"the plan covers {len(planned)} source file(s), this run reads {len(sources_fingerprint)}",
                         hint="run with the same --docs/--old-index/--id-map, or make a new plan")
    for a, b in zip(planned, sources_fingerprint):
        if a.get("size") != b.get("size") or a.get("sha256") != b.get("sha256"):
            raise StateError(f"{b.get('path')} changed since the plan was made "
                             f"(planned {a.get('size')} bytes sha256 {str(a.get('sha256'))[:12]}, "
                             f"now {b.get('size')} bytes sha256 {str(b.get('sha256'))[:12]})",
                             hint="review a new plan: `jina-migrate plan ... --out plan.json`")
