"""Cutover and rollback of the application's name (``--sink ...&alias=NAME``): a small state machine in the manifest.

The manifest's ``cutover`` section holds one record per destination::

    {"alias": "docs", "target": "docs_v3", "state": "switching" | "done" | "rolled back",
     "before": {"kind": "absent"} | {"kind": "alias", "target": "docs_v2"} | {"kind": "table", "aside": "docs_pre_jm"},
     "previous": "docs_v2", "at": "..."}

``before`` is what the name was before the cutover: nothing; an alias (view, pointer) of another
collection; or the run's own source table, renamed aside in the switch's transaction (PostgreSQL).
Rollback restores exactly that: it removes what the cutover created, points the alias back, or
renames the table back. The rules:

* Everything a cutover could refuse is checked (:func:`plan`, for every destination of the output)
  before anything is recorded or changed (``migrate.engines.names.refusal``; a table to move aside
  must also still have the checksum the run recorded when it read it), so a refused cutover leaves
  no record behind.
* The record is saved (``switching``) before the switch and marked ``done`` after it: a cutover
  killed in between is finished by the next ``cutover`` and undone by ``rollback``, both of which
  read what the name is now instead of trusting the record alone.
* A second cutover keeps the record's ``before`` while the name still points at the target;
  if someone re-pointed the name since, the new cutover records what the name is now.
* Rollback touches the name only while it is what the cutover left (or already as before);
  a name changed by someone else since is left alone, with one line saying so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from migrate.engines.names import NameState, refusal, switch_of
from migrate.errors import StateError

KINDS = ("absent", "alias", "table")


@dataclass
class OwnSource:
    """The run's source collection when it lives in the destination's database: its name, and whether its
    content checksum is still the one recorded when the run read it (proof that it is the same table)."""

    collection: str
    unchanged: Callable[[], bool]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def before_of(rec: dict[str, Any]) -> dict[str, Any]:
    """The record's ``before``; records written by 0.2 (``previous`` only) read as what they meant."""
    before = rec.get("before")
    if isinstance(before, dict) and before.get("kind") in KINDS:
        return before
    previous = rec.get("previous")
    if previous is None:
        return {"kind": "absent"}
    if previous == rec.get("alias"):
        return {"kind": "table", "aside": f"{previous}_pre_jm"}
    return {"kind": "alias", "target": previous}


def _is(before: dict[str, Any], state: NameState) -> bool:
    """Whether the name is now as it was before the cutover."""
    if before["kind"] == "absent":
        return state.kind == "absent"
    if before["kind"] == "alias":
        return state.points_at(before["target"])
    return state.kind == "collection"


def _before(sink: Any, state: NameState) -> dict[str, Any]:
    """What the name is now, as a ``before``; raises (nothing recorded, nothing changed) when cutover may not
    take it."""
    engine, alias = sink.engine, sink.address.alias
    own: OwnSource | None = sink.own_source()
    problem = refusal(engine, sink.address, alias, state, own_source=own.collection if own else None)
    if problem is not None:
        raise problem
    if state.kind == "absent":
        return {"kind": "absent"}
    if state.kind == "alias":
        return {"kind": "alias", "target": state.target}
    assert own is not None  # refusal() allows a real table only when it is the run's own source
    if not own.unchanged():
        raise StateError(f"--sink {sink.address}: the table {alias!r} changed since this run read it (its checksum "
                         "differs): cutover moves aside only the very table the run migrated",
                         hint="rerun the same `jina-migrate run` (it brings the destination up to date), then cutover")
    return {"kind": "table", "aside": alias + switch_of(engine).aside_suffix}


def _previous(before: dict[str, Any], alias: str) -> str | None:
    """What the application got under its name before: the alias's target, its own table, or nothing."""
    return {"absent": None, "alias": before.get("target"), "table": alias}[before["kind"]]


def plan(sink: Any, records: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """What ``cutover`` will record as ``before`` (None: switched already by this output, nothing to do); raises
    what it would refuse, so several destinations are all checked before any of them is switched."""
    alias, target = sink.address.alias, sink.collection
    state = sink.engine.name_state(alias)
    rec = records.get(sink.name)
    ours = rec is not None and rec.get("state") in ("switching", "done") and \
        (rec.get("alias"), rec.get("target")) == (alias, target)
    if ours and state.points_at(target):  # switched already (maybe killed before the record said so)
        return None
    return _before(sink, state)


def cutover(sink: Any, records: dict[str, dict[str, Any]], save: Callable[[], None],
            before: dict[str, Any] | None) -> dict[str, Any]:
    """Point the application's name at ``sink.collection`` (idempotent; see the module docstring). ``before``
    is what :func:`plan` returned for this sink."""
    alias, target = sink.address.alias, sink.collection
    if before is None:
        rec = records[sink.name]
        if rec.get("state") != "done" or "before" not in rec:
            rec |= {"before": before_of(rec), "state": "done", "at": _now()}
            save()
        return rec
    rec = {"alias": alias, "target": target, "state": "switching", "before": before,
           "previous": _previous(before, alias), "at": _now()}
    records[sink.name] = rec
    save()  # before the switch: a cutover killed after it still knows what to roll back to
    if before["kind"] == "table":
        sink.engine.point_alias(alias, target, move_aside=before["aside"])
    else:
        sink.engine.point_alias(alias, target)
    rec |= {"state": "done", "at": _now()}
    save()
    return rec


def rollback(sink: Any, records: dict[str, dict[str, Any]], save: Callable[[], None]) -> dict[str, Any]:
    """Put the application's name back exactly as it was before the cutover (see the module docstring)."""
    rec = records.get(sink.name)
    if rec is None or rec.get("state") not in ("switching", "done", "rolled back"):
        raise StateError(f"--sink {sink.address}: no cutover of {sink.collection!r} is recorded in this output",
                         hint="nothing to roll back; `jina-migrate cutover --out DIR` switches")
    engine, alias, target = sink.engine, rec["alias"], rec["target"]
    before = before_of(rec)
    state = engine.name_state(alias)
    if _is(before, state):  # rolled back already, or the cutover never got to switch
        if rec.get("state") != "rolled back" or "before" not in rec:
            rec |= {"before": before, "state": "rolled back", "at": _now()}
            save()
        return rec
    if rec.get("state") == "rolled back" or not state.points_at(target):
        raise StateError(f"--sink {sink.address}: {alias!r} {state.describe()} now, not what the cutover left "
                         f"({target!r}): it was changed since, so rollback leaves it alone",
                         hint=f"point {alias!r} yourself; before the cutover it "
                              + (f"pointed at {before['target']!r}" if before["kind"] == "alias" else
                                 "did not exist" if before["kind"] == "absent" else
                                 f"was the table now named {before['aside']!r}"))
    if before["kind"] == "absent":
        engine.drop_alias(alias)
    elif before["kind"] == "alias":
        engine.point_alias(alias, before["target"])
    else:
        engine.drop_alias(alias, restore=before["aside"])
    rec |= {"before": before, "state": "rolled back", "at": _now()}
    save()
    return rec
