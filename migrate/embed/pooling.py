"""Pooling of token embeddings: plain mean pooling and late chunking.

What: turn a transformer's token embeddings into one vector per input (mean pooling)
or one vector per *chunk* of one document (late chunking, jina-spec §4).

Why here, in one module: the local backends (``migrate.embed.local``,
``migrate.embed.jina_v3``) and the local Jina-compatible server all have to pool the
same way the reference code does, or their vectors stop matching the API's.

Rules implemented (jina-spec §4, reference code jina-ai/late-chunking):

* Pooling is always done in **float32**, whatever dtype the model ran in (the v3
  reference casts token embeddings to fp32 "to avoid overflow" before pooling).
* Chunk spans are token spans over the tokenization of the *raw text without special
  tokens*. In the full sequence ``[start tokens] + prefix tokens + text tokens + [end
  tokens]`` they are shifted right by ``n_start + n_prefix``; the **first** span keeps
  its start (so it absorbs the start token and the instruction prefix) and the **last**
  span also takes the end token(s)  (``extend_spans``).
* A chunk vector is the plain mean of the token vectors in ``[start, end)``.
* Documents longer than the model context are embedded in overlapping macro windows
  (``macro_windows`` / ``forward_long``): every window after the first drops its first
  ``overlap`` outputs, the rest are concatenated into one token sequence.
* API-equivalent mode (``plan_joined``): the inputs are joined with a single space, the
  task prefix is put in front once, and each input's span comes from the tokenizer's
  character offsets.

Only the functions that touch tensors import torch, so span arithmetic can be used by
code (and tests) that never load a model.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from migrate.errors import ConfigError, InputError

if TYPE_CHECKING:  # pragma: no cover
    import torch

Span = tuple[int, int]

#: default overlap of macro windows for long late chunking (reference run_chunked_eval.py).
DEFAULT_OVERLAP = 256


# --------------------------------------------------------------------------- mean pooling


def mean_pool(token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Masked mean over the sequence axis, computed in float32.

    ``token_embeddings``: (batch, seq, dim) in any float dtype; ``attention_mask``:
    (batch, seq) of 0/1. Returns (batch, dim) float32. Rows with no real token give zeros
    instead of NaN (the clamp mirrors sentence-transformers and the v3 reference).
    """
    emb = token_embeddings.float()
    mask = attention_mask.to(device=emb.device, dtype=emb.dtype).unsqueeze(-1)
    summed = (emb * mask).sum(dim=1)
    counts = mask.sum(dim=1).clamp(min=1e-9)
    return summed / counts


def pool_spans(token_embeddings: torch.Tensor, spans: Sequence[Span]) -> torch.Tensor:
    """Mean of ``token_embeddings[start:end]`` for every span, in float32.

    ``token_embeddings``: (seq, dim) of *one* sequence. Raises ``InputError`` for an empty
    or out-of-range span instead of silently returning fewer vectors than chunks (the
    reference drops such spans; a migration must return one vector per chunk).
    """
    import torch

    emb = token_embeddings.float()
    n = emb.shape[0]
    out = []
    for i, (start, end) in enumerate(spans):
        if not (0 <= start < end <= n):
            raise InputError(f"late-chunk span {i} = [{start}, {end}) is empty or outside the {n} tokens of the document")
        out.append(emb[start:end].mean(dim=0))
    if not out:
        return emb.new_zeros((0, emb.shape[1]))
    return torch.stack(out)


# --------------------------------------------------------------------------- span arithmetic


def extend_spans(spans: Sequence[Span], *, n_prefix_tokens: int = 0, n_start_tokens: int = 1, n_end_tokens: int = 1) -> list[Span]:
    """Move raw-text token spans into the coordinates of the full model input.

    Same rule as the reference ``_extend_special_tokens`` (with the instruction prefix):
    every bound moves right by ``n_start_tokens + n_prefix_tokens``, except the first
    span's start, which stays where it is (0 for a chunking that starts at the text's
    first token), so that span absorbs the start token and the prefix; the last span's
    end also moves over the ``n_end_tokens`` end token(s).
    """
    shift = n_start_tokens + n_prefix_tokens
    out: list[Span] = []
    last = len(spans) - 1
    for i, (start, end) in enumerate(spans):
        left = start + (shift if i > 0 else 0)
        right = end + shift + (n_end_tokens if i == last else 0)
        out.append((left, right))
    return out


def token_spans_from_char_ranges(offsets: Sequence[tuple[int, int]], char_ranges: Sequence[Span]) -> list[Span]:
    """Map character ranges of a text to token spans over that text's tokens.

    ``offsets``: per-token ``(char_start, char_end)`` of the text tokenized *without*
    special tokens. A token belongs to the range that holds its last character, so a
    token that also covers the whitespace before a word (Metaspace "▁word", or a BPE
    "Ġword") goes with the word. Ranges must be sorted and must not overlap. A range that
    holds no token gives an empty span ``(k, k)``, which the caller can reject.
    """
    ends = [max(e - 1, s) for s, e in offsets]  # index of each token's last character
    spans: list[Span] = []
    for a, b in char_ranges:
        lo = bisect.bisect_left(ends, a)
        hi = bisect.bisect_left(ends, b)
        spans.append((lo, hi))
    return spans


# --------------------------------------------------------------------------- tokenizer access


@dataclass
class Encoding:
    """One tokenized text: ids, per-token char offsets, and which tokens are special."""

    ids: list[int]
    offsets: list[tuple[int, int]]
    special: list[bool]


def encode(tokenizer: Any, text: str, *, add_special_tokens: bool) -> Encoding:
    """Tokenize ``text`` with char offsets, for a HF fast tokenizer or a ``tokenizers.Tokenizer``.

    Slow (Python) tokenizers have no offsets; they are refused with a ConfigError.
    """
    try:
        from tokenizers import Tokenizer
    except ImportError:  # pragma: no cover
        Tokenizer = None  # type: ignore[assignment,misc]
    if Tokenizer is not None and isinstance(tokenizer, Tokenizer):
        enc = tokenizer.encode(text, add_special_tokens=add_special_tokens)
        return Encoding(list(enc.ids), [(int(o[0]), int(o[1])) for o in enc.offsets], [bool(m) for m in enc.special_tokens_mask])
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError("late chunking needs a fast tokenizer (character offsets)", hint="the model folder needs a tokenizer.json")
    enc = tokenizer(
        text,
        add_special_tokens=add_special_tokens,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        truncation=False,
        verbose=False,
    )
    special = enc.get("special_tokens_mask") or [0] * len(enc["input_ids"])
    return Encoding(list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]], [bool(m) for m in special])


# --------------------------------------------------------------------------- late-chunk plans


@dataclass
class LateChunkPlan:
    """Everything one late-chunking forward pass needs.

    ``input_ids``: the full model input (start token, prefix, text, end token), no
    padding, no truncation. ``spans``: one token span per chunk, in those coordinates.
    ``text``: the string that was tokenized (prefix included).
    """

    input_ids: list[int]
    spans: list[Span]
    text: str
    n_prefix_tokens: int = 0

    @property
    def n_tokens(self) -> int:
        return len(self.input_ids)


def _boundary_counts(full: Encoding) -> tuple[int, int, int, int]:
    """(first non-special index, end of non-special tokens, n_start specials, n_end specials)."""
    idx = [i for i, s in enumerate(full.special) if not s]
    if not idx:
        return 0, 0, len(full.ids), 0
    first, last = idx[0], idx[-1] + 1
    return first, last, first, len(full.ids) - last


def plan_spans(tokenizer: Any, text: str, char_ranges: Sequence[Span], *, prefix: str = "") -> LateChunkPlan:
    """Plan late chunking of ``text`` split at the given character ranges.

    The model input is ``prefix + text`` tokenized with special tokens, exactly what a
    plain ``model(tokenizer(prefix + text))`` call sees. Chunk token spans are found from
    the character offsets (a token belongs to the chunk holding its last character;
    tokens that lie wholly in the prefix go to the first chunk), then the special tokens
    are absorbed as in ``extend_spans``: the first span starts at 0, the last one ends at
    the end of the sequence. Raises ``InputError`` if a chunk gets no token.
    """
    if not char_ranges:
        raise InputError("late chunking got a document with no chunks")
    full_text = prefix + text
    full = encode(tokenizer, full_text, add_special_tokens=True)
    first, last, _, _ = _boundary_counts(full)
    body_offsets = full.offsets[first:last]
    shifted = [(a + len(prefix), b + len(prefix)) for a, b in char_ranges]
    body_spans = token_spans_from_char_ranges(body_offsets, shifted)
    n_prefix = sum(1 for s, e in body_offsets if e <= len(prefix) and e > 0)
    spans: list[Span] = []
    for i, (a, b) in enumerate(body_spans):
        if b <= a:
            raise InputError(f"late-chunk {i} (characters {char_ranges[i][0]}..{char_ranges[i][1]}) holds no token")
        start = 0 if i == 0 else first + a
        end = len(full.ids) if i == len(body_spans) - 1 else first + b
        spans.append((start, end))
    # Contiguity: tokens between two chunks (whitespace-only tokens) join the earlier chunk.
    for i in range(len(spans) - 1):
        spans[i] = (spans[i][0], spans[i + 1][0])
    return LateChunkPlan(input_ids=list(full.ids), spans=spans, text=full_text, n_prefix_tokens=n_prefix)


def plan_joined(tokenizer: Any, texts: Sequence[str], *, prefix: str = "", sep: str = " ") -> LateChunkPlan:
    """API-equivalent plan: ``prefix + sep.join(texts)``, one span per input.

    This is what the Jina API does with ``late_chunking: true`` (jina-spec §4.3): the
    inputs are concatenated with a single space, the task's instruction is put in front
    once, and each input gets the tokens of its own characters.
    """
    if not texts:
        raise InputError("late chunking got no inputs")
    ranges: list[Span] = []
    pos = 0
    for i, t in enumerate(texts):
        if i:
            pos += len(sep)
        ranges.append((pos, pos + len(t)))
        pos += len(t)
    return plan_spans(tokenizer, sep.join(texts), ranges, prefix=prefix)


def plan_token_spans(tokenizer: Any, text: str, spans: Sequence[Span], *, prefix: str = "") -> LateChunkPlan:
    """Plan from token spans over the raw text tokenized without special tokens.

    This is the reference chunkers' output format. The spans are turned into character
    ranges through the offsets and planned with ``plan_spans``, so the model input stays
    the plain ``tokenizer(prefix + text)``. Where the tokenizations of prefix and text
    simply concatenate (WordPiece) the result equals the reference's ``extend_spans``;
    where they do not (an XLM-R prefix ending in a space gives a lone "▁" token when
    tokenized alone), offsets keep the spans right instead of off by one.
    """
    enc = encode(tokenizer, text, add_special_tokens=False)
    ranges: list[Span] = []
    for i, (a, b) in enumerate(spans):
        if not (0 <= a < b <= len(enc.ids)):
            raise InputError(f"token span {i} = [{a}, {b}) is empty or outside the {len(enc.ids)} tokens of the text")
        ranges.append((enc.offsets[a][0], enc.offsets[b - 1][1]))
    return plan_spans(tokenizer, text, ranges, prefix=prefix)


# --------------------------------------------------------------------------- long documents


def macro_windows(n_tokens: int, window: int, overlap: int) -> list[tuple[int, int, int]]:
    """Overlapping windows for documents longer than the context (jina-spec §4.2).

    Returns ``(start, end, keep_from)`` triples: run the model on ``ids[start:end]`` and
    keep its outputs from ``keep_from`` on (0 for the first window, ``overlap`` after),
    so the kept outputs tile ``[0, n_tokens)`` exactly once. Step = window - overlap.
    """
    if window <= 0:
        raise ConfigError(f"late-chunking window must be positive, got {window}")
    if n_tokens <= window:
        return [(0, n_tokens, 0)]
    if not 0 <= overlap < window:
        raise ConfigError(f"late-chunking overlap {overlap} must be >= 0 and smaller than the window {window}")
    out = []
    start = 0
    while True:
        end = min(start + window, n_tokens)
        out.append((start, end, 0 if start == 0 else overlap))
        if end >= n_tokens:
            return out
        start += window - overlap


def forward_long(
    forward: Callable[[list[int]], torch.Tensor], input_ids: Sequence[int], *, window: int, overlap: int = DEFAULT_OVERLAP
) -> torch.Tensor:
    """Token embeddings (seq, dim) float32 for one document of any length.

    ``forward(ids)`` runs the model on one window of ids (no padding) and returns its
    (len(ids), dim) token embeddings. A document that fits in ``window`` is one call.
    """
    import torch

    parts = []
    for start, end, keep in macro_windows(len(input_ids), window, overlap):
        out = forward(list(input_ids[start:end]))
        parts.append(out[keep:].float())
    return torch.cat(parts, dim=0)


def late_chunk(
    forward: Callable[[list[int]], torch.Tensor], plan: LateChunkPlan, *, max_length: int, overlap: int = DEFAULT_OVERLAP
) -> torch.Tensor:
    """One (or, past ``max_length``, several windowed) forward pass, then span pooling.

    Returns (n_chunks, dim) float32, not normalised (normalise after any Matryoshka
    truncation).
    """
    tokens = forward_long(forward, plan.input_ids, window=max_length, overlap=overlap)
    return pool_spans(tokens, plan.spans)
