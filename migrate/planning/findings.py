"""Findings: the summary of their severities, and the CI policy on them (``gate``).

``plan --fail-on warning|error|never`` exits with ``PlanFindings`` (exit code 8) when a
finding is at or above the level; exit code 7 stays reserved for quality gates
(``compare --fail-if``).
"""

from __future__ import annotations

from typing import Any

from migrate.errors import ConfigError, PlanFindings
from migrate.planning.mapping import SEVERITIES, Finding

FAIL_ON = ("warning", "error", "never")


def summary(findings: list[Finding]) -> dict[str, Any]:
    """Worst severity and the count per severity."""
    worst = max((SEVERITIES.index(f.severity) for f in findings), default=-1)
    return {"worst_severity": SEVERITIES[worst] if worst >= 0 else None,
            "counts": {s: sum(1 for f in findings if f.severity == s) for s in SEVERITIES}}


def check_fail_on(fail_on: str) -> None:
    if fail_on not in FAIL_ON:
        raise ConfigError(f"--fail-on {fail_on!r}", hint="use warning, error or never")


def gate(plan: dict[str, Any], fail_on: str) -> None:
    """CI policy: raise ``PlanFindings`` when a finding is at least ``fail_on`` (warning|error|never)."""
    check_fail_on(fail_on)
    if fail_on == "never":
        return
    level = SEVERITIES.index(fail_on)
    bad = [f for f in plan["findings"] if SEVERITIES.index(f["severity"]) >= level]
    if bad:
        raise PlanFindings(f"plan has {len(bad)} finding(s) at or above {fail_on}: "
                           + "; ".join(f"{f['code']}" for f in bad),
                           hint="see the findings table; --fail-on never reports without failing")
