"""``jina-migrate cutover`` and ``rollback``: switch the application's name between collections.

``cutover`` points the name each database destination was given (``--sink ...&alias=NAME``)
at the new collection, atomically, only after ``verify`` passes (and, with
``--require-report``, after a ``compare`` report's quality gates passed). ``rollback`` points
it back. Neither ever drops a collection: the old one stays, ready for a rollback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

FLAG = {"metavar": ""}


def register(app: typer.Typer) -> None:
    app.command("cutover")(cutover_command)
    app.command("rollback")(rollback_command)


def _show(done: list[dict], json_out: bool, verb: str) -> None:
    if json_out:
        typer.echo(json.dumps(done, indent=2))
        return
    for d in done:
        if verb == "cutover":
            was = f" (it pointed at {d['previous']!r})" if d.get("previous") else ""
            typer.echo(f"{d['sink']}: {d['alias']!r} now points at {d['target']!r}{was}")
        else:
            typer.echo(f"{d['sink']}: {d['alias']!r} points at {d['previous']!r} again")


def cutover_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory of the migration.")],
    require_report: Annotated[Optional[Path], typer.Option(help="compare's report.json: switch only if all its "
                                                                  "quality gates passed.")] = None,
    sink: Annotated[Optional[str], typer.Option(help="Only this destination (its collection name or address).")] = None,
    json_out: Annotated[bool, typer.Option("--json", **FLAG, help="Machine-readable output (JSON) on stdout.")] = False,
) -> None:
    """Point the application's name at the new collection (after verify; never drops anything)."""
    from migrate.pipeline import cutover

    _show(cutover(out, require_report=require_report, sink=sink), json_out, "cutover")


def rollback_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory of the migration.")],
    sink: Annotated[Optional[str], typer.Option(help="Only this destination (its collection name or address).")] = None,
    json_out: Annotated[bool, typer.Option("--json", **FLAG, help="Machine-readable output (JSON) on stdout.")] = False,
) -> None:
    """Point the application's name back at the collection it used before cutover."""
    from migrate.pipeline import rollback

    _show(rollback(out, sink=sink), json_out, "rollback")
