"""Local embedding backend on sentence-transformers (torch), registered as ``local:``.

Model from a local folder (or the offline HF cache); device auto (cuda, mps, cpu);
bf16/fp16 on GPU, fp32 on CPU; batches built by a padded-token budget after sorting by
length, original order restored; task prefixes taken from the model's own prompt config;
Matryoshka truncation to ``dimensions`` followed by re-normalisation.

Tokenized once: ``prepare`` cuts long texts, tokenizes them (a few threads, see
``local_common.tokenizer_workers``) and counts them; ``embed_prepared`` packs batches by those
counts and feeds the model those very ids (``migrate.embed.st_feed``), so nothing is tokenized
twice and ``prepare`` can run in another thread while the model works on the previous batch.

Folders holding jina-embeddings-v3 (native ``jina_embeddings_v3`` or remote-code layout)
are handed to :mod:`migrate.embed.jina_v3`, which selects LoRA adapters per task.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from migrate.embed import st_feed
from migrate.embed.backend import BackendType, Capabilities, parse_options
from migrate.embed.base import EmbedderInfo, EmbedResult, truncate_and_normalize
from migrate.models import TASK_NONE, V3_TASKS
from migrate.embed.batching import fixed_batches, plan_batches
from migrate.embed.jina_layout import is_jina_model_dir
from migrate.embed.local_common import (LocalOptions, model_threads, own_tokenizer_threads, pick_device,  # noqa: F401
                                        pick_dtype, quiet_transformers, tokenizer_workers)
from migrate.embed.token_ids import TokenIds
from migrate.errors import ConfigError, EmbeddingError

#: Texts per tokenizing task: small enough to spread over the workers, big enough to amortise a call.
TOKENIZE_CHUNK = 128
#: Texts whose ids ``count_tokens`` holds at once.
COUNT_SLICE = 8192


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


@dataclass
class Prepared:
    """Texts made ready for the model by :meth:`LocalEmbedder.prepare` (nothing of the model touched)."""

    prefix: str
    lengths: np.ndarray  # tokens the model reads per input: packs the batches, counted as spent
    ids: TokenIds | None  # those tokens; None when the model tokenizes itself (an unknown input module)
    texts: list[str] | None = None  # only then: the texts, already cut


class LocalEmbedder:
    """A sentence-transformers model behind the :class:`~migrate.embed.base.Embedder` protocol.

    Also :class:`~migrate.embed.token_ids.Preparing`: ``prepare`` (cut, tokenize, count) may
    run in one thread while ``embed_prepared`` (the model) runs in another.
    """

    def __init__(self, model: str, options: LocalOptions | None = None, /, **kw: Any) -> None:
        own_tokenizer_threads()
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
        dim = (self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension")
               else self.model.get_sentence_embedding_dimension())
        if dim is None:
            raise ConfigError(f"local model {model!r} does not say its embedding width",
                              hint="use a sentence-transformers folder whose modules declare it (e.g. a Pooling module)")
        self.native_dim = int(dim)
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
        self.model.eval()
        self._feed = st_feed.feed_for(self.model, self.max_tokens)
        self._feed_checked: dict[str, bool] = {}  # prefix -> the feed agrees with the model's own preprocessing
        self._lock = threading.Lock()
        self.light = isinstance(self._feed, st_feed.StaticFeed)  # a table lookup: tokenizing is the work
        self.tokenize_workers = tokenizer_workers(self.device, light_model=self.light)
        self._pool: ThreadPoolExecutor | None = None

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
        """Tokens the model actually reads per input: prefix and special tokens in, cut at max_tokens.

        The same pass as :meth:`prepare`: these are the ids the model runs on. Counted a slice at a
        time, so counting a whole corpus (the planner does) holds one slice's ids.
        """
        texts, prefix = list(texts), self.prefix(task)
        return [n for i in range(0, len(texts), COUNT_SLICE)
                for n in self._prepare(texts[i:i + COUNT_SLICE], prefix).lengths.tolist()]

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
        return self.embed_prepared(self._prepare(texts, prefix))

    # -- tokenize once: prepare (any thread), then embed_prepared (the model) ----------------

    def prepare(self, texts: Sequence[str], *, task: str) -> Prepared:
        """Cut, tokenize and count ``texts`` for ``task``; no model work (safe beside ``embed_prepared``)."""
        return self._prepare(list(texts), self.prefix(task))

    def _prepare(self, texts: list[str], prefix: str) -> Prepared:
        # The model reads at most max_tokens tokens; a token is almost never longer than 64 characters,
        # so cutting here changes no vector and keeps a 10 MB document from being tokenized whole.
        cap = self.max_tokens * 64
        texts = [t if len(t) <= cap else t[:cap] for t in texts]
        feed = self._usable_feed(prefix)
        if feed is None:
            return Prepared(prefix, np.asarray(self._count_text(texts, prefix), dtype=np.int64), None, texts)
        ids = self._tokenize(feed, [prefix + t for t in texts])
        return Prepared(prefix, ids.lengths, ids)

    def _usable_feed(self, prefix: str) -> st_feed.Feed | None:
        """The feed, once it was shown to build the model's own inputs for this prefix."""
        if self._feed is None:
            return None
        with self._lock:
            if prefix not in self._feed_checked:
                self._feed_checked[prefix] = st_feed.agrees(self._feed, self.model, prefix)
        return self._feed if self._feed_checked[prefix] else None

    def _tokenize(self, feed: st_feed.Feed, texts: list[str]) -> TokenIds:
        """``feed.tokenize`` over ``tokenize_workers`` threads (the tokenizer releases the GIL)."""
        if self.tokenize_workers <= 1 or len(texts) <= TOKENIZE_CHUNK:
            return feed.tokenize(texts)
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.tokenize_workers, thread_name_prefix="jina-migrate-tokenize")
            pool = self._pool
        chunks = [texts[i:i + TOKENIZE_CHUNK] for i in range(0, len(texts), TOKENIZE_CHUNK)]
        return TokenIds.concat(pool.map(feed.tokenize, chunks))

    def _count_text(self, texts: list[str], prefix: str) -> list[int]:
        """Counts for a model that tokenizes itself (no feed): its tokenizer, cut at max_tokens."""
        if not texts:
            return []
        tok = self.model.tokenizer
        batch = [prefix + t for t in texts]
        if hasattr(tok, "encode_batch"):  # a bare tokenizers.Tokenizer
            return [min(len(e.ids), self.max_tokens) for e in tok.encode_batch(batch, add_special_tokens=True)]
        enc = tok(batch, add_special_tokens=True, truncation=True, max_length=self.max_tokens,
                  return_attention_mask=False, return_token_type_ids=False, verbose=False)
        return [len(ids) for ids in enc["input_ids"]]

    def embed_prepared(self, prepared: Prepared) -> EmbedResult:
        """Run the model on prepared texts: batches packed by their token counts, input order kept."""
        n = len(prepared.lengths)
        if not n:
            return EmbedResult(np.zeros((0, self.dimensions), np.float32), np.zeros(0, np.int64))
        if self.batch_size:
            batches = fixed_batches(n, self.batch_size)
        else:
            batches = plan_batches(prepared.lengths, self.token_budget, self.max_batch, sort=self.sort_by_length)
        out = np.empty((n, self.native_dim), dtype=np.float32)
        with model_threads(1 if self.light and self.device == "cpu" else None):
            for batch in batches:
                try:
                    out[batch.positions] = self._run_batch(prepared, batch.positions)
                except RuntimeError as exc:  # e.g. CUDA OOM
                    raise EmbeddingError(f"local model failed on a batch of {len(batch.positions)}: "
                                         f"{str(exc).splitlines()[0]}", hint="lower --token-budget") from None
        vectors = truncate_and_normalize(out, self.dimensions) if self.normalize else out[:, : self.dimensions]
        return EmbedResult(vectors, prepared.lengths)

    def _run_batch(self, prepared: Prepared, rows: np.ndarray) -> np.ndarray:
        if prepared.ids is None:  # the model tokenizes (an input module st_feed does not know)
            assert prepared.texts is not None
            chunk = [prepared.texts[i] for i in rows]
            vecs = self.model.encode(chunk, batch_size=len(chunk), prompt=prepared.prefix or None,
                                     convert_to_numpy=True, normalize_embeddings=False, show_progress_bar=False)
            return vecs.astype(np.float32, copy=False)
        import torch

        assert self._feed is not None
        features = self._feed.features(prepared.ids, rows, prepared.prefix)
        device = self.model.device
        features = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
        with torch.inference_mode():
            vecs = self.model(features)["sentence_embedding"]
        return vecs.float().cpu().numpy()

    def _embed_late_chunked(self, texts: list[str], prefix: str) -> EmbedResult:
        """Texts are consecutive chunks of one document: one forward pass, span pooling (API-equivalent)."""
        import torch

        from migrate.embed import pooling

        plan = pooling.plan_joined(self.model.tokenizer, texts, prefix=prefix)
        transformer: Any = self.model[0].auto_model

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
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
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
