"""The label-free evidence in words, one line per kind, shared by the terminal, Markdown and HTML renderers.

What: ``evidence_lines(report)`` says what the known-item guard, the judge and the human labels
measured (numbers, intervals, counts, what scored and from where), plain text without markup;
``change_line`` describes how much the results changed (overlap, RBO) and says that it is a
description of change, never evidence of quality.
Why one place: the three renderers must say the same thing in the same words.
"""

from __future__ import annotations

from typing import Any

from migrate.report.evidence import SKIPPED


def _ci(ci: Any) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def _dci(ci: Any) -> str:
    return f"{ci[0]:+.4f} to {ci[1]:+.4f}"


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def knownitem_line(g: Any) -> str:
    if g.verdict == SKIPPED:
        return f"known-item guard: skipped ({g.reason})"
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(g.kinds.items()))
    o, n = g.old, g.new
    return (f"known-item guard ({g.n} queries: {kinds}; seed {g.seed}): MRR@{g.k} {o.name} {o.mrr:.3f} {_ci(o.mrr_ci)} → "
            f"{n.name} {n.mrr:.3f} {_ci(n.mrr_ci)}, Δ {g.mrr.delta:+.4f} (95 % CI {_dci(g.mrr.delta_ci)}); "
            f"Recall@{g.k} {o.recall:.3f} → {n.recall:.3f}; fires below -{g.margin:g}: "
            + ("REGRESSION" if g.code == "regression" else "no regression detected"))


def judged_line(j: Any) -> str:
    s, m = j.stats["ndcg@10"], j.stats["mrr@10"]
    grades = " / ".join(f"{j.grades.get(str(g), 0)}" for g in range(4))
    how = f"{j.n_scored} scored now, {j.n_cached} from the cache"
    thr = f"; score → grade cut points {', '.join(f'{t:g}' for t in j.thresholds)}" if j.thresholds else ""
    return (f"judge {j.judge} ({j.description}): judged nDCG@10 {s.old_mean:.4f} → {s.new_mean:.4f} (Δ {s.delta:+.4f}, "
            f"95 % CI {_dci(s.delta_ci)}, {_p(s.p_randomization)}); judged MRR@10 {m.old_mean:.4f} → "
            f"{m.new_mean:.4f}; {j.n_queries} queries, {j.n_pairs} pooled pairs ({how}); grades 0/1/2/3: {grades}"
            f"{thr}")


def ppi_line(p: Any) -> str:
    return (f"{p.n_labels} human labels of {p.n_pairs} pooled pairs ({p.inclusion:.1%}): scaled DCG@10 difference "
            f"{p.estimate:+.4f} (95 % CI {_dci(p.ci)}; judge alone {p.judge_only:+.4f}, labels alone "
            f"{p.labels_only:+.4f} [{p.labels_only_ci[0]:+.4f}, {p.labels_only_ci[1]:+.4f}], judge weight "
            f"{p.lam:.2f}); {p.advice}")


def evidence_lines(report: Any) -> list[str]:
    """One line per kind of label-free evidence the report holds (none: an empty list)."""
    out = []
    if getattr(report, "ppi", None) is not None:
        out.append(ppi_line(report.ppi))
    if getattr(report, "judged", None) is not None:
        out.append(judged_line(report.judged))
        out += [f"judge warning: {w}" for w in report.judged.warnings]
    if getattr(report, "knownitem", None) is not None:
        out.append(knownitem_line(report.knownitem))
    return out


def change_line(report: Any) -> str:
    a = report.agreement
    return (f"How much the results changed (a description of change, not evidence of quality): overlap@{a.k} "
            f"{a.overlap_mean:.3f}, RBO {a.rbo_mean:.3f}, same top-1 {a.top1_kept_rate:.3f}")
