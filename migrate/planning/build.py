"""``build_plan``: read, map, count, predict; the plan as a JSON-ready dict (``PLAN_SCHEMA``).

The stages, each in its own module: sources (``sources.read_sources``), source and target
models (``choice``), settings with reasons and findings (``mapping.map_v2_to_v3``), token
counts (``counting``), requests, time and cost (``pricing``), storage (``storage``),
local calibration (``calibration``), findings summary (``findings``), identity (``identity``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import numpy as np

from migrate import __version__
from migrate.models import MAX_TOKENS, V3_MATRYOSHKA_DIMS
from migrate.planning.backends import api_spec, local_spec
from migrate.planning.calibration import calibrate_local, open_timed
from migrate.planning.choice import LocalTarget, open_local_target, resolve_source
from migrate.planning.counting import count_tokens
from migrate.planning.findings import summary
from migrate.planning.identity import plan_hash
from migrate.planning.mapping import Finding, Mapping, TokenFacts, map_v2_to_v3
from migrate.planning.options import PlanOptions
from migrate.planning.pricing import cost, evaluation_cost, plan_requests
from migrate.planning.schema import SCHEMA_VERSION
from migrate.planning.sources import PlanSources, read_sources
from migrate.planning.storage import storage_section


def build_plan(opts: PlanOptions) -> dict[str, Any]:
    """The plan as a JSON-ready dict (see ``PLAN_SCHEMA``)."""
    opts.validate()
    src = read_sources(opts)
    model = opts.local_model if opts.runs_local_model else None
    local = open_local_target(model) if model else None
    try:
        return _build(opts, src, local)
    finally:
        if local is not None:
            local.close()


def _map(opts: PlanOptions, src: PlanSources, local: LocalTarget | None, source, tokens: TokenFacts | None) -> Mapping:
    return map_v2_to_v3(source, use_case=opts.use_case, task=opts.task, dimensions=opts.dimensions,
                        late_chunking=opts.late_chunking, truncate=opts.truncate,
                        deployment=opts.resolved_deployment,  # type: ignore[arg-type]
                        commercial=opts.commercial, index_dim=src.index_dim, tokens=tokens,
                        target=local.model if local else None, prefixes=local.prefixes if local else None)


def _build(opts: PlanOptions, src: PlanSources, local: LocalTarget | None) -> dict[str, Any]:
    source, source_findings, source_why = resolve_source(opts.from_model, src.index_dim)
    # the task decides the prefix, so map once without token facts, then count, then map again
    first = _map(opts, src, local, source, None)
    target = first.target
    counted = count_tokens(opts, src.texts, target, first.document_prefix if opts.bill_prefix else "", local)
    c = counted.count
    mapping = _map(opts, src, local, source, TokenFacts(c.n_over_limit, c.max_tokens, c.over_limit_exact))

    findings: list[Finding] = src.findings + source_findings + list(mapping.findings)
    if c.method == "estimate":
        findings.append(Finding("tokens-estimated", "info",
                                f"no {target.tokenizer} tokenizer here: token counts are estimates "
                                f"(+-{c.error_bound_rel:.0%})",
                                "pass --tokenizer PATH/tokenizer.json for exact counts"))

    limit = target.max_tokens or MAX_TOKENS
    billed_per_doc = np.minimum(counted.per_doc, limit) if opts.truncate else counted.per_doc
    reqs, requests, api = plan_requests(opts, billed_per_doc, c.billed)

    # shards: the same plan ``run`` builds (row ranges keyed by ids and text hashes)
    from migrate.shards import ShardPlan

    shard_plan = ShardPlan.build(src.ids, src.hashes, opts.shard_size)
    shard_rows = [{"name": s.name, "start": s.start, "stop": s.stop,
                   "tokens": int(billed_per_doc[s.start:s.stop].sum()), "requests": int(r)}
                  for s, r in zip(shard_plan.shards, reqs.tolist())]

    if target.generation == "v3":
        dims_list = sorted(set(V3_MATRYOSHKA_DIMS) | {mapping.dimensions}, reverse=True)
    else:
        dims_list = sorted({target.dimensions, mapping.dimensions}, reverse=True)
    plan: dict[str, Any] = {
        "tool": "jina-migrate", "kind": "plan", "schema_version": SCHEMA_VERSION, "version": __version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sources": {"fingerprint": src.fingerprint, "documents": len(src), "old_index": src.old_index,
                    "source_model_from": source_why, "validation": src.validation},
        "models": {"source": source.as_dict(), "target": target.as_dict()},
        "mapping": mapping.as_dict(),
        "tokens": c.as_dict() | {"prefix_billed": opts.bill_prefix,
                                 "document_prefix_tokens": counted.prefix_tokens(mapping.document_prefix),
                                 "note": "billed = tokens sent incl. <s></s>; the task instruction is "
                                         + ("included" if opts.bill_prefix else
                                            "not counted (whether Jina bills it is unconfirmed; "
                                            "add document_prefix_tokens per document if it does)")},
        "requests": requests,
        "cost": cost(c, opts.price_per_million),
        "evaluation": evaluation_cost(billed_per_doc, opts.price_per_million),
        "api_time": api,
        "local_time": None,
        "storage": storage_section(src.ids, mapping.dimensions, dims_list, precision=opts.precision,
                                   rescore=opts.rescore),
        "destinations": [],
        "shards": {"shard_size": opts.shard_size, "count": len(shard_plan.shards), "list": shard_rows},
        "findings": [f.as_dict() for f in findings],
        "summary": summary(findings),
        "run_config": _run_config(opts, mapping),
        "measured": None,
    }
    if opts.sink:
        plan["destinations"], sink_findings = _destinations(opts, src, plan)
        if sink_findings:
            plan["findings"] += [f.as_dict() for f in sink_findings]
            plan["summary"] = summary(findings + sink_findings)
    if opts.local_model and opts.calibrate:
        cal = _calibrate(opts, src, mapping, local)
        plan["measured"] = {"local_calibration": cal.pop("measured")}
        plan["local_time"] = cal
    plan["plan_sha256"] = plan_hash(plan)
    return plan


def _destinations(opts: PlanOptions, src: PlanSources, plan: dict[str, Any]) -> tuple[list[dict[str, Any]], list[Finding]]:
    """Each ``--sink``'s estimated size, with what it will hold: the source collection's payload, or the text."""
    from migrate.planning.destinations import destination_section

    n = len(src)
    from_collection = src.old_index is not None and "collection" in src.old_index
    if from_collection:
        payload = float(src.payload_bytes or 0.0)
    else:  # a documents file: the destination's payload is the text
        payload = (plan["tokens"].get("chars") or 0) / n + 4 if n else 0.0
    index = {"index_type": opts.index_type, "hnsw_m": opts.hnsw_m, "ef_construction": opts.hnsw_ef_construction,
             "ivf_nlist": opts.ivf_nlist}
    documents = None  # the documents the destination's payload comes from (checked against its limits)
    if not from_collection and (opts.documents or opts.old_index) is not None:
        from migrate.sources import DocumentSpec

        documents = DocumentSpec(str(opts.documents or opts.old_index), opts.id_field, opts.text_field,
                                 opts.title_field, faiss_id_field=opts.faiss_id_field, delimiter=opts.delimiter)
    return destination_section(list(opts.sink), rows=n, dims=plan["mapping"]["dimensions"],
                               id_bytes=plan["storage"]["id_bytes_mean"], payload_bytes=payload, index=index,
                               source=str(opts.old_index) if from_collection else None, documents=documents,
                               precision=opts.precision)


def _run_config(opts: PlanOptions, mapping: Mapping) -> dict[str, Any]:
    """The ``RunConfig`` fields ``run --plan`` applies (``docs`` is None when the old index's collection holds the text)."""
    model = local_spec(opts.local_model) if opts.runs_local_model and opts.local_model else api_spec(mapping.target.name)
    out: dict[str, Any] = {
        "docs": str(opts.documents) if opts.documents is not None else None,
        "old_index": str(opts.old_index) if opts.old_index else None,
        "id_map": str(opts.id_map) if opts.id_map else None, "id_field": opts.id_field, "text_field": opts.text_field,
        "title_field": opts.title_field, "model": model,
        "task": mapping.document_task, "dimensions": mapping.dimensions, "late_chunking": mapping.late_chunking,
        "truncate": mapping.truncate, "shard_size": opts.shard_size,
    }
    for key in ("tier", "rpm", "tpm", "concurrency", "price_per_million"):
        if getattr(opts, key) is not None:
            out[key] = getattr(opts, key)
    for key in ("on_missing", "on_empty"):
        if getattr(opts, key) != "fail":
            out[key] = getattr(opts, key)
    if opts.sink:
        out["sink"] = list(opts.sink)
    for key in ("index_type", "hnsw_m", "hnsw_ef_construction", "ivf_nlist"):
        if getattr(opts, key) is not None:
            out[key] = getattr(opts, key)
    if opts.precision != "float32":  # pinned by the plan, like every setting that changes the vectors
        out["precision"] = opts.precision
    if opts.rescore:
        out["rescore"] = True
    return out


def _calibrate(opts: PlanOptions, src: PlanSources, mapping: Mapping, local: LocalTarget | None) -> dict[str, Any]:
    """Time the local model on a sample (the one already loaded when it is the model that runs)."""
    seed, seconds, max_docs = opts.seed, opts.calibration_seconds, opts.calibration_max_docs
    if local is not None:
        return calibrate_local(local.embedder, local.spec, src.texts, mapping.document_task, seed=seed,
                               seconds=seconds, max_docs=max_docs, load_seconds=local.load_seconds,
                               load_cpu_seconds=local.load_cpu_seconds)
    assert opts.local_model
    spec = local_spec(opts.local_model)
    emb, load_s, load_cpu = open_timed(spec)
    try:
        return calibrate_local(emb, spec, src.texts, mapping.document_task, seed=seed, seconds=seconds,
                               max_docs=max_docs, load_seconds=load_s, load_cpu_seconds=load_cpu)
    finally:
        emb.close()
