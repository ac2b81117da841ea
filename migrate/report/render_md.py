"""Markdown for ``$GITHUB_STEP_SUMMARY`` (GitHub-flavoured tables, no images).

Data is escaped for both Markdown and the HTML that GitHub allows inside it: ``& < >``
become entities and table/emphasis characters get a backslash, so a document
containing ``<script>`` or ``|`` cannot break the summary.
"""

from __future__ import annotations

import json
import re
from typing import Any

from migrate.report.metrics import METRICS

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#~])")


def md_escape(x: Any, limit: int | None = None) -> str:
    """Plain text safe inside a Markdown table cell."""
    s = "" if x is None else str(x)
    s = " ".join(s.split())
    if limit is not None and len(s) > limit:
        s = s[:limit].rstrip() + "…"
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", s)


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    return [_row([md_escape(h) for h in headers]), _row(["---"] * len(headers)), *(_row(r) for r in rows), ""]


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def render_markdown(report: dict[str, Any], *, examples: int = 3) -> str:
    """Summary Markdown: verdict, gates, metrics, agreement, Matryoshka, provenance, a few examples."""
    old = report["sides"]["old"]
    new = report["sides"]["new"]
    k = report["config"]["k"]
    out = [f"## {md_escape(report['title'])}", ""]
    gates = report.get("gates") or []
    failed = [g for g in gates if g["failed"]]
    if failed:
        out += [f"**:x: Quality gate failed:** " + "; ".join(
            f"`{g['gate'].replace('`', '')}` ({md_escape(g['message'])})" for g in failed), ""]
    elif gates:
        out += [f"**:white_check_mark: All {len(gates)} quality gates passed.**", ""]
    out += [f"{report['n_queries']} queries, exact search, k={k}. Old: **{md_escape(old['name'])}**, "
            f"new: **{md_escape(new['name'])}**.", ""]
    if gates:
        out += ["### Gates", ""]
        out += _table(["gate (fail if)", "result", "value", "threshold"],
                      [[f"`{g['gate'].replace('`', '')}`", "FAILED" if g["failed"] else "passed",
                        f"{g['value']:.4f}", f"{g['op']} {g['threshold']:.4f}"] for g in gates])
    m = report.get("metrics")
    if m:
        out += [f"### Retrieval quality ({m['n_judged']} judged queries, pytrec_eval)", ""]
        for row in m["rows"]:
            rows = []
            for metric in METRICS:
                s = row["stats"][metric]
                rows.append([metric, f"{s['old_mean']:.4f}", f"{s['new_mean']:.4f}", f"{s['delta']:+.4f}",
                             f"[{s['delta_ci'][0]:+.4f}, {s['delta_ci'][1]:+.4f}]",
                             md_escape(_p(s["p_ttest"])), md_escape(_p(s["p_randomization"])),
                             f"{s['wins']}/{s['ties']}/{s['losses']}"])
            out += [f"**{md_escape(row['side'])} vs {md_escape(row['vs'])}**", ""]
            out += _table(["metric", row["vs"], row["side"], "Δ", "Δ 95% CI", "p t-test", "p randomization",
                           "win/tie/loss"], rows)
    a = report["agreement"]
    out += ["### Agreement between old and new results", ""]
    out += _table(["measure", "value"], [
        [f"mean overlap@{k}", f"{a['overlap_mean']:.4f}"],
        [f"mean RBO (p={a['rbo_p']})", f"{a['rbo_mean']:.4f}"],
        [f"mean rank shift of old top-{k}", "–" if a["mean_abs_rank_shift"] is None
         else f"{a['mean_abs_rank_shift']:.2f}"],
        ["same top-1", f"{a['top1_kept_rate']:.4f}"],
    ])
    sweep = [r for r in (report.get("matryoshka") or []) if "skipped" not in r]
    if sweep:
        out += ["### Matryoshka sweep (new side)", ""]
        hdr = ["dims", "bytes/vector f32"] + (["nDCG@10", "Recall@100"] if m else []) + \
              [f"overlap@{k} vs old", "RBO vs full"]
        rows = [[r["dims"], r["bytes_float32"]] + ([f"{r['ndcg@10']:.4f}", f"{r['recall@100']:.4f}"] if m else [])
                + [f"{r['overlap_vs_old']:.4f}", f"{r['rbo_vs_full']:.4f}"] for r in sweep]
        out += _table(hdr, rows)
    if report.get("ann"):
        out += ["### ANN index vs exact search", ""]
        out += _table(["side", f"recall@{k} vs exact", "ANN nDCG@10"],
                      [[md_escape(n), f"{v.get(f'recall@{k}_vs_exact', float('nan')):.4f}",
                        f"{v['metrics']['ndcg@10']:.4f}" if v.get("metrics") else "–"] for n, v in report["ann"].items()])
    out += ["### How each side embedded", ""]
    sides = [old, new] + list(report["sides"].get("extra", []))
    keys: list[str] = []
    for s in sides:
        keys += [k2 for k2 in (s.get("description") or {}) if k2 not in keys]
    rows = []
    for key in ["n_docs", "dim", "chunked"] + keys:
        vals = []
        for s in sides:
            v = s.get(key) if key in ("n_docs", "dim", "chunked") else (s.get("description") or {}).get(key)
            if isinstance(v, (dict, list)) or (isinstance(v, str) and key.endswith("prefix")):
                v = json.dumps(v, ensure_ascii=False, sort_keys=True)  # prefixes: show spaces and emptiness
            vals.append(md_escape(v))
        rows.append([md_escape(key)] + vals)
    out += _table(["", *[s["name"] for s in sides]], rows)
    if examples and report.get("examples"):
        out += [f"### Results that changed most (top {k}, cosine)", ""]
        for ex in report["examples"][:examples]:
            out += [f"**{md_escape(ex['qid'])}: {md_escape(ex['text'], 200)}** (overlap {ex['overlap']:.2f}, "
                    f"RBO {ex['rbo']:.3f})", ""]
            names = list(ex["sides"])
            n = max(len(v) for v in ex["sides"].values())
            rows = []
            for i in range(n):
                row: list[Any] = [i + 1]
                for name in names:
                    r = ex["sides"][name][i] if i < len(ex["sides"][name]) else None
                    if r is None:
                        row.append("")
                        continue
                    mark = " ✅" if r["rel"] else ""
                    txt = f" {md_escape(r['text'], 80)}" if r["text"] else ""
                    row.append(f"{r['score']:.3f} {md_escape(r['id'])}{mark}{txt}")
                rows.append(row)
            out += _table(["#", *names], rows)
    out += [f"<sub>jina-migrate compare · report v{report['report_version']} · {md_escape(report['created'])}</sub>", ""]
    return "\n".join(out)
