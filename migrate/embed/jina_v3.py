"""Local jina-embeddings-v3 (and v2 JinaBERT) inference, the way the reference does it.

What: an :class:`~migrate.embed.base.Embedder` for Jina model folders on this machine.

* **v3, transformers-native layout** (``model_type: jina_embeddings_v3``, transformers
  >= 5): the backbone is ``JinaEmbeddingsV3Model``; the five task LoRA adapters are PEFT
  adapters in sub-folders named after the task with ``_`` for ``.``/``-``
  (``retrieval_query/``, ``retrieval_passage/``, ``separation/``, ``classification/``,
  ``text_matching/``, each with ``adapter_config.json`` + weights), loaded with
  ``model.load_adapter(...)`` and switched with ``set_adapter`` (needs ``peft``).
* **v3, original remote-code layout** (``XLMRobertaLoRA``, ``lora_adaptations`` in the
  config): the code files must be in the folder (or in the offline HF cache); the adapter
  is chosen per row with ``adapter_mask = task id`` (position in ``lora_adaptations``).
* **v2 JinaBERT** (remote code ``JinaBertModel``): no adapters, no prefixes; mean pooling.

Task handling mirrors the reference ``encode(task=...)`` (jina-spec §3.4): a task selects
its adapter *and* puts the task's instruction in front of every text (from the config's
``task_instructions``; defaults = jina-spec §3.3). The task is never implicit: ``none`` is
an explicit choice that disables all adapters and adds no prefix, and is recorded so.

Inference rules: fp32 on CPU, bf16 (else fp16) on GPU, pooling always in fp32; SDPA
attention (flash-attention 2 when installed on CUDA); batches packed by a padded-token
budget after sorting by length, input order restored; Matryoshka truncation only to the
model's ``matryoshka_dimensions`` unless ``allow_any_dimensions``, truncation *before*
normalisation. Late chunking is local (one forward pass per document, overlapping macro
windows past the context), see :mod:`migrate.embed.pooling`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from migrate.embed import pooling
from migrate.embed.backend import BackendType, Capabilities, parse_options
from migrate.embed.base import EmbedderInfo, EmbedResult, truncate_and_normalize
from migrate.models import ALL_TASKS, TASK_NONE, V3_TASK_PREFIXES, V3_TASKS
from migrate.embed.batching import fixed_batches, plan_batches
from migrate.embed.jina_layout import (LAYOUT_NATIVE, LAYOUT_REMOTE_V3, V3_MATRYOSHKA, adapter_folder, detect_layout,
                                       read_config, remote_class, resolve_path)
from migrate.embed.local_common import LocalOptions, pick_device, pick_dtype
from migrate.errors import ConfigError, EmbeddingError


class JinaV3Embedder:
    """jina-embeddings-v3 / v2 on this machine, behind the Embedder protocol.

    ``dimensions``: Matryoshka size (must be one of the model's sizes unless
    ``allow_any_dimensions``). ``token_budget``: padded tokens per batch. ``batch_size``
    (benchmarks only): fixed-size batches in input order instead. ``late_overlap``:
    overlap of macro windows for documents longer than ``max_tokens`` in late chunking.
    """

    def __init__(self, model: str, options: LocalOptions | None = None, /, **kw: Any) -> None:
        import torch
        from transformers import AutoTokenizer

        o: LocalOptions = parse_options(LocalOptions, kw, base=options, where="jina-local")
        self.options = o
        dimensions, max_tokens, prompts = o.dimensions, o.max_tokens, o.prompts
        self.model_name = model
        self.path = resolve_path(model)
        self.layout = detect_layout(self.path)
        self.cfg = read_config(self.path)
        self.device = pick_device(o.device)
        self.torch_dtype = pick_dtype(self.device, o.dtype)
        self.attn_implementation = o.attn_implementation or self._default_attention()
        self._lock = threading.Lock()
        self._active: str | None = None
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.path}: cannot load the tokenizer ({str(exc).splitlines()[0][:160]})") from None

        if self.layout == LAYOUT_NATIVE:
            self.model = self._load_native()
        else:
            self.model = self._load_remote()
        self.model.to(self.device).eval()

        hidden = int(self.cfg.get("hidden_size", 0))
        self.native_dim = hidden
        self.matryoshka = tuple(self.cfg.get("matryoshka_dimensions") or (V3_MATRYOSHKA if hidden == 1024 and self.is_v3 else (hidden,)))
        if dimensions is not None:
            if not 0 < dimensions <= hidden:
                raise ConfigError(f"--dimensions {dimensions} is not possible for {model}: it has {hidden}")
            if dimensions not in self.matryoshka and not o.allow_any_dimensions:
                raise ConfigError(
                    f"--dimensions {dimensions} is not a Matryoshka size of {model} ({', '.join(map(str, self.matryoshka))})",
                    hint="pick one of those, or pass --allow-any-dimensions",
                )
        self.dimensions = dimensions or hidden
        self.prefixes = self._task_prefixes(prompts)
        limit = getattr(self.tokenizer, "model_max_length", None)
        if not limit or limit > 1_000_000:
            limit = min(int(self.cfg.get("max_position_embeddings", 8192)), 8192)
        self.max_tokens = int(max_tokens or limit)
        self.token_budget = o.token_budget
        self.max_batch = o.max_batch
        self.batch_size = o.batch_size
        self.sort_by_length = o.sort_by_length
        self.normalize = o.normalize
        self.late_overlap = o.late_overlap
        self._torch = torch

    # ----------------------------------------------------------------------- loading

    @property
    def is_v3(self) -> bool:
        return self.layout in (LAYOUT_NATIVE, LAYOUT_REMOTE_V3)

    def _default_attention(self) -> str:
        if self.device.startswith("cuda"):
            try:
                import flash_attn  # noqa: F401

                import torch

                if self.torch_dtype in (torch.float16, torch.bfloat16):
                    return "flash_attention_2"
            except ImportError:
                pass
        return "sdpa"

    def _load_native(self) -> Any:
        from transformers import JinaEmbeddingsV3Model

        model = JinaEmbeddingsV3Model.from_pretrained(
            str(self.path), dtype=self.torch_dtype, attn_implementation=self.attn_implementation,
            local_files_only=True, add_pooling_layer=False,
        )
        self.adapters: dict[str, str] = {}
        from transformers.utils import logging as hf_logging

        import warnings

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # each load reports the *other* adapters' keys as missing
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*multiple adapters.*")
                self._load_adapters(model)
        finally:
            hf_logging.set_verbosity(verbosity)
        # No adapter folders: only the explicit --task none works (checked per call).
        return model

    def _load_adapters(self, model: Any) -> None:
        for task in V3_TASKS:
            sub = self.path / adapter_folder(task)
            if (sub / "adapter_config.json").exists():
                try:
                    model.load_adapter(str(sub), adapter_name=adapter_folder(task))
                except (ImportError, ValueError) as exc:
                    raise ConfigError(f"{sub}: cannot load the task adapter ({str(exc).splitlines()[0][:160]})",
                                      hint="the native layout's adapters need the package peft") from None
                self.adapters[task] = adapter_folder(task)

    def _load_remote(self) -> Any:
        cls = remote_class(self.path, self.cfg, "AutoModel")
        try:
            model = cls.from_pretrained(str(self.path), torch_dtype=self.torch_dtype, local_files_only=True, trust_remote_code=True)
        except (OSError, ValueError, ImportError) as exc:
            raise ConfigError(f"{self.path}: the model's own code failed to load it ({str(exc).splitlines()[0][:200]})") from None
        if self.layout == LAYOUT_REMOTE_V3:
            self.adaptation_map = {t: i for i, t in enumerate(self.cfg.get("lora_adaptations", V3_TASKS))}
        return model

    def _task_prefixes(self, override: dict[str, str] | None) -> dict[str, str]:
        """Instruction per task: config ``task_instructions`` > defaults (v3) ; v2 has none."""
        if not self.is_v3:
            return {t: "" for t in ALL_TASKS}
        out = dict(V3_TASK_PREFIXES)
        out.update({k: v or "" for k, v in (self.cfg.get("task_instructions") or {}).items() if k in out})
        if override:
            out.update({k: v for k, v in override.items() if k in out})
        out[TASK_NONE] = ""
        return out

    # ----------------------------------------------------------------------- task selection

    def _check_task(self, task: str) -> None:
        if task not in ALL_TASKS:
            raise ConfigError(f"unknown task {task!r}", hint=f"choose one of {', '.join(ALL_TASKS)}")
        if self.layout == LAYOUT_NATIVE and task != TASK_NONE and task not in self.adapters:
            raise ConfigError(
                f"{self.path}: no adapter for task {task!r} (no {adapter_folder(task)}/adapter_config.json)",
                hint="download the adapter folders of jina-embeddings-v3-hf, or use --task none",
            )

    def prefix(self, task: str) -> str:
        return self.prefixes.get(task, "")

    def _select(self, task: str) -> None:
        """Native layout: make ``task``'s adapter the only active one, or disable all for ``none``.

        Done on peft's tuner layers directly (what ``set_adapter``/``disable_adapters`` do
        inside transformers), so it works with any peft that can load the adapters.
        """
        if self.layout != LAYOUT_NATIVE or not getattr(self, "adapters", None) or self._active == task:
            return
        from peft.tuners.tuners_utils import BaseTunerLayer

        for module in self.model.modules():
            if isinstance(module, BaseTunerLayer):
                if task == TASK_NONE:
                    module.enable_adapters(False)
                else:
                    module.enable_adapters(True)
                    module.set_adapter(self.adapters[task])
        self._active = task

    def _forward(self, input_ids: Any, attention_mask: Any, task: str) -> Any:
        """Token embeddings (batch, seq, dim) for the task (adapter chosen by caller lock)."""
        kwargs: dict[str, Any] = {}
        if self.layout == LAYOUT_REMOTE_V3 and task != TASK_NONE:
            kwargs["adapter_mask"] = self._torch.full(
                (input_ids.shape[0],), self.adaptation_map[task], dtype=self._torch.int32, device=input_ids.device
            )
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        return out[0]

    # ----------------------------------------------------------------------- protocol

    def info(self) -> EmbedderInfo:
        return EmbedderInfo(
            backend="jina-local",
            model=self.model_name,
            dimensions=self.dimensions,
            normalized=self.normalize,
            max_tokens=self.max_tokens,
            prefixes={t: self.prefix(t) for t in ALL_TASKS},
            ignored_tasks=() if self.is_v3 else V3_TASKS,
            extra={
                "layout": self.layout,
                "device": self.device,
                "dtype": str(self.torch_dtype).replace("torch.", ""),
                "attention": self.attn_implementation,
                "native_dimensions": self.native_dim,
                "matryoshka_dimensions": list(self.matryoshka),
                "adapters": sorted(getattr(self, "adapters", {}) or getattr(self, "adaptation_map", {})),
            },
        )

    def _encode_ids(self, texts: Sequence[str], task: str) -> list[list[int]]:
        prefix = self.prefix(task)
        enc = self.tokenizer(
            [prefix + t for t in texts], add_special_tokens=True, truncation=True, max_length=self.max_tokens,
            return_attention_mask=False, return_token_type_ids=False, verbose=False,
        )
        return [list(ids) for ids in enc["input_ids"]]

    def count_tokens(self, texts: Sequence[str], *, task: str) -> list[int]:
        """Tokens the model sees per input (instruction and special tokens in, cut at max_tokens)."""
        self._check_task(task)
        return [len(ids) for ids in self._encode_ids(texts, task)] if texts else []

    def embed(self, texts: Sequence[str], *, task: str, late_chunking: bool = False) -> EmbedResult:
        """Vectors in input order; ``late_chunking``: texts are consecutive chunks of one document."""
        self._check_task(task)
        texts = list(texts)
        if not texts:
            return EmbedResult(np.zeros((0, self.dimensions), np.float32), np.zeros(0, np.int64))
        if late_chunking:
            plan = pooling.plan_joined(self.tokenizer, texts, prefix=self.prefix(task))
            return self._embed_plan(plan, task)
        ids = self._encode_ids(texts, task)
        lengths = [len(x) for x in ids]
        pooled = self.pool_ids(ids, task)
        return EmbedResult(self._finish(pooled), np.asarray(lengths))

    def embed_document(self, text: str, char_ranges: Sequence[pooling.Span], *, task: str) -> EmbedResult:
        """Late chunking of one document at exact character ranges (``migrate.embed.chunking``)."""
        self._check_task(task)
        plan = pooling.plan_spans(self.tokenizer, text, char_ranges, prefix=self.prefix(task))
        return self._embed_plan(plan, task)

    def close(self) -> None:
        self.model = None

    # ----------------------------------------------------------------------- internals

    def pool_ids(self, ids: list[list[int]], task: str) -> np.ndarray:
        """Mean-pooled fp32 vectors (not normalised, full width) for pre-tokenized inputs."""
        torch = self._torch
        if self.batch_size:
            batches = fixed_batches(len(ids), self.batch_size)
        else:
            batches = plan_batches([len(x) for x in ids], self.token_budget, self.max_batch, sort=self.sort_by_length)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        out = np.empty((len(ids), self.native_dim), dtype=np.float32)
        with self._lock, torch.inference_mode():
            self._select(task)
            for batch in batches:
                rows = [ids[i] for i in batch.positions]
                width = max(len(r) for r in rows)
                input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
                mask = torch.zeros((len(rows), width), dtype=torch.long)
                for j, r in enumerate(rows):
                    input_ids[j, : len(r)] = torch.tensor(r, dtype=torch.long)
                    mask[j, : len(r)] = 1
                input_ids, mask = input_ids.to(self.device), mask.to(self.device)
                try:
                    tokens = self._forward(input_ids, mask, task)
                except RuntimeError as exc:  # CUDA OOM and the like
                    raise EmbeddingError(f"local model failed on a batch of {len(rows)}x{width} tokens: {str(exc).splitlines()[0][:160]}",
                                         hint="lower --token-budget") from None
                out[batch.positions] = pooling.mean_pool(tokens, mask).cpu().numpy()
        return out

    def _embed_plan(self, plan: pooling.LateChunkPlan, task: str) -> EmbedResult:
        torch = self._torch

        def forward(window: list[int]) -> Any:
            t = torch.tensor([window], dtype=torch.long, device=self.device)
            return self._forward(t, torch.ones_like(t), task)[0]

        with self._lock, torch.inference_mode():
            self._select(task)
            vecs = pooling.late_chunk(forward, plan, max_length=self.max_tokens, overlap=self.late_overlap).cpu().numpy()
        tokens = np.array([e - s for s, e in plan.spans])
        return EmbedResult(self._finish(vecs), tokens, total_tokens=plan.n_tokens)

    def _finish(self, vecs: np.ndarray) -> np.ndarray:
        """Matryoshka: truncate, then normalise (or only truncate when normalize=False)."""
        if self.normalize:
            return truncate_and_normalize(vecs, self.dimensions)
        return np.ascontiguousarray(vecs[:, : self.dimensions], dtype=np.float32)


BACKEND = BackendType(
    name="jina-local", remote=False, billed=False, options_type=LocalOptions,
    factory=lambda model, options: JinaV3Embedder(model, options),
    capabilities=lambda model: Capabilities(),
    description="a jina-embeddings-v3 (task adapters) or v2 JinaBERT folder on this machine",
)
