"""Pytest plugin of the reliability suite: each test records what it tried; the table is written from that.

What: the ``reliability`` fixture gives a test ``add(area, case, tries, outcome)``. When the test's
call phase ends, every row it added is stamped ``pass`` or ``FAIL`` from pytest's own report (so a
row can only say "pass" if the assertions after it held). At session end, when the environment
variable ``JINA_MIGRATE_RELIABILITY_DOC`` names a Markdown path, the rows are merged with the rows
kept from earlier sessions (``<doc>.json``: rows of tests that did not run this time, e.g. the
``--slow`` crash test in a fast run, stay with the date they were last produced) and the table is
rewritten. ``python bench/reliability_doc.py [--slow]`` sets the variable and runs the suite.

Why: docs/reliability.md must stay true: every row comes from a test that can fail, and a failed
test shows as FAIL in the table instead of silently keeping an old "pass".

Loaded by the reliability test modules through ``pytest_plugins = ["reliability_plugin"]``.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

DOC_ENV = "JINA_MIGRATE_RELIABILITY_DOC"
AREAS = ("Crash", "Disk and filesystem", "API faults", "Hostile input", "Output state", "Databases", "Secrets",
         "Reports")

_MODULE_AREA = {"test_reliability_crash": "Crash", "test_reliability_fs": "Disk and filesystem",
                "test_reliability_faults": "API faults", "test_reliability_input": "Hostile input",
                "test_reliability_secrets": "Secrets"}

_ROWS: list[dict[str, Any]] = []
_RAN: set[str] = set()
_STARTED = time.time()


class Recorder:
    """Rows of one test; stamped with the test's result when its call phase is over."""

    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid
        self.rows: list[dict[str, Any]] = []

    def add(self, area: str, case: str, tries: int, outcome: str) -> None:
        if area not in AREAS:
            raise ValueError(f"unknown area {area!r}")
        self.rows.append({"area": area, "case": case, "tries": int(tries), "outcome": outcome,
                          "test": self.nodeid, "status": "FAIL"})

    def tick(self, area: str, case: str, result: str) -> None:
        """Count one example of a property-based test under ``result`` (one row per test)."""
        if not self.rows:
            self.add(area, case, 0, "")
            self.rows[0]["_counts"] = {}
        row = self.rows[0]
        row["tries"] += 1
        row["_counts"][result] = row["_counts"].get(result, 0) + 1
        row["outcome"] = ", ".join(f"{n} {k}" for k, n in sorted(row["_counts"].items()))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.stash[_REPORT] = rep


_REPORT = pytest.StashKey[pytest.TestReport]()


@pytest.fixture
def reliability(request: pytest.FixtureRequest) -> Iterator[Recorder]:
    rec = Recorder(request.node.nodeid)
    yield rec
    rep = request.node.stash.get(_REPORT, None)
    ok = rep is not None and rep.passed
    for row in rec.rows:
        row.pop("_counts", None)
        row["status"] = "pass" if ok else "FAIL"
        row["date"] = time.strftime("%Y-%m-%d", time.gmtime())
    if not rec.rows and not ok:  # failed before recording anything: the table still shows it
        rec.rows.append({"area": _MODULE_AREA.get(request.module.__name__.rsplit(".", 1)[-1], "Hostile input"),
                         "case": f"{request.node.name} (failed before recording)", "tries": 0,
                         "outcome": "test failed", "test": rec.nodeid, "status": "FAIL",
                         "date": time.strftime("%Y-%m-%d", time.gmtime())})
    _ROWS.extend(rec.rows)
    _RAN.add(_base_test(rec.nodeid))


def _base_test(nodeid: str) -> str:
    return nodeid.split("[", 1)[0]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get(DOC_ENV)
    if not target or not _ROWS and not _RAN:
        return
    write_doc(Path(target), _ROWS, _RAN, slow=bool(session.config.getoption("--slow", default=False)),
              seconds=time.time() - _STARTED)


def merge_rows(old: list[dict[str, Any]], new: list[dict[str, Any]], ran: set[str]) -> list[dict[str, Any]]:
    """New rows, plus old rows of tests that did not run in this session (kept with their date)."""
    kept = [r for r in old if _base_test(r["test"]) not in ran]
    return kept + list(new)


def write_doc(target: Path, rows: list[dict[str, Any]], ran: set[str], *, slow: bool, seconds: float) -> None:
    from migrate.atomic import write_json, write_text

    store = target.with_suffix(".json")
    old: list[dict[str, Any]] = []
    if store.exists():
        try:
            old = json.loads(store.read_text(encoding="utf-8")).get("rows", [])
        except (OSError, ValueError):
            old = []
    merged = merge_rows(old, rows, ran)
    meta = {"generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "slow": slow,
            "session_seconds": round(seconds, 1), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "python": platform.python_version()}
    write_json(store, {"meta": meta, "rows": merged})
    write_text(target, render(merged, meta))


def render(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    order = {a: i for i, a in enumerate(AREAS)}
    rows = sorted(rows, key=lambda r: (order.get(r["area"], 99), r["test"], r["case"]))
    failed = sum(r["status"] != "pass" for r in rows)
    out = [
        "# Reliability: what was tried, how often, and what happened",
        "",
        "Generated by the reliability suite (`tests/test_reliability_*.py`); do not edit by hand.",
        "Regenerate with `python bench/reliability_doc.py` (fast subset) or "
        "`python bench/reliability_doc.py --slow` (adds the full 20-kill crash tests).",
        "Each row was written by the test named in its last column, and says `pass` only if that test's",
        "assertions held in the run on the date shown; a failing test writes `FAIL`.",
        "",
        f"Last generated {meta['generated']} ({'with' if meta['slow'] else 'without'} `--slow`, "
        f"{meta['session_seconds']} s, {meta['machine']}, Python {meta['python']}). "
        f"Rows: {len(rows)}, failing: {failed}.",
        "",
    ]
    for area in AREAS:
        sub = [r for r in rows if r["area"] == area]
        if not sub:
            continue
        out += [f"## {area}", "", "| case | tries | outcome | result | date | test |", "|---|---:|---|---|---|---|"]
        for r in sub:
            cells = [r["case"], str(r["tries"]), r["outcome"], r["status"], r.get("date", ""),
                     f"`{r['test'].split('::', 1)[-1]}`"]
            out.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
        out.append("")
    return "\n".join(out)
