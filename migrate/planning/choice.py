"""Which model made the old index, and which model will run.

``resolve_source``: ``--from-model`` (a catalogue name or ``custom:[NAME:]DIMS``), else
inferred from the index's width: the one v2 model of that width, or a custom model of that
width when no v2 model has it (a fine-tuned model, another model, the sample's 384-d
stand-in), else assumed v2-base-en with a warning.

``open_local_target``: for ``--local-model`` runs, load the model once and describe it
(width, input limit, prompts, whether it is v3) so the plan is for the model that runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from migrate.models import CATALOGUE, V3_NAME, ModelInfo, custom_model, get_model, models_with_dims, source_model
from migrate.planning.backends import local_spec, runs_v3
from migrate.planning.calibration import open_timed
from migrate.planning.mapping import Finding


def resolve_source(from_model: str | None, index_dim: int | None) -> tuple[ModelInfo, list[Finding], str]:
    """(source model, findings about the choice, how it was chosen)."""
    if from_model:
        model = source_model(from_model)
        notes = []
        if model.generation == "custom":
            notes.append(Finding("custom-source-model", "info",
                                 f"the old index was made by {model.name} ({model.dimensions}-d), declared with "
                                 "--from-model; it is not a catalogued v2 model, so no model-specific advice applies",
                                 "measure the new index against the old one with `jina-migrate compare`"))
        return model, notes, "--from-model"
    if index_dim is not None:
        cands = models_with_dims(index_dim)
        if len(cands) == 1:
            return get_model(cands[0]), [], f"inferred from the index's {index_dim} dims"
        if not cands:
            model = custom_model(index_dim, notes="inferred from the index width")
            note = Finding("custom-source-model", "info",
                           f"the old index holds {index_dim}-d vectors, the width of no jina-embeddings-v2 model: "
                           f"planning for a custom {index_dim}-d source model",
                           f"name it for the reports with --from-model custom:NAME:{index_dim}")
            return model, [note], f"inferred from the index's {index_dim} dims: no v2 model has that width"
    model = get_model("jina-embeddings-v2-base-en")
    note = Finding("source-model-assumed", "warning", f"the v2 model was not given; assuming {model.name}",
                   "pass --from-model (small-en, base-en, base-de, base-es, base-zh, base-code, or custom:NAME:DIMS)")
    return model, [note], "assumed"


@dataclass
class LocalTarget:
    """A loaded local model and what the plan needs to know about it."""

    spec: str
    embedder: Any  # migrate.embed.base.Embedder
    model: ModelInfo  # the catalogue's v3 entry, or a custom entry with the model's width and input limit
    prefixes: dict[str, str] | None  # its task prompts (None: v3's own)
    tokenizer: Any  # a tokenizers.Tokenizer counting raw tokens (no truncation, no padding), or None
    load_seconds: float = 0.0  # how long loading took (wall, CPU): part of the local time prediction
    load_cpu_seconds: float = 0.0

    @property
    def is_v3(self) -> bool:
        return self.model.generation == "v3"

    def close(self) -> None:
        self.embedder.close()


def open_local_target(model: str) -> LocalTarget:
    """Load ``--local-model`` (a folder, ``standin:NAME``, or a ``local:...`` spec) and describe it."""
    spec = local_spec(model)
    emb, load_s, load_cpu = open_timed(spec)
    try:
        info = emb.info()
        native = int(info.extra.get("native_dimensions") or info.dimensions)
        if runs_v3(info):
            target, prefixes = CATALOGUE[V3_NAME], None
        else:
            target = custom_model(native, model, max_tokens=int(info.max_tokens or 0),
                                  tokenizer=f"{model}'s own tokenizer", tokenizer_family=f"model:{model}",
                                  notes="local model given with --local-model")
            prefixes = dict(info.prefixes)
        return LocalTarget(spec, emb, target, prefixes, raw_tokenizer(emb), load_s, load_cpu)
    except BaseException:
        emb.close()
        raise


def raw_tokenizer(embedder: Any):
    """The embedder's own tokenizer as a ``tokenizers.Tokenizer`` that counts every token
    (a copy with truncation and padding off), or None when it has none we can read."""
    tok = getattr(embedder, "tokenizer", None)
    tok = getattr(tok, "backend_tokenizer", tok)  # transformers fast tokenizers wrap a tokenizers.Tokenizer
    if tok is None or not hasattr(tok, "to_str"):
        return None
    from tokenizers import Tokenizer

    copy = Tokenizer.from_str(tok.to_str())
    copy.no_truncation()
    copy.no_padding()
    return copy
