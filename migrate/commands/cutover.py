"""``jina-migrate cutover`` and ``rollback``: switch the application's name between collections.

``cutover`` points the name each database destination was given (``--sink ...&alias=NAME``)
at the new collection, atomically, only after ``verify`` passes (and, with
``--require-report``, after a ``compare`` report about this very destination passed its quality
gates). ``rollback`` puts the name back exactly as it was (removes what cutover created, points the
alias back, or renames the application's own table back). Neither ever drops a collection.
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
        before = d.get("before") or {}
        alias, target = repr(d["alias"]), repr(d["target"])
        if verb == "cutover":
            was = {"absent": " (it did not exist before; rollback removes it)",
                   "alias": f" (it pointed at {before.get('target')!r})",
                   "table": f" (your table {d['alias']!r} is kept as {before.get('aside')!r}; rollback renames it "
                            "back)"}.get(str(before.get("kind")), "")
            typer.echo(f"{d['sink']}: {alias} now points at {target}{was}")
        elif before.get("kind") == "absent":
            typer.echo(f"{d['sink']}: {alias} removed, as before the cutover ({target} is kept)")
        elif before.get("kind") == "table":
            typer.echo(f"{d['sink']}: {alias} is your own table again ({target} is kept)")
        else:
            typer.echo(f"{d['sink']}: {alias} points at {before.get('target')!r} again ({target} is kept)")


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
    """Put the application's name back exactly as it was before cutover."""
    from migrate.pipeline import rollback

    _show(rollback(out, sink=sink), json_out, "rollback")
