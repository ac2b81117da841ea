"""Feeding a sentence-transformers model token ids made once, ahead of it.

What:
* ``feed_for(model, max_tokens)``: a ``Feed`` for the model's input module, or None for one
  this module does not know (the caller then lets ``model.encode`` tokenize, as before).

  - ``TransformerFeed`` (a ``Transformer`` module with a fast tokenizer): ids with special
    tokens, cut at ``max_tokens`` the way its own ``truncation='longest_first'`` cuts; a
    batch is padded to its longest input: ids, attention mask, token type ids, the modality
    and the prompt's length, i.e. what ``Transformer.preprocess`` builds from the same texts.
  - ``StaticFeed`` (``StaticEmbedding``, model2vec): ids without special tokens, cut where the
    module's own tokenizer cuts (model2vec sets 512); a batch is the flat ids + offsets of its
    ``EmbeddingBag``.

* ``Feed.tokenize(texts)`` -> ``TokenIds``. Thread-safe: it uses a tokenizer that nothing
  reconfigures (a transformers tokenizer switches its backend's truncation on every call, so
  the feed keeps a private copy of the backend), and the fast path without character offsets.
* ``Feed.agrees(model, prompt)``: the features made here equal the model's own ``preprocess``
  of a few probe texts. A feed that disagrees (a library version that builds its inputs
  differently) is not used, so vectors never silently change.

Why: the token ids counted to pack batches are then the very ids the model runs on.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from migrate.embed.token_ids import TokenIds

#: Texts whose features must come out identical to the model's own preprocessing.
PROBES = ("Hello world", "Über naïve CAFÉ déjà-vu: 1,234.5 $ — ok?  Twice  spaced\ttab",
          "x", "Bag-of-words models cannot count tokens beyond their vocabulary 日本語 🙂",
          "a long text is cut where the model stops reading " * 120)

_NO_LIMIT = 1_000_000  # a model_max_length beyond this means "no limit" in transformers


def _encoder(tok: Any):
    """The tokenizer's batch encoder; the variant without character offsets is faster."""
    return getattr(tok, "encode_batch_fast", None) or tok.encode_batch


class TransformerFeed:
    """Ids and padded features for a ``Transformer`` input module with a fast tokenizer."""

    def __init__(self, hf_tokenizer: Any, max_tokens: int) -> None:
        backend = copy.deepcopy(hf_tokenizer.backend_tokenizer)
        backend.no_padding()
        if 0 < max_tokens < _NO_LIMIT:
            backend.enable_truncation(max_length=max_tokens, stride=0, strategy="longest_first",
                                      direction=hf_tokenizer.truncation_side)
        else:
            backend.no_truncation()
        self._encode = _encoder(backend)
        self.pad_id = hf_tokenizer.pad_token_id if hf_tokenizer.pad_token_id is not None else 0
        self.left = hf_tokenizer.padding_side == "left"
        self.type_ids = "token_type_ids" in hf_tokenizer.model_input_names
        self.special_ids = set(hf_tokenizer.all_special_ids)
        self._prompt_lengths: dict[str, int | None] = {}

    def tokenize(self, texts: list[str]) -> TokenIds:
        return TokenIds.from_lists([e.ids for e in self._encode(texts, add_special_tokens=True)])

    def prompt_length(self, prompt: str) -> int | None:
        """The prompt's tokens without a trailing special token (what mean pooling may leave out)."""
        if not prompt:
            return None
        if prompt not in self._prompt_lengths:
            ids = self.tokenize([prompt]).flat.tolist()
            self._prompt_lengths[prompt] = len(ids) - (1 if ids and ids[-1] in self.special_ids else 0)
        return self._prompt_lengths[prompt]

    def features(self, ids: TokenIds, rows: np.ndarray, prompt: str) -> dict[str, Any]:
        import torch

        lengths = ids.lengths[rows]
        width = int(lengths.max()) if len(rows) else 0
        cols = np.arange(width)
        mask = cols >= (width - lengths)[:, None] if self.left else cols < lengths[:, None]
        input_ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        if len(rows):  # row-major order of the mask's cells = the rows' ids one after another
            input_ids[mask] = np.concatenate([ids.row(int(r)) for r in rows])
        out: dict[str, Any] = {"input_ids": torch.from_numpy(input_ids),
                               "attention_mask": torch.from_numpy(mask.astype(np.int64))}
        if self.type_ids:
            out["token_type_ids"] = torch.zeros((len(rows), width), dtype=torch.long)
        out["modality"] = "text"
        plen = self.prompt_length(prompt)
        if plen is not None:
            out["prompt_length"] = plen
        return out


class StaticFeed:
    """Ids and ``EmbeddingBag`` features for a ``StaticEmbedding`` input module."""

    def __init__(self, tokenizer: Any) -> None:
        self._encode = _encoder(tokenizer)  # the module's own copy; nothing reconfigures it

    def tokenize(self, texts: list[str]) -> TokenIds:
        return TokenIds.from_lists([e.ids for e in self._encode(texts, add_special_tokens=False)])

    def features(self, ids: TokenIds, rows: np.ndarray, prompt: str) -> dict[str, Any]:
        import torch

        lengths = ids.lengths[rows]
        flat = np.concatenate([ids.row(int(r)) for r in rows]) if len(rows) else np.zeros(0, np.int32)
        offsets = np.zeros(len(rows), dtype=np.int64)
        np.cumsum(lengths[:-1], out=offsets[1:])
        return {"input_ids": torch.from_numpy(flat.astype(np.int64)), "offsets": torch.from_numpy(offsets)}


Feed = TransformerFeed | StaticFeed


def feed_for(model: Any, max_tokens: int) -> Feed | None:
    """The feed for ``model``'s input module, or None when it is not a known kind."""
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding, Transformer

    first = model[0]
    if isinstance(first, StaticEmbedding):
        return StaticFeed(first.tokenizer)
    if isinstance(first, Transformer):
        tok = first.tokenizer
        if tok is not None and getattr(tok, "backend_tokenizer", None) is not None:
            return TransformerFeed(tok, max_tokens)
    return None


def agrees(feed: Feed, model: Any, prompt: str) -> bool:
    """True when ``feed`` builds, for the probe texts, exactly the features ``model.preprocess`` builds."""
    import torch

    ref = model.preprocess(list(PROBES), prompt=prompt or None)
    ids = feed.tokenize([prompt + p for p in PROBES])
    mine = feed.features(ids, np.arange(len(PROBES)), prompt)
    if set(ref) != set(mine):
        return False
    for key, want in ref.items():
        got = mine[key]
        if isinstance(want, torch.Tensor):
            if not isinstance(got, torch.Tensor) or want.shape != got.shape or not torch.equal(want.long(), got.long()):
                return False
        elif want != got:
            return False
    return True
