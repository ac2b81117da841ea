"""Status, verify and finalize of a workspace (called by the pipeline with the :class:`Workspace`).

``status`` reads only completion records and lock files (cheap at any size). ``verify``
re-checks everything from the files themselves: the manifest against its own fingerprint
and the shards' embedded facts, every shard's checksum, every record against its shard,
then each sink. ``finalize`` refuses while any shard is missing, then lets each sink build
its outputs and marks the manifest complete.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from migrate.errors import StateError
from migrate.shards import canonical_hash
from migrate.workspace.core import Workspace
from migrate.workspace.manifest import OutputFile, Result
from migrate.workspace.outputs import BuiltOutput

RECORD_FACTS = ("rows", "docs", "dim", "tokens", "embedded", "cached", "config_fingerprint")


def status(ws: Workspace) -> dict[str, Any]:
    m = ws.manifest()
    plan = m.shard_plan(str(ws.manifest_path))
    done, pending, failed = [], [], []
    for s in plan.shards:
        if ws.is_complete(s, m.config_fingerprint):
            done.append(s)
        elif ws.shard_path(s).exists() or ws.record_path(s).exists():
            failed.append(s)
        else:
            pending.append(s)
    recs = [ws.record(s) or {} for s in done]
    runs = ws.runs()
    live = [r for r in runs if r["alive"]]
    elsewhere = [r for r in runs if r["alive"] is None]
    if m.state == "complete":
        state = "complete"
    elif live:
        state = "running"
    elif elsewhere:
        state = "running elsewhere"
    else:
        state = "stopped" if done or failed or runs else "planned"
    secs = sum(float(r.get("seconds", 0)) for r in recs)
    rows_done = sum(s.rows for s in done)
    rows_left = sum(s.rows for s in pending + failed)
    eta = secs / rows_done * rows_left if rows_done and state.startswith("running") else None
    info: dict[str, Any] = {
        "out": str(ws.out), "state": state, "shards": len(plan.shards), "done": len(done), "pending": len(pending),
        "failed": len(failed), "rows": plan.total_rows, "rows_done": rows_done,
        "tokens": sum(int(r.get("tokens", 0)) for r in recs), "eta_s": round(eta, 1) if eta is not None else None,
        "failed_shards": [s.name for s in failed], "config": m.config,
        "runs": [{k: r.get(k) for k in ("host", "pid", "worker", "started", "alive")} for r in runs],
    }
    nodes: dict[str, int] = {}
    for r in recs:  # records written by Ray workers name their node
        if r.get("node"):
            nodes[str(r["node"])] = nodes.get(str(r["node"]), 0) + 1
    if nodes:
        info["shards_per_node"] = nodes
    return info


def verify(ws: Workspace, sinks: Sequence[BuiltOutput]) -> dict[str, Any]:
    """{"ok", "problems", "checks"}; raises StateError only when there is no output to verify."""
    m = ws.manifest()
    problems: list[str] = []
    checks: dict[str, Any] = {}
    if m.state != "complete":
        problems.append(f"manifest state is {m.state!r}, not 'complete' (finalize has not run)")
    if canonical_hash(m.config) != m.config_fingerprint:
        problems.append("the manifest's configuration was edited: it no longer matches its fingerprint")
    plan = m.shard_plan(str(ws.manifest_path))
    try:
        planned_rows = ws.plan_rows()
    except StateError as exc:
        problems.append(str(exc))
        planned_rows = plan.total_rows
    if planned_rows != plan.total_rows:
        problems.append(f"plan.parquet holds {planned_rows} rows, the manifest's plan {plan.total_rows}")
    bad, edited, foreign = [], [], []
    tokens = 0
    for s in plan.shards:
        if not ws.is_complete(s, m.config_fingerprint, thorough=True):
            bad.append(s.name)
            continue
        rec = ws.record(s) or {}
        facts = ws.shard_facts(s)
        tokens += int(rec.get("tokens", 0))
        if facts is None:
            continue  # a shard of version 0.1: its checksum is all there is
        if facts.get("config_fingerprint") != m.config_fingerprint:
            foreign.append(s.name)
        if any(rec.get(k) != facts.get(k) for k in RECORD_FACTS if k in facts):
            edited.append(s.name)
    checks["shards"] = {"total": len(plan.shards), "verified": len(plan.shards) - len(bad)}
    if bad:
        problems.append(f"{len(bad)} shards missing or failing their checksum (first: {bad[0]})")
    if foreign:
        problems.append(f"{len(foreign)} shards were made with another configuration than the manifest's "
                        f"(first: {foreign[0]}): the manifest was edited")
    if edited:
        problems.append(f"{len(edited)} completion records disagree with their shard files (first: {edited[0]}): "
                        "a record was edited")
    if m.result is not None:
        checks["rows"] = m.result.rows
        checks["dimensions"] = m.result.dimensions
        want = m.config.get("dimensions")
        if want and m.result.dimensions != want:
            problems.append(f"the manifest asks for {want} dimensions, the vectors have {m.result.dimensions}")
        if m.embedder and m.embedder.get("dimensions") not in (None, m.result.dimensions):
            problems.append(f"the manifest's embedder made {m.embedder.get('dimensions')}-d vectors, the result "
                            f"holds {m.result.dimensions}")
        if not bad and m.result.tokens != tokens:
            problems.append(f"the manifest counts {m.result.tokens} tokens, the completion records {tokens}")
    for sink in sinks:
        found = sink.verify()
        problems += [f"{sink.name}: {p}" if sink.name != "faiss" else p for p in found.problems]
        checks |= found.checks if sink.name == "faiss" else {sink.name: found.checks}
    return {"ok": not problems, "problems": problems, "checks": checks}


def finalize(ws: Workspace, sinks: Sequence[BuiltOutput]) -> dict[str, Any]:
    """Build every sink's outputs from the complete shards; mark the manifest complete."""
    m = ws.manifest()
    plan = m.shard_plan(str(ws.manifest_path))
    missing = [s.name for s in plan.shards if not ws.is_complete(s, m.config_fingerprint, thorough=True)]
    if missing:
        raise StateError(f"{ws.out}: {len(missing)} of {len(plan.shards)} shards are not done (first: {missing[0]})",
                         hint="run the remaining workers (or `jina-migrate run`) first")
    results = {sink.name: sink.finalize() for sink in sinks}
    m = ws.manifest()
    tokens = sum(int((ws.record(s) or {}).get("tokens", 0)) for s in plan.shards)
    summary: dict[str, Any] = {}
    sink_info = []
    for name, res in results.items():
        if name == "faiss":
            m.outputs = {k: OutputFile(**v) for k, v in res.outputs.items()}
            info = res.info
            m.result = Result(rows=info["rows"], documents=plan.total_rows, chunked=info["chunked"],
                              dimensions=info["dimensions"], index_type=info["index_type"], tokens=tokens)
            summary |= {"embeddings": str(ws.out / "embeddings.parquet"), "index": str(ws.out / "index.faiss"),
                        "id_map": str(ws.out / "id_map.parquet"), "rows": info["rows"],
                        "dimensions": info["dimensions"]}
        else:
            sink_info.append({"name": name} | res.info)
    if sink_info:
        m.destinations = {i["name"]: i for i in sink_info}
        summary["destinations"] = sink_info
    m.state = "complete"
    ws.write_manifest(m)
    summary["stale_shards_removed"] = ws.remove_stale(plan)
    ws.clean_temp_files()  # every shard is done, so no temp file is in flight
    return summary
