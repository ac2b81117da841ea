"""Quality gates: ``--fail-if "ndcg@10 < old - 0.01"`` turns a report into an exit code.

Grammar (parsed with a tokenizer, never ``eval``)::

    gate   := value OP rhs                 OP in < <= > >= == !=
    value  := [SIDE "."] METRIC            SIDE defaults to "new"
    rhs    := NUMBER | ref [("+"|"-"|"*") NUMBER]
    ref    := SIDE ["." METRIC]            METRIC defaults to the left-hand metric

SIDE is ``old``, ``new`` or an extra side's name. METRIC is one of the judged metrics
(ndcg@10, recall@10, recall@100, mrr@10, map@100, needing --qrels), or, for ``new`` only,
the label-free ``overlap@K``, ``rbo``, ``top1_kept``, ``rank_shift``, ``ann_recall@K``
(recall of new's ANN index against exact search). A gate *fails* when its condition is true.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from migrate.errors import ConfigError, GateFailed
from migrate.report.metrics import METRICS
from migrate.report.schema import CompareReport, GateResult

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne}
_ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul}
_TOKEN = re.compile(r"\s*(<=|>=|==|!=|<|>|[+*-]|[A-Za-z_](?:[\w@:]|\.(?=[A-Za-z_\d])|-(?=[A-Za-z_]))*|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)")
_HINT = 'e.g. --fail-if "ndcg@10 < old - 0.01" or --fail-if "overlap@10 < 0.6"'


@dataclass(frozen=True)
class Gate:
    """One parsed gate."""

    text: str
    side: str
    metric: str
    op: str
    rhs_number: float | None
    rhs_side: str | None
    rhs_metric: str | None
    arith: str | None
    arith_number: float | None


def _tokens(text: str) -> list[str]:
    pos, out = 0, []
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ConfigError(f"cannot parse gate {text!r} at {text[pos:]!r}", hint=_HINT)
        out.append(m.group(1))
        pos = m.end()
    return out


def _is_number(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


def _split_ref(tok: str, known_sides: set[str]) -> tuple[str | None, str | None]:
    """``old`` -> (old, None); ``old.ndcg@10`` -> (old, ndcg@10); ``ndcg@10`` -> (None, ndcg@10)."""
    if tok in known_sides:
        return tok, None
    for side in sorted(known_sides, key=len, reverse=True):
        if tok.startswith(side + "."):
            return side, tok[len(side) + 1:]
    return None, tok


def parse_gate(text: str, known_sides: set[str]) -> Gate:
    """Parse one ``--fail-if`` expression; ``ConfigError`` on bad syntax."""
    toks = _tokens(text)
    if len(toks) not in (3, 5) or toks[1] not in _OPS:
        raise ConfigError(f"gate {text!r} must read '<metric> <op> <value>'", hint=_HINT)
    side, metric = _split_ref(toks[0], known_sides)
    if metric is None:
        raise ConfigError(f"gate {text!r}: left side names no metric", hint=_HINT)
    rhs_num = rhs_side = rhs_metric = arith = arith_num = None
    if _is_number(toks[2]):
        if len(toks) != 3:
            raise ConfigError(f"gate {text!r}: arithmetic needs a side on the right, like 'old - 0.01'", hint=_HINT)
        rhs_num = float(toks[2])
    else:
        rhs_side, rhs_metric = _split_ref(toks[2], known_sides)
        if rhs_side is None:
            raise ConfigError(f"gate {text!r}: unknown side {toks[2]!r} on the right",
                              hint=f"sides: {', '.join(sorted(known_sides))}")
        if len(toks) == 5:
            if toks[3] not in _ARITH or not _is_number(toks[4]):
                raise ConfigError(f"gate {text!r}: expected '+ N', '- N' or '* N' after {toks[2]!r}", hint=_HINT)
            arith, arith_num = toks[3], float(toks[4])
    return Gate(text.strip(), side or "new", metric.lower(), toks[1], rhs_num, rhs_side,
                (rhs_metric or metric).lower(), arith, arith_num)


def _value(report: CompareReport, role: str, metric: str, gate: str) -> float:
    names = {"old": report.sides.old.name, "new": report.sides.new.name}
    name = names.get(role, role)
    if metric in METRICS:
        if report.metrics is None:
            raise ConfigError(f"gate {gate!r} needs relevance judgments for {metric}",
                              hint="pass --qrels, or gate on overlap@10 / rbo instead")
        return float(report.metrics.means[name][metric])
    if role == "old":
        raise ConfigError(f"gate {gate!r}: {metric} compares new with old, so it has no 'old' value",
                          hint="use it on the left side alone, e.g. 'overlap@10 < 0.6'")
    agree = report.agreement if role == "new" else (report.extra_agreement or {}).get(name)
    m = re.fullmatch(r"(overlap|ann_recall)@(\d+)", metric)
    if metric == "rbo" and agree:
        return float(agree.rbo_mean)
    if metric == "top1_kept" and agree:
        return float(agree.top1_kept_rate)
    if metric == "rank_shift" and agree:
        return float(agree.mean_abs_rank_shift or 0.0)
    if m and m.group(1) == "overlap" and agree:
        if int(m.group(2)) != agree.k:
            raise ConfigError(f"gate {gate!r}: the report measured overlap@{agree.k}",
                              hint=f"use overlap@{agree.k} or run with -k {m.group(2)}")
        return float(agree.overlap_mean)
    if m and m.group(1) == "ann_recall":
        ann = (report.ann or {}).get(name)
        kk = int(m.group(2))
        if not ann or kk not in (ann.k, ann.depth):
            raise ConfigError(f"gate {gate!r}: no ANN recall@{kk} measured for {name}",
                              hint="add --ann (recall is measured at -k and at the run depth)")
        return float(ann.recall_at_k if kk == ann.k else ann.recall_at_depth)
    raise ConfigError(f"gate {gate!r}: unknown metric {metric!r}",
                      hint=f"judged: {', '.join(METRICS)}; label-free: overlap@K, rbo, top1_kept, rank_shift, ann_recall@K")


def evaluate_gates(report: CompareReport, gates: list[str]) -> list[GateResult]:
    """Check every gate against ``report``; record results in ``report.gates`` and return them."""
    known = set(report.side_names()) | {"old", "new"}
    results = []
    for text in gates:
        g = parse_gate(text, known)
        lhs = _value(report, g.side, g.metric, g.text)
        if g.rhs_number is not None:
            rhs = g.rhs_number
        else:
            rhs = _value(report, g.rhs_side or "old", g.rhs_metric or g.metric, g.text)
            if g.arith:
                rhs = _ARITH[g.arith](rhs, g.arith_number)
        failed = bool(_OPS[g.op](lhs, rhs))
        results.append(GateResult(
            gate=g.text, side=g.side, metric=g.metric, value=lhs, threshold=rhs, op=g.op, failed=failed,
            message=(f"FAILED: {g.side} {g.metric} = {lhs:.4f} {g.op} {rhs:.4f}" if failed else
                     f"passed: {g.side} {g.metric} = {lhs:.4f}, not {g.op} {rhs:.4f}")))
    report.gates = results
    return results


def raise_if_failed(results: list[GateResult]) -> None:
    """``GateFailed`` naming every failed gate (the CLI turns it into exit code 7)."""
    failed = [r for r in results if r.failed]
    if failed:
        raise GateFailed("quality gate failed: " + "; ".join(f"{r.gate!r} ({r.message})" for r in failed),
                         hint="see the report's Gates section")
