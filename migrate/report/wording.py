"""The words a report uses, shared by the HTML and Markdown renderers.

What: the verdict on a judged change (a direction only when the paired randomization
test says p < 0.05), the headline sentence with its confidence interval, how a side's
documents were embedded, and the readable configuration rows of each side.
Why: the HTML report and the Markdown summary must say the same thing in the same words.
"""

from __future__ import annotations

from typing import Any

from migrate.report.schema import SIGNIFICANCE, CompareReport, SideDescription, SideInfo
from migrate.report.stats import PairedStats


def fmt_p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _f(x: Any) -> str:
    if isinstance(x, bool):
        return "yes" if x else "no"
    return str(x)


def change_words(s: PairedStats) -> str:
    """How a judged change reads: a direction only when the paired randomization test says p < 0.05."""
    if s.p_randomization < SIGNIFICANCE:
        return "significantly better" if s.delta > 0 else "significantly worse"
    return "no significant difference"


def headline_sentence(report: CompareReport) -> str:
    """nDCG@10 old -> new with its 95 % CI and p-value, worded by significance (plain text)."""
    assert report.metrics is not None
    s = report.metrics.headline
    return (f"nDCG@10 {s.old_mean:.4f} → {s.new_mean:.4f}: {change_words(s)} (Δ {s.delta:+.4f}, 95 % CI "
            f"{s.delta_ci[0]:+.4f} to {s.delta_ci[1]:+.4f}, paired randomization test p = {fmt_p(s.p_randomization)}, "
            f"{s.n} judged queries)")


def docs_sentence(d: SideDescription) -> str:
    """How a side's documents were embedded, in words."""
    if d.docs is not None:
        r = d.docs
        via = f" via {r.backend}" if r.backend else ""
        if r.stand_in:
            what = f" ({d.docs_stand_in_detail})" if d.docs_stand_in_detail else ""
            return f"{r.model}{via}, served by stand-in '{r.stand_in}'{what}: not the real model's vectors"
        return f"{r.model}{via}"
    if d.doc_task is None:
        return "as stored in the old index (not recorded)"
    return "the same model as the queries"


def search_words(sides: list[SideInfo]) -> str:
    """How the sides were searched, in a few words: exact, unless a database searched with its own index."""
    own = [s.name for s in sides if not s.description.search.startswith("exact")]
    if not own:
        return "exact search (cosine)"
    if len(own) == len(sides):
        return "each side searched by its database collection's own index"
    return f"exact search (cosine), except {', '.join(own)}: searched by the database collection's own index"


def _prefix(v: str | None, api: bool) -> str:
    if v is None:
        return "applied by the server" if api else "–"
    return f"“{v}”" if v else "none"


def configuration_rows(sides: list[SideInfo]) -> list[tuple[str, list[str]]]:
    """Readable (label, value per side) rows of how each side embedded; plain text, no JSON."""
    rows: list[tuple[str, list[str]]] = []

    def row(label: str, values: list[Any]) -> None:
        rows.append((label, ["–" if v is None or v == "" else _f(v)
                             for v in values]))

    ds = [s.description for s in sides]
    api = [d.query_prefix is None and bool(d.backend) and d.backend != "local" for d in ds]
    row("source", [d.source for d in ds])
    row("model (as the backend names it)", [d.model for d in ds])
    row("backend", [d.backend for d in ds])
    row("queries embedded by", [d.identity for d in ds])
    row("documents embedded by", [docs_sentence(d) for d in ds])
    row("stand-in (queries)", [d.stand_in or "none: the named model" for d in ds])
    row("stand-in (documents)", [(d.docs.stand_in or "none: the named model") if d.docs else None for d in ds])
    row("document task", [d.doc_task if d.doc_task is not None else "as stored in the old index" for d in ds])
    row("document prefix", [_prefix(d.doc_prefix, a) if d.doc_task is not None else None for d, a in zip(ds, api)])
    row("query task", [d.query_task for d in ds])
    row("query prefix", [_prefix(d.query_prefix, a) for d, a in zip(ds, api)])
    row("dimensions", [s.dim for s in sides])
    row("normalised", [d.normalized for d in ds])
    row("max tokens per text", [d.max_tokens for d in ds])
    row("late chunking", [(f"yes ({d.chunker})" if d.late_chunking else "no") if d.late_chunking is not None else None
                          for d in ds])
    row("index type", [d.index_type for d in ds])
    row("searched by", [d.search for d in ds])
    row("documents", [f"{s.n_docs:,}" for s in sides])
    row("vectors", [f"{s.n_vectors:,}" for s in sides])
    row("bytes per vector (float32)", [f"{s.bytes_per_vector_float32:,}" for s in sides])
    labels: list[str] = []
    for d in ds:
        labels += [k for k in d.settings if k not in labels]
    for label in labels:
        row(label, [d.settings.get(label) for d in ds])
    return rows


