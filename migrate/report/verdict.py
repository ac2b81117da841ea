"""One verdict, never stronger than its evidence: the first line of a comparison report.

What: ``decide`` takes whatever evidence the comparison gathered and answers from the
strongest: human relevance judgments (``--qrels``) > human labels combined with a judge
(``ppi``) > a judge alone (``judged``) > human labels alone (``ppi`` with ``labels_only``: the same
unbiased estimator with the judge's term at zero) > the known-item guard (``knownitem``). The answer is
exactly one of "v3 better", "v3 worse", "no reliable difference" and "no regression
detected (not evidence of improvement)" (or, when nothing could run, "no verdict"), with
the evidence's name, the number of queries, the interval, and its known limit in one sentence.

Rules: with qrels or a judge, a direction only when the paired randomisation test gives
p < 0.05 (the report's rule everywhere); with labels + judge, a direction only when the
bias-corrected interval excludes 0; the known-item guard can only say "v3 worse" (it fired)
or "no regression detected": it never says better. When weaker evidence disagrees with the
verdict (the guard fired under a judged "no reliable difference"), the verdict carries a
warning; it does not change. Undecided verdicts say what more would decide them.

``gate_state`` gives the gates their words: ``verdict`` (better / worse / no_difference /
no_regression / no_evidence) and ``knownitem`` (regression / no_regression; a skipped guard
cannot be gated on: the gate is an error, never a silent pass).
"""

from __future__ import annotations

import math
from typing import Any

from migrate.errors import ConfigError
from migrate.report.evidence import (BETTER, KNOWNITEM_CODES, NO_DIFFERENCE, NO_EVIDENCE, NO_REGRESSION, SKIPPED,
                                     VERDICT_CODES, WORSE, JudgedResult, KnownItemResult, PPIResult, Verdict)
from migrate.report.stats import PairedStats

#: A direction only below this p-value (the same rule as ``schema.SIGNIFICANCE``).
SIGNIFICANCE = 0.05
LIMITS = {
    "qrels": ("human judgments cover only the documents someone judged; an unjudged document counts as not "
              "relevant, which understates a side that finds relevant documents nobody judged"),
    "ppi": ("the interval assumes the labelled pairs are a random sample of the pooled pairs, and it measures a "
            "linear DCG@10 (nDCG is not linear in the labels)"),
    "labels": ("the interval assumes the labelled pairs are a uniform random sample of the pooled pairs (as "
               "`jina-migrate label` draws them); labels alone need many more than labels combined with a judge"),
    "judge": ("the judge is a model, not a person: model judges agree with human system rankings only roughly "
              "(Kendall tau about 0.84-0.89 for LLM judges on TREC) and favour their own model family"),
}
#: Gate words accepted for each categorical gate (aliases map to the state codes).
GATE_WORDS = {
    "verdict": {"better": "better", "worse": "worse", "no_difference": "no_difference", "none": "no_difference",
                "no_regression": "no_regression", "no_evidence": "no_evidence"},
    "knownitem": {"regression": "regression", "no_regression": "no_regression"},
}


def _fmt_p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _pair(ci: tuple[float, float]) -> tuple[float, float]:
    """A confidence interval as a plain ``(low, high)`` tuple."""
    return (ci[0], ci[1])


def _queries_needed(n: int, delta: float, ci: tuple[float, float]) -> int | None:
    """Queries for a 95 % interval half as wide as |delta| would need, if the spread stayed the same."""
    half = (ci[1] - ci[0]) / 2
    if delta == 0 or half <= 0 or not math.isfinite(half):
        return None
    return max(n, math.ceil(n * (half / abs(delta)) ** 2))


def _paired_verdict(s: PairedStats, evidence: str, metric: str, limit: str, warnings: list[str],
                    more_hint: str = "") -> Verdict:
    if s.p_randomization < SIGNIFICANCE and s.delta != 0:
        word, more = (BETTER if s.delta > 0 else WORSE), None
    else:
        word = NO_DIFFERENCE
        need = _queries_needed(s.n, s.delta, s.delta_ci)
        if need and need > s.n:
            more = f"about {need:,} queries would be needed to separate a difference of {s.delta:+.4f}"
        elif need:
            more = (f"a few more queries: at {s.n} the difference of {s.delta:+.4f} sits at the edge of significance "
                    f"(p = {_fmt_p(s.p_randomization)})")
        else:
            more = "no difference was measured at all"
        more += more_hint
    sentence = (f"{word}: {evidence}, {metric} {s.old_mean:.4f} → {s.new_mean:.4f} (Δ {s.delta:+.4f}, 95 % CI "
                f"{s.delta_ci[0]:+.4f} to {s.delta_ci[1]:+.4f}, paired randomization test p = "
                f"{_fmt_p(s.p_randomization)}) over {s.n} queries. Known limit: {limit}.")
    return Verdict(word, evidence, s.n, metric, s.delta, _pair(s.delta_ci), s.p_randomization, limit, sentence,
                   warnings, more)


def _ppi_verdict(p: PPIResult, judge: str, warnings: list[str]) -> Verdict:
    word = (BETTER if p.ci[0] > 0 else WORSE) if p.decided else NO_DIFFERENCE
    evidence = f"{p.n_labels:,} human labels + judge {judge} (prediction-powered inference)"
    sentence = (f"{word}: {evidence}, scaled DCG@10 difference {p.estimate:+.4f} ({int(p.level * 100)} % CI "
                f"{p.ci[0]:+.4f} to {p.ci[1]:+.4f}; the judge alone said {p.judge_only:+.4f}) over {p.n_queries} "
                f"queries. Known limit: {LIMITS['ppi']}.")
    return Verdict(word, evidence, p.n_queries, p.metric, p.estimate, _pair(p.ci), None, LIMITS["ppi"], sentence,
                   warnings, None if p.decided else p.advice)


def _guard_verdict(g: KnownItemResult, warnings: list[str]) -> Verdict:
    if g.verdict == SKIPPED:
        sentence = f"{NO_EVIDENCE}: the known-item guard was skipped ({g.reason}), and there are no judgments or judge."
        return Verdict(NO_EVIDENCE, "none", 0, None, None, None, None, g.limit, sentence, warnings,
                       "pass --qrels, a judge (--judge), or a model the old side can be re-embedded with")
    assert g.mrr is not None
    s = g.mrr
    word = WORSE if g.code == "regression" else NO_REGRESSION
    evidence = f"known-item guard ({g.n} queries taken out of their own documents)"
    sentence = (f"{word}: {evidence}, MRR@{g.k} {s.old_mean:.4f} → {s.new_mean:.4f} (Δ {s.delta:+.4f}, 95 % CI "
                f"{s.delta_ci[0]:+.4f} to {s.delta_ci[1]:+.4f}; it fires below -{g.margin:g}). Known limit: "
                f"{g.limit}.")
    return Verdict(word, evidence, g.n, f"knownitem.mrr@{g.k}", s.delta, _pair(s.delta_ci), s.p_randomization,
                   g.limit, sentence, warnings,
                   None if word == WORSE else "human judgments, labels or a judge can tell whether v3 is better")


def _labels_verdict(p: PPIResult, warnings: list[str]) -> Verdict:
    """Human labels without a judge: the labels-alone estimate (``ppi`` with the judge's term at zero)."""
    word = (BETTER if p.ci[0] > 0 else WORSE) if p.decided else NO_DIFFERENCE
    evidence = f"{p.n_labels:,} human labels on a random sample of the pooled pairs (no judge)"
    sentence = (f"{word}: {evidence}, scaled DCG@10 difference {p.estimate:+.4f} ({int(p.level * 100)} % CI "
                f"{p.ci[0]:+.4f} to {p.ci[1]:+.4f}) over {p.n_queries} queries. Known limit: {LIMITS['labels']}.")
    return Verdict(word, evidence, p.n_queries, p.metric, p.estimate, _pair(p.ci), None, LIMITS["labels"], sentence,
                   warnings, None if p.decided else p.advice)


def decide(*, qrels: PairedStats | None = None, ppi: PPIResult | None = None, judged: JudgedResult | None = None,
           knownitem: KnownItemResult | None = None, labels_only: bool = False) -> Verdict:
    """The verdict from the strongest evidence given (see the module docstring).

    ``labels_only``: ``ppi`` was computed from human labels alone (no judge); it ranks below labels
    with a judge and above a judge alone (human grades, unbiased, only less precise)."""
    warnings: list[str] = []
    if knownitem is not None and knownitem.code == "regression" and (qrels or ppi or judged):
        warnings.append(f"the known-item guard fired ({knownitem.reason}): look before cutting over")
    if qrels is not None:
        return _paired_verdict(qrels, "human relevance judgments (qrels)", "nDCG@10", LIMITS["qrels"], warnings)
    if judged is not None:
        warnings = list(judged.warnings) + warnings
    if ppi is not None and labels_only:
        return _labels_verdict(ppi, warnings)
    if ppi is not None:
        if judged is None:
            raise ConfigError("labels + judge evidence needs the judge's result too", hint="pass judged=")
        return _ppi_verdict(ppi, judged.judge, warnings)
    if judged is not None:
        return _paired_verdict(judged.headline, f"judge {judged.judge} ({judged.description})", "judged nDCG@10",
                               LIMITS["judge"], warnings,
                               "; or label a few hundred pooled pairs (jina-migrate label) to correct the judge")
    if knownitem is not None:
        return _guard_verdict(knownitem, warnings)
    return Verdict(NO_EVIDENCE, "none", 0, None, None, None, None, "nothing was measured",
                   f"{NO_EVIDENCE}: no judgments, no judge and no known-item guard.", warnings,
                   "pass --qrels, a judge (--judge), or the documents for the known-item guard")


def gate_state(report: Any, metric: str, gate: str) -> str:
    """The state a categorical gate compares (``verdict`` or ``knownitem``) read from ``report``."""
    if metric == "verdict":
        v = getattr(report, "verdict", None)
        if v is None:
            raise ConfigError(f"gate {gate!r}: this report has no verdict",
                              hint="the verdict needs qrels, a judge or the known-item guard")
        return VERDICT_CODES[v.verdict]
    if metric == "knownitem":
        g = getattr(report, "knownitem", None)
        if g is None:
            raise ConfigError(f"gate {gate!r}: the known-item guard did not run", hint="pass the documents (--docs)")
        if g.verdict == SKIPPED:
            raise ConfigError(f"gate {gate!r} cannot be checked: the known-item guard was skipped ({g.reason})",
                              hint="give both sides a model that can re-embed documents, or drop the gate")
        return KNOWNITEM_CODES[g.verdict]
    raise ConfigError(f"gate {gate!r}: {metric!r} is not a verdict gate", hint="verdict or knownitem")


def gate_word(metric: str, word: str, gate: str) -> str:
    """The state code a gate's right-hand word names (``worse``, ``regression``, ...); ConfigError otherwise."""
    words = GATE_WORDS.get(metric)
    code = words.get(word.lower().replace("-", "_")) if words else None
    if code is None:
        allowed = ", ".join(sorted(set(words.values()))) if words else "none"
        raise ConfigError(f"gate {gate!r}: {word!r} is not a state of {metric}", hint=f"one of: {allowed}")
    return code
