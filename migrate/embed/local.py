"""Local embedding backend on sentence-transformers (torch), registered as ``local:``.

Model from a local folder (or the offline HF cache); device auto (cuda, mps, cpu);
bf16/fp16 on GPU, fp32 on CPU; batches built by a padded-token budget after sorting by
length, original order restored; task prefixes taken from the model's own prompt config;
Matryoshka truncation to ``dimensions`` followed by re-normalisation.

Folders holding jina-embeddings-v3 (native ``jina_embeddings_v3`` or remote-code layout)
are handed to :mod:`migrate.embed.jina_v3`, which selects LoRA adapters per task.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from migrate.embed.backend import BackendType, Capabilities, parse_options
from migrate.embed.base import EmbedderInfo, EmbedResult, truncate_and_normalize
from migrate.models import TASK_NONE, V3_TASKS
from migrate.embed.batching import fixed_batches, plan_batches
from migrate.embed.jina_layout import is_jina_model_dir
from migrate.embed.local_common import LocalOptions, pick_device, pick_dtype, quiet_transformers  # noqa: F401
from migrate.errors import ConfigError, EmbeddingError


#: Which prompt names of a model's config a task may use, most specific first.
TASK_PROMPT_NAMES: dict[str, tuple[str, ...]] = {
    "retrieval.query": ("retrieval.query", "query", "search_query"),
    "retrieval.passage": ("retrieval.passage", "passage", "document", "search_document"),
    "text-matching": ("text-matching", "query"),
    "separation": ("separation", "query"),
    "classification": ("classification", "query"),
    TASK_NONE: (),
}


def is_model2vec_dir(path: Path) -> bool:
    """A model2vec-style static model: tokenizer.json + safetensors table, no transformer config."""
    try:
        cfg = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return (path / "tokenizer.json").exists() and "model_type" not in cfg and not (path / "modules.json").exists() \
        and ("embedding_dtype" in cfg or cfg.get("model_type") == "model2vec" or "normalize" in cfg)


def resolve_model_path(model: str) -> Path | str:
    """A local folder, a stand-in name (``standin:minilm``), or a hub id for the offline cache."""
    if model.startswith("standin:"):
        from migrate.embed.standins import model_dir

        return model_dir(model.split(":", 1)[1])
    p = Path(model).expanduser()
    if p.exists():
        if not (p / "config.json").exists() and not (p / "modules.json").exists():
            raise ConfigError(f"{p}: not a model folder (no config.json or modules.json)")
        return p
    if model.startswith((".", "/", "~")) or os.sep in model and not model.count("/") == 1:
        raise ConfigError(f"{model}: model folder not found")
    return model  # hub id: only the local HF cache is consulted (HF_HUB_OFFLINE)


class LocalEmbedder:
    """A sentence-transformers model behind the :class:`~migrate.embed.base.Embedder` protocol."""

    def __init__(self, model: str, options: LocalOptions | None = None, /, **kw: Any) -> None:
        from sentence_transformers import SentenceTransformer

        o: LocalOptions = parse_options(LocalOptions, kw, base=options, where="local")
        self.options = o
        quiet_transformers()
        self.model_name = model
        self.device = pick_device(o.device)
        path = resolve_model_path(model)
        torch_dtype = pick_dtype(self.device, o.dtype)
        try:
            if isinstance(path, Path) and is_model2vec_dir(path):
                from sentence_transformers.sentence_transformer.modules import StaticEmbedding

                self.model = SentenceTransformer(modules=[StaticEmbedding.from_model2vec(str(path))], device=self.device)
            else:
                self.model = SentenceTransformer(str(path), device=self.device, local_files_only=True,
                                                 model_kwargs={"dtype": torch_dtype})
        except (OSError, ValueError, ImportError) as exc:
            raise ConfigError(f"cannot load local model {model!r}: {str(exc).splitlines()[0][:200]}",
                              hint="pass a local model folder; the hub is not reachable offline") from None
        if o.max_tokens:
            self.model.max_seq_length = int(o.max_tokens)
        limit = self.model.max_seq_length
        self.max_tokens = int(limit) if limit and limit != float("inf") else 512
        self.native_dim = int(self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension")
                              else self.model.get_sentence_embedding_dimension())
        if o.dimensions is not None and not 0 < o.dimensions <= self.native_dim:
            raise ConfigError(f"--dimensions {o.dimensions} is not possible for {model}: it has {self.native_dim}")
        self.dimensions = o.dimensions or self.native_dim
        self.token_budget = o.token_budget
        self.max_batch = o.max_batch
        self.batch_size = o.batch_size  # fixed-size, unsorted batches when set (benchmark baseline)
        self.sort_by_length = o.sort_by_length
        self.normalize = o.normalize
        self.dtype_name = str(torch_dtype).replace("torch.", "")
        self._prompts = dict(getattr(self.model, "prompts", {}) or {})
        if o.prompts:
            self._prompts.update(o.prompts)

    @property
    def tokenizer(self):
        return self.model.tokenizer

    # -- protocol ---------------------------------------------------------------------------

    def prefix(self, task: str) -> str:
        for name in TASK_PROMPT_NAMES.get(task, (task,)):
            if name in self._prompts:
                return self._prompts[name]
        return ""

    def info(self) -> EmbedderInfo:
        prefixes = {t: self.prefix(t) for t in V3_TASKS}
        return EmbedderInfo(backend="local", model=self.model_name, dimensions=self.dimensions,
                            normalized=self.normalize, max_tokens=self.max_tokens, prefixes=prefixes,
                            ignored_tasks=tuple(t for t, p in prefixes.items() if not p),
                            extra={"device": self.device, "dtype": self.dtype_name, "native_dimensions": self.native_dim})

    def count_tokens(self, texts: Sequence[str], *, task: str) -> list[int]:
        """Tokens the model actually sees per input: prefix and special tokens in, cut at max_tokens."""
        return self._count(texts, self.prefix(task))

    def _count(self, texts: Sequence[str], prefix: str) -> list[int]:
        if not texts:
            return []
        tok = self.model.tokenizer
        batch = [prefix + t for t in texts]
        if hasattr(tok, "encode_batch"):  # a bare tokenizers.Tokenizer (static models)
            return [min(len(e.ids), self.max_tokens) for e in tok.encode_batch(batch, add_special_tokens=True)]
        enc = tok(batch, add_special_tokens=True, truncation=True, max_length=self.max_tokens,
                  return_attention_mask=False, return_token_type_ids=False, verbose=False)
        return [len(ids) for ids in enc["input_ids"]]

    def embed(self, texts: Sequence[str], *, task: str, late_chunking: bool = False) -> EmbedResult:
        return self.encode(texts, prefix=self.prefix(task), late_chunking=late_chunking)

    def encode(self, texts: Sequence[str], *, prefix: str, late_chunking: bool = False) -> EmbedResult:
        """``embed`` with an explicit instruction ``prefix`` instead of a task (the bundled
        server maps its own task prefixes onto the stand-ins this way)."""
        texts = list(texts)
        if not texts:
            return EmbedResult(np.zeros((0, self.dimensions), np.float32), np.zeros(0, np.int64))
        if late_chunking:
            return self._embed_late_chunked(texts, prefix)
        # The model reads at most max_tokens tokens; a token is almost never longer than 64 characters,
        # so cutting here changes no vector and keeps a 10 MB document from being tokenized whole.
        cap = self.max_tokens * 64
        texts = [t if len(t) <= cap else t[:cap] for t in texts]
        lengths = self._count(texts, prefix)
        if self.batch_size:
            batches = fixed_batches(len(texts), self.batch_size)
        else:
            batches = plan_batches(lengths, self.token_budget, self.max_batch, sort=self.sort_by_length)
        prompt = prefix or None
        out = np.empty((len(texts), self.native_dim), dtype=np.float32)
        for batch in batches:
            chunk = [texts[i] for i in batch.positions]
            try:
                vecs = self.model.encode(chunk, batch_size=len(chunk), prompt=prompt, convert_to_numpy=True,
                                         normalize_embeddings=False, show_progress_bar=False)
            except RuntimeError as exc:  # e.g. CUDA OOM
                raise EmbeddingError(f"local model failed on a batch of {len(chunk)}: {str(exc).splitlines()[0]}",
                                     hint="lower --token-budget") from None
            out[batch.positions] = vecs.astype(np.float32, copy=False)
        vectors = truncate_and_normalize(out, self.dimensions) if self.normalize else out[:, : self.dimensions]
        return EmbedResult(vectors, np.asarray(lengths))

    def _embed_late_chunked(self, texts: list[str], prefix: str) -> EmbedResult:
        """Texts are consecutive chunks of one document: one forward pass, span pooling (API-equivalent)."""
        import torch

        from migrate.embed import pooling

        plan = pooling.plan_joined(self.model.tokenizer, texts, prefix=prefix)
        transformer = self.model[0].auto_model

        def forward(ids: list[int]) -> torch.Tensor:
            t = torch.tensor([ids], device=self.model.device)
            with torch.inference_mode():
                return transformer(input_ids=t, attention_mask=torch.ones_like(t)).last_hidden_state[0]

        vecs = pooling.late_chunk(forward, plan, max_length=self.max_tokens,
                                  overlap=min(pooling.DEFAULT_OVERLAP, self.max_tokens // 4)).cpu().numpy()
        tokens = np.array([e - s for s, e in plan.spans])
        vectors = truncate_and_normalize(vecs, self.dimensions) if self.normalize else vecs[:, : self.dimensions]
        return EmbedResult(vectors, tokens, total_tokens=plan.n_tokens)

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]


def make_local(model: str, options: LocalOptions) -> Any:
    """``local:PATH`` -> LocalEmbedder, or the Jina backend for jina-embeddings-v3/v2 folders."""
    path = resolve_model_path(model)
    if isinstance(path, Path) and is_jina_model_dir(path):
        from migrate.embed.jina_v3 import JinaV3Embedder

        return JinaV3Embedder(str(path), options)
    return LocalEmbedder(model, options)


BACKEND = BackendType(
    name="local", remote=False, billed=False, options_type=LocalOptions, factory=make_local,
    capabilities=lambda model: Capabilities(),
    description="a sentence-transformers / transformers model on this machine (folder, hub cache or standin:NAME)",
)
