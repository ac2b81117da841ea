"""Token counts for the plan, with the tokenizer of the model that will run.

Which tokenizer: ``--tokenizer`` (a tokenizer.json or a folder holding one); else the local
model's own (``--local-model``); else the target's from the Hugging Face cache or the
offline stand-in with the same vocabulary (``migrate.tokens.find_tokenizer``); else none,
and ``migrate.tokens`` estimates from characters. The counting itself (exact, sampled or
estimated) is ``migrate.tokens.count_corpus``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from migrate.errors import ConfigError
from migrate.models import MAX_TOKENS, ModelInfo
from migrate.planning.choice import LocalTarget
from migrate.planning.options import PlanOptions
from migrate.tokens import TokenCount, TokenizerRef, count_corpus, count_exact, find_tokenizer, load_tokenizer

TOKENIZER_HINT = "--tokenizer takes a Hugging Face tokenizer.json file, or a model folder holding one"


@dataclass
class Counted:
    """The corpus' token facts and the tokenizer they came from."""

    count: TokenCount
    per_doc: np.ndarray  # tokens per document (exact, or estimates scaled to the total)
    tokenizer: Any  # tokenizers.Tokenizer or None (character estimate)
    ref: TokenizerRef | None

    def prefix_tokens(self, prefix: str) -> int | None:
        """Tokens an instruction prefix adds to each document (None without a tokenizer)."""
        if self.tokenizer is None:
            return None
        return int(count_exact(self.tokenizer, [""], prefix)[0] - count_exact(self.tokenizer, [""])[0])


def open_tokenizer(opts: PlanOptions, target: ModelInfo, local: LocalTarget | None) -> tuple[Any, TokenizerRef | None]:
    """(tokenizer, where it came from), or (None, None) to estimate from characters."""
    if opts.estimate_only:
        return None, None
    if opts.tokenizer is not None:
        ref = find_tokenizer(target, opts.tokenizer)
        return (_load(ref.path), ref) if ref is not None else (None, None)
    if local is not None and local.tokenizer is not None:
        return local.tokenizer, TokenizerRef(Path(local.spec), f"{local.spec}'s own tokenizer")
    ref = find_tokenizer(target)
    return (_load(ref.path), ref) if ref is not None else (None, None)


def _load(path: Path):
    """``load_tokenizer`` with one clear line when the file is not a tokenizer."""
    try:
        return load_tokenizer(path)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - tokenizers raises a bare Exception for any unreadable file
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ConfigError(f"{path}: not a tokenizer ({reason})", hint=TOKENIZER_HINT) from None


def count_tokens(opts: PlanOptions, texts: Sequence[str], target: ModelInfo, prefix: str,
                 local: LocalTarget | None = None) -> Counted:
    """Count the corpus as the model that runs sees it (``prefix`` is prepended to each text)."""
    tok, ref = open_tokenizer(opts, target, local)
    count = count_corpus(texts, tokenizer=tok, tokenizer_ref=ref, family=target.tokenizer_family, prefix=prefix,
                         limit=target.max_tokens or MAX_TOKENS, truncate=opts.truncate,
                         full_max_chars=opts.full_max_chars, sample_size=opts.sample_size, seed=opts.seed,
                         keep_per_doc=True)
    assert count.per_doc is not None  # keep_per_doc=True
    return Counted(count, count.per_doc, tok, ref)
