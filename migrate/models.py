"""Catalogue of the Jina embedding models, the use cases and the query-task rule.

``get_model(name)`` looks a model up (full names and short aliases such as
``v2-base-en`` or ``base-code``); ``source_model(spec)`` also accepts a model outside the
catalogue, declared as ``custom:DIMS`` or ``custom:NAME:DIMS`` (a fine-tuned v2 model, another
model, the bundled sample's 384-d stand-in). The rules that turn a v2 set-up into v3
settings live in ``migrate.planning.mapping``. Facts come from ../shared/docs/jina-spec.md
(section numbers are cited in the text) so that the plan explains itself.

Nothing here touches the network or a model file: it is pure data, cheap to import from
the CLI, the planner, the runner and the comparison report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from migrate.errors import ConfigError

#: v3 tasks, in the order of the model's ``lora_adaptations`` (task id = position).
V3_TASKS: tuple[str, ...] = (
    "retrieval.query",
    "retrieval.passage",
    "separation",
    "classification",
    "text-matching",
)
#: ``none`` is the explicit "generic, no adapter, no prefix" choice.
TASK_NONE = "none"
ALL_TASKS: tuple[str, ...] = V3_TASKS + (TASK_NONE,)

#: Instruction prefixes of jina-embeddings-v3 (config ``task_instructions``).
V3_TASK_PREFIXES: dict[str, str] = {
    "retrieval.query": "Represent the query for retrieving evidence documents: ",
    "retrieval.passage": "Represent the document for retrieval: ",
    "separation": "",
    "classification": "",
    "text-matching": "",
    TASK_NONE: "",
}

#: ``custom``: a model outside the catalogue (declared source, or a local model that will run).
Generation = Literal["v2", "v3", "custom"]

#: Largest input of v2 and v3, and the per-request total with ``late_chunking`` (spec 1.5).
MAX_TOKENS = 8192
LATE_CHUNKING_REQUEST_TOKENS = 8192
#: Matryoshka sizes accepted by the v3 model's own ``truncate_dim`` (spec 3.5).
V3_MATRYOSHKA_DIMS: tuple[int, ...] = (32, 64, 128, 256, 512, 768, 1024)
V3_DEFAULT_DIMS = 1024
V3_NAME = "jina-embeddings-v3"


@dataclass(frozen=True)
class ModelInfo:
    """What the plan needs to know about one model.

    ``tokenizer_family`` groups models whose token counts agree ("xlm-roberta",
    "bert-uncased", ...); ``stand_in`` names the offline model in
    ``migrate.embed.standins`` whose tokenizer has the same vocabulary (None when
    no such stand-in exists). ``generation == "custom"`` marks a model outside the
    catalogue (see ``custom_model``): only its name and width are known for sure.
    """

    name: str
    generation: Generation
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


CUSTOM_PREFIX = "custom:"


def custom_model(dimensions: int, name: str | None = None, *, max_tokens: int = 0, tokenizer: str = "unknown",
                 tokenizer_family: str = "unknown", notes: str = "") -> ModelInfo:
    """A model outside the catalogue, known by its width (and a name for reports).

    ``max_tokens`` 0 means unknown. Used for a declared or inferred source model and for a
    local model that will run instead of jina-embeddings-v3.
    """
    if dimensions < 1:
        raise ConfigError(f"a custom model needs a positive number of dimensions, got {dimensions}")
    return ModelInfo(name or f"custom ({dimensions}-d)", "custom", dimensions, max_tokens, "unknown", tokenizer,
                     tokenizer_family, "unknown (not a catalogued Jina model)", (), "", notes=notes)


def source_model(spec: str) -> ModelInfo:
    """The model that made the old index: a catalogue name (``base-en``), ``custom:DIMS`` or
    ``custom:NAME:DIMS`` (``--from-model custom:384``, ``--from-model custom:my-finetune:768``)."""
    text = spec.strip()
    if not text.lower().startswith(CUSTOM_PREFIX):
        return get_model(text)
    body = text[len(CUSTOM_PREFIX):]
    name, _, dims_text = body.rpartition(":")
    usage = "write custom:DIMS or custom:NAME:DIMS, e.g. custom:384 or custom:my-finetune:768"
    try:
        dims = int(dims_text)
    except ValueError:
        raise ConfigError(f"--from-model {spec!r}: {dims_text!r} is not a number of dimensions", hint=usage) from None
    if not 1 <= dims <= 65536:
        raise ConfigError(f"--from-model {spec!r}: dimensions must be 1..65536, got {dims}", hint=usage)
    if body.count(":") > 1 or (":" in body and not name.strip()):
        raise ConfigError(f"--from-model {spec!r}: the name is empty or holds ':'", hint=usage)
    return custom_model(dims, name.strip() or None, notes="declared with --from-model")


def v2_models() -> list[ModelInfo]:
    return [m for m in CATALOGUE.values() if m.generation == "v2"]


def models_with_dims(dims: int, generation: str = "v2") -> list[str]:
    return [m.name for m in CATALOGUE.values() if m.generation == generation and m.dimensions == dims]


# --------------------------------------------------------------------------- use cases

#: use case -> document task (the query task follows from it: ``query_task_for``).
USE_CASES: dict[str, str] = {
    "search": "retrieval.passage",
    "retrieval": "retrieval.passage",
    "deduplication": "text-matching",
    "dedup": "text-matching",
    "sts": "text-matching",
    "classification": "classification",
    "clustering": "separation",
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
    return USE_CASES[uc]
