"""What every local backend (``local:``, ``jina-local:``) shares: typed options, device and dtype.

What: ``LocalOptions`` (validated by ``backend.parse_options``); ``pick_device`` (cuda,
mps, else cpu), ``pick_dtype`` (bf16, else fp16, on GPU; fp32 on CPU);
``quiet_transformers``; ``tokenizer_workers`` and ``own_tokenizer_threads`` (who tokenizes on
which cores). Why separate: both local backends use them and neither should import the other
for it (no cycle). Importing this module does not import torch.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import ClassVar

from pydantic.dataclasses import dataclass as options_dataclass

from migrate.embed.backend import OPTIONS_CONFIG, Bool, Int, Str
from migrate.embed.pooling import DEFAULT_OVERLAP
from migrate.errors import ConfigError


@options_dataclass(config=OPTIONS_CONFIG)
class LocalOptions:
    """Options of ``local:`` and ``jina-local:`` (``normalized`` is accepted for ``normalize``)."""

    ALIASES: ClassVar[dict[str, str]] = {"normalized": "normalize"}
    device: Str = "auto"  # auto, cpu, cuda, mps
    dtype: Str = "auto"  # auto, fp32, fp16, bf16
    dimensions: Int | None = None  # Matryoshka size: first N, then re-normalised
    max_tokens: Int | None = None  # cut each input here (default: the model's own limit)
    token_budget: Int = 16384  # padded tokens per batch
    max_batch: Int = 256
    normalize: Bool = True
    sort_by_length: Bool = True
    batch_size: Int | None = None  # fixed-size batches in input order (benchmark baseline)
    prompts: dict[str, str] | None = None  # task -> prefix, over the model's own prompt config
    allow_any_dimensions: Bool = False  # jina-embeddings-v3 folders: sizes outside its Matryoshka list
    attn_implementation: Str | None = None  # jina folders: sdpa, eager, flash_attention_2
    late_overlap: Int = DEFAULT_OVERLAP  # jina folders: macro-window overlap for long late chunking

def pick_device(device: str = "auto") -> str:
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(device: str, dtype: str = "auto"):
    import torch

    names = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16, "float16": torch.float16,
             "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}
    if dtype != "auto":
        if dtype not in names:
            raise ConfigError(f"unknown dtype {dtype!r}", hint="use auto, fp32, fp16 or bf16")
        return names[dtype]
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def quiet_transformers() -> None:
    """Silence load reports and weight-loading bars; our own progress display is the one to read."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


def cpu_count() -> int:
    """Cores this process may run on (its affinity mask, e.g. a container's share), not the machine's."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def tokenizer_workers(device: str, *, light_model: bool) -> int:
    """Threads that tokenize ahead of the model: the cores the model leaves free, at least one.

    On the CPU a transformer's forward pass runs ``torch.get_num_threads()`` threads (torch's
    default: one per core), so on a small machine one thread tokenizes (the one that reads the
    next shard) and the model keeps its cores. A static model's forward pass is a table lookup
    that leaves every core free; a GPU model needs one core to feed it. At most 8: tokenizing
    is rarely the bottleneck past that.
    """
    cores = cpu_count()
    if light_model:
        busy = 0
    elif device.startswith("cpu"):
        import torch

        busy = torch.get_num_threads()
    else:
        busy = 1
    return max(1, min(8, cores - busy))


def own_tokenizer_threads() -> None:
    """Turn off the tokenizers library's own thread pool unless the user set it.

    Our workers (``tokenizer_workers``) are the parallelism; the library's pool would put a
    second set of threads on the same cores, competing with them and with torch's threads.
    ``TOKENIZERS_PARALLELISM=true`` in the environment still wins (and costs time on few cores).
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@contextlib.contextmanager
def model_threads(n: int | None) -> Iterator[None]:
    """Run torch's CPU kernels on ``n`` threads inside the block (``None``: leave them as they are).

    A static model's forward pass is one ``EmbeddingBag`` over a few thousand ids: spread over
    every core it spends its time in thread barriers, ten times slower whenever the tokenizer
    threads (or anything else) hold a core. The count is the calling thread's (OpenMP), restored
    on leaving; threads that torch starts meanwhile begin with it, which costs them speed only.
    """
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
