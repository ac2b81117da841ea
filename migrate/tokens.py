"""Token counts with the target model's tokenizer, without calling any model.

Three ways, chosen in this order, always labelled in the result:

* ``exact``: the target tokenizer is on this machine (a ``tokenizer.json`` given with
  ``--tokenizer``, the Hugging Face cache, or the offline stand-in with the same
  vocabulary); every document is tokenized with the ``tokenizers`` library (batch
  encode, Rust, all cores).
* ``sample``: the tokenizer is there but the corpus is too big to tokenize within the
  time budget. Documents that could be over the 8192-token limit are tokenized
  exactly (a token covers at least half a character, so short documents cannot be);
  the rest are estimated by a *regression estimator* calibrated on a seeded random
  sample: the character model's prediction (known for every document) is the
  auxiliary variable, so the estimate is tight; the 95 % confidence interval uses
  the residual variance with the finite-population correction.
* ``estimate``: no tokenizer. A linear model over byte/character classes (words,
  ASCII letters, digits, punctuation, 2-, 3- and 4-byte UTF-8 characters), fitted
  offline on a calibration corpus (``bench/plan_calibrate_charmodel.py``) that does
  not include the test data, predicts each document; the stated error bound is the
  worst leave-one-domain-out error of that fit, with a margin.

Counts include the special tokens the tokenizer adds (``<s> ... </s>``) and the task
instruction prefix, as the API bills them; ``billed`` caps each document at the
limit when the request truncates.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from migrate.embed.tokenizers import TokenizerRef, find_tokenizer, load_tokenizer  # noqa: F401 (re-exported)
from migrate.errors import ConfigError
from migrate.models import MAX_TOKENS

#: Default cap on characters tokenized exactly before the sample path is taken
#: (the XLM-R tokenizer does about 1.4 M chars/s on this 2-core machine).
FULL_COUNT_MAX_CHARS = 24_000_000
DEFAULT_SAMPLE_SIZE = 2000
Z95 = 1.959963984540054

# ---------------------------------------------------------------- character model

FEATURES: tuple[str, ...] = ("intercept", "words", "ascii_letters", "digits", "ascii_punct",
                             "utf8_2byte", "utf8_3byte", "utf8_4byte", "ascii_upper")


@dataclass(frozen=True)
class CharModel:
    """tokens ~ coefficients . features(text); fitted per tokenizer family.

    ``bound_ascii`` holds for corpora whose bytes are at least 90 % ASCII,
    ``bound_other`` for any other corpus (both relative, on the corpus total).
    """

    family: str
    coefficients: tuple[float, ...]
    bound_ascii: float
    bound_other: float
    fitted_on: str

    def predict_features(self, feats: np.ndarray) -> np.ndarray:
        return feats @ np.asarray(self.coefficients, dtype=np.float64)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return self.predict_features(char_features(texts))

    def bound_for(self, ascii_share: float) -> float:
        return self.bound_ascii if ascii_share >= 0.9 else self.bound_other


# Fitted by bench/plan_calibrate_charmodel.py (XLM-R Unigram tokenizer of the e5-small
# stand-in = v3's vocabulary) on vim + Node.js docs (English prose and code) and
# gettext catalogues in 30 languages; SciFact is not part of the fit.
CHAR_MODELS: dict[str, CharModel] = {
    "xlm-roberta": CharModel(
        family="xlm-roberta",
        coefficients=(2.10561, 0.08290, 0.25825, 0.67680, 0.97837, 0.29250, 0.65563, 4.76369, 0.17283),
        bound_ascii=0.13,
        bound_other=0.23,
        fitted_on="8250 docs: vim help, Node.js docs, CPython stdlib, gettext in 30 languages",
    ),
}


def _byte_classes() -> tuple[np.ndarray, np.ndarray]:
    """Lookup tables: byte -> feature column (0 = counted nowhere) and byte -> is whitespace."""
    col = np.zeros(256, dtype=np.uint8)
    col[ord("a"):ord("z") + 1] = 2
    col[ord("A"):ord("Z") + 1] = 2  # letters; capitals are counted again below
    col[ord("0"):ord("9") + 1] = 3
    for b in range(33, 127):
        if col[b] == 0:
            col[b] = 4  # ASCII punctuation and symbols
    col[0xC0:0xE0] = 5  # lead byte of a 2-byte character (Latin accents, Cyrillic, Greek, ...)
    col[0xE0:0xF0] = 6  # 3-byte (CJK, Indic, Thai, ...)
    col[0xF0:0x100] = 7  # 4-byte (emoji, rare CJK)
    space = np.zeros(256, dtype=bool)
    space[[9, 10, 11, 12, 13, 32]] = True
    return col, space


_COL, _SPACE = _byte_classes()


def char_features(texts: Sequence[str]) -> np.ndarray:
    """(n, len(FEATURES)) float64 matrix of byte-class counts, vectorised over the corpus.

    One pass of table lookups over the UTF-8 bytes, then per-document sums with
    ``np.add.reduceat`` (no per-character Python; about 150 MB/s on one core).
    """
    n = len(texts)
    out = np.zeros((n, len(FEATURES)), dtype=np.float64)
    out[:, 0] = 1.0
    if n == 0:
        return out
    encoded = [t.encode("utf-8", "surrogatepass") for t in texts]
    lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=n)
    if int(lengths.sum()) == 0:
        return out
    arr = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    del encoded
    nonempty = lengths > 0
    starts = (np.cumsum(lengths) - lengths)[nonempty]
    ends = starts + lengths[nonempty] - 1
    acc = np.int32 if arr.size < 2**31 - 1 else np.int64

    def per_doc(mask: np.ndarray) -> np.ndarray:
        # segment sums via one cumulative sum (np.add.reduceat with a cast is ~10x slower)
        cs = np.cumsum(mask, dtype=acc)
        return cs[ends] - cs[starts] + mask[starts]

    space = _SPACE[arr]
    start = ~space
    start[1:] &= space[:-1]
    start[starts] = ~space[starts]  # a document starts a new word
    out[nonempty, 1] = per_doc(start)
    del start, space
    code = _COL[arr]
    for column in range(2, 8):
        out[nonempty, column] = per_doc(code == column)
    del code
    out[nonempty, 8] = per_doc((arr >= 65) & (arr <= 90))
    return out


def ascii_share(texts: Iterable[str]) -> float:
    chars = non_ascii = 0
    for t in texts:
        chars += len(t)
        non_ascii += len(t.encode("utf-8", "surrogatepass")) - len(t)
    if not chars:
        return 1.0
    return max(0.0, 1.0 - non_ascii / chars)


# ---------------------------------------------------------------- tokenizers
# Finding and loading tokenizers lives in ``migrate.embed.tokenizers`` (one home for the
# planner, the API client and the bundled server); imported above for the planner.


def _batches(texts: Sequence[str], size: int = 16_384):
    """The texts ``size`` at a time: streamed when ``texts`` reads from a source, sliced otherwise."""
    if hasattr(texts, "iter_batches"):
        yield from texts.iter_batches(size)
        return
    for i in range(0, len(texts), size):
        yield list(texts[i:i + size])


def _take(texts: Sequence[str], idx: np.ndarray) -> list[str]:
    if hasattr(texts, "take"):
        return texts.take(idx)
    return [texts[int(i)] for i in idx]


def _predicted(model: CharModel, texts: Sequence[str]) -> np.ndarray:
    """The character model's token estimate of each text, computed batch by batch."""
    parts = [model.predict_features(char_features(b)) for b in _batches(texts)]
    return np.concatenate(parts) if parts else np.zeros(0)


def count_exact(tokenizer, texts: Sequence[str], prefix: str = "", batch: int = 2048) -> np.ndarray:
    """Tokens per text (special tokens and ``prefix`` included)."""
    out = np.zeros(len(texts), dtype=np.int64)
    for i in range(0, len(texts), batch):
        chunk = [prefix + t for t in texts[i:i + batch]] if prefix else list(texts[i:i + batch])
        enc = tokenizer.encode_batch_fast(chunk) if hasattr(tokenizer, "encode_batch_fast") else tokenizer.encode_batch(chunk)
        out[i:i + len(chunk)] = [len(e.ids) for e in enc]
    return out


def _max_tokens_per_char(tokenizer) -> float:
    """Upper bound on tokens per character: 2 for Unigram/WordPiece (a piece covers >= 1
    char, plus at most one word marker), 4 for anything that may fall back to bytes."""
    kind = type(tokenizer.model).__name__
    if kind in ("Unigram", "WordPiece") and not getattr(tokenizer.model, "byte_fallback", False):
        return 2.0
    return 4.0


# ---------------------------------------------------------------- corpus counts


@dataclass
class TokenCount:
    """Token facts for a corpus, with how they were obtained.

    ``total`` counts every token (prefix and specials included); ``billed`` caps each
    document at ``limit`` when the run truncates. ``low``/``high`` bound ``total``:
    a 95 % confidence interval for ``sample``, the stated error bound for
    ``estimate``, equal to ``total`` for ``exact``.
    """

    method: str  # exact | sample | estimate
    total: int
    low: int
    high: int
    billed: int
    n_docs: int
    n_tokenized: int
    chars: int
    max_tokens: int
    n_over_limit: int
    over_limit_exact: bool
    limit: int
    prefix: str
    tokenizer: dict[str, Any] | None
    error_bound_rel: float | None = None
    confidence: float | None = None
    sample_size: int | None = None
    seed: int | None = None
    per_doc: np.ndarray | None = field(default=None, repr=False)

    @property
    def mean(self) -> float:
        return self.total / self.n_docs if self.n_docs else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "total": self.total,
            "low": self.low,
            "high": self.high,
            "billed": self.billed,
            "mean_per_doc": round(self.mean, 2),
            "n_docs": self.n_docs,
            "n_tokenized": self.n_tokenized,
            "chars": self.chars,
            "max_tokens": self.max_tokens,
            "n_over_limit": self.n_over_limit,
            "over_limit_exact": self.over_limit_exact,
            "limit": self.limit,
            "prefix": self.prefix,
            "tokenizer": self.tokenizer,
            "error_bound_rel": self.error_bound_rel,
            "confidence": self.confidence,
            "sample_size": self.sample_size,
            "seed": self.seed,
        }


def count_corpus(
    texts: Sequence[str],
    *,
    tokenizer=None,
    tokenizer_ref: TokenizerRef | None = None,
    family: str = "xlm-roberta",
    prefix: str = "",
    limit: int = MAX_TOKENS,
    truncate: bool = True,
    full_max_chars: int = FULL_COUNT_MAX_CHARS,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    seed: int = 0,
    keep_per_doc: bool = False,
) -> TokenCount:
    """Count (or estimate) the tokens of ``texts`` as sent with ``prefix``; see module doc."""
    n = len(texts)
    char_lens = np.fromiter((len(t) for b in _batches(texts) for t in b), dtype=np.int64, count=n)
    chars = int(char_lens.sum())
    ref = tokenizer_ref.as_dict() if tokenizer_ref else None

    def cap(t: np.ndarray) -> int:
        return int(np.minimum(t, limit).sum()) if truncate else int(t.sum())

    if tokenizer is None:
        return _estimate(texts, family, prefix, limit, truncate, chars, keep_per_doc)

    if chars <= full_max_chars or n <= sample_size:
        per = np.concatenate([count_exact(tokenizer, b, prefix) for b in _batches(texts)]) if n else np.zeros(0, np.int64)
        total = int(per.sum())
        return TokenCount("exact", total, total, total, cap(per), n, n, chars, int(per.max(initial=0)),
                          int((per > limit).sum()), True, limit, prefix, ref,
                          per_doc=per if keep_per_doc else None)

    # ---- sample path: long candidates exactly, the rest by a regression estimator.
    prefix_tokens = int(count_exact(tokenizer, [""], prefix)[0])
    bound = _max_tokens_per_char(tokenizer)
    cand = np.flatnonzero(bound * char_lens + prefix_tokens > limit)
    rest = np.setdiff1d(np.arange(n), cand, assume_unique=True)
    rng = np.random.default_rng(seed)
    cand_chars = int(char_lens[cand].sum())
    model = CHAR_MODELS.get(family) or CHAR_MODELS["xlm-roberta"]
    x_all = _predicted(model, texts)

    total_f, var = 0.0, 0.0
    n_tok = 0
    over_exact = True
    if cand_chars <= full_max_chars // 2:
        t_c = count_exact(tokenizer, _take(texts, cand), prefix)
        total_f += float(t_c.sum())
        billed_c = cap(t_c)
        n_over = int((t_c > limit).sum())
        max_tok = int(t_c.max(initial=0))
        n_tok += len(cand)
    else:  # too many long documents to tokenize: treat them as one more sampled stratum
        over_exact = False
        k = min(len(cand), max(sample_size // 4, 1))
        pick = np.sort(rng.choice(cand, size=k, replace=False))
        t_c = count_exact(tokenizer, _take(texts, pick), prefix)
        est, v = _regression_estimate(t_c.astype(np.float64), x_all[pick], x_all[cand])
        total_f += est
        var += v
        frac_over = float((t_c > limit).mean())
        n_over = int(round(frac_over * len(cand)))
        billed_c = int(round(est * (np.minimum(t_c, limit).sum() / max(t_c.sum(), 1)))) if truncate else int(round(est))
        max_tok = int(t_c.max(initial=0))
        n_tok += k

    billed = billed_c
    if rest.size:
        k = min(rest.size, sample_size)
        pick = np.sort(rng.choice(rest, size=k, replace=False))
        t_s = count_exact(tokenizer, _take(texts, pick), prefix)
        est, v = _regression_estimate(t_s.astype(np.float64), x_all[pick], x_all[rest])
        total_f += est
        var += v
        billed += int(round(est))  # nobody in this stratum can exceed the limit
        max_tok = max(max_tok, int(t_s.max(initial=0)))
        n_tok += k
    total = int(round(total_f))
    half = Z95 * math.sqrt(var)
    per_doc = None
    if keep_per_doc:  # estimates scaled to the total, exact counts where a document was tokenized
        per = x_all * (total_f / max(float(x_all.sum()), 1.0))
        if over_exact:
            per[cand] = t_c
        per_doc = np.maximum(np.rint(per), 1).astype(np.int64)
    return TokenCount("sample", total, int(math.floor(total_f - half)), int(math.ceil(total_f + half)), billed, n, n_tok,
                      chars, max_tok, n_over, over_exact, limit, prefix, ref, confidence=0.95,
                      sample_size=n_tok, seed=seed, per_doc=per_doc)


def _regression_estimate(y: np.ndarray, x_s: np.ndarray, x_pop: np.ndarray) -> tuple[float, float]:
    """Simple regression estimator of a population total and its variance (Cochran 7.1).

    y: sampled counts; x_s: auxiliary values of the sample; x_pop: of the whole stratum.
    """
    N, k = len(x_pop), len(y)
    if k == N:
        return float(y.sum()), 0.0
    if k < 3 or float(np.var(x_s)) == 0.0:
        mean = float(y.mean())
        s2 = float(np.var(y, ddof=1)) if k > 1 else mean ** 2
        return N * mean, N * N * (1 - k / N) * s2 / k
    b = float(np.cov(x_s, y, ddof=1)[0, 1] / np.var(x_s, ddof=1))
    est_mean = float(y.mean() + b * (x_pop.mean() - x_s.mean()))
    resid = y - y.mean() - b * (x_s - x_s.mean())
    s2e = float((resid ** 2).sum() / (k - 2))
    return N * est_mean, N * N * (1 - k / N) * s2e / k


def _estimate(texts: Sequence[str], family: str, prefix: str, limit: int, truncate: bool, chars: int,
              keep_per_doc: bool) -> TokenCount:
    model = CHAR_MODELS.get(family)
    if model is None:
        raise ConfigError(f"no calibrated character model for tokenizer family {family!r}",
                          hint="pass --tokenizer with the model's tokenizer.json")
    per_f = _predicted(model, texts)
    if prefix:
        per_f = per_f + (model.predict([prefix])[0] - model.coefficients[0])  # prefix tokens, no extra specials
    per = np.maximum(np.rint(per_f), 1).astype(np.int64)
    total = int(per.sum())
    rel = model.bound_for(ascii_share(t for b in _batches(texts) for t in b))
    billed = int(np.minimum(per, limit).sum()) if truncate else total
    return TokenCount("estimate", total, int(math.floor(total * (1 - rel))), int(math.ceil(total * (1 + rel))), billed,
                      len(texts), 0, chars, int(per.max(initial=0)), int((per > limit).sum()), False, limit, prefix,
                      None, error_bound_rel=rel, per_doc=per if keep_per_doc else None)
