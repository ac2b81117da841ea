"""The plan as rich tables on the terminal (names never split; see ``migrate.planning.tables``)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

from migrate.planning.tables import Column, show_table, table_console
from migrate.planning.text import human_bytes, human_seconds, storage_by_dims, summary_rows

_STYLE = {"error": "red", "warning": "yellow", "info": "cyan"}


def render_terminal(plan: dict[str, Any], console: Console | None = None) -> None:
    """Summary, findings, settings with reasons, API time per tier, storage per width."""
    console = table_console(console)
    show_table(console, "jina-migrate plan", [Column("", prose=False), Column("", prose=True)],
               [(f"[bold]{escape(k)}[/]", escape(v)) for k, v in summary_rows(plan)], show_header=False)
    if plan["findings"]:
        show_table(console, "findings",
                   [Column("severity"), Column("code"), Column("message", prose=True), Column("fix", prose=True)],
                   [(f"[{_STYLE[f['severity']]}]{f['severity']}[/]", escape(f["code"]), escape(f["message"]),
                     escape(f["fix"])) for f in plan["findings"]])
    show_table(console, "settings", [Column("setting"), Column("value"), Column("why", prose=True)],
               [(escape(r["setting"]), escape(str(r["value"])), escape(r["why"])) for r in plan["mapping"]["reasons"]])
    show_table(console, "API wall time by tier",
               [Column("tier"), Column("RPM"), Column("TPM"), Column("time"), Column("bound by")],
               [(name, f"{a['rpm']:,}", f"{a['tpm']:,}", human_seconds(a["seconds"]), a["bound_by"])
                for name, a in plan["api_time"]["by_tier"].items()])
    if plan.get("destinations"):
        show_table(console, "database destinations (estimated)",
                   [Column("destination", prose=True), Column("rows"), Column("index"), Column("data"),
                    Column("index size"), Column("total")],
                   [(escape(d["address"]), f"{d['rows']:,}",
                     escape(f"{d['index']['kind']} m={d['index']['m']}" if d["index"]["kind"] == "hnsw"
                            else d["index"]["kind"]),
                     human_bytes(d["data_bytes"]), human_bytes(d["index_bytes"]), human_bytes(d["total_bytes"]))
                    for d in plan["destinations"]])
    show_table(console, "storage: vectors + FAISS flat index",
               [Column("dims"), Column("float32"), Column("float16"), Column("int8"), Column("binary")],
               [(str(d) + (" *" if d == plan["mapping"]["dimensions"] else ""), human_bytes(fm["float32"]),
                 human_bytes(fm["float16"]), human_bytes(fm["int8"]), human_bytes(fm["binary"]))
                for d, fm in storage_by_dims(plan).items()])
