"""The plan as Markdown, for a pull request or ``$GITHUB_STEP_SUMMARY``."""

from __future__ import annotations

from typing import Any

from migrate.planning.text import human_bytes, human_seconds, storage_by_dims, summary_rows


def _cell(value: Any) -> str:
    """A table cell: pipes and line breaks would end the cell or the row."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_markdown(plan: dict[str, Any]) -> str:
    """Markdown for a pull request or ``$GITHUB_STEP_SUMMARY``."""
    out = ["## jina-migrate plan", "", "| | |", "|---|---|"]
    out += [f"| {_cell(k)} | {_cell(v)} |" for k, v in summary_rows(plan)]
    out += ["", "### Findings", ""]
    if plan["findings"]:
        out += ["| severity | code | message | fix |", "|---|---|---|---|"]
        out += [f"| {f['severity']} | `{f['code']}` | {_cell(f['message'])} | {_cell(f['fix'])} |"
                for f in plan["findings"]]
    else:
        out.append("none")
    out += ["", "### Settings and reasons", "", "| setting | value | why |", "|---|---|---|"]
    out += [f"| {r['setting']} | `{_cell(r['value'])}` | {_cell(r['why'])} |" for r in plan["mapping"]["reasons"]]
    out += ["", "### API wall time by rate-limit tier", "", "| tier | RPM | TPM | time | bound by |", "|---|---|---|---|---|"]
    for name, a in plan["api_time"]["by_tier"].items():
        out.append(f"| {name} | {a['rpm']:,} | {a['tpm']:,} | {human_seconds(a['seconds'])} | {a['bound_by']} |")
    out += ["", "### Storage (vectors / FAISS flat index)", "", "| dims | float32 | float16 | int8 | binary |", "|---|---|---|---|---|"]
    for d, fm in storage_by_dims(plan).items():
        mark = " (chosen)" if d == plan["mapping"]["dimensions"] else ""
        out.append(f"| {d}{mark} | {human_bytes(fm['float32'])} | {human_bytes(fm['float16'])} | {human_bytes(fm['int8'])} | {human_bytes(fm['binary'])} |")
    if plan.get("destinations"):
        out += ["", "### Database destinations (estimated)", "",
                "| destination | rows | dims | index | data | index size | total | how |", "|---|---|---|---|---|---|---|---|"]
        for d in plan["destinations"]:
            ix = d["index"]
            kind = f"{ix['kind']} m={ix['m']}" if ix["kind"] == "hnsw" else ix["kind"]
            out.append(f"| `{_cell(d['address'])}` | {d['rows']:,} | {d['dimensions']} | {kind} | "
                       f"{human_bytes(d['data_bytes'])} | {human_bytes(d['index_bytes'])} | "
                       f"{human_bytes(d['total_bytes'])} | {_cell(d['basis'])} |")
    out += ["", f"plan_sha256 `{plan['plan_sha256'][:16]}`; execute with `jina-migrate run --plan plan.json --out DIR`", ""]
    return "\n".join(out)
