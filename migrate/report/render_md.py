"""Markdown for ``$GITHUB_STEP_SUMMARY`` (GitHub-flavoured tables, no images).

The first table is the headline table (six rows: the judged metrics and the overlap of
the two result lists, or the label-free measures), so whoever prints the first table
(``demo`` prints the first eight ``|`` lines) shows a whole table.

Data is escaped for both Markdown and the HTML that GitHub allows inside it: ``& < >``
become entities and table/emphasis characters get a backslash, so a document
containing ``<script>`` or ``|`` cannot break the summary.
"""

from __future__ import annotations

import re
from typing import Any

from migrate.report.evidence_words import change_line, evidence_lines
from migrate.report.metrics import METRICS
from migrate.report.wording import (change_words, configuration_rows, docs_sentence, fmt_p, headline_sentence,
                                     search_words)
from migrate.report.schema import CompareReport

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


_p = fmt_p


_METRIC_LABEL = {"ndcg@10": "nDCG@10", "recall@10": "Recall@10", "recall@100": "Recall@100", "mrr@10": "MRR@10",
                 "map@100": "MAP@100"}


def _change(s: Any) -> str:
    """``+0.0244, 95% CI +0.0000 to +0.1218, p 0.996: no significant difference`` (no Markdown specials)."""
    p = "p < 0.001" if s.p_randomization < 0.001 else f"p {s.p_randomization:.3f}"
    return f"{s.delta:+.4f}, 95% CI {s.delta_ci[0]:+.4f} to {s.delta_ci[1]:+.4f}, {p}: {change_words(s)}"


def _headline_table(report: CompareReport) -> list[str]:
    """Six rows whatever the inputs: the numbers a reader wants first; columns name the models."""
    old, new = report.sides.old, report.sides.new
    a = report.agreement
    k = report.k
    rows: list[list[Any]] = []
    if report.metrics is not None:
        for metric in METRICS:
            s = report.metrics.rows[0].stats[metric]
            rows.append([_METRIC_LABEL[metric], f"{s.old_mean:.4f}", f"{s.new_mean:.4f}", _change(s)])
        rows.append([f"overlap@{k} of the two result lists", "", "",
                     f"{a.overlap_mean:.4f} (RBO {a.rbo_mean:.4f})"])
    else:
        rows += _evidence_rows(report)
        rows += [[f"overlap@{k} of the two result lists (change, not quality)", "", "", f"{a.overlap_mean:.4f}"],
                 [f"RBO (p={a.rbo_p})", "", "", f"{a.rbo_mean:.4f}"],
                 ["same top-1 result", "", "", f"{a.top1_kept_rate:.4f}"],
                 [f"mean rank shift of old top-{k}", "", "",
                  "–" if a.mean_abs_rank_shift is None else f"{a.mean_abs_rank_shift:.2f}"],
                 ["documents", f"{old.n_docs:,}", f"{new.n_docs:,}", ""],
                 ["dimensions", old.dim, new.dim, ""]]
    heads = [f"{s.name} ({s.description.model})" if s.description.model else s.name for s in (old, new)]
    return _table(["measure", *heads, "change (new - old)"], rows)


def _evidence_rows(report: CompareReport) -> list[list[Any]]:
    """Headline rows of the label-free evidence (judge, known-item guard), when measured."""
    rows: list[list[Any]] = []
    j = report.judged
    if j is not None:
        for metric in ("ndcg@10", "mrr@10"):
            s = j.stats[metric]
            rows.append([f"judged {_METRIC_LABEL[metric]} ({md_escape(j.judge)})", f"{s.old_mean:.4f}",
                         f"{s.new_mean:.4f}", _change(s)])
    g = report.knownitem
    if g is not None and g.mrr is not None and g.old is not None and g.new is not None:
        s = g.mrr
        rows.append([f"known-item MRR@{g.k} ({g.n} queries)", f"{g.old.mrr:.4f}", f"{g.new.mrr:.4f}",
                     f"{s.delta:+.4f}, 95% CI {s.delta_ci[0]:+.4f} to {s.delta_ci[1]:+.4f}: "
                     + ("regression" if g.code == "regression" else "no regression detected")])
    return rows


def verdict_markdown(report: CompareReport) -> list[str]:
    """The verdict line (bold), its warnings and what would decide it."""
    v = report.verdict
    if v is None:
        return []
    icon = {"better": ":green_circle:", "worse": ":red_circle:"}.get(v.code, ":white_circle:")
    out = [f"{icon} **Verdict: {md_escape(v.sentence)}**", ""]
    out += [f"> :warning: {md_escape(w)}" for w in v.warnings]
    if v.more:
        out += [f"> To decide: {md_escape(v.more)}"]
    return out + ([""] if v.warnings or v.more else [])


def render_markdown(report: CompareReport, *, examples: int = 3) -> str:
    """Summary Markdown: headline table, verdict, sides, gates, metrics, agreement, Matryoshka,
    configuration, a few examples."""
    k = report.k
    out = [f"## {md_escape(report.title)}", ""]
    out += verdict_markdown(report)
    out += _headline_table(report)
    gates = report.gates
    failed = [g for g in gates if g.failed]
    if failed:
        out += ["**:x: Quality gate failed:** " + "; ".join(
            f"`{g.gate.replace('`', '')}` ({md_escape(g.message)})" for g in failed), ""]
    elif gates:
        passed = "The quality gate passed." if len(gates) == 1 else f"All {len(gates)} quality gates passed."
        out += [f"**:white_check_mark: {passed}**", ""]
    if report.metrics is not None:
        out += [md_escape(headline_sentence(report)) + ".", ""]
    out += [f"{report.n_queries} queries, {md_escape(search_words(report.sides.all()))}, k={k}.", ""]
    for s in report.sides.all():
        out += [f"- **{md_escape(s.name)}**: queries embedded by {md_escape(s.description.identity)}; "
                f"documents: {md_escape(docs_sentence(s.description))}"]
    out += [""]
    lines = evidence_lines(report)
    if lines:
        out += ["### Label-free evidence", ""] + [f"- {md_escape(x)}" for x in lines] + [""]
    if report.metrics is None:
        out += [md_escape(change_line(report)) + ".", ""]
    if gates:
        out += ["### Gates", ""]
        out += _table(["gate (fail if)", "result", "value", "threshold"],
                      [[f"`{g.gate.replace('`', '')}`", "FAILED" if g.failed else "passed",
                        f"{g.value:.4f}", f"{g.op} {g.threshold:.4f}"] for g in gates])
    m = report.metrics
    if m is not None:
        out += [f"### Retrieval quality ({m.n_judged} judged queries, pytrec_eval)", ""]
        for pair in m.rows:
            stat_rows = []
            for metric in METRICS:
                st = pair.stats[metric]
                stat_rows.append([metric, f"{st.old_mean:.4f}", f"{st.new_mean:.4f}", f"{st.delta:+.4f}",
                                  f"[{st.delta_ci[0]:+.4f}, {st.delta_ci[1]:+.4f}]",
                                  md_escape(_p(st.p_ttest)), md_escape(_p(st.p_randomization)),
                                  f"{st.wins}/{st.ties}/{st.losses}"])
            out += [f"**{md_escape(pair.side)} vs {md_escape(pair.vs)}**", ""]
            out += _table(["metric", pair.vs, pair.side, "Δ", "Δ 95% CI", "p t-test", "p randomization",
                           "win/tie/loss"], stat_rows)
    a = report.agreement
    out += ["### Agreement between old and new results (a description of change, not of quality)", ""]
    out += _table(["measure", "value"], [
        [f"mean overlap@{k}", f"{a.overlap_mean:.4f}"],
        [f"mean RBO (p={a.rbo_p})", f"{a.rbo_mean:.4f}"],
        [f"mean rank shift of old top-{k}", "–" if a.mean_abs_rank_shift is None else f"{a.mean_abs_rank_shift:.2f}"],
        ["same top-1", f"{a.top1_kept_rate:.4f}"],
    ])
    sweep = report.matryoshka
    if sweep is not None and sweep.rows:
        swept = any(r.precision != "float32" for r in sweep.rows)
        out += ["### Matryoshka" + (" x precision" if swept else "") + " sweep (new side)", ""]
        judged = m is not None and all(r.metrics for r in sweep.rows)
        hdr = ["dims"] + (["precision", "bytes/vector"] if swept else ["bytes/vector f32"]) \
            + (["nDCG@10", "Recall@100"] if judged else []) + [f"overlap@{k} vs old", "RBO vs full"]
        sweep_rows: list[list[Any]] = [[r.dims] + ([r.precision, r.bytes] if swept else [r.bytes_float32])
                + ([f"{r.metrics['ndcg@10']:.4f}", f"{r.metrics['recall@100']:.4f}"] if judged and r.metrics else [])
                + [f"{r.overlap_vs_old:.4f}", f"{r.rbo_vs_full:.4f}"] for r in sweep.rows]
        out += _table(hdr, sweep_rows)
    if report.ann:
        out += ["### ANN index vs exact search", ""]
        out += _table(["side", f"recall@{k} vs exact", "ANN nDCG@10"],
                      [[md_escape(n), f"{v.recall_at_k:.4f}", f"{v.metrics['ndcg@10']:.4f}" if v.metrics else "–"]
                       for n, v in report.ann.items()])
    out += ["<details><summary>How each side embedded</summary>", ""]
    sides = report.sides.all()
    out += _table(["", *[s.name for s in sides]],
                  [[md_escape(label), *[md_escape(v) for v in values]] for label, values in configuration_rows(sides)])
    out += ["</details>", ""]
    if examples and report.examples:
        out += [f"### Results that changed most (top {k}, cosine; ✅ judged relevant, 🟨 not in the other side's top {k})",
                ""]
        for ex in report.examples[:examples]:
            out += [f"**{md_escape(ex.qid)}: {md_escape(ex.text, 200)}** (overlap {ex.overlap:.2f}, "
                    f"RBO {ex.rbo:.3f})", ""]
            names = list(ex.sides)
            n = max(len(v) for v in ex.sides.values())
            rows = []
            for i in range(n):
                row: list[Any] = [i + 1]
                for name in names:
                    r = ex.sides[name][i] if i < len(ex.sides[name]) else None
                    if r is None:
                        row.append("")
                        continue
                    mark = (" ✅" if r.rel else "") + ("" if r.in_other else " 🟨")
                    txt = f" {md_escape(r.text, 80)}" if r.text else ""
                    row.append(f"{r.score:.3f} {md_escape(r.id)}{mark}{txt}")
                rows.append(row)
            out += _table(["#", *names], rows)
    out += [f"<sub>jina-migrate compare · report v{report.report_version} · {md_escape(report.created)}</sub>", ""]
    return "\n".join(out)
