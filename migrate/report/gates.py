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

Evidence gates: ``judged.ndcg@10`` / ``judged.mrr@10`` (a judge's labels, ``--judge``; e.g.
``judged.ndcg@10 < old``), and two that compare words with ``==`` / ``!=``: ``verdict``
(better, worse, no_difference, no_regression, no_evidence; e.g. ``verdict == worse``) and
``knownitem`` (regression, no_regression; a skipped guard makes the gate an error, never a pass).
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migrate.errors import ConfigError, GateFailed, MigrateError, StateError
from migrate.report.metrics import METRICS
from migrate.report.schema import CompareReport, GateResult

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne}
_ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul}
_TOKEN = re.compile(r"\s*(<=|>=|==|!=|<|>|[+*-]|[A-Za-z_](?:[\w@:]|\.(?=[A-Za-z_\d])|-(?=[A-Za-z_]))*|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)")
_HINT = 'e.g. --fail-if "verdict == worse" or --fail-if "ndcg@10 < old - 0.01"'


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
    word: str | None = None  # a verdict gate's state (``verdict == worse``): ``report.verdict.gate_word``


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
    if toks[0].lower() in _WORD_GATES:
        return _word_gate(text, toks)
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


#: Gates that compare a verdict's word, not a number (``report.verdict``).
_WORD_GATES = ("verdict", "knownitem")


def _word_gate(text: str, toks: list[str]) -> Gate:
    from migrate.report.verdict import gate_word

    if len(toks) != 3 or toks[1] not in ("==", "!="):
        raise ConfigError(f"gate {text!r}: {toks[0]} is compared with == or != and one word",
                          hint='e.g. --fail-if "verdict == worse" or --fail-if "knownitem == regression"')
    metric = toks[0].lower()
    return Gate(text.strip(), "new", metric, toks[1], None, None, None, None, None, gate_word(metric, toks[2], text))


def _word_result(report: CompareReport, g: Gate) -> GateResult:
    from migrate.report.verdict import gate_state

    state = gate_state(report, g.metric, g.text)
    failed = (state == g.word) == (g.op == "==")
    return GateResult(gate=g.text, side=g.side, metric=g.metric, value=float(state == g.word), threshold=1.0,
                      op=g.op, failed=failed,
                      message=f"{'FAILED' if failed else 'passed'}: {g.metric} is {state} ({g.op} {g.word})")


def _judged_value(report: CompareReport, name: str, metric: str, gate: str) -> float:
    judged = getattr(report, "judged", None)
    if judged is None:
        raise ConfigError(f"gate {gate!r} needs a judge for {metric}",
                          hint="pass --judge SPEC, e.g. jina-api:jina-reranker-v2-base-multilingual")
    m = metric.split(".", 1)[1]
    if m not in judged.means.get(name, {}):
        raise ConfigError(f"gate {gate!r}: no judged {m} for {name}",
                          hint=f"judged metrics: {', '.join('judged.' + k for k in judged.stats)}")
    return float(judged.means[name][m])


def _value(report: CompareReport, role: str, metric: str, gate: str) -> float:
    names = {"old": report.sides.old.name, "new": report.sides.new.name}
    name = names.get(role, role)
    if metric.startswith("judged."):
        return _judged_value(report, name, metric, gate)
    if metric in METRICS:
        if report.metrics is None:
            raise ConfigError(f"gate {gate!r} needs relevance judgments for {metric}",
                              hint='pass --qrels, or gate on the label-free evidence: "verdict == worse"')
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
        if g.word is not None:
            results.append(_word_result(report, g))
            continue
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


# --------------------------------------------------------------------------- a report as cutover's gate
#
# ``cutover --require-report report.json`` switches only on a report about this very run: the report's new side
# names what it compared (``sides.new.description.subject``), and cutover checks it against the destination it
# switches (its database, collection and content checksum now) or the output itself (run id, embeddings checksum).

def collection_subject(engine: Any, collection: str) -> dict[str, Any]:
    """A collection side: its database (``migrate.engines.names.place``), real name and content checksum."""
    from migrate.engines.names import place

    return {"kind": "collection", "database": place(engine.address), "collection": collection,
            "checksum": engine.checksum(collection)}


def output_subject(out: Path | str) -> dict[str, Any]:
    """A migration output side: its directory, run id and the checksum of its embeddings."""
    try:
        manifest = json.loads((Path(out) / "manifest.json").read_text())
    except (OSError, ValueError):
        manifest = {}
    outputs = manifest.get("outputs") if isinstance(manifest.get("outputs"), dict) else {}
    return {"kind": "output", "out": str(Path(out).resolve()), "run_id": manifest.get("run_id"),
            "embeddings_sha256": (outputs.get("embeddings.parquet") or {}).get("sha256")}


def read_cutover_report(report: Path) -> tuple[list[str], dict[str, Any] | None]:
    """(failed gates, the new side's subject) of a ``compare`` JSON report; one error line when it is not one."""
    try:
        data = json.loads(Path(report).read_text())
    except FileNotFoundError:
        raise ConfigError(f"--require-report {report}: file not found", hint="give compare's report.json") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--require-report {report}: not a JSON report ({str(exc)[:80]})",
                          hint="give the report.json that `jina-migrate compare` wrote") from None
    gates = data.get("gates") if isinstance(data, dict) else None
    if not isinstance(gates, list) or not gates:
        raise ConfigError(f"--require-report {report}: the report holds no quality gates",
                          hint="run compare with --fail-if, e.g. --fail-if 'ndcg@10 < old - 0.01'")
    new = ((data.get("sides") or {}).get("new") or {}).get("description") or {}
    subject = new.get("subject") if isinstance(new, dict) and isinstance(new.get("subject"), dict) else None
    return [str(g.get("gate")) for g in gates if isinstance(g, dict) and g.get("failed")], subject


def subject_problem(report: Path, subject: dict[str, Any] | None, *, run_id: str, embeddings_sha256: str | None,
                    database: str, collection: str, checksum: Callable[[], str]) -> MigrateError | None:
    """Why ``report`` is not about this run's destination ``collection`` in ``database`` (or its output), else None.
    ``checksum()`` is the destination's content checksum now (read only when the report names that collection)."""
    where = f"--require-report {report}"
    rerun = (f"run `jina-migrate compare` with --new set to the destination ({collection!r} in {database}) or to "
             "this run's --out, then cutover with that report")
    if not subject:
        return ConfigError(f"{where}: the report does not name what it compared (written by an older compare?)",
                           hint=rerun)
    if subject.get("kind") == "output":
        if subject.get("run_id") == run_id and subject.get("embeddings_sha256") == embeddings_sha256:
            return None
        return ConfigError(f"{where}: the report compared the output {subject.get('out')!r} of another run, not this "
                           "one", hint=rerun)
    if subject.get("kind") == "collection":
        if (subject.get("database"), subject.get("collection")) != (database, collection):
            return ConfigError(f"{where}: the report compared {subject.get('collection')!r} in "
                               f"{subject.get('database')}, not this run's destination {collection!r} in {database}",
                               hint=rerun)
        if subject.get("checksum") != checksum():
            return StateError(f"{where}: {collection!r} changed since the report was made (its content checksum "
                              "differs)", hint="run compare again on the destination as it is now")
        return None
    return ConfigError(f"{where}: the report names no subject jina-migrate knows ({subject.get('kind')!r})",
                       hint=rerun)
