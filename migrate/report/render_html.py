"""One self-contained HTML file from a comparison report.

No network: styles, SVG charts and the small table-sorting script are inline. Every
piece of data (document text, query text, ids, model names) goes through
``html.escape``, so a document containing ``<script>`` is shown as text. The script
only reorders table rows; it builds no HTML from data.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from migrate.report import charts
from migrate.report.metrics import METRICS

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
.rel{background:#dafbe1}.new-in{background:#fff8c5}
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


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _table(headers: list[str], rows: list[str], *, sortable: bool = False, cls: str = "") -> str:
    c = " ".join(x for x in ("sortable" if sortable else "", cls) if x)
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return (f'<table class="{c}"><thead><tr>{head}</tr></thead><tbody>' + "".join(rows) + "</tbody></table>")


def _provenance(report: dict) -> str:
    sides = [("old", report["sides"]["old"]), ("new", report["sides"]["new"])]
    sides += [("extra", s) for s in report["sides"].get("extra", [])]
    keys: list[str] = []
    for _, s in sides:
        for k in (s.get("description") or {}):
            if k not in keys:
                keys.append(k)
    rows = []
    for k in ["name", "n_docs", "n_vectors", "dim", "chunked", "bytes_per_vector_float32"] + keys:
        cells = []
        for _, s in sides:
            v = s.get(k) if k in s and k != "description" else (s.get("description") or {}).get(k)
            if isinstance(v, (dict, list)):
                v = json.dumps(v, ensure_ascii=False, sort_keys=True)
            elif isinstance(v, str) and k.endswith("prefix"):
                v = json.dumps(v, ensure_ascii=False) + ("" if v else " (none)")  # show spaces and emptiness
            cells.append(f"<td>{_e(v) if v is not None else '–'}</td>")
        rows.append(f"<tr><th>{_e(k)}</th>{''.join(cells)}</tr>")
    head = "".join(f"<th>{_e(role)}</th>" for role, _ in sides)
    return f'<table><thead><tr><th></th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _judged(report: dict) -> str:
    m = report["metrics"]
    old_name, new_name = report["sides"]["old"]["name"], report["sides"]["new"]["name"]
    out = [f'<p class="muted">{m["n_judged"]} judged queries; metrics by pytrec_eval (trec_eval measures: '
           + ", ".join(f"{_e(k)} = <code>{_e(v)}</code>" for k, v in m["trec_eval_measures"].items())
           + "). 95 % bootstrap CIs (BCa); p-values: two-sided paired t-test and paired randomization test.</p>"]
    for row in m["rows"]:
        trs = []
        for metric in METRICS:
            s = row["stats"][metric]
            cls = "up" if s["delta"] > 0 else "down" if s["delta"] < 0 else ""
            trs.append(
                f"<tr><td>{_e(metric)}</td>{_num(s['old_mean'])}<td class='num'>[{s['old_ci'][0]:.4f}, "
                f"{s['old_ci'][1]:.4f}]</td>{_num(s['new_mean'])}<td class='num'>[{s['new_ci'][0]:.4f}, "
                f"{s['new_ci'][1]:.4f}]</td><td class='num {cls}' data-v='{s['delta']:.6g}'>{s['delta']:+.4f}</td>"
                f"<td class='num'>[{s['delta_ci'][0]:+.4f}, {s['delta_ci'][1]:+.4f}]</td>"
                f"<td class='num'>{_p(s['p_ttest'])}</td><td class='num'>{_p(s['p_randomization'])}</td>"
                f"<td class='num'>{s['wins']} / {s['ties']} / {s['losses']}</td></tr>")
        out.append(f"<h3>{_e(row['side'])} vs {_e(row['vs'])}</h3>")
        out.append(_table(["metric", f"{row['vs']}", "95% CI", f"{row['side']}", "95% CI", "Δ", "Δ 95% CI",
                           "p (t-test)", "p (randomization)", "win / tie / loss"], trs))
    series = [(old_name, charts.OLD_COLOR, [m["means"][old_name][k] for k in METRICS]),
              (new_name, charts.NEW_COLOR, [m["means"][new_name][k] for k in METRICS])]
    for i, s in enumerate(report["sides"].get("extra", [])):
        series.append((s["name"], charts.EXTRA_COLORS[i % 3], [m["means"][s["name"]][k] for k in METRICS]))
    out.append(charts.grouped_bars(list(METRICS), series, label="mean metric per side", vmax=1.0))
    # distribution of per-query nDCG@10 change
    deltas = [q["metrics"][new_name]["ndcg@10"] - q["metrics"][old_name]["ndcg@10"]
              for q in report["per_query"] if "metrics" in q]
    edges = [-1.0, -0.5, -0.25, -0.1, -1e-9, 1e-9, 0.1, 0.25, 0.5, 1.0001]
    labels = ["≤-.5", "-.5..-.25", "-.25..-.1", "-.1..0", "0", "0..+.1", "+.1..+.25", "+.25..+.5", "≥+.5"]
    counts = [sum(1 for d in deltas if lo <= d < hi) for lo, hi in zip(edges[:-1], edges[1:])]
    colors = [charts.LOSS_COLOR] * 4 + [charts.OLD_COLOR] + [charts.NEW_COLOR] * 4
    out.append(charts.histogram(labels, counts, label="per-query nDCG@10 change (new - old)", colors=colors))
    return "".join(out)


def _agreement(report: dict) -> str:
    a = report["agreement"]
    k = a["k"]
    rows = [f"<tr><td>mean overlap@{k}</td>{_num(a['overlap_mean'])}</tr>",
            f"<tr><td>mean RBO (p={a['rbo_p']}, depth {a['rbo_depth']})</td>{_num(a['rbo_mean'])}</tr>",
            f"<tr><td>mean |rank shift| of old top-{k} docs</td>{_num(a['mean_abs_rank_shift'], 2)}</tr>",
            f"<tr><td>mean old top-{k} docs dropped from new top-{k}</td>{_num(a['dropped_mean'], 2)}</tr>",
            f"<tr><td>same top-1 result</td>{_num(a['top1_kept_rate'])}</tr>"]
    for name, ea in (report.get("extra_agreement") or {}).items():
        rows.append(f"<tr><td>{_e(name)}: overlap@{k} / RBO with old</td><td class='num'>"
                    f"{ea['overlap_mean']:.4f} / {ea['rbo_mean']:.4f}</td></tr>")
    hist = a["overlap_histogram"]
    chart = charts.histogram([f"{i}/{k}" for i in range(k + 1)], [hist[str(i)] for i in range(k + 1)],
                             label=f"queries by overlap@{k} between old and new")
    return _table(["measure", "value"], rows) + chart


def _matryoshka(report: dict) -> str:
    sweep = [r for r in report["matryoshka"] if "skipped" not in r]
    judged = report.get("metrics") is not None
    headers = ["dims", "bytes/vector (float32)", "int8", "binary"]
    headers += list(METRICS) if judged else []
    headers += [f"overlap@{report['config']['k']} vs old", "overlap vs full dims", "RBO vs full dims"]
    rows = []
    for r in sweep:
        cells = [_num(r["dims"]), _num(r["bytes_float32"]), _num(r["bytes_int8"]), _num(r["bytes_binary"])]
        if judged:
            cells += [_num(r[m]) for m in METRICS]
        cells += [_num(r["overlap_vs_old"]), _num(r["overlap_vs_full"]), _num(r["rbo_vs_full"])]
        rows.append(f"<tr{' class=rel' if r['full'] else ''}>{''.join(cells)}</tr>")
    skipped = [r for r in report["matryoshka"] if "skipped" in r]
    note = "".join(f'<p class="muted">skipped {_e(r["dims"])}: {_e(r["skipped"])}</p>' for r in skipped)
    asc = sorted(sweep, key=lambda r: r["dims"])
    xl = [f"{r['dims']}d/{r['bytes_float32']}B" for r in asc]
    series = [(f"overlap@{report['config']['k']} vs old", charts.OLD_COLOR, [r["overlap_vs_old"] for r in asc]),
              ("RBO vs full dims", charts.EXTRA_COLORS[1], [r["rbo_vs_full"] for r in asc])]
    if judged:
        old_name = report["sides"]["old"]["name"]
        series.insert(0, ("new nDCG@10", charts.NEW_COLOR, [r["ndcg@10"] for r in asc]))
        series.insert(1, ("old nDCG@10 (reference)", charts.EXTRA_COLORS[0],
                          [report["metrics"]["means"][old_name]["ndcg@10"]] * len(asc)))
    chart = charts.line_chart([r["dims"] for r in asc], series, x_labels=xl,
                              label="Matryoshka sweep: quality against bytes per vector")
    return _table(headers, rows, sortable=True) + note + chart


def _ann(report: dict) -> str:
    out = []
    for name, a in report["ann"].items():
        rows = [f"<tr><td>{_e(k)}</td>{_num(v) if isinstance(v, (int, float)) else '<td>' + _e(v) + '</td>'}</tr>"
                for k, v in a.items() if k not in ("metrics", "description")]
        rows += [f"<tr><td>ANN {_e(m)}</td>{_num(v)}</tr>" for m, v in (a.get("metrics") or {}).items()]
        out.append(f"<h3>{_e(name)}</h3><p class='muted'>{_e(json.dumps(a.get('description'), sort_keys=True))}</p>")
        out.append(_table(["measure", "value"], rows))
    return "".join(out)


def _examples(report: dict) -> str:
    out = ['<p class="muted">Queries whose results changed most (lowest RBO) first. Green: judged relevant; '
           'yellow: not in the other side\'s top-k. Scores are cosine similarities.</p>']
    for ex in report["examples"]:
        out.append(f"<h3>Query {_e(ex['qid'])}: {_e(ex['text'])}</h3>"
                   f"<p class='muted'>overlap@{report['config']['k']} {ex['overlap']:.2f} · RBO {ex['rbo']:.3f}"
                   + ("".join(f" · {_e(n)} nDCG@10 {v['ndcg@10']:.3f}" for n, v in ex.get("metrics", {}).items()))
                   + "</p><div class='pair'>")
        for name, rows in ex["sides"].items():
            trs = []
            for r in rows:
                cls = "rel" if r["rel"] else ("new-in" if not r["in_other"] else "")
                rel = "" if r["rel"] is None else f"<td class='num'>{_e(r['rel'])}</td>"
                text = f"<div class='doc'>{_e(r['text'])}</div>" if r["text"] is not None else ""
                trs.append(f"<tr class='{cls}'><td class='num'>{r['rank']}</td><td class='num'>{r['score']:.4f}</td>"
                           f"{rel}<td><code>{_e(r['id'])}</code>{text}</td></tr>")
            hdr = ["#", "cosine"] + (["rel"] if rows and rows[0]["rel"] is not None else []) + ["document"]
            out.append(f"<div><h3>{_e(name)}</h3>{_table(hdr, trs)}</div>")
        out.append("</div>")
    return "".join(out)


def _per_query(report: dict) -> str:
    old_name, new_name = report["sides"]["old"]["name"], report["sides"]["new"]["name"]
    judged = report.get("metrics") is not None
    headers = ["query id", "query", f"overlap@{report['config']['k']}", "RBO", "|rank shift|", "dropped"]
    if judged:
        headers += [f"{old_name} nDCG@10", f"{new_name} nDCG@10", "Δ nDCG@10"]
    rows = []
    for q in report["per_query"]:
        cells = [f"<td>{_e(q['qid'])}</td><td>{_e(q['text'])}</td>", _num(q["overlap"], 2), _num(q["rbo"], 3),
                 _num(q["mean_abs_shift"], 2), _num(q["dropped"])]
        if judged:
            if "metrics" in q:
                o, n = q["metrics"][old_name]["ndcg@10"], q["metrics"][new_name]["ndcg@10"]
                cells += [_num(o, 3), _num(n, 3), _num(n - o, 3)]
            else:
                cells += ["<td></td>"] * 3
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return _table(headers, rows, sortable=True)


def _gates(report: dict) -> str:
    rows = [f"<tr><td><code>{_e(g['gate'])}</code></td><td class='{'fail' if g['failed'] else 'pass'}'>"
            f"{'FAILED' if g['failed'] else 'passed'}</td>{_num(g['value'])}<td>{_e(g['op'])}</td>"
            f"{_num(g['threshold'])}</tr>" for g in report["gates"]]
    return _table(["gate (fail if)", "result", "value", "op", "threshold"], rows)


def _verdict(report: dict) -> str:
    gates = report.get("gates") or []
    failed = [g for g in gates if g["failed"]]
    if failed:
        return ("<div class='verdict bad'>Quality gate failed: "
                + "; ".join(f"<code>{_e(g['gate'])}</code> ({_e(g['message'])})" for g in failed) + "</div>")
    parts = []
    if report.get("metrics"):
        s = report["metrics"]["rows"][0]["stats"]["ndcg@10"]
        word = "better" if s["delta"] > 0 else "worse" if s["delta"] < 0 else "unchanged"
        sig = "significant" if s["p_randomization"] < 0.05 else "not significant"
        parts.append(f"nDCG@10 {s['old_mean']:.4f} → {s['new_mean']:.4f} ({s['delta']:+.4f}, {word}, {sig} "
                     f"at 0.05, randomization p={_p(s['p_randomization'])})")
    a = report["agreement"]
    parts.append(f"overlap@{a['k']} between old and new results {a['overlap_mean']:.3f}, RBO {a['rbo_mean']:.3f}")
    gate_txt = f"; all {len(gates)} gates passed" if gates else ""
    return f"<div class='verdict {'ok' if gates else 'info'}'>{_e('; '.join(parts))}{_e(gate_txt)}</div>"


def render_html(report: dict[str, Any]) -> str:
    """The whole report as one HTML document (UTF-8 text)."""
    t = report["timings"]
    sections = [
        f"<h1>{_e(report['title'])}</h1>",
        f"<p class='muted'>created {_e(report['created'])} · {report['n_queries']} queries · k={report['config']['k']}"
        f" · exact search (brute force, cosine) unless marked ANN</p>",
        _verdict(report),
        "<h2 id='embedding'>How each side embedded</h2>", _provenance(report),
    ]
    if report.get("gates"):
        sections += ["<h2 id='gates'>Quality gates</h2>", _gates(report)]
    if report.get("metrics"):
        sections += ["<h2 id='metrics'>Retrieval quality (with judgments)</h2>", _judged(report)]
    sections += ["<h2 id='agreement'>Agreement between old and new results (no labels needed)</h2>",
                 _agreement(report)]
    if report.get("matryoshka"):
        sections += ["<h2 id='matryoshka'>Matryoshka sweep (new vectors truncated and re-normalised)</h2>",
                     _matryoshka(report)]
    if report.get("ann"):
        sections += ["<h2 id='ann'>Built ANN index against exact search</h2>", _ann(report)]
    sections += ["<h2 id='examples'>Side-by-side results</h2>", _examples(report),
                 "<h2 id='queries'>Per query (click a header to sort)</h2>", _per_query(report),
                 "<h2 id='timings'>Timings</h2>",
                 f"<pre>{_e(json.dumps(t, indent=2, sort_keys=True))}</pre>"]
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'; "
            "script-src 'unsafe-inline'; img-src data:\">"
            f"<title>{_e(report['title'])}</title><style>{_CSS}</style></head><body>"
            + "".join(sections) + f"<script>{_JS}</script></body></html>")
