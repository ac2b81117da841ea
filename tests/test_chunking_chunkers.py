"""Chunkers (migrate.embed.chunking): tokens, sentences, given boundaries, paragraphs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrate.embed.chunking import chunk_document, chunk_ranges, parse_chunker
from migrate.errors import ConfigError, InputError

TEXT = (
    "Late chunking embeds a whole document once. Then it pools each chunk! Does it help? "
    "It helps most on long documents, e.g. SciFact abstracts.\n\nA second paragraph follows here."
)


def _tokenizer():
    from transformers import AutoTokenizer

    from migrate.embed.standins import model_dir

    try:
        return AutoTokenizer.from_pretrained(str(model_dir("e5-small")))
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"stand-in e5-small unavailable: {exc}")


def _check_ranges(text, ranges):
    assert ranges, "no chunks"
    prev = 0
    for a, b in ranges:
        assert prev <= a < b <= len(text)
        assert not text[a].isspace() and not text[b - 1].isspace()
        assert not text[prev:a].strip(), f"text lost between chunks: {text[prev:a]!r}"
        prev = b
    assert not text[prev:].strip()


def test_parse_chunker_specs():
    assert parse_chunker("tokens:256").describe() == "tokens:256"
    assert parse_chunker("fixed:64").describe() == "tokens:64"
    assert parse_chunker("sentences:3").describe() == "sentences:3"
    assert parse_chunker("boundaries:0,10,20").boundaries == (0, 10, 20)
    assert parse_chunker("paragraphs").describe() == "paragraphs"
    for bad in ("words:3", "tokens", "tokens:x", "tokens:0", "boundaries:a,b"):
        with pytest.raises(ConfigError):
            parse_chunker(bad)


def test_token_chunker_sizes():
    tok = _tokenizer()
    ranges = chunk_ranges(TEXT, "tokens:8", tok)
    _check_ranges(TEXT, ranges)
    counts = [len(tok(TEXT[a:b], add_special_tokens=False)["input_ids"]) for a, b in ranges]
    total = len(tok(TEXT, add_special_tokens=False)["input_ids"])
    assert len(ranges) == -(-total // 8)
    assert all(c <= 9 for c in counts)  # re-tokenizing a chunk alone may add one leading "▁"
    with pytest.raises(ConfigError):
        chunk_ranges(TEXT, "tokens:8")  # needs a tokenizer


def test_sentence_chunker_reference_rule():
    chunks = chunk_document(TEXT, "sentences:1")
    assert chunks[:3] == ["Late chunking embeds a whole document once.", "Then it pools each chunk!", "Does it help?"]
    # "e.g." inside a sentence ends a sentence only when followed by whitespace: "e.g. SciFact" splits (reference rule)
    assert any(c.endswith("e.g.") for c in chunks)
    two = chunk_document(TEXT, "sentences:2")
    assert two[0] == "Late chunking embeds a whole document once. Then it pools each chunk!"
    _check_ranges(TEXT, chunk_ranges(TEXT, "sentences:2"))


def test_given_boundaries_and_paragraphs():
    cut = TEXT.index("Then")
    assert chunk_document(TEXT, "boundaries", boundaries=[cut])[0] == "Late chunking embeds a whole document once."
    assert chunk_document(TEXT, f"boundaries:{cut}")[1].startswith("Then it pools")
    paras = chunk_document(TEXT, "paragraphs")
    assert len(paras) == 2 and paras[1] == "A second paragraph follows here."
    with pytest.raises(InputError):
        chunk_ranges(TEXT, "boundaries", boundaries=[len(TEXT) + 5])


def test_blank_text_has_no_chunks():
    assert chunk_ranges("   \n ", "sentences:1") == []


@settings(max_examples=100, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("ab .!?\n")), min_size=1, max_size=80), n=st.integers(1, 4))
def test_sentence_and_paragraph_chunks_partition_the_text(text, n):
    for spec in (f"sentences:{n}", "paragraphs"):
        ranges = chunk_ranges(text, spec)
        if text.strip():
            _check_ranges(text, ranges)
        else:
            assert ranges == []
