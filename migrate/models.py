"""Catalogue of the Jina embedding models and the rules that map a v2 set-up to v3.

``get_model(name)`` looks a model up (full names and short aliases such as
``v2-base-en`` or ``base-code``). ``map_v2_to_v3(...)`` turns what a user has (a v2
model, a use case, an index's dimension, a deployment) into the v3 request settings,
each with the reason it was chosen, plus the findings (info / warning / error) that a
reviewer should see before money is spent. Facts come from ../shared/docs/jina-spec.md
(section numbers are cited in the text) so that the plan explains itself.

Nothing here touches the network or a model file: it is pure data and rules, cheap to
import from the CLI, the planner, the runner and the comparison report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from migrate.embed.base import TASK_NONE, V3_TASK_PREFIXES, V3_TASKS
from migrate.errors import ConfigError

Severity = Literal["info", "warning", "error"]
SEVERITIES: tuple[str, ...] = ("info", "warning", "error")

#: Largest input of v2 and v3, and the per-request total with ``late_chunking`` (spec 1.5).
MAX_TOKENS = 8192
LATE_CHUNKING_REQUEST_TOKENS = 8192
#: Matryoshka sizes accepted by the v3 model's own ``truncate_dim`` (spec 3.5).
V3_MATRYOSHKA_DIMS: tuple[int, ...] = (32, 64, 128, 256, 512, 768, 1024)
V3_DEFAULT_DIMS = 1024
V3_NAME = "jina-embeddings-v3"

#: Published scores that back the code-model warning (anchors.md, section G).
CODE_SCORES = {"jina-embeddings-v2-base-code": 0.7753, "jina-embeddings-v3 (no task)": 0.7537}


@dataclass(frozen=True)
class ModelInfo:
    """What the plan needs to know about one model.

    ``tokenizer_family`` groups models whose token counts agree ("xlm-roberta",
    "bert-uncased", ...); ``stand_in`` names the offline model in
    ``migrate.embed.standins`` whose tokenizer has the same vocabulary (None when
    no such stand-in exists).
    """

    name: str
    generation: Literal["v2", "v3"]
    dimensions: int
    max_tokens: int
    params: str
    tokenizer: str
    tokenizer_family: str
    license: str
    languages: tuple[str, ...]
    hf_repo: str
    bilingual: bool = False
    code: bool = False
    matryoshka_dims: tuple[int, ...] = ()
    tasks: tuple[str, ...] = ()
    stand_in: str | None = None
    notes: str = ""

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["languages"] = list(self.languages)
        d["matryoshka_dims"] = list(self.matryoshka_dims)
        d["tasks"] = list(self.tasks)
        return d


_BPE_NOTE = "bilingual BPE with <s>/</s> (spec 2)"

CATALOGUE: dict[str, ModelInfo] = {
    m.name: m
    for m in (
        ModelInfo("jina-embeddings-v2-small-en", "v2", 512, MAX_TOKENS, "33M",
                  "BERT uncased WordPiece (30,528 incl. padding)", "bert-uncased", "Apache-2.0", ("en",),
                  "jinaai/jina-embeddings-v2-small-en", stand_in="minilm"),
        ModelInfo("jina-embeddings-v2-base-en", "v2", 768, MAX_TOKENS, "137M",
                  "BERT uncased WordPiece (30,528 incl. padding)", "bert-uncased", "Apache-2.0", ("en",),
                  "jinaai/jina-embeddings-v2-base-en", stand_in="minilm"),
        ModelInfo("jina-embeddings-v2-base-de", "v2", 768, MAX_TOKENS, "161M", _BPE_NOTE, "bpe-de-en",
                  "Apache-2.0", ("de", "en"), "jinaai/jina-embeddings-v2-base-de", bilingual=True),
        ModelInfo("jina-embeddings-v2-base-es", "v2", 768, MAX_TOKENS, "161M", _BPE_NOTE, "bpe-es-en",
                  "Apache-2.0", ("es", "en"), "jinaai/jina-embeddings-v2-base-es", bilingual=True),
        ModelInfo("jina-embeddings-v2-base-zh", "v2", 768, MAX_TOKENS, "161M", _BPE_NOTE, "bpe-zh-en",
                  "Apache-2.0", ("zh", "en"), "jinaai/jina-embeddings-v2-base-zh", bilingual=True),
        ModelInfo("jina-embeddings-v2-base-code", "v2", 768, MAX_TOKENS, "161M",
                  "BPE for English + 30 programming languages", "bpe-code",
                  "not stated in the sources (model card says Apache-2.0; unconfirmed)", ("en", "code"),
                  "jinaai/jina-embeddings-v2-base-code", code=True,
                  notes="uses the jina-bert-v2-qk-post-norm remote code (spec 2)"),
        ModelInfo(V3_NAME, "v3", V3_DEFAULT_DIMS, MAX_TOKENS, "570M",
                  "XLM-RoBERTa SentencePiece Unigram (250,002)", "xlm-roberta", "CC BY-NC 4.0",
                  ("multilingual (89)",), "jinaai/jina-embeddings-v3", matryoshka_dims=V3_MATRYOSHKA_DIMS,
                  tasks=V3_TASKS, stand_in="e5-small",
                  notes="task LoRA adapters; retrieval tasks prepend an instruction (spec 3.2-3.3)"),
    )
}


def _aliases() -> dict[str, str]:
    out: dict[str, str] = {}
    for name in CATALOGUE:
        short = name.removeprefix("jina-embeddings-")  # v2-base-en, v3
        out[name] = name
        out[short] = name
        if short.startswith("v2-"):
            out[short.removeprefix("v2-")] = name  # base-en, small-en, base-code
    return out


_ALIASES = _aliases()


def get_model(name: str) -> ModelInfo:
    """Catalogue entry for ``name`` (full name, ``v2-base-en``, ``base-en``, ``v3``; case-insensitive)."""
    key = name.strip().lower().removeprefix("jinaai/")
    if key in _ALIASES:
        return CATALOGUE[_ALIASES[key]]
    raise ConfigError(f"unknown model {name!r}", hint=f"choose one of {', '.join(CATALOGUE)} (see `jina-migrate models`)")


def v2_models() -> list[ModelInfo]:
    return [m for m in CATALOGUE.values() if m.generation == "v2"]


def models_with_dims(dims: int, generation: str = "v2") -> list[str]:
    return [m.name for m in CATALOGUE.values() if m.generation == generation and m.dimensions == dims]


# --------------------------------------------------------------------------- use cases

#: use case -> (document task, query task). Queries use the same task unless retrieval.
USE_CASES: dict[str, tuple[str, str]] = {
    "search": ("retrieval.passage", "retrieval.query"),
    "retrieval": ("retrieval.passage", "retrieval.query"),
    "deduplication": ("text-matching", "text-matching"),
    "dedup": ("text-matching", "text-matching"),
    "sts": ("text-matching", "text-matching"),
    "classification": ("classification", "classification"),
    "clustering": ("separation", "separation"),
}

_USE_CASE_WHY = {
    "search": "asymmetric retrieval: documents with the retrieval.passage adapter, queries with retrieval.query",
    "retrieval": "asymmetric retrieval: documents with the retrieval.passage adapter, queries with retrieval.query",
    "deduplication": "symmetric similarity between items of the same kind: text-matching",
    "dedup": "symmetric similarity between items of the same kind: text-matching",
    "sts": "semantic textual similarity is symmetric: text-matching",
    "classification": "the classification adapter; label texts need no rephrasing into queries any more",
    "clustering": "clustering/re-ranking separates groups: the separation adapter",
}


def query_task_for(document_task: str) -> str:
    """The task queries use against documents embedded with ``document_task``.

    v3 retrieval is asymmetric: passages embedded with ``retrieval.passage`` are searched with
    ``retrieval.query``; every other task is symmetric (queries use the documents' task).
    """
    return "retrieval.query" if document_task == "retrieval.passage" else document_task


def task_for_use_case(use_case: str) -> str:
    """The document task a ``--use-case`` stands for (``search`` -> ``retrieval.passage``)."""
    uc = use_case.strip().lower()
    if uc not in USE_CASES:
        raise ConfigError(f"unknown --use-case {use_case!r}", hint=f"choose one of {', '.join(USE_CASES)}")
    return USE_CASES[uc][0]


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

    @property
    def document_prefix(self) -> str:
        return V3_TASK_PREFIXES[self.document_task]

    @property
    def query_prefix(self) -> str:
        return V3_TASK_PREFIXES[self.query_task]

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
        if uc not in USE_CASES:
            raise ConfigError(f"unknown --use-case {use_case!r}", hint=f"choose one of {', '.join(USE_CASES)}")
        doc_task, query_task = USE_CASES[uc]
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
        why = f"keeps the v2 column width ({source.dimensions}); the vectors are still NOT compatible with v2 vectors"
        findings.append(Finding("same-width-not-compatible", "info",
                                f"{dimensions}-d v3 vectors fit the old column but cannot be mixed with v2 vectors",
                                "re-embed every document and every query; do not mix old and new vectors"))
    if dimensions not in V3_MATRYOSHKA_DIMS:
        findings.append(Finding("dims-not-matryoshka", "warning",
                                f"{dimensions} is not a trained Matryoshka size; the local model only accepts "
                                f"{', '.join(map(str, V3_MATRYOSHKA_DIMS))} (spec 3.5)",
                                "pick one of the trained sizes unless you only use the API"))
    reasons.append(Reason("dimensions", dimensions, why))
    return dimensions


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
) -> Mapping:
    """Map a v2 set-up to v3 settings, with the reason for each and the findings.

    ``index_dim`` is the vector width found in the old index (None when unknown);
    ``tokens`` carries the corpus' over-limit count for the long-document rule.
    Raises ``ConfigError`` for impossible requests (unknown names, contradictory flags).
    """
    src = source if isinstance(source, ModelInfo) else get_model(source)
    if src.generation != "v2":
        raise ConfigError(f"{src.name} is not a v2 model", hint="--from-model must name a jina-embeddings-v2 model")
    target = CATALOGUE[V3_NAME]
    reasons: list[Reason] = [Reason("target_model", target.name, "jina-embeddings-v3 replaces every v2 model (multilingual, 8192 tokens)")]
    findings: list[Finding] = []

    doc_task, query_task = _choose_tasks(use_case, task, reasons, findings)
    dims = _choose_dims(src, dimensions, reasons, findings)
    reasons.append(Reason("normalized", "dropped",
                          "v2's `normalized` flag is not carried over: jina-migrate L2-normalises every v3 vector "
                          "itself after Matryoshka truncation, so cosine and inner product agree"))
    if late_chunking:
        reasons.append(Reason("late_chunking", True,
                              f"chunks of one document are embedded in one context; the request total is capped at "
                              f"{LATE_CHUNKING_REQUEST_TOKENS} tokens, so batches follow document boundaries (spec 4.3)"))
    else:
        reasons.append(Reason("late_chunking", False, "each record is embedded on its own, as v2 did"))
    reasons.append(Reason("truncate", truncate,
                          "inputs over 8192 tokens lose their tail instead of failing the request" if truncate
                          else "inputs over 8192 tokens make the request fail"))

    # ---- warnings about the source set-up
    if src.code:
        findings.append(Finding("code-model", "warning",
                                f"{src.name} still scores higher on code than v3 "
                                f"({CODE_SCORES['jina-embeddings-v2-base-code']} vs {CODE_SCORES['jina-embeddings-v3 (no task)']}, anchors G)",
                                "stay on v2-base-code for code search, or measure first with `jina-migrate compare` on a sample"))
    if src.bilingual:
        findings.append(Finding("bilingual-model", "warning",
                                f"{src.name} is a bilingual v2 model ({'/'.join(src.languages)}), now obsolete: v3 is multilingual",
                                "one v3 index serves all languages; check quality on both languages with `jina-migrate compare`"))
    if deployment == "local":
        findings.append(Finding("license-cc-by-nc", "warning" if commercial else "info",
                                "jina-embeddings-v3 weights are CC BY-NC 4.0: a local copy may not be used commercially without a licence",
                                "use the Jina API (or AWS/Azure) or obtain a commercial licence from Jina"))
    if index_dim is not None and index_dim != src.dimensions:
        others = models_with_dims(index_dim)
        findings.append(Finding("dims-mismatch", "error",
                                f"the old index holds {index_dim}-d vectors but {src.name} makes {src.dimensions}-d vectors",
                                f"check --from-model (models with {index_dim} dims: {', '.join(others) or 'none'})"))
    if tokens is not None and tokens.n_over_limit > 0:
        est = "" if tokens.exact else " (estimated)"
        n, longest = tokens.n_over_limit, tokens.max_tokens
        if late_chunking:
            findings.append(Finding("long-documents", "error",
                                    f"{n} document(s) exceed {MAX_TOKENS} tokens{est} (longest {longest}); one late-chunking "
                                    "request holds all chunks of a document and at most 8192 tokens, so the run would stop",
                                    "split those documents into several records first, or turn late chunking off"))
        elif truncate:
            findings.append(Finding("long-documents", "warning",
                                    f"{n} document(s) exceed {MAX_TOKENS} tokens{est} (longest {longest}); their tail will be truncated",
                                    "chunk them (and consider --late-chunking) if the tail matters"))
        else:
            findings.append(Finding("long-documents", "error",
                                    f"{n} document(s) exceed {MAX_TOKENS} tokens{est} (longest {longest}); without truncation "
                                    "the API rejects them ('Single text cannot exceed 8192 tokens')",
                                    "allow truncation or chunk the documents before migrating"))
    return Mapping(src, target, doc_task, query_task, dims, late_chunking, truncate, deployment, reasons, findings)
