"""The rules that map a v2 set-up to the settings of the model that will run.

``map_v2_to_v3(...)`` turns what a user has (a source model from ``migrate.models``, a use
case, an index's dimension, a deployment, the corpus' token facts) into the request settings
of jina-embeddings-v3, or of a local model given as ``target``, each with the reason it was
chosen, plus the findings (info / warning / error) a reviewer should see before money is
spent. Facts come from ../shared/docs/jina-spec.md (section numbers are cited in the text).
Pure rules: no file, no network, no model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from migrate.models import TASK_NONE, V3_TASK_PREFIXES, V3_TASKS
from migrate.errors import ConfigError
from migrate.models import (CATALOGUE, LATE_CHUNKING_REQUEST_TOKENS, MAX_TOKENS, V3_DEFAULT_DIMS, V3_MATRYOSHKA_DIMS,
                            V3_NAME, ModelInfo, models_with_dims, query_task_for, source_model, task_for_use_case)

Severity = Literal["info", "warning", "error"]
SEVERITIES: tuple[str, ...] = ("info", "warning", "error")

#: Published scores that back the code-model warning (anchors.md, section G).
CODE_SCORES = {"jina-embeddings-v2-base-code": 0.7753, "jina-embeddings-v3 (no task)": 0.7537}

_USE_CASE_WHY = {
    "search": "asymmetric retrieval: documents with the retrieval.passage adapter, queries with retrieval.query",
    "retrieval": "asymmetric retrieval: documents with the retrieval.passage adapter, queries with retrieval.query",
    "deduplication": "symmetric similarity between items of the same kind: text-matching",
    "dedup": "symmetric similarity between items of the same kind: text-matching",
    "sts": "semantic textual similarity is symmetric: text-matching",
    "classification": "the classification adapter; label texts need no rephrasing into queries any more",
    "clustering": "clustering/re-ranking separates groups: the separation adapter",
}


@dataclass
class Finding:
    """One thing a reviewer must see. ``code`` is stable (tests and CI rules key on it)."""

    code: str
    severity: Severity
    message: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class Reason:
    """Why one setting has its value."""

    setting: str
    value: Any
    why: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Mapping:
    """The v3 settings chosen for a v2 set-up, with reasons and findings."""

    source: ModelInfo
    target: ModelInfo
    document_task: str
    query_task: str
    dimensions: int
    late_chunking: bool
    truncate: bool
    deployment: str
    reasons: list[Reason] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    #: task -> instruction prefix of the model that runs (None: jina-embeddings-v3's own)
    prefixes: dict[str, str] | None = None

    def _prefix(self, task: str) -> str:
        return V3_TASK_PREFIXES[task] if self.prefixes is None else self.prefixes.get(task, "")

    @property
    def document_prefix(self) -> str:
        return self._prefix(self.document_task)

    @property
    def query_prefix(self) -> str:
        return self._prefix(self.query_task)

    def finding(self, code: str) -> Finding | None:
        return next((f for f in self.findings if f.code == code), None)

    def worst_severity(self) -> str | None:
        present = [SEVERITIES.index(f.severity) for f in self.findings]
        return SEVERITIES[max(present)] if present else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "source_model": self.source.name,
            "target_model": self.target.name,
            "document_task": self.document_task,
            "query_task": self.query_task,
            "document_prefix": self.document_prefix,
            "query_prefix": self.query_prefix,
            "dimensions": self.dimensions,
            "late_chunking": self.late_chunking,
            "truncate": self.truncate,
            "normalized": "dropped",
            "deployment": self.deployment,
            "reasons": [r.as_dict() for r in self.reasons],
            "findings": [f.as_dict() for f in self.findings],
        }


@dataclass
class TokenFacts:
    """Token facts about the corpus that some rules need (from ``migrate.tokens``)."""

    n_over_limit: int = 0
    max_tokens: int = 0
    exact: bool = True  # False: counts are estimates


def _choose_tasks(use_case: str | None, task: str | None, reasons: list[Reason], findings: list[Finding]) -> tuple[str, str]:
    if use_case is not None:
        uc = use_case.strip().lower()
        doc_task = task_for_use_case(uc)
        query_task = query_task_for(doc_task)
        if task is not None and task != doc_task:
            raise ConfigError(f"--task {task} contradicts --use-case {uc} (which means {doc_task})",
                              hint="give only one of --task and --use-case")
        reasons.append(Reason("document_task", doc_task, f"--use-case {uc}: {_USE_CASE_WHY[uc]}"))
    elif task is not None:
        if task not in V3_TASKS and task != TASK_NONE:
            raise ConfigError(f"unknown --task {task!r}", hint=f"choose one of {', '.join(V3_TASKS + (TASK_NONE,))}")
        doc_task = task
        query_task = query_task_for(task)
        reasons.append(Reason("document_task", doc_task, "--task given explicitly"))
        if task == "retrieval.query":
            findings.append(Finding("query-task-for-documents", "warning",
                                    "documents embedded with retrieval.query get the query instruction and adapter",
                                    "use --task retrieval.passage for documents (queries then use retrieval.query)"))
        if task == TASK_NONE:
            findings.append(Finding("task-none", "warning",
                                    "task 'none' disables every LoRA adapter: the vectors match no API task output (spec 3.4)",
                                    "keep it only if you embed queries the same way; otherwise pick a task"))
    else:
        doc_task = query_task = "text-matching"
        reasons.append(Reason("document_task", doc_task,
                              "default: text-matching is symmetric like v2 (same embedding for documents and queries)"))
        findings.append(Finding("retrieval-index-hint", "info",
                                "a search index does better with retrieval.passage for documents and retrieval.query for queries",
                                "for a search index pass --use-case search; queries must then be re-embedded with retrieval.query"))
    if doc_task == "retrieval.passage":
        reasons.append(Reason("query_task", query_task,
                              "queries must be re-embedded with retrieval.query (asymmetric adapters and instructions)"))
        findings.append(Finding("queries-need-query-task", "info",
                                "queries must be embedded with task retrieval.query at search time, not with the document task",
                                "update the query path of the application before cut-over"))
    else:
        reasons.append(Reason("query_task", query_task, "symmetric task: queries use the same task as documents"))
    return doc_task, query_task


def _choose_dims(source: ModelInfo, dimensions: int | None, reasons: list[Reason], findings: list[Finding]) -> int:
    if dimensions is None:
        reasons.append(Reason("dimensions", V3_DEFAULT_DIMS, "v3 default (full 1024-d output, best quality)"))
        return V3_DEFAULT_DIMS
    if not 1 <= dimensions <= V3_DEFAULT_DIMS:
        raise ConfigError(f"--dimensions {dimensions} is outside 1..{V3_DEFAULT_DIMS}", hint="v3 outputs at most 1024 dims")
    why = "Matryoshka truncation (first N dims, then L2-normalised): less storage, some quality loss"
    if dimensions == source.dimensions:
        why = f"keeps the old column width ({source.dimensions}); the vectors are still NOT compatible with the old vectors"
        findings.append(Finding("same-width-not-compatible", "info",
                                f"{dimensions}-d v3 vectors fit the old column but cannot be mixed with the old vectors",
                                "re-embed every document and every query; do not mix old and new vectors"))
    if dimensions not in V3_MATRYOSHKA_DIMS:
        findings.append(Finding("dims-not-matryoshka", "warning",
                                f"{dimensions} is not a trained Matryoshka size; the local model only accepts "
                                f"{', '.join(map(str, V3_MATRYOSHKA_DIMS))} (spec 3.5)",
                                "pick one of the trained sizes unless you only use the API"))
    reasons.append(Reason("dimensions", dimensions, why))
    return dimensions


def _choose_local_dims(target: ModelInfo, dimensions: int | None, reasons: list[Reason]) -> int:
    """Dimensions of a local model that is not v3: its own width, or a prefix of it."""
    if dimensions is None:
        reasons.append(Reason("dimensions", target.dimensions, f"the full width of {target.name}"))
        return target.dimensions
    if not 1 <= dimensions <= target.dimensions:
        raise ConfigError(f"--dimensions {dimensions} is not possible for {target.name}: it makes "
                          f"{target.dimensions}-d vectors", hint=f"pick 1..{target.dimensions} or leave --dimensions out")
    reasons.append(Reason("dimensions", dimensions,
                          f"the first {dimensions} of {target.name}'s {target.dimensions} dims, then L2-normalised "
                          "(keeps quality only if the model was trained for truncation)"))
    return dimensions


def _task_ignored(target: ModelInfo, doc_task: str, prefixes: dict[str, str] | None) -> Finding:
    """What a task means for a model without v3's task adapters."""
    prompt = (prefixes or {}).get(doc_task, "")
    if any((prefixes or {}).values()):
        return Finding("task-ignored", "info",
                       f"{target.name} is not jina-embeddings-v3: it has no task adapters; the task only picks one of "
                       f"its own prompts ({doc_task} -> {prompt!r})",
                       "embed queries with the same model and its query prompt")
    return Finding("task-ignored", "info",
                   f"{target.name} is not jina-embeddings-v3 and has no prompts: the task ({doc_task}) is ignored",
                   "nothing to do; tasks only change the vectors of v3 models")


def _long_documents(target: ModelInfo, tokens: TokenFacts, late_chunking: bool, truncate: bool) -> Finding | None:
    """The rule for documents over the input limit of the model that runs."""
    if tokens.n_over_limit <= 0:
        return None
    est = "" if tokens.exact else " (estimated)"
    n, longest = tokens.n_over_limit, tokens.max_tokens
    if target.generation != "v3":
        limit = target.max_tokens or MAX_TOKENS
        if late_chunking:
            return None  # the local late-chunking path reads a long document in overlapping windows
        return Finding("long-documents", "warning",
                       f"{n} document(s) exceed {target.name}'s input limit of {limit} tokens{est} (longest {longest}); "
                       f"the model reads only the first {limit} tokens of each",
                       "chunk them first if the tail matters (or use --late-chunking)")
    if late_chunking:
        return Finding("long-documents", "error",
                       f"{n} document(s) exceed {MAX_TOKENS} tokens{est} (longest {longest}); one late-chunking "
                       "request holds all chunks of a document and at most 8192 tokens, so the run would stop",
                       "split those documents into several records first, or turn late chunking off")
    if truncate:
        return Finding("long-documents", "warning",
                       f"{n} document(s) exceed {MAX_TOKENS} tokens{est} (longest {longest}); their tail will be truncated",
                       "chunk them (and consider --late-chunking) if the tail matters")
    return Finding("long-documents", "error",
                   f"{n} document(s) exceed {MAX_TOKENS} tokens{est} (longest {longest}); without truncation "
                   "the API rejects them ('Single text cannot exceed 8192 tokens')",
                   "pass --truncate, or chunk the documents before migrating")


def _source_findings(src: ModelInfo, index_dim: int | None) -> list[Finding]:
    out: list[Finding] = []
    if src.code:
        out.append(Finding("code-model", "warning",
                           f"{src.name} still scores higher on code than v3 "
                           f"({CODE_SCORES['jina-embeddings-v2-base-code']} vs {CODE_SCORES['jina-embeddings-v3 (no task)']}, anchors G)",
                           "stay on v2-base-code for code search, or measure first with `jina-migrate compare` on a sample"))
    if src.bilingual:
        out.append(Finding("bilingual-model", "warning",
                           f"{src.name} is a bilingual v2 model ({'/'.join(src.languages)}), now obsolete: v3 is multilingual",
                           "one v3 index serves all languages; check quality on both languages with `jina-migrate compare`"))
    if index_dim is not None and index_dim != src.dimensions:
        others = models_with_dims(index_dim)
        out.append(Finding("dims-mismatch", "error",
                           f"the old index holds {index_dim}-d vectors but {src.name} makes {src.dimensions}-d vectors",
                           f"check --from-model (v2 models with {index_dim} dims: {', '.join(others) or 'none'}; "
                           f"another model: --from-model custom:NAME:{index_dim})"))
    return out


def map_v2_to_v3(
    source: str | ModelInfo,
    *,
    use_case: str | None = None,
    task: str | None = None,
    dimensions: int | None = None,
    late_chunking: bool = False,
    truncate: bool = False,
    deployment: Literal["api", "local"] = "api",
    commercial: bool = True,
    index_dim: int | None = None,
    tokens: TokenFacts | None = None,
    target: ModelInfo | None = None,
    prefixes: dict[str, str] | None = None,
) -> Mapping:
    """Map a v2 (or declared custom) set-up to the settings of the model that will run, with
    the reason for each and the findings.

    ``target`` is jina-embeddings-v3 unless a local model that is not v3 will run (a
    ``custom_model`` with its width and input limit; ``prefixes`` are its task prompts).
    ``index_dim`` is the vector width found in the old index (None when unknown);
    ``tokens`` carries the corpus' over-limit count for the long-document rule.
    Raises ``ConfigError`` for impossible requests (unknown names, contradictory flags).
    """
    src = source if isinstance(source, ModelInfo) else source_model(source)
    if src.generation not in ("v2", "custom"):
        raise ConfigError(f"{src.name} is not a v2 model",
                          hint="--from-model must name a jina-embeddings-v2 model, or custom:NAME:DIMS for another model")
    target = target or CATALOGUE[V3_NAME]
    v3 = target.generation == "v3"
    if v3:
        prefixes = None
        reasons = [Reason("target_model", target.name, "jina-embeddings-v3 replaces every v2 model (multilingual, 8192 tokens)")]
    else:
        reasons = [Reason("target_model", target.name,
                          f"--local-model: the model that will run ({target.dimensions}-d, at most "
                          f"{target.max_tokens or 'an unknown number of'} tokens per input), not jina-embeddings-v3")]
    findings: list[Finding] = []

    doc_task, query_task = _choose_tasks(use_case, task, reasons, findings)
    if not v3:
        findings.append(_task_ignored(target, doc_task, prefixes))
    dims = _choose_dims(src, dimensions, reasons, findings) if v3 else _choose_local_dims(target, dimensions, reasons)
    reasons.append(Reason("normalized", "dropped",
                          "v2's `normalized` flag is not carried over: jina-migrate L2-normalises every new vector "
                          "itself after Matryoshka truncation, so cosine and inner product agree"))
    if late_chunking and v3:
        reasons.append(Reason("late_chunking", True,
                              f"chunks of one document are embedded in one context; the request total is capped at "
                              f"{LATE_CHUNKING_REQUEST_TOKENS} tokens, so batches follow document boundaries (spec 4.3)"))
    elif late_chunking:
        reasons.append(Reason("late_chunking", True, "chunks of one document are embedded in one context by the local "
                                                     "model (long documents in overlapping windows)"))
    else:
        reasons.append(Reason("late_chunking", False, "each record is embedded on its own, as v2 did"))
    if v3:
        reasons.append(Reason("truncate", truncate,
                              "inputs over 8192 tokens lose their tail instead of failing the request" if truncate
                              else "inputs over 8192 tokens make the request fail"))
    else:
        reasons.append(Reason("truncate", truncate, f"{target.name} reads at most {target.max_tokens or '?'} tokens per "
                                                    "input whatever --truncate says"))

    findings += _source_findings(src, index_dim)
    if deployment == "local" and v3:
        findings.append(Finding("license-cc-by-nc", "warning" if commercial else "info",
                                "jina-embeddings-v3 weights are CC BY-NC 4.0: a local copy may not be used commercially without a licence",
                                "use the Jina API (or AWS/Azure) or obtain a commercial licence from Jina"))
    long_docs = _long_documents(target, tokens, late_chunking, truncate) if tokens is not None else None
    if long_docs is not None:
        findings.append(long_docs)
    return Mapping(src, target, doc_task, query_task, dims, late_chunking, truncate, deployment, reasons, findings,
                   prefixes=dict(prefixes) if prefixes is not None else None)
