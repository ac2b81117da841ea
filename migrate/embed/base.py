"""The one contract every embedding backend meets.

A backend turns texts into an L2-normalised float32 matrix for one *task* and says
how many tokens it spent. Backends are found through ``migrate.embed.registry`` by a
spec string (``local:PATH``, ``jina-api:MODEL``, ...), the way ``llm`` finds models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from migrate.models import TASK_NONE

@dataclass
class EmbedResult:
    """Vectors for a list of inputs, in input order.

    ``vectors``: float32, shape (n, dimensions), L2-normalised unless the backend
    was told otherwise. ``tokens``: tokens spent per input (the server's ``usage``
    for API backends, the tokenizer's count for local ones). ``total_tokens`` is the
    billed total, which for an API can differ from ``tokens.sum()``.
    """

    vectors: np.ndarray
    tokens: np.ndarray
    total_tokens: int = 0

    def __post_init__(self) -> None:
        if self.vectors.dtype != np.float32:
            self.vectors = self.vectors.astype(np.float32)
        self.tokens = np.asarray(self.tokens, dtype=np.int64)
        if not self.total_tokens:
            self.total_tokens = int(self.tokens.sum())


@dataclass
class EmbedderInfo:
    """What the manifest and reports record about how vectors were made."""

    backend: str  # "local", "jina-api", ...
    model: str  # model name or path as given
    dimensions: int
    normalized: bool = True
    max_tokens: int | None = None
    prefixes: dict[str, str] = field(default_factory=dict)
    stand_in: str | None = None  # set when a stand-in model serves a real model name
    extra: dict[str, Any] = field(default_factory=dict)
    #: Tasks this model accepts but that do not change its vectors (no adapter, no instruction).
    ignored_tasks: tuple[str, ...] = ()

    def task_note(self, task: str) -> str | None:
        """A one-line warning when ``task`` is ignored by this model (None when it applies)."""
        if task == TASK_NONE or task not in self.ignored_tasks:
            return None
        return (f"the task {task!r} is ignored: {self.model} has no task adapters or instructions, "
                f"so its vectors are the same for every task")

    def as_dict(self) -> dict[str, Any]:
        d = {
            "backend": self.backend,
            "model": self.model,
            "dimensions": self.dimensions,
            "normalized": self.normalized,
            "max_tokens": self.max_tokens,
            "prefixes": dict(self.prefixes),
            "stand_in": self.stand_in,
        }
        if self.ignored_tasks:
            d["ignored_tasks"] = list(self.ignored_tasks)
        d.update(self.extra)
        return d


@runtime_checkable
class Embedder(Protocol):
    """texts + task -> float32 matrix, with token counts.

    ``late_chunking=True`` means: the texts are consecutive chunks of *one* document,
    embed them in one context and return one vector per chunk (as the Jina API does).
    """

    def info(self) -> EmbedderInfo: ...

    def embed(self, texts: Sequence[str], *, task: str, late_chunking: bool = False) -> EmbedResult: ...

    def count_tokens(self, texts: Sequence[str], *, task: str) -> list[int]: ...

    def close(self) -> None: ...


def truncate_and_normalize(vectors: np.ndarray, dimensions: int | None) -> np.ndarray:
    """Matryoshka: keep the first ``dimensions`` columns, *then* L2-normalise.

    (Normalising before truncating gives non-unit vectors: jina-embeddings-v3 HF #60.)
    """
    v = np.asarray(vectors, dtype=np.float32)
    if dimensions is not None and dimensions < v.shape[1]:
        v = v[:, :dimensions]
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(v / norms, dtype=np.float32)
