"""One self-contained HTML file from a comparison report.

Layout: the verdict, what was compared (which model or stand-in made each side), the
gates, the metrics and the charts come first; the configuration of each side (readable
rows, no raw JSON, never a key file or key) and the timings are folded into
``<details>`` sections at the end.

No network: styles, SVG charts and the small table-sorting script are inline. Every
piece of data (document text, query text, ids, model names) goes through
``html.escape``, so a document containing ``<script>`` is shown as text. The script
only reorders table rows; it builds no HTML from data.
"""

from __future__ import annotations

from html import escape
from typing import Any

from migrate.report import charts
from migrate.report.evidence_words import evidence_lines
from migrate.report.metrics import METRICS
from migrate.report.schema import SIGNIFICANCE, CompareReport
from migrate.report.wording import (change_words, configuration_rows, docs_sentence, fmt_p, headline_sentence,
                                     search_words)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1180px;color:#1f2328;
padding:0 16px;line-height:1.4}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
h3{font-size:15px;margin-bottom:4px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}
table.sortable th{cursor:pointer;user-select:none}
table.sortable th:after{content:" \\2195";color:#8c959f;font-size:11px}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}
.up{color:#1a7f37}.down{color:#cf222e}
.verdict{padding:10px 14px;border-radius:6px;margin:12px 0;font-weight:600}
.verdict.ok{background:#dafbe1}.verdict.bad{background:#ffebe9}.verdict.info{background:#ddf4ff}
.pair{display:flex;gap:16px;flex-wrap:wrap}.pair>div{flex:1 1 520px;min-width:0}
.doc{font-size:12px;color:#444;white-space:pre-wrap;word-break:break-word}
tr.only-here td{background:#fff8c5}td.rel-yes{background:#dafbe1;color:#1a7f37;font-weight:600}tr.full-row td{font-weight:600}
details{margin:24px 0}summary{font-size:18px;font-weight:600;cursor:pointer}ul.sides{margin:6px 0 12px;padding-left:20px}
.swatch{display:inline-block;width:12px;height:12px;vertical-align:middle;margin-right:4px;border:1px solid #d0d7de}
.muted{color:#656d76;font-size:12px}
svg.chart{background:#fff;border:1px solid #d0d7de;font-family:inherit;max-width:100%;height:auto}
figure.chart{display:inline-block;margin:6px 12px 10px 0}figcaption{font-size:12px;color:#444;margin-bottom:2px}
code{background:#f6f8fa;padding:1px 4px;border-radius:4px}
"""

# Sorts a table by the clicked column: numeric when both cells parse as numbers.
_JS = """
(function(){
  function key(td){var v=td.getAttribute('data-v');if(v===null){v=td.textContent.trim();}
    var n=parseFloat(v);return isNaN(n)?{s:v.toLowerCase()}:{n:n};}
  function cmp(a,b){if(a.n!==undefined&&b.n!==undefined){return a.n-b.n;}
    var x=a.s!==undefined?a.s:String(a.n),y=b.s!==undefined?b.s:String(b.n);return x<y?-1:x>y?1:0;}
  var tables=document.querySelectorAll('table.sortable');
  Array.prototype.forEach.call(tables,function(t){
    var ths=t.tHead?t.tHead.rows[0].cells:[];
    Array.prototype.forEach.call(ths,function(th,i){th.addEventListener('click',function(){
      var body=t.tBodies[0];var rows=Array.prototype.slice.call(body.rows);
      var asc=th.getAttribute('data-dir')!=='asc';th.setAttribute('data-dir',asc?'asc':'desc');
      rows.sort(function(r1,r2){var c=cmp(key(r1.cells[i]),key(r2.cells[i]));return asc?c:-c;});
      rows.forEach(function(r){body.appendChild(r);});});});
  });
  document.documentElement.setAttribute('data-sortable-ready','1');
})();
"""


def _e(x: Any) -> str:
    return escape("" if x is None else str(x), quote=True)


def _f(x: Any, nd: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int, float)):
        return f"{x:.{nd}f}" if isinstance(x, float) else str(x)
    return _e(x)


def _num(x: Any, nd: int = 4) -> str:
    v = "" if x is None else (f"{x:.6g}" if isinstance(x, float) else str(x))
    return f'<td class="num" data-v="{_e(v)}">{_f(x, nd)}</td>'


_p = fmt_p


def _table(headers: list[str], rows: list[str], *, sortable: bool = False, cls: str = "", id_: str = "") -> str:
    c = " ".join(x for x in ("sortable" if sortable else "", cls) if x)
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    ident = f' id="{_e(id_)}"' if id_ else ""
    return (f'<table class="{c}"{ident}><thead><tr>{head}</tr></thead><tbody>' + "".join(rows) + "</tbody></table>")


# --------------------------------------------------------------------------- verdict and sides

def _one_verdict(report: CompareReport) -> str:
    """The report's first line: one verdict from the strongest evidence, its warnings, what would decide it."""
    v = report.verdict
    if v is None:
        return ""
    cls = {"better": "ok", "worse": "bad"}.get(v.code, "info")
    extra = "".join(f"<br><span class='muted'>warning: {_e(w)}</span>" for w in v.warnings)
    if v.more:
        extra += f"<br><span class='muted'>to decide: {_e(v.more)}</span>"
    return (f"<div class='verdict {cls}' id='one-verdict' data-verdict='{_e(v.code)}'>{_e(v.sentence)}{extra}"
            "</div>")


def _evidence(report: CompareReport) -> str:
    lines = evidence_lines(report)
    if not lines:
        return ""
    return "<ul id='evidence'>" + "".join(f"<li>{_e(x)}</li>" for x in lines) + "</ul>"


def _verdict(report: CompareReport) -> str:
    gates = report.gates
    failed = [g for g in gates if g.failed]
    parts = []
    if report.metrics is not None:
        parts.append(headline_sentence(report))
    a = report.agreement
    parts.append(f"overlap@{a.k} between old and new results {a.overlap_mean:.3f}, RBO {a.rbo_mean:.3f} "
                 "(a description of change, not evidence of quality)")
    text = _e("; ".join(parts))
    if failed:
        return ("<div class='verdict bad' id='verdict'>Quality gate failed: "
                + "; ".join(f"<code>{_e(g.gate)}</code> ({_e(g.message)})" for g in failed)
                + f"<br><span class='muted'>{text}</span></div>")
    if gates:
        text += _e("; " + ("the quality gate passed" if len(gates) == 1 else f"all {len(gates)} quality gates passed"))
    return f"<div class='verdict {'ok' if gates else 'info'}' id='verdict'>{text}</div>"


def _sides_summary(report: CompareReport) -> str:
    colours = {report.sides.old.name: charts.OLD_COLOR, report.sides.new.name: charts.NEW_COLOR}
    items = []
    for i, s in enumerate(report.sides.all()):
        d = s.description
        colour = colours.get(s.name, charts.EXTRA_COLORS[(i - 2) % 3])
        items.append(
            f"<li data-side='{_e(s.name)}'><span class='swatch' style='background:{colour}'></span><b>{_e(s.name)}</b>: "
            f"queries embedded by <span class='identity'>{_e(d.identity)}</span>; documents: "
            f"<span class='docs-identity'>{_e(docs_sentence(d))}</span> · {s.n_docs:,} documents"
            + (f" ({s.n_vectors:,} chunks)" if s.chunked else "") + f" · {s.dim} dims</li>")
    return "<ul class='sides' id='sides'>" + "".join(items) + "</ul>"


def _configuration(report: CompareReport) -> str:
    sides = report.sides.all()
    trs = [f"<tr><th>{_e(label)}</th>" + "".join(f"<td>{_e(v)}</td>" for v in values) + "</tr>"
           for label, values in configuration_rows(sides)]
    head = "".join(f"<th>{_e(s.name)}</th>" for s in sides)
    return (f'<table id="configuration-table"><thead><tr><th></th>{head}</tr></thead><tbody>{"".join(trs)}'
            "</tbody></table>")


# --------------------------------------------------------------------------- measures

def _judged(report: CompareReport) -> str:
    m = report.metrics
    assert m is not None
    old_name, new_name = report.sides.old.name, report.sides.new.name
    out = [f'<p class="muted">{m.n_judged} judged queries; metrics by pytrec_eval (trec_eval measures: '
           + ", ".join(f"{_e(k)} = <code>{_e(v)}</code>" for k, v in m.trec_eval_measures.items())
           + "). 95 % bootstrap CIs (BCa); p-values: two-sided paired t-test and paired randomization test; "
           f"a change is called significant when the randomization test gives p &lt; {SIGNIFICANCE}.</p>"]
    for pair in m.rows:
        trs = []
        for metric in METRICS:
            st = pair.stats[metric]
            sig = st.p_randomization < SIGNIFICANCE
            cls = ("up" if st.delta > 0 else "down" if st.delta < 0 else "") if sig else ""
            trs.append(
                f"<tr><td>{_e(metric)}</td>{_num(st.old_mean)}<td class='num'>[{st.old_ci[0]:.4f}, "
                f"{st.old_ci[1]:.4f}]</td>{_num(st.new_mean)}<td class='num'>[{st.new_ci[0]:.4f}, "
                f"{st.new_ci[1]:.4f}]</td><td class='num {cls}' data-v='{st.delta:.6g}'>{st.delta:+.4f}</td>"
                f"<td class='num'>[{st.delta_ci[0]:+.4f}, {st.delta_ci[1]:+.4f}]</td>"
                f"<td class='num'>{_p(st.p_ttest)}</td><td class='num'>{_p(st.p_randomization)}</td>"
                f"<td>{_e(change_words(st))}</td><td class='num'>{st.wins} / {st.ties} / {st.losses}</td></tr>")
        out.append(f"<h3>{_e(pair.side)} vs {_e(pair.vs)}</h3>")
        out.append(_table(["metric", pair.vs, "95% CI", pair.side, "95% CI", "Δ", "Δ 95% CI", "p (t-test)",
                           "p (randomization)", "verdict", "win / tie / loss"], trs, id_=f"metrics-{pair.side}"))
    series = [(old_name, charts.OLD_COLOR, [m.means[old_name][k] for k in METRICS]),
              (new_name, charts.NEW_COLOR, [m.means[new_name][k] for k in METRICS])]
    for i, s in enumerate(report.sides.extra):
        series.append((s.name, charts.EXTRA_COLORS[i % 3], [m.means[s.name][k] for k in METRICS]))
    out.append(charts.grouped_bars(list(METRICS), series, label="mean metric per side", vmax=1.0))
    deltas = [q.metrics[new_name]["ndcg@10"] - q.metrics[old_name]["ndcg@10"]
              for q in report.per_query if q.metrics is not None]
    edges = [-1.0, -0.5, -0.25, -0.1, -1e-9, 1e-9, 0.1, 0.25, 0.5, 1.0001]
    labels = ["≤-.5", "-.5..-.25", "-.25..-.1", "-.1..0", "0", "0..+.1", "+.1..+.25", "+.25..+.5", "≥+.5"]
    counts = [sum(1 for d in deltas if lo <= d < hi) for lo, hi in zip(edges[:-1], edges[1:])]
    colors = [charts.LOSS_COLOR] * 4 + [charts.OLD_COLOR] + [charts.NEW_COLOR] * 4
    out.append(charts.histogram(labels, counts, label="per-query nDCG@10 change (new - old)", colors=colors,
                                x_label="change in nDCG@10 (new - old)", y_label="queries"))
    return "".join(out)


def _agreement(report: CompareReport) -> str:
    a = report.agreement
    k = a.k
    rows = [f"<tr><td>mean overlap@{k}</td>{_num(a.overlap_mean)}</tr>",
            f"<tr><td>mean RBO (p={a.rbo_p}, depth {a.rbo_depth})</td>{_num(a.rbo_mean)}</tr>",
            f"<tr><td>mean |rank shift| of old top-{k} docs</td>{_num(a.mean_abs_rank_shift, 2)}</tr>",
            f"<tr><td>mean old top-{k} docs dropped from new top-{k}</td>{_num(a.dropped_mean, 2)}</tr>",
            f"<tr><td>same top-1 result</td>{_num(a.top1_kept_rate)}</tr>"]
    for name, ea in (report.extra_agreement or {}).items():
        rows.append(f"<tr><td>{_e(name)}: overlap@{k} / RBO with old</td><td class='num'>"
                    f"{ea.overlap_mean:.4f} / {ea.rbo_mean:.4f}</td></tr>")
    hist = a.overlap_histogram
    chart = charts.histogram([f"{i}/{k}" for i in range(k + 1)], [hist[str(i)] for i in range(k + 1)],
                             label=f"queries by overlap@{k} between old and new",
                             x_label=f"documents shared by old and new top-{k}", y_label="queries")
    return _table(["measure", "value"], rows, id_="agreement-table") + chart


def _matryoshka(report: CompareReport) -> str:
    sweep = report.matryoshka
    assert sweep is not None
    judged = report.metrics is not None
    headers = ["dims", "bytes/vector (float32)", "int8", "binary"]
    headers += list(METRICS) if judged else []
    headers += [f"overlap@{report.k} vs old", "overlap vs full dims", "RBO vs full dims"]
    rows = []
    for r in sweep.rows:
        cells = [_num(r.dims), _num(r.bytes_float32), _num(r.bytes_int8), _num(r.bytes_binary)]
        if judged and r.metrics is not None:
            cells += [_num(r.metrics[m]) for m in METRICS]
        cells += [_num(r.overlap_vs_old), _num(r.overlap_vs_full), _num(r.rbo_vs_full)]
        rows.append(f"<tr{' class=full-row' if r.full else ''}>{''.join(cells)}</tr>")
    note = (f'<p class="muted">skipped {_e(", ".join(map(str, sweep.skipped)))}: {_e(sweep.skipped_reason)}</p>'
            if sweep.skipped else "")
    asc = sorted(sweep.rows, key=lambda r: r.dims)
    xl = [f"{r.dims}d/{r.bytes_float32}B" for r in asc]
    series = [(f"overlap@{report.k} vs old", charts.OLD_COLOR, [r.overlap_vs_old for r in asc]),
              ("RBO vs full dims", charts.EXTRA_COLORS[1], [r.rbo_vs_full for r in asc])]
    if judged and report.metrics is not None and all(r.metrics for r in asc):
        old_name = report.sides.old.name
        series.insert(0, ("new nDCG@10", charts.NEW_COLOR, [r.metrics["ndcg@10"] for r in asc if r.metrics]))
        series.insert(1, ("old nDCG@10 (reference)", charts.EXTRA_COLORS[0],
                          [report.metrics.means[old_name]["ndcg@10"]] * len(asc)))
    chart = charts.line_chart([r.dims for r in asc], series, x_labels=xl,
                              label="Matryoshka sweep: quality against bytes per vector")
    return _table(headers, rows, sortable=True) + note + chart


def _ann(report: CompareReport) -> str:
    out = []
    for name, a in (report.ann or {}).items():
        rows = [f"<tr><td>recall@{a.k} against exact search</td>{_num(a.recall_at_k)}</tr>",
                f"<tr><td>recall@{a.depth} against exact search</td>{_num(a.recall_at_depth)}</tr>",
                f"<tr><td>ANN search time (s)</td>{_num(a.search_s, 3)}</tr>",
                f"<tr><td>exact search time (s)</td>{_num(a.exact_search_s, 3)}</tr>"]
        rows += [f"<tr><td>ANN {_e(m)}</td>{_num(v)}</tr>" for m, v in (a.metrics or {}).items()]
        desc = " · ".join(f"{k}: {v}" for k, v in a.description.items() if v is not None)
        out.append(f"<h3>{_e(name)}</h3><p class='muted'>{_e(desc)}</p>")
        out.append(_table(["measure", "value"], rows))
    return "".join(out)


def _examples(report: CompareReport) -> str:
    k = report.k
    out = [f'<p class="muted" id="legend">Queries whose results changed most (lowest RBO) first. '
           f'<span class="swatch" style="background:#fff8c5"></span>Yellow row: not in the other side\'s top-{k}. '
           '<span class="swatch" style="background:#dafbe1"></span>Green ✓: judged relevant (grade shown). '
           'Scores are cosine similarities.</p>']
    for ex in report.examples:
        out.append(f"<div class='example' data-qid='{_e(ex.qid)}' data-overlap='{ex.overlap:.6g}'>"
                   f"<h3>Query {_e(ex.qid)}: {_e(ex.text)}</h3>"
                   f"<p class='muted'>overlap@{k} {ex.overlap:.2f} · RBO {ex.rbo:.3f}"
                   + "".join(f" · {_e(n)} nDCG@10 {v['ndcg@10']:.3f}" for n, v in (ex.metrics or {}).items())
                   + "</p><div class='pair'>")
        for name, rows in ex.sides.items():
            trs = []
            judged = bool(rows) and rows[0].rel is not None
            for r in rows:
                cls = "" if r.in_other else " class='only-here'"
                rel = ""
                if judged:
                    rel = (f"<td class='num rel-yes'>✓ {r.rel}</td>" if r.rel else "<td class='num'></td>")
                text = f"<div class='doc'>{_e(r.text)}</div>" if r.text is not None else ""
                trs.append(f"<tr{cls}><td class='num'>{r.rank}</td><td class='num'>{r.score:.4f}</td>"
                           f"{rel}<td><code>{_e(r.id)}</code>{text}</td></tr>")
            hdr = ["#", "cosine"] + (["relevant"] if judged else []) + ["document"]
            out.append(f"<div class='side' data-side='{_e(name)}'><h3>{_e(name)}</h3>{_table(hdr, trs)}</div>")
        out.append("</div></div>")
    return "".join(out)


def _per_query(report: CompareReport) -> str:
    old_name, new_name = report.sides.old.name, report.sides.new.name
    judged = report.metrics is not None
    headers = ["query id", "query", f"overlap@{report.k}", "RBO", "|rank shift|", "dropped"]
    if judged:
        headers += [f"{old_name} nDCG@10", f"{new_name} nDCG@10", "Δ nDCG@10"]
    rows = []
    for q in report.per_query:
        cells = [f"<td>{_e(q.qid)}</td><td>{_e(q.text)}</td>", _num(q.overlap, 2), _num(q.rbo, 3),
                 _num(q.mean_abs_shift, 2), _num(q.dropped)]
        if judged:
            if q.metrics is not None:
                o, n = q.metrics[old_name]["ndcg@10"], q.metrics[new_name]["ndcg@10"]
                cells += [_num(o, 3), _num(n, 3), _num(n - o, 3)]
            else:
                cells += ["<td></td>"] * 3
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return _table(headers, rows, sortable=True, id_="per-query")


def _gates(report: CompareReport) -> str:
    rows = [f"<tr><td><code>{_e(g.gate)}</code></td><td class='{'fail' if g.failed else 'pass'}'>"
            f"{'FAILED' if g.failed else 'passed'}</td>{_num(g.value)}<td>{_e(g.op)}</td>"
            f"{_num(g.threshold)}</tr>" for g in report.gates]
    return _table(["gate (fail if)", "result", "value", "op", "threshold"], rows, id_="gates-table")


def _timings(report: CompareReport) -> str:
    t = report.timings
    rows = [f"<tr><td>query embedding, {_e(n)}</td>{_num(v, 3)}</tr>" for n, v in t["encode_queries_s"].items()]
    rows += [f"<tr><td>search, {_e(n)}</td>{_num(v, 3)}</tr>" for n, v in t["search_s"].items()]
    rows += [f"<tr><td>whole comparison except query embedding</td>{_num(t['compare_excluding_encode_s'], 3)}</tr>",
             f"<tr><td>after query embedding</td>{_num(t['after_encode_s'], 3)}</tr>"]
    return _table(["step", "seconds"], rows)


def render_html(report: CompareReport) -> str:
    """The whole report as one HTML document (UTF-8 text)."""
    sections = [
        f"<h1>{_e(report.title)}</h1>",
        f"<p class='muted'>created {_e(report.created)} · {report.n_queries} queries · k={report.k}"
        f" · {_e(search_words(report.sides.all()))} (ANN checks marked)</p>",
        _one_verdict(report),
        _verdict(report),
        _sides_summary(report),
    ]
    if _evidence(report):
        sections += ["<h2 id='label-free'>Label-free evidence</h2>", _evidence(report)]
    if report.gates:
        sections += ["<h2 id='gates'>Quality gates</h2>", _gates(report)]
    if report.metrics is not None:
        sections += ["<h2 id='metrics'>Retrieval quality (with judgments)</h2>", _judged(report)]
    sections += ["<h2 id='agreement'>Agreement between old and new results (a description of change, not of "
                 "quality)</h2>",
                 _agreement(report)]
    if report.matryoshka is not None:
        sections += ["<h2 id='matryoshka'>Matryoshka sweep (new vectors truncated and re-normalised)</h2>",
                     _matryoshka(report)]
    if report.ann:
        sections += ["<h2 id='ann'>Built ANN index against exact search</h2>", _ann(report)]
    sections += ["<h2 id='examples'>Side-by-side results</h2>", _examples(report),
                 "<h2 id='queries'>Per query (click a header to sort)</h2>", _per_query(report),
                 "<details id='embedding'><summary>How each side embedded (configuration)</summary>",
                 _configuration(report), "</details>",
                 "<details id='timings'><summary>Timings</summary>", _timings(report), "</details>"]
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'; "
            "script-src 'unsafe-inline'; img-src data:\">"
            f"<title>{_e(report.title)}</title><style>{_CSS}</style></head><body>"
            + "".join(sections) + f"<script>{_JS}</script></body></html>")
