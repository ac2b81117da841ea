"""Plain-text pieces shared by the Markdown and the terminal renderings of a plan."""

from __future__ import annotations

from typing import Any


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} TB"


def human_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def _token_line(t: dict[str, Any]) -> str:
    if t["method"] == "exact":
        return f"{t['total']:,} (exact, {t['n_tokenized']:,} documents tokenized)"
    if t["method"] == "sample":
        return f"{t['total']:,} (sample of {t['sample_size']:,}, 95% CI {t['low']:,} - {t['high']:,})"
    return f"{t['total']:,} (ESTIMATE from characters, +-{t['error_bound_rel']:.0%}: {t['low']:,} - {t['high']:,})"


def storage_by_dims(plan: dict[str, Any]) -> dict[int, dict[str, int]]:
    """dims -> format -> bytes of vectors + flat FAISS index."""
    by_dim: dict[int, dict[str, int]] = {}
    for r in plan["storage"]["options"]:
        by_dim.setdefault(r["dimensions"], {})[r["format"]] = r["faiss_index_bytes"]
    return by_dim


def summary_rows(plan: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) rows of the plan's headline table."""
    m, t = plan["mapping"], plan["tokens"]
    limit = t.get("limit", 8192)
    rows = [
        ("documents", f"{plan['sources']['documents']:,}"),
        ("from", f"{m['source_model']} ({plan['sources']['source_model_from']})"),
        ("to", f"{m['target_model']}, task {m['document_task']} (queries: {m['query_task']}), {m['dimensions']} dims"),
        ("tokenizer", (t["tokenizer"] or {}).get("label", "none (character model)")),
        ("tokens", _token_line(t)),
        ("tokens billed", f"{t['billed']:,}" + (f" (truncated at {limit})" if m["truncate"] else "")),
        (f"documents > {limit} tokens", f"{t['n_over_limit']:,}" + ("" if t["over_limit_exact"] else " (estimated)")),
        ("API requests", f"{plan['requests']['total']:,}"),
    ]
    c = plan["cost"]
    rows.append(("cost", f"{c['total']:.2f} ({c['low']:.2f} - {c['high']:.2f}) at {c['price_per_million']}/M tokens"
                 if c else "no price given (--price-per-million)"))
    ev = plan.get("evaluation")
    if ev:  # what compare's label-free evidence costs (the known-item guard, a judge)
        g, j = ev["known_item_guard"], ev["judge_per_100_queries"]
        money = (lambda x: f", {x:.2f}") if c else (lambda x: "")
        rows.append(("compare without labels", f"known-item guard {g['tokens_per_api_side']:,} tokens per API side"
                     f"{money(g['cost_per_api_side'])}; a reranker judge at most {j['tokens_at_most']:,} tokens per "
                     f"100 queries{money(j['cost_at_most'])}"))
    a = plan["api_time"]["chosen"]
    rows.append((f"API time ({plan['api_time']['tier']})", f"{human_seconds(a['seconds'])} (bound by {a['bound_by']})"))
    if plan.get("local_time"):
        meas = (plan.get("measured") or {}).get("local_calibration", {})
        rows.append(("local time", f"{human_seconds(meas.get('predicted_seconds'))} "
                     f"({meas.get('tokens_per_second')} tok/s measured on {meas.get('sample_docs')} docs)"))
    o = plan["storage"]["run_output"]
    rows.append(("run output on disk", f"{human_bytes(o['total'])} ({o['dimensions']} dims float32)"))
    for label, value in database_rows(plan):
        rows.append((label, value))
    rows.append(("shards", f"{plan['shards']['count']} of {plan['shards']['shard_size']} documents"))
    return rows


def database_rows(plan: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) rows for a source collection (its own statistics) and each database destination."""
    rows = []
    old = plan["sources"].get("old_index") or {}
    c = old.get("collection")
    if c:
        size = f", {human_bytes(c['bytes'])} in the engine" if c.get("bytes") else ""
        counted = "" if c.get("rows_exact") else " (engine statistics)"
        line = f"{c['address']}: {c['rows']:,} rows{counted}{size}, index {c.get('index') or 'none'}"
        rows.append(("source collection", line))
    for d in plan.get("destinations") or []:
        ix = d["index"]
        kind = f"HNSW m={ix['m']}" if ix["kind"] == "hnsw" else ix["kind"]
        note = " (exists already)" if d.get("exists") else ""
        line = (f"{d['address']}{note}: about {human_bytes(d['total_bytes'])} ({human_bytes(d['data_bytes'])} data + "
                f"{human_bytes(d['index_bytes'])} {kind} index)")
        rows.append((f"destination {d['engine']}", line))
    return rows
