"""Token counts and request packing for the Jina API client.

What: ``TokenEstimator`` counts tokens before anything is sent (for packing, the
8192-token limits, rate pacing and budgets); ``pack_requests`` splits a list of inputs
into requests of at most 2048 inputs and a token budget, in input order.

Why: the API bills and limits by its own tokenizer's count, which the client only
learns after the fact (``usage.total_tokens``). The estimator uses, in order:

1. an explicit ``tokenizer.json`` (option ``tokenizer=PATH``), exact if it is the
   model's tokenizer (``tokenizer="heuristic"`` forces rule 3);
2. the tokenizer of the tokenizer family the model uses, if the local stand-in models
   are installed: XLM-R Unigram (multilingual-e5-small's) for ``jina-embeddings-v3``,
   BERT uncased WordPiece (all-MiniLM-L6-v2's) for ``jina-embeddings-v2-*-en``;
3. otherwise a deliberately high estimate: ``utf-8 bytes / 3 + 2`` (about 1.3x the real
   count for English, about 1x for CJK), so a request the estimate lets through fits.

Counts include the start/end special tokens and never the task prefix (what the local
server bills; the real API's exact rule is [UNCONFIRMED]).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migrate.errors import ConfigError


def _family_tokenizer(model: str) -> Path | None:
    """tokenizer.json of ``model`` or of a local stand-in with the same vocabulary (catalogue lookup)."""
    from migrate.models import get_model
    from migrate.tokens import find_tokenizer

    try:
        ref = find_tokenizer(get_model(model))
    except ConfigError:  # not a catalogued Jina model: fall back to the heuristic
        return None
    return ref.path if ref is not None else None


@functools.lru_cache(maxsize=8)
def _load_tokenizer(path: str) -> Any:
    """Parse a tokenizer.json once per process (big vocabularies take seconds)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(path)
    tok.no_truncation()
    tok.no_padding()
    return tok


#: ``tokenizer=HEURISTIC`` skips tokenizers altogether.
HEURISTIC = "heuristic"


class TokenEstimator:
    """Tokens per text, exact when a tokenizer is available, otherwise a high estimate."""

    def __init__(self, model: str, tokenizer: str | Path | None = None, *, auto: bool = True) -> None:
        self._tok: Any = None
        self.source = "heuristic: utf-8 bytes / 3 + 2"
        path: Path | None = None
        if tokenizer == HEURISTIC:
            auto = False
        elif tokenizer:
            path = Path(tokenizer)
            if path.is_dir():
                path = path / "tokenizer.json"
            if not path.is_file():
                raise ConfigError(f"tokenizer file {path} not found", hint="give a tokenizer.json or a folder holding one")
        elif auto:
            path = _family_tokenizer(model)
        if path is not None:
            self._tok = _load_tokenizer(str(path))
            self.source = f"tokenizer {path}"

    @property
    def exact(self) -> bool:
        return self._tok is not None

    def count(self, texts: Sequence[str]) -> list[int]:
        if self._tok is not None:
            return [len(e.ids) for e in self._tok.encode_batch(list(texts), add_special_tokens=True)]
        return [len(t.encode("utf-8")) // 3 + 2 for t in texts]

    def count_joined(self, texts: Sequence[str]) -> int:
        """Tokens of the late-chunking input: the texts joined by one space."""
        if self._tok is not None:
            return len(self._tok.encode(" ".join(texts), add_special_tokens=True).ids)
        return sum(self.count(texts))


@dataclass(frozen=True)
class Batch:
    """Inputs ``[start, end)`` of one request and their estimated tokens."""

    start: int
    end: int
    tokens: int


def pack_requests(token_counts: Sequence[int], *, max_inputs: int, max_tokens: int) -> list[Batch]:
    """Greedy, order-preserving packing: a request closes when the next input would
    exceed ``max_inputs`` or ``max_tokens``. An input bigger than ``max_tokens`` gets a
    request of its own (the per-input limit is checked elsewhere)."""
    out: list[Batch] = []
    start, acc = 0, 0
    for i, n in enumerate(token_counts):
        if i > start and (i - start >= max_inputs or acc + n > max_tokens):
            out.append(Batch(start, i, acc))
            start, acc = i, 0
        acc += n
    if len(token_counts) > start:
        out.append(Batch(start, len(token_counts), acc))
    return out


def spread_tokens(estimates: Sequence[int], billed: int) -> list[int]:
    """Split a request's billed total over its inputs in proportion to the estimates
    (largest remainders), so the per-input numbers add up to exactly ``billed``."""
    total = sum(estimates)
    if not estimates:
        return []
    if total <= 0:
        base = [billed // len(estimates)] * len(estimates)
        base[0] += billed - sum(base)
        return base
    raw = [billed * e / total for e in estimates]
    out = [int(x) for x in raw]
    rest = billed - sum(out)
    order = sorted(range(len(raw)), key=lambda i: raw[i] - out[i], reverse=True)
    for i in order[:rest]:
        out[i] += 1
    return out
