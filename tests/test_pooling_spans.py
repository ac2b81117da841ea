"""Pooling and late-chunk span rules (migrate.embed.pooling), with real tokenizers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from migrate.embed import pooling
from migrate.errors import ConfigError, InputError


def _tokenizer(name: str):
    from transformers import AutoTokenizer

    from migrate.embed.standins import model_dir

    try:
        return AutoTokenizer.from_pretrained(str(model_dir(name)))
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"stand-in {name} unavailable: {exc}")


def test_mean_pool_is_fp32_and_ignores_padding():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 8).to(torch.bfloat16)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    out = pooling.mean_pool(x, mask)
    assert out.dtype == torch.float32
    want0 = x[0, :3].float().mean(0)
    torch.testing.assert_close(out[0], want0, rtol=0, atol=1e-6)
    torch.testing.assert_close(out[1], x[1].float().mean(0), rtol=0, atol=1e-6)
    # padding content must not leak in
    y = x.clone()
    y[0, 3:] = 1000
    torch.testing.assert_close(pooling.mean_pool(y, mask)[0], want0, rtol=0, atol=1e-6)


def test_extend_spans_reference_rule():
    # reference _extend_special_tokens: +1 for CLS (+instruction), first starts at 0, last +1 for SEP
    assert pooling.extend_spans([(0, 3), (3, 7), (7, 9)]) == [(0, 4), (4, 8), (8, 11)]
    assert pooling.extend_spans([(0, 3), (3, 7)], n_prefix_tokens=5) == [(0, 9), (9, 14)]
    assert pooling.extend_spans([(0, 4)], n_prefix_tokens=2) == [(0, 8)]


def test_pool_spans_means_and_rejects_bad_spans():
    emb = torch.arange(12, dtype=torch.float32).reshape(6, 2)
    out = pooling.pool_spans(emb, [(0, 2), (2, 6)])
    torch.testing.assert_close(out, torch.tensor([[1.0, 2.0], [7.0, 8.0]]))
    with pytest.raises(InputError):
        pooling.pool_spans(emb, [(2, 2)])
    with pytest.raises(InputError):
        pooling.pool_spans(emb, [(4, 7)])


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 300), window=st.integers(2, 64), data=st.data())
def test_macro_windows_tile_the_sequence_once(n, window, data):
    overlap = data.draw(st.integers(0, window - 1))
    kept = []
    for start, end, keep in pooling.macro_windows(n, window, overlap):
        assert end - start <= window
        kept.extend(range(start + keep, end))
    assert kept == list(range(n))


def test_macro_windows_bad_arguments():
    with pytest.raises(ConfigError):
        pooling.macro_windows(10, 4, 4)
    with pytest.raises(ConfigError):
        pooling.macro_windows(10, 0, 0)


def test_forward_long_matches_single_pass_for_context_free_model():
    torch.manual_seed(0)
    emb = torch.nn.Embedding(50, 4)
    ids = torch.randint(0, 50, (37,)).tolist()

    def forward(window):
        return emb(torch.tensor(window))

    full = forward(ids).detach()
    calls = []

    def counting(window):
        calls.append(len(window))
        return forward(window)

    got = pooling.forward_long(counting, ids, window=10, overlap=3).detach()
    torch.testing.assert_close(got, full)
    assert max(calls) <= 10 and len(calls) > 1
    # windows see context: a context-dependent model differs from one full pass
    assert pooling.forward_long(forward, ids, window=64).shape == (37, 4)


def test_token_spans_from_char_ranges():
    # tokens "▁Hello" (covering the space before it) and "." go with their word's range
    offsets = [(0, 5), (5, 11), (11, 12), (12, 18)]  # "Hello" " world" "." " again"
    assert pooling.token_spans_from_char_ranges(offsets, [(0, 12), (13, 18)]) == [(0, 3), (3, 4)]


@pytest.mark.parametrize("name", ["minilm", "e5-small"])
def test_plan_joined_spans_cover_prefix_and_specials(name):
    tok = _tokenizer(name)
    texts = ["Hello world.", "Second  chunk here!", "third part"]
    prefix = "Represent the document for retrieval: "
    plan = pooling.plan_joined(tok, texts, prefix=prefix)
    full = tok(prefix + " ".join(texts))["input_ids"]
    assert plan.input_ids == full  # exactly the plain tokenizer call
    assert len(plan.spans) == 3
    assert plan.spans[0][0] == 0 and plan.spans[-1][1] == len(full)
    for (a, b), (c, _) in zip(plan.spans, plan.spans[1:]):
        assert a < b == c
    # every chunk's own tokens lie in its span
    for (a, b), text in zip(plan.spans, texts):
        own = tok(text, add_special_tokens=False)["input_ids"]
        core = [t for t in own if tok.convert_ids_to_tokens(t) != "\u2581"]
        inside = full[a:b]
        assert all(t in inside for t in core[1:]), (text, tok.convert_ids_to_tokens(inside))
    # the prefix is absorbed by the first span
    n_prefix = len(tok(prefix.strip(), add_special_tokens=False)["input_ids"])
    assert plan.spans[0][1] > n_prefix + 1


def test_plan_token_spans_equals_reference_extension_on_wordpiece():
    tok = _tokenizer("minilm")
    text = "Late chunking embeds the whole document once. Then it pools each chunk. The end!"
    n = len(tok(text, add_special_tokens=False)["input_ids"])
    spans = [(0, 5), (5, 11), (11, n)]
    prefix = "Represent the document for retrieval: "
    plan = pooling.plan_token_spans(tok, text, spans, prefix=prefix)
    n_instr = len(tok(prefix, add_special_tokens=False)["input_ids"])
    assert plan.spans == pooling.extend_spans(spans, n_prefix_tokens=n_instr)
    assert plan.input_ids == tok(prefix + text)["input_ids"]


def test_plan_spans_rejects_chunk_without_tokens():
    tok = _tokenizer("minilm")
    with pytest.raises(InputError):
        pooling.plan_spans(tok, "abc def", [(0, 3), (3, 4)])
    with pytest.raises(InputError):
        pooling.plan_joined(tok, [])


def test_late_chunk_equals_manual_span_means():
    torch.manual_seed(1)
    tok = _tokenizer("minilm")
    emb = torch.nn.Embedding(tok.vocab_size, 6)
    plan = pooling.plan_joined(tok, ["one two three.", "four five"], prefix="q: ")

    def forward(ids):
        return emb(torch.tensor(ids)).detach()

    got = pooling.late_chunk(forward, plan, max_length=512).numpy()
    allv = forward(plan.input_ids).numpy()
    want = np.stack([allv[a:b].mean(0) for a, b in plan.spans])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
