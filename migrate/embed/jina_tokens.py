"""Token counts for the Jina API client, before anything is sent.

What: ``TokenEstimator`` counts tokens per text (for packing requests, the 8192-token
limits, rate pacing and budgets). Why: the API bills and limits by its own tokenizer's
count, which the client only learns after the fact (``usage.total_tokens``). The
estimator uses, in order:

1. an explicit ``tokenizer.json`` (option ``tokenizer=PATH``), exact if it is the
   model's tokenizer (``tokenizer="heuristic"`` forces rule 3);
2. the tokenizer of the family the model uses, found by ``migrate.embed.tokenizers``
   (the Hugging Face cache, or the offline stand-in with the same vocabulary: XLM-R
   Unigram for ``jina-embeddings-v3``, BERT uncased WordPiece for ``v2-*-en``);
3. otherwise a deliberately high estimate: ``utf-8 bytes / 3 + 2`` (about 1.3x the real
   count for English, about 1x for CJK), so a request the estimate lets through fits.

Counts include the start/end special tokens and never the task prefix (what the local
server bills; the real API's exact rule is [UNCONFIRMED]).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from migrate.embed.tokenizers import family_tokenizer, load_tokenizer

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
        elif auto:
            path = family_tokenizer(model)
        if path is not None:
            self._tok = load_tokenizer(path)
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
