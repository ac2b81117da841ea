"""Typed results of the label-free evidence a comparison can gather, and the verdict drawn from them.

What: ``KnownItemResult`` (the known-item regression guard, ``knownitem``),
``JudgedResult`` (a judge's graded labels over the pooled results, ``judged``),
``PPIResult`` (human labels combined with the judge, ``ppi``) and ``Verdict`` (``verdict``),
each with ``as_dict()`` for the JSON report. They hold ids, numbers and words, never query
or document text (a query log can be confidential; the report is shared).
Why one module: ``schema.CompareReport`` carries them and the gates read them; keeping
them free of the code that computes them keeps that import light and acyclic.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from migrate.report.stats import PairedStats

#: The four verdicts a report may print as its first line, and the one for "nothing could run".
BETTER, WORSE, NO_DIFFERENCE, NO_REGRESSION = (
    "v3 better", "v3 worse", "no reliable difference", "no regression detected (not evidence of improvement)")
NO_EVIDENCE = "no verdict: no evidence could be gathered"
#: Short codes the gates compare against (``--fail-if "verdict == worse"``).
VERDICT_CODES = {BETTER: "better", WORSE: "worse", NO_DIFFERENCE: "no_difference",
                 NO_REGRESSION: "no_regression", NO_EVIDENCE: "no_evidence"}
#: Known-item guard outcomes.
REGRESSION, NO_REGRESSION_GUARD, SKIPPED = "regression", "no regression detected", "skipped"
KNOWNITEM_CODES = {REGRESSION: "regression", NO_REGRESSION_GUARD: "no_regression", SKIPPED: "skipped"}


def _stats(s: PairedStats | None) -> dict[str, Any] | None:
    return s.as_dict() if s is not None else None


@dataclass
class SideKnownItem:
    """One side's known-item scores."""

    name: str
    identity: str  # which model re-embedded the queries and the shortened documents
    mrr: float
    mrr_ci: tuple[float, float]
    recall: float
    recall_ci: tuple[float, float]


@dataclass
class KnownItemResult:
    """The known-item regression guard: finds each side its own documents from a piece of them?"""

    verdict: str  # REGRESSION | NO_REGRESSION_GUARD | SKIPPED
    reason: str | None  # why skipped, or what fired
    k: int
    seed: int
    sample: int  # documents asked for
    n: int  # queries made (0 when skipped before any was made)
    kinds: dict[str, int]  # "title" / "sentence" -> queries of that kind
    margin: float
    limit: str
    old: SideKnownItem | None = None
    new: SideKnownItem | None = None
    mrr: PairedStats | None = None  # new vs old, paired over the same queries
    recall: PairedStats | None = None
    per_query: list[dict[str, Any]] = field(default_factory=list)  # doc id, kind, rank per side (no text)

    @property
    def code(self) -> str:
        return KNOWNITEM_CODES[self.verdict]

    @property
    def ran(self) -> bool:
        return self.verdict != SKIPPED

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mrr"], d["recall"] = _stats(self.mrr), _stats(self.recall)
        d["code"] = self.code
        return d


@dataclass
class JudgedResult:
    """A judge's graded labels over both sides' pooled top-k, and the judged metrics."""

    judge: str  # the spec, e.g. "jina-api:jina-reranker-v3"
    description: str  # what really scored (model, stand-in, family) in one sentence
    warnings: list[str]
    k: int
    n_queries: int
    n_pairs: int
    n_scored: int  # pairs scored by this run
    n_cached: int  # pairs found in the cache
    thresholds: list[float] | None  # score -> grade cut points (None: the judge grades itself)
    grades: dict[str, int]  # grade -> pairs
    n_with_relevant: int  # queries whose pool holds a pair graded >= 1
    means: dict[str, dict[str, float]]  # side -> metric -> mean
    stats: dict[str, PairedStats]  # metric -> new vs old
    tokens: int = 0  # billed by an API judge (0: local)
    per_query: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    @property
    def headline(self) -> PairedStats:
        return self.stats["ndcg@10"]

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stats"] = {m: s.as_dict() for m, s in self.stats.items()}
        return d


@dataclass
class PPIResult:
    """Human labels on a sample of pooled pairs, combined with the judge's labels on all of them."""

    metric: str
    level: float
    n_queries: int
    n_pairs: int  # pooled pairs (the population the labels were sampled from)
    n_labels: int
    inclusion: float  # probability a pair was labelled (n_labels / n_pairs)
    estimate: float  # bias-corrected new - old
    ci: tuple[float, float]
    lam: float  # power-tuning weight of the judge (0: labels alone, 1: classic PPI)
    judge_only: float  # the judge's uncorrected new - old
    labels_only: float
    labels_only_ci: tuple[float, float]
    decided: bool  # the interval excludes 0
    labels_needed: int | None  # more labels to decide; None: labels on these queries cannot
    queries_needed: int | None  # queries (labelled like these) to decide when labels alone cannot
    advice: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Verdict:
    """The report's first line: one verdict, the evidence behind it and its known limit."""

    verdict: str  # BETTER | WORSE | NO_DIFFERENCE | NO_REGRESSION | NO_EVIDENCE
    evidence: str  # "human relevance judgments (qrels)", "labels + judge", "judge", "known-item guard", "none"
    n_queries: int
    metric: str | None
    delta: float | None
    interval: tuple[float, float] | None
    p_value: float | None
    limit: str
    sentence: str
    warnings: list[str] = field(default_factory=list)
    more: str | None = None  # what more evidence would decide an undecided verdict

    @property
    def code(self) -> str:
        return VERDICT_CODES[self.verdict]

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["code"] = self.code
        return d
