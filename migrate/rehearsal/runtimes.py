"""The stand-in models at work inside the bundled server: count, cut, embed, late-chunk.

What: a ``Runtime`` per stand-in (``RuntimePool`` loads each once per process):

* **counting and billing** with the stand-in's own tokenizer (``migrate.embed.tokenizers``),
  over the *whole* text, special tokens in, task prefix out: ``usage`` bills every token
  as the real API would, even where the stand-in reads fewer;
* **embedding exactly as the stand-in does locally**: plain inputs go through the same
  ``LocalEmbedder`` that ``local:standin:NAME`` builds, so the server's vectors equal the
  local backend's, including its own input limit (MiniLM reads 256 tokens, e5-small 512);
* **long-context emulation** (server option ``long_context``): instead, texts longer than
  the stand-in's positions are embedded in overlapping macro windows over the whole text
  (``pooling.forward_long``), a rough emulation of an 8192-token model; ``/v1/models``
  names the mode;
* **late chunking**: the local backend's own late chunking (one context, span pooling);
  the static stand-in pools its token table directly.

Why: a rehearsal must give the vectors the stand-in gives anywhere else, or a migration
rehearsed through the server and one run with ``local:standin:...`` disagree.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from migrate.embed.tokenizers import load_tokenizer


def billed_tokens(tokenizer: Any, texts: Sequence[str]) -> list[int]:
    """What the server bills per text: the stand-in tokenizer's count, special tokens in, no truncation."""
    return [len(e.ids) for e in tokenizer.encode_batch(list(texts), add_special_tokens=True)]


def billed_tokens_of(stand_in: str, texts: Sequence[str]) -> list[int]:
    """``billed_tokens`` with the tokenizer of ``stand_in`` (no model is loaded)."""
    from migrate.embed.standins import model_dir

    return billed_tokens(load_tokenizer(model_dir(stand_in) / "tokenizer.json"), texts)


class Runtime(ABC):
    """Tokenize, embed and late-chunk with one stand-in model (thread-safe)."""

    stand_in: str
    dim: int
    max_length: int  # tokens the stand-in reads per input when run locally

    def __init__(self, stand_in: str, directory: Path) -> None:
        from migrate.embed.local import LocalEmbedder

        self.stand_in = stand_in
        self.directory = directory
        self.tokenizer = load_tokenizer(directory / "tokenizer.json")
        self.local = LocalEmbedder(f"standin:{stand_in}", normalize=False)
        self.dim = int(self.local.native_dim)
        self.max_length = int(self.local.max_tokens)
        self._lock = threading.Lock()

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text, with special tokens, no truncation (what is billed)."""
        return billed_tokens(self.tokenizer, texts)

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

    def embed(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        """Vectors (full width, not re-normalised) exactly as ``local:standin:NAME`` computes them."""
        with self._lock:
            return self.local.encode(list(texts), prefix=prefix).vectors

    def late_chunk(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        """One vector per input, from one context over ``prefix + " ".join(texts)``."""
        with self._lock:
            return self.local.encode(list(texts), prefix=prefix, late_chunking=True).vectors

    @abstractmethod
    def embed_long(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        """Long-context emulation: every token of every text contributes (see module docstring)."""


class TransformerRuntime(Runtime):
    """A BERT-style stand-in (MiniLM, e5-small)."""

    def __init__(self, stand_in: str, directory: Path) -> None:
        super().__init__(stand_in, directory)
        import torch

        self._torch = torch
        # the Hugging Face model inside sentence-transformers' first module (torch types a sub-module's
        # attributes as Tensor | Module: its config and call are the transformer's own)
        model: Any = self.local.model[0].auto_model
        self._model = model
        self.max_positions = int(model.config.max_position_embeddings)
        self.overlap = min(128, self.max_positions // 4)

    def _forward_ids(self, ids: list[int]) -> Any:
        torch = self._torch
        t = torch.tensor([ids], dtype=torch.long, device=self._model.device)
        return self._model(input_ids=t, attention_mask=torch.ones_like(t)).last_hidden_state[0].float().cpu()

    def embed_long(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        from migrate.embed.pooling import forward_long

        encs = self.tokenizer.encode_batch([prefix + t for t in texts], add_special_tokens=True)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with self._lock, self._torch.inference_mode():
            for i, e in enumerate(encs):
                tokens = forward_long(self._forward_ids, e.ids, window=self.max_positions, overlap=self.overlap)
                out[i] = tokens.mean(dim=0).numpy()
        return out


class StaticRuntime(Runtime):
    """The static stand-in: token vector = table[mapping[id]] * weight[id], mean pooled."""

    def __init__(self, stand_in: str, directory: Path) -> None:
        super().__init__(stand_in, directory)
        from safetensors.numpy import load_file

        t = load_file(str(directory / "model.safetensors"))
        self._table = t["embeddings"].astype(np.float32)
        self._mapping = t["mapping"]
        self._weights = t["weights"].astype(np.float32)

    def _vectors(self, ids: Sequence[int]) -> np.ndarray:
        a = np.asarray(ids, dtype=np.int64)
        return self._table[self._mapping[a]] * self._weights[a][:, None]

    def embed_long(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        encs = self.tokenizer.encode_batch([prefix + t for t in texts], add_special_tokens=False)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, e in enumerate(encs):
            if e.ids:
                out[i] = self._vectors(e.ids).mean(axis=0)
        return out

    def late_chunk(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        """A bag of tokens has no context: each span's mean over the joined text's tokens."""
        import torch

        from migrate.embed.pooling import late_chunk, plan_joined

        plan = plan_joined(self.tokenizer, list(texts), prefix=prefix)
        out = late_chunk(lambda ids: torch.from_numpy(self._vectors(ids)), plan, max_length=1 << 30, overlap=0)
        return out.numpy().astype(np.float32)


_LOADED: dict[str, Runtime] = {}
_LOAD_LOCK = threading.Lock()


class RuntimePool:
    """Loads each stand-in once per process, on first use (runtimes are read-only, so
    several servers in one process, e.g. in a test session, share them)."""

    def get(self, stand_in: str) -> Runtime:
        with _LOAD_LOCK:
            rt = _LOADED.get(stand_in)
            if rt is None:
                from migrate.embed.standins import model_dir

                directory = model_dir(stand_in)
                rt = (StaticRuntime if stand_in == "static" else TransformerRuntime)(stand_in, directory)
                _LOADED[stand_in] = rt
            return rt
