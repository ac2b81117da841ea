"""The JSON Schema of the plan document (``jina-migrate plan --schema`` prints it)."""

from __future__ import annotations

from typing import Any

from migrate.planning.mapping import SEVERITIES

SCHEMA_VERSION = 1

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
            "old_index": {"type": ["object", "null"], "description": "vectors, dim, metric, kind of the v2 index; "
                                                                      "for a database collection also `collection`: "
                                                                      "the engine's own statistics (rows, bytes, "
                                                                      "index, fields)"},
            "source_model_from": {"type": "string",
                                  "description": "--from-model, inferred from dims (a v2 model or custom), or assumed"},
            "validation": {"type": ["object", "null"],
                           "description": "run's validation report; null when run would refuse the sources "
                                          "(an error finding says why)"}}},
        "models": {"type": "object", "description": "source and target (migrate.models.ModelInfo); generation "
                                                    "'custom' for a model outside the catalogue"},
        "mapping": {"type": "object", "required": ["source_model", "target_model", "document_task", "query_task",
                                                   "dimensions", "late_chunking", "truncate", "reasons", "findings"],
                    "description": "settings of the model that runs, one reason each "
                                   "(migrate.planning.mapping.Mapping)"},
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
        "destinations": {"type": "array", "description": "each --sink: address (no secret), engine, collection, "
                                                         "index, estimated data/index/total bytes, whether it exists",
                         "items": {"type": "object", "required": ["address", "engine", "collection", "rows",
                                                                  "dimensions", "index", "data_bytes", "index_bytes",
                                                                  "total_bytes", "basis", "exists"]}},
        "shards": {"type": "object", "required": ["shard_size", "count", "list"]},
        "findings": {"type": "array", "items": _FINDING},
        "summary": {"type": "object", "required": ["worst_severity", "counts"]},
        "run_config": {"type": "object", "description": "RunConfig fields that `run --plan` applies"},
        "measured": {"type": ["object", "null"], "description": "timings (non-deterministic); excluded from plan_sha256"},
        "plan_sha256": {"type": "string", "description": "sha256 of the plan without created_at/measured/plan_sha256"},
    },
}
