"""Dry-run planning: the whole migration priced and checked before anything is spent.

``build_plan(PlanOptions)`` reads the sources (never a key, never the network), maps the
v2 set-up to v3 (``migrate.models``), counts tokens with the target tokenizer
(``migrate.tokens``) and predicts requests, tokens, cost, API wall time per rate-limit
tier, local time (from a short measured calibration when a local model is given),
storage per dimension and number format, and the shard plan. The result is a plain
dict (schema ``PLAN_SCHEMA``, version ``SCHEMA_VERSION``) that renders as Markdown
(``render_markdown``) or rich tables (``render_terminal``).

Reproducible: everything except ``created_at`` and the ``measured`` section (timings of
the local calibration, which are measurements) is a function of the inputs; the
sampling is seeded. ``plan_sha256`` hashes exactly that deterministic part.

``run --plan plan.json`` executes a reviewed plan: ``load_plan`` reads and checks it and
``check_plan_matches`` refuses when a source file changed since (size or sha256).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from migrate import __version__
from migrate.errors import ConfigError, GateFailed, InputError, StateError
from migrate.models import (MAX_TOKENS, SEVERITIES, V3_MATRYOSHKA_DIMS, Finding, ModelInfo, TokenFacts, get_model,
                            map_v2_to_v3, models_with_dims)
from migrate.tokens import (DEFAULT_SAMPLE_SIZE, FULL_COUNT_MAX_CHARS, TokenCount, count_corpus, count_exact,
                            find_tokenizer, load_tokenizer)

SCHEMA_VERSION = 1
MAX_INPUTS_PER_REQUEST = 2048  # jina-spec 1.5

#: Rate-limit presets, the same numbers as ``migrate.embed.ratelimit.TIERS`` (jina-spec 1.5).
TIERS: dict[str, dict[str, int]] = {
    "conservative": {"rpm": 100, "tpm": 100_000, "concurrency": 2},
    "free": {"rpm": 500, "tpm": 1_000_000, "concurrency": 5},
    "tier1": {"rpm": 500, "tpm": 10_000_000, "concurrency": 50},
    "tier2": {"rpm": 5_000, "tpm": 100_000_000, "concurrency": 500},
}
DEFAULT_TIER = "conservative"
STORAGE_FORMATS = {"float32": 4.0, "float16": 2.0, "binary": 1.0 / 8.0}


def _tiers() -> dict[str, dict[str, int]]:
    try:  # prefer the client's own presets when it is installed, so the two never disagree
        from migrate.embed.ratelimit import TIERS as CLIENT_TIERS

        return {k: {"rpm": v.rpm, "tpm": v.tpm, "concurrency": v.concurrency} for k, v in CLIENT_TIERS.items()}
    except Exception:  # noqa: BLE001
        return TIERS


@dataclass
class PlanOptions:
    """Everything ``build_plan`` reads. Paths and numbers only: no key, no client."""

    documents: Path
    id_field: str | None = None
    text_field: str | None = None
    title_field: str | None = None
    old_index: Path | None = None
    id_map: Path | None = None
    from_model: str | None = None
    use_case: str | None = None
    task: str | None = None
    dimensions: int | None = None
    late_chunking: bool = False
    truncate: bool = False
    deployment: str = "api"  # api | local
    commercial: bool = True
    tokenizer: Path | None = None
    estimate_only: bool = False
    sample_size: int = DEFAULT_SAMPLE_SIZE
    full_max_chars: int = FULL_COUNT_MAX_CHARS
    seed: int = 0
    price_per_million: float | None = None
    tier: str | None = None
    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None
    inputs_per_request: int = MAX_INPUTS_PER_REQUEST
    request_tokens: int | None = None
    shard_size: int = 1000
    local_model: str | None = None  # embedder spec or folder for the calibration run
    calibrate: bool = True  # time a sample with local_model (False: only record the model in run_config)
    calibration_seconds: float = 20.0
    calibration_max_docs: int = 2048
    bill_prefix: bool = False

    def validate(self) -> None:
        if self.deployment not in ("api", "local"):
            raise ConfigError(f"--deployment {self.deployment!r}", hint="use api or local")
        if not 1 <= self.inputs_per_request <= MAX_INPUTS_PER_REQUEST:
            raise ConfigError(f"--inputs-per-request must be 1..{MAX_INPUTS_PER_REQUEST}")
        if self.shard_size < 1:
            raise ConfigError("--shard-size must be at least 1")
        if self.sample_size < 10:
            raise ConfigError("--sample-size must be at least 10")
        if self.price_per_million is not None and self.price_per_million < 0:
            raise ConfigError("--price-per-million must not be negative")
        if self.tier is not None and self.tier not in _tiers():
            raise ConfigError(f"unknown --tier {self.tier!r}", hint=f"choose one of {', '.join(_tiers())}")


# ------------------------------------------------------------------------------------------ helpers

def fingerprint(paths: list[Path | None]) -> list[dict[str, Any]]:
    """Path, size and sha256 of each source file (the same function ``run`` pins)."""
    from migrate.shards import fingerprint_sources

    return fingerprint_sources(paths)


def _read_sources(opts: PlanOptions):
    from migrate.sources import open_documents, open_old_index

    docs = open_documents(opts.documents, id_field=opts.id_field, text_field=opts.text_field,
                          title_field=opts.title_field)
    old = None
    if opts.old_index is not None:
        old = open_old_index(opts.old_index, opts.id_map, reconstruct=False)
    return docs, old


def _source_model(opts: PlanOptions, index_dim: int | None) -> tuple[ModelInfo, list[Finding], str]:
    if opts.from_model:
        return get_model(opts.from_model), [], "--from-model"
    if index_dim is not None:
        cands = models_with_dims(index_dim)
        if len(cands) == 1:
            return get_model(cands[0]), [], f"inferred from the index's {index_dim} dims"
    m = get_model("jina-embeddings-v2-base-en")
    note = Finding("source-model-assumed", "warning",
                   f"the v2 model was not given; assuming {m.name}",
                   "pass --from-model (small-en, base-en, base-de, base-es, base-zh, base-code)")
    return m, [note], "assumed"


def _requests(tokens: np.ndarray, shard_size: int, max_inputs: int, budget: int, late: bool) -> np.ndarray:
    """Requests per shard, packed as the API client packs them (``jina_tokens.pack_requests``):
    in order, a request closes when the next input would pass ``max_inputs`` or ``budget``
    tokens. With late chunking every document (all of its chunks) is a request of its own."""
    out = []
    for start in range(0, len(tokens), shard_size):
        t = tokens[start:start + shard_size]
        if late:
            out.append(len(t))
            continue
        reqs, count, used = 0, 0, 0
        for x in t.tolist():
            if count and (count >= max_inputs or used + x > budget):
                reqs += 1
                count, used = 0, 0
            count += 1
            used += x
        out.append(reqs + (1 if count else 0))
    return np.asarray(out, dtype=np.int64)


def request_budget(limits: dict[str, int]) -> int:
    """The client's default tokens per request for these limits (``jina_api.request_token_budget``)."""
    try:
        from migrate.embed.jina_api import request_token_budget
        from migrate.embed.ratelimit import RateLimits

        return int(request_token_budget(RateLimits(rpm=limits["rpm"], tpm=limits["tpm"],
                                                   concurrency=limits["concurrency"])))
    except Exception:  # noqa: BLE001 - client not installed: the same rule, written out
        return int(min(131_072, max(512, limits["tpm"] / 60.0 * 0.25, 2.0 * limits["tpm"] / limits["rpm"])))


def _api_time(requests: int, tokens: int, limits: dict[str, int]) -> dict[str, Any]:
    by_req = requests / limits["rpm"] * 60.0
    by_tok = tokens / limits["tpm"] * 60.0
    return {"rpm": limits["rpm"], "tpm": limits["tpm"], "concurrency": limits["concurrency"],
            "seconds": round(max(by_req, by_tok), 1), "bound_by": "tokens per minute" if by_tok >= by_req else "requests per minute"}


def _storage(n: int, dims_list: list[int]) -> list[dict[str, Any]]:
    rows = []
    for d in dims_list:
        for fmt, per in STORAGE_FORMATS.items():
            vec = n * d * per
            rows.append({"dimensions": d, "format": fmt, "vectors_bytes": int(math.ceil(vec)),
                         "faiss_index_bytes": int(math.ceil(vec + n * 8)),  # IndexIDMap2: vectors + int64 ids
                         "bytes_per_vector": round(d * per, 3)})
    return rows


def _output_bytes(n: int, dims: int, id_bytes: float) -> dict[str, int]:
    """Disk used by ``run``'s float32 output: shards, embeddings.parquet, index.faiss, id_map."""
    vec = n * dims * 4
    row_meta = id_bytes + 64 + 8  # id, text_sha256 (hex), offsets
    shards = int(vec + n * row_meta)
    emb = int(vec + n * (row_meta + 8))
    index = int(vec + n * 8)
    id_map = int(n * (id_bytes + 8 + 4))
    return {"shards": shards, "embeddings_parquet": emb, "index_faiss": index, "id_map_parquet": id_map,
            "total": shards + emb + index + id_map}


def _local_model_path(spec: str) -> str:
    """An embedder spec: ``local:...`` / ``jina-api:...`` as given, anything else is a local folder or name."""
    from migrate.embed.registry import backends

    return spec if spec.partition(":")[0] in backends() else f"local:{spec}"


def calibrate_local(spec: str, texts: list[str], task: str, *, dimensions: int | None, seed: int,
                    seconds: float, max_docs: int) -> dict[str, Any]:
    """Time a short local embed of a seeded random sample; extrapolate by the model's tokens.

    Returns the deterministic part (sample, tokens) and the measured part (seconds).
    Tokens are the model's own count capped at its input limit, since that is what it
    computes on; the sample grows (doubling) until ``seconds`` of embedding were timed.
    """
    from migrate.embed.registry import get_embedder

    spec = _local_model_path(spec)
    t0, c0 = time.perf_counter(), time.process_time()
    emb = get_embedder(spec, dimensions=dimensions) if dimensions else get_embedder(spec)
    load_s, load_cpu = time.perf_counter() - t0, time.process_time() - c0
    try:
        info = emb.info()
        cap = info.max_tokens or 10 ** 9
        n = len(texts)
        rng = np.random.default_rng(seed)
        order = rng.permutation(n)
        warm = min(8, n)
        emb.embed([texts[int(i)] for i in order[:warm]], task=task)  # warm-up (lazy init, allocator), not timed
        all_tokens = np.minimum(np.asarray(emb.count_tokens(texts, task=task), dtype=np.int64), cap)
        # timed calls of 32, 64, 128, ... documents, so batches are as full as in a real run
        timed = order[warm:] if n > warm else order
        used, spent, cpu, k = 0, 0.0, 0.0, 32
        limit = min(len(timed), max_docs)
        while used < limit:
            pick = timed[used:min(used + k, limit)]
            t1, c1 = time.perf_counter(), time.process_time()
            emb.embed([texts[int(i)] for i in pick], task=task)
            spent += time.perf_counter() - t1
            cpu += time.process_time() - c1
            used += len(pick)
            if spent >= seconds:
                break
            k *= 2
        order = timed
        sample_tokens = int(all_tokens[order[:used]].sum())
        total_tokens = int(all_tokens.sum())
        rate = sample_tokens / spent if spent > 0 else float("inf")
        predicted = total_tokens / rate + load_s
        predicted_cpu = total_tokens * (cpu / max(sample_tokens, 1)) + load_cpu
        return {
            "model": spec, "backend": info.backend, "model_max_tokens": info.max_tokens,
            "corpus_model_tokens": total_tokens, "seed": seed,
            "method": "time a seeded random sample (after a warm-up), extrapolate by the model's own token count, "
                      "add the measured load time",
            "measured": {"sample_docs": used, "sample_tokens": sample_tokens, "load_seconds": round(load_s, 2),
                         "sample_seconds": round(spent, 2), "tokens_per_second": round(rate, 1),
                         "predicted_seconds": round(predicted, 1),
                         # CPU seconds of this process: less sensitive to other work on a shared machine
                         "sample_cpu_seconds": round(cpu, 2), "predicted_cpu_seconds": round(predicted_cpu, 1)},
        }
    finally:
        emb.close()


# ------------------------------------------------------------------------------------------ build

def build_plan(opts: PlanOptions) -> dict[str, Any]:
    """The plan as a JSON-ready dict (see ``PLAN_SCHEMA``)."""
    opts.validate()
    docs, old = _read_sources(opts)
    ids, texts = docs.ids, docs.texts
    n = len(texts)
    if n == 0:
        raise InputError(f"{opts.documents}: no documents")
    index_dim = old.dim if old is not None else (int(docs.vectors().shape[1]) if docs.has_vectors else None)
    source, pre_findings, source_why = _source_model(opts, index_dim)

    # the task decides the prefix, so map once without token facts, then count, then map again
    first = map_v2_to_v3(source, use_case=opts.use_case, task=opts.task, dimensions=opts.dimensions,
                         late_chunking=opts.late_chunking, truncate=opts.truncate, deployment=opts.deployment,
                         commercial=opts.commercial, index_dim=index_dim)
    target = first.target
    ref = None if opts.estimate_only else find_tokenizer(target, opts.tokenizer)
    tok = load_tokenizer(ref.path) if ref else None
    prefix = first.document_prefix if opts.bill_prefix else ""
    counted = count_corpus(texts, tokenizer=tok, tokenizer_ref=ref, family=target.tokenizer_family, prefix=prefix,
                           truncate=opts.truncate, full_max_chars=opts.full_max_chars,
                           sample_size=opts.sample_size, seed=opts.seed, keep_per_doc=True)
    mapping = map_v2_to_v3(source, use_case=opts.use_case, task=opts.task, dimensions=opts.dimensions,
                           late_chunking=opts.late_chunking, truncate=opts.truncate, deployment=opts.deployment,
                           commercial=opts.commercial, index_dim=index_dim,
                           tokens=TokenFacts(counted.n_over_limit, counted.max_tokens, counted.over_limit_exact))
    prefix_tokens = int(count_exact(tok, [""], mapping.document_prefix)[0] - count_exact(tok, [""])[0]) if tok else None

    findings = pre_findings + list(mapping.findings)
    if counted.method == "estimate":
        findings.append(Finding("tokens-estimated", "info",
                                f"no {target.tokenizer} tokenizer here: token counts are estimates "
                                f"(+-{counted.error_bound_rel:.0%})",
                                "pass --tokenizer PATH/tokenizer.json for exact counts"))
    if old is not None and len(old) != n:
        findings.append(Finding("index-size-differs", "warning",
                                f"the old index holds {len(old)} vectors for {n} documents",
                                "check that documents and index are from the same snapshot"))

    # ---- per-document tokens for request packing (exact, or scaled estimates)
    per_doc = _per_doc_tokens(counted, texts, target.tokenizer_family)
    billed_per_doc = np.minimum(per_doc, MAX_TOKENS) if opts.truncate else per_doc
    billed = counted.billed
    tiers = _tiers()
    chosen_name = opts.tier or DEFAULT_TIER
    chosen = dict(tiers[chosen_name])
    for k in ("rpm", "tpm", "concurrency"):
        if getattr(opts, k):
            chosen[k] = int(getattr(opts, k))

    def packed(limits: dict[str, int]) -> tuple[np.ndarray, int]:
        budget = opts.request_tokens or request_budget(limits)
        return _requests(billed_per_doc, opts.shard_size, opts.inputs_per_request, budget, opts.late_chunking), budget

    reqs, budget = packed(chosen)
    n_requests = int(reqs.sum())
    by_tier = {}
    for name, lim in tiers.items():
        r, b = packed(lim)
        by_tier[name] = _api_time(int(r.sum()), billed, lim) | {"requests": int(r.sum()), "request_tokens": b}
    api = {"tier": chosen_name if not any(getattr(opts, k) for k in ("rpm", "tpm", "concurrency")) else f"{chosen_name}+custom",
           "chosen": _api_time(n_requests, billed, chosen) | {"requests": n_requests, "request_tokens": budget},
           "by_tier": by_tier}

    cost = None
    if opts.price_per_million is not None:
        p = opts.price_per_million
        cost = {"price_per_million": p, "total": round(billed / 1e6 * p, 4),
                "low": round(_billed_bound(counted, "low") / 1e6 * p, 4),
                "high": round(_billed_bound(counted, "high") / 1e6 * p, 4)}

    # ---- shards (the same plan ``run`` builds: row ranges keyed by ids and text hashes)
    from migrate.shards import ShardPlan, text_hash

    hashes = [text_hash(t) for t in texts]
    shard_plan = ShardPlan.build(ids, hashes, opts.shard_size)
    shard_rows = []
    for s, r in zip(shard_plan.shards, reqs.tolist()):
        shard_rows.append({"name": s.name, "start": s.start, "stop": s.stop,
                           "tokens": int(billed_per_doc[s.start:s.stop].sum()), "requests": int(r)})

    id_bytes = float(np.mean([len(i.encode()) for i in ids])) if ids else 0.0
    dims_list = sorted(set(V3_MATRYOSHKA_DIMS) | {mapping.dimensions}, reverse=True)
    sources = fingerprint([opts.documents, opts.old_index, opts.id_map])

    run_config = {
        "docs": str(opts.documents), "old_index": str(opts.old_index) if opts.old_index else None,
        "id_map": str(opts.id_map) if opts.id_map else None, "id_field": opts.id_field, "text_field": opts.text_field,
        "title_field": opts.title_field,
        "model": (_local_model_path(opts.local_model) if opts.deployment == "local" and opts.local_model
                  else f"jina-api:{target.name}"),
        "task": mapping.document_task, "dimensions": mapping.dimensions, "late_chunking": mapping.late_chunking,
        "truncate": mapping.truncate, "shard_size": opts.shard_size,
    }
    for key in ("tier", "rpm", "tpm", "concurrency", "price_per_million"):
        if getattr(opts, key) is not None:
            run_config[key] = getattr(opts, key)
    plan: dict[str, Any] = {
        "tool": "jina-migrate", "kind": "plan", "schema_version": SCHEMA_VERSION, "version": __version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sources": {"fingerprint": sources, "documents": n, "old_index": _old_summary(old),
                    "source_model_from": source_why},
        "models": {"source": source.as_dict(), "target": target.as_dict()},
        "mapping": mapping.as_dict(),
        "tokens": counted.as_dict() | {"prefix_billed": opts.bill_prefix, "document_prefix_tokens": prefix_tokens,
                                       "note": "billed = tokens sent incl. <s></s>; the task instruction is "
                                               + ("included" if opts.bill_prefix else
                                                  "not counted (whether Jina bills it is unconfirmed; "
                                                  "add document_prefix_tokens per document if it does)")},
        "requests": {"total": n_requests, "inputs_per_request": opts.inputs_per_request,
                     "request_tokens": budget, "late_chunking": opts.late_chunking,
                     "packing": "in order per shard, closed at inputs_per_request inputs or request_tokens tokens "
                                "(late chunking: one request per document), as the API client packs"},
        "cost": cost,
        "api_time": api,
        "local_time": None,
        "storage": {"documents": n, "id_bytes_mean": round(id_bytes, 1),
                    "options": _storage(n, dims_list),
                    "run_output": _output_bytes(n, mapping.dimensions, id_bytes) | {"dimensions": mapping.dimensions}},
        "shards": {"shard_size": opts.shard_size, "count": len(shard_plan.shards), "list": shard_rows},
        "findings": [f.as_dict() for f in findings],
        "summary": {},
        "run_config": run_config,
        "measured": None,
    }
    if opts.local_model and opts.calibrate:
        cal = calibrate_local(opts.local_model, texts, mapping.document_task, dimensions=None, seed=opts.seed,
                              seconds=opts.calibration_seconds, max_docs=opts.calibration_max_docs)
        measured = cal.pop("measured")
        plan["local_time"] = cal
        plan["measured"] = {"local_calibration": measured}
    worst = max((SEVERITIES.index(f.severity) for f in findings), default=-1)
    plan["summary"] = {"worst_severity": SEVERITIES[worst] if worst >= 0 else None,
                       "counts": {s: sum(1 for f in findings if f.severity == s) for s in SEVERITIES}}
    plan["plan_sha256"] = plan_hash(plan)
    return plan


def _per_doc_tokens(counted: TokenCount, texts: list[str], family: str) -> np.ndarray:
    if counted.per_doc is not None:
        return counted.per_doc
    from migrate.tokens import CHAR_MODELS

    pred = CHAR_MODELS[family].predict(texts) if family in CHAR_MODELS else np.array([len(t) / 4 for t in texts])
    scale = counted.total / max(float(pred.sum()), 1.0)
    return np.maximum(np.rint(pred * scale), 1).astype(np.int64)


def _billed_bound(c: TokenCount, which: str) -> float:
    ratio = c.billed / c.total if c.total else 1.0
    return (c.low if which == "low" else c.high) * ratio


def _old_summary(old) -> dict[str, Any] | None:
    if old is None:
        return None
    return {"path": str(old.path), "vectors": len(old), "dim": old.dim, "metric": old.metric, "kind": old.kind}


# ------------------------------------------------------------------------------------------ identity

_VOLATILE = ("created_at", "measured", "plan_sha256")


def deterministic_part(plan: dict[str, Any]) -> dict[str, Any]:
    """The plan without timestamps and measurements: equal inputs give equal parts."""
    return {k: v for k, v in plan.items() if k not in _VOLATILE}


def plan_hash(plan: dict[str, Any]) -> str:
    from migrate.shards import canonical_hash

    return canonical_hash(deterministic_part(plan))


def load_plan(path: str | Path) -> dict[str, Any]:
    """Read a plan written by ``jina-migrate plan --out``; refuse anything else or an edited plan."""
    p = Path(path)
    try:
        plan = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{p}: plan file not found", hint="write one with `jina-migrate plan ... --out plan.json`") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{p}: not a readable JSON plan ({exc})") from None
    if not isinstance(plan, dict) or plan.get("tool") != "jina-migrate" or plan.get("kind") != "plan":
        raise InputError(f"{p}: not a jina-migrate plan", hint="write one with `jina-migrate plan ... --out plan.json`")
    if plan.get("schema_version") != SCHEMA_VERSION:
        raise InputError(f"{p}: plan schema version {plan.get('schema_version')} (this tool reads {SCHEMA_VERSION})",
                         hint="re-create the plan with this version of jina-migrate")
    if plan.get("plan_sha256") != plan_hash(plan):
        raise StateError(f"{p}: the plan was edited after it was made (plan_sha256 does not match)",
                         hint="re-create the plan and review it again")
    return plan


def check_plan_matches(plan: dict[str, Any], sources_fingerprint: list[dict[str, Any]]) -> None:
    """Raise ``StateError`` unless the sources are byte-for-byte those the plan was made from."""
    planned = plan.get("sources", {}).get("fingerprint", [])
    if len(planned) != len(sources_fingerprint):
        raise StateError(f"the plan covers {len(planned)} source file(s), this run reads {len(sources_fingerprint)}",
                         hint="run with the same --docs/--old-index/--id-map, or make a new plan")
    for a, b in zip(planned, sources_fingerprint):
        if a.get("size") != b.get("size") or a.get("sha256") != b.get("sha256"):
            raise StateError(f"{b.get('path')} changed since the plan was made "
                             f"(planned {a.get('size')} bytes sha256 {str(a.get('sha256'))[:12]}, "
                             f"now {b.get('size')} bytes sha256 {str(b.get('sha256'))[:12]})",
                             hint="review a new plan: `jina-migrate plan ... --out plan.json`")


def gate(plan: dict[str, Any], fail_on: str) -> None:
    """CI policy: raise ``GateFailed`` when a finding is at least ``fail_on`` (warning|error|never)."""
    if fail_on == "never":
        return
    if fail_on not in ("warning", "error"):
        raise ConfigError(f"--fail-on {fail_on!r}", hint="use warning, error or never")
    level = SEVERITIES.index(fail_on)
    bad = [f for f in plan["findings"] if SEVERITIES.index(f["severity"]) >= level]
    if bad:
        raise GateFailed(f"plan has {len(bad)} finding(s) at or above {fail_on}: "
                         + "; ".join(f"{f['code']}" for f in bad))


# ------------------------------------------------------------------------------------------ rendering

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
        return (f"{t['total']:,} (sample of {t['sample_size']:,}, 95% CI {t['low']:,} - {t['high']:,})")
    return f"{t['total']:,} (ESTIMATE from characters, +-{t['error_bound_rel']:.0%}: {t['low']:,} - {t['high']:,})"


def summary_rows(plan: dict[str, Any]) -> list[tuple[str, str]]:
    m, t = plan["mapping"], plan["tokens"]
    rows = [
        ("documents", f"{plan['sources']['documents']:,}"),
        ("from", f"{m['source_model']} ({plan['sources']['source_model_from']})"),
        ("to", f"{m['target_model']}, task {m['document_task']} (queries: {m['query_task']}), {m['dimensions']} dims"),
        ("tokenizer", (t["tokenizer"] or {}).get("label", "none (character model)")),
        ("tokens", _token_line(t)),
        ("tokens billed", f"{t['billed']:,}" + (" (truncated at 8192)" if m["truncate"] else "")),
        ("documents > 8192 tokens", f"{t['n_over_limit']:,}" + ("" if t["over_limit_exact"] else " (estimated)")),
        ("API requests", f"{plan['requests']['total']:,}"),
    ]
    c = plan["cost"]
    rows.append(("cost", f"{c['total']:.2f} ({c['low']:.2f} - {c['high']:.2f}) at {c['price_per_million']}/M tokens"
                 if c else "no price given (--price-per-million)"))
    a = plan["api_time"]["chosen"]
    rows.append((f"API time ({plan['api_time']['tier']})", f"{human_seconds(a['seconds'])} (bound by {a['bound_by']})"))
    if plan.get("local_time"):
        meas = (plan.get("measured") or {}).get("local_calibration", {})
        rows.append(("local time", f"{human_seconds(meas.get('predicted_seconds'))} "
                     f"({meas.get('tokens_per_second')} tok/s measured on {meas.get('sample_docs')} docs)"))
    o = plan["storage"]["run_output"]
    rows.append(("run output on disk", f"{human_bytes(o['total'])} ({o['dimensions']} dims float32)"))
    rows.append(("shards", f"{plan['shards']['count']} of {plan['shards']['shard_size']} documents"))
    return rows


def render_markdown(plan: dict[str, Any]) -> str:
    """Markdown for a pull request or ``$GITHUB_STEP_SUMMARY``."""
    out = ["## jina-migrate plan", "", "| | |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in summary_rows(plan)]
    out += ["", "### Findings", ""]
    if plan["findings"]:
        out += ["| severity | code | message | fix |", "|---|---|---|---|"]
        out += [f"| {f['severity']} | `{f['code']}` | {f['message']} | {f['fix']} |" for f in plan["findings"]]
    else:
        out.append("none")
    out += ["", "### Settings and reasons", "", "| setting | value | why |", "|---|---|---|"]
    out += [f"| {r['setting']} | `{r['value']}` | {r['why']} |" for r in plan["mapping"]["reasons"]]
    out += ["", "### API wall time by rate-limit tier", "", "| tier | RPM | TPM | time | bound by |", "|---|---|---|---|---|"]
    for name, a in plan["api_time"]["by_tier"].items():
        out.append(f"| {name} | {a['rpm']:,} | {a['tpm']:,} | {human_seconds(a['seconds'])} | {a['bound_by']} |")
    out += ["", "### Storage (vectors / FAISS flat index)", "", "| dims | float32 | float16 | binary |", "|---|---|---|---|"]
    by_dim: dict[int, dict[str, int]] = {}
    for r in plan["storage"]["options"]:
        by_dim.setdefault(r["dimensions"], {})[r["format"]] = r["faiss_index_bytes"]
    for d, fm in by_dim.items():
        mark = " (chosen)" if d == plan["mapping"]["dimensions"] else ""
        out.append(f"| {d}{mark} | {human_bytes(fm['float32'])} | {human_bytes(fm['float16'])} | {human_bytes(fm['binary'])} |")
    out += ["", f"plan_sha256 `{plan['plan_sha256'][:16]}`; execute with `jina-migrate run --plan plan.json --out DIR`", ""]
    return "\n".join(out)


def render_terminal(plan: dict[str, Any], console=None) -> None:
    """Rich tables on the terminal."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    t = Table(title="jina-migrate plan", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    for k, v in summary_rows(plan):
        t.add_row(k, v)
    console.print(t)
    if plan["findings"]:
        f = Table(title="findings")
        for col in ("severity", "code", "message", "fix"):
            f.add_column(col, overflow="fold")
        style = {"error": "red", "warning": "yellow", "info": "cyan"}
        for x in plan["findings"]:
            f.add_row(f"[{style[x['severity']]}]{x['severity']}[/]", x["code"], x["message"], x["fix"])
        console.print(f)
    r = Table(title="settings")
    for col in ("setting", "value", "why"):
        r.add_column(col, overflow="fold")
    for x in plan["mapping"]["reasons"]:
        r.add_row(x["setting"], str(x["value"]), x["why"])
    console.print(r)
    a = Table(title="API wall time by tier")
    for col in ("tier", "RPM", "TPM", "time", "bound by"):
        a.add_column(col)
    for name, x in plan["api_time"]["by_tier"].items():
        a.add_row(name, f"{x['rpm']:,}", f"{x['tpm']:,}", human_seconds(x["seconds"]), x["bound_by"])
    console.print(a)
    s = Table(title="storage: vectors + FAISS flat index")
    for col in ("dims", "float32", "float16", "binary"):
        s.add_column(col)
    by_dim: dict[int, dict[str, int]] = {}
    for x in plan["storage"]["options"]:
        by_dim.setdefault(x["dimensions"], {})[x["format"]] = x["faiss_index_bytes"]
    for d, fm in by_dim.items():
        s.add_row(str(d) + (" *" if d == plan["mapping"]["dimensions"] else ""),
                  human_bytes(fm["float32"]), human_bytes(fm["float16"]), human_bytes(fm["binary"]))
    console.print(s)


# ------------------------------------------------------------------------------------------ schema

_FINDING = {"type": "object", "required": ["code", "severity", "message", "fix"],
            "properties": {"code": {"type": "string"}, "severity": {"enum": list(SEVERITIES)},
                           "message": {"type": "string"}, "fix": {"type": "string"}}}
_TIME = {"type": "object", "required": ["rpm", "tpm", "concurrency", "seconds", "bound_by"]}

#: JSON Schema (draft 2020-12) of the plan document. ``jina-migrate plan --schema`` prints it.
PLAN_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "jina-migrate plan",
    "type": "object",
    "required": ["tool", "kind", "schema_version", "version", "created_at", "sources", "models", "mapping", "tokens",
                 "requests", "cost", "api_time", "local_time", "storage", "shards", "findings", "summary",
                 "run_config", "measured", "plan_sha256"],
    "properties": {
        "tool": {"const": "jina-migrate"},
        "kind": {"const": "plan"},
        "schema_version": {"const": SCHEMA_VERSION},
        "version": {"type": "string", "description": "jina-migrate version that wrote the plan"},
        "created_at": {"type": "string", "description": "UTC timestamp; excluded from plan_sha256"},
        "sources": {"type": "object", "required": ["fingerprint", "documents"], "properties": {
            "fingerprint": {"type": "array", "description": "path, size, sha256 of documents, old index, id map",
                            "items": {"type": "object", "required": ["path", "size", "sha256"]}},
            "documents": {"type": "integer"},
            "old_index": {"type": ["object", "null"], "description": "vectors, dim, metric, kind of the v2 index"},
            "source_model_from": {"type": "string", "description": "--from-model, inferred from dims, or assumed"}}},
        "models": {"type": "object", "description": "catalogue entries (migrate.models.ModelInfo) of source and target"},
        "mapping": {"type": "object", "required": ["source_model", "target_model", "document_task", "query_task",
                                                   "dimensions", "late_chunking", "truncate", "reasons", "findings"],
                    "description": "v3 settings with one reason each (migrate.models.Mapping)"},
        "tokens": {"type": "object", "required": ["method", "total", "low", "high", "billed", "n_docs", "max_tokens",
                                                  "n_over_limit"],
                   "properties": {"method": {"enum": ["exact", "sample", "estimate"]},
                                  "low": {"description": "exact: = total; sample: 95% CI; estimate: stated bound"},
                                  "error_bound_rel": {"type": ["number", "null"]}}},
        "requests": {"type": "object", "required": ["total"]},
        "cost": {"type": ["object", "null"], "description": "null unless --price-per-million was given",
                 "properties": {"price_per_million": {"type": "number"}, "total": {"type": "number"},
                                "low": {"type": "number"}, "high": {"type": "number"}}},
        "api_time": {"type": "object", "required": ["tier", "chosen", "by_tier"],
                     "properties": {"chosen": _TIME, "by_tier": {"type": "object", "additionalProperties": _TIME}}},
        "local_time": {"type": ["object", "null"], "description": "calibration sample (deterministic part)"},
        "storage": {"type": "object", "required": ["options", "run_output"],
                    "properties": {"options": {"type": "array", "items": {"type": "object", "required": [
                        "dimensions", "format", "vectors_bytes", "faiss_index_bytes"]}}}},
        "shards": {"type": "object", "required": ["shard_size", "count", "list"]},
        "findings": {"type": "array", "items": _FINDING},
        "summary": {"type": "object", "required": ["worst_severity", "counts"]},
        "run_config": {"type": "object", "description": "RunConfig fields that `run --plan` applies"},
        "measured": {"type": ["object", "null"], "description": "timings (non-deterministic); excluded from plan_sha256"},
        "plan_sha256": {"type": "string", "description": "sha256 of the plan without created_at/measured/plan_sha256"},
    },
}
