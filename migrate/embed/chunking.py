"""Chunkers: split one document into consecutive chunks, for naive or late chunking.

What: a chunker turns a document's text into sorted, non-overlapping character ranges
(``chunk_ranges``) or the chunk strings themselves (``chunk_document``). Three kinds, as
in the late-chunking reference (jina-ai/late-chunking ``chunking.py``):

* ``tokens:N``     fixed size, N tokens of the model's tokenizer per chunk (the reference
                   "fixed" strategy; needs a tokenizer);
* ``sentences:N``  N sentences per chunk; a sentence ends at ``.``, ``!`` or ``?``
                   followed by whitespace or the end of the text (the reference rule);
* ``boundaries``   chunks start at given character offsets (``boundaries:0,120,480``,
                   or ``boundaries=[...]`` from code, e.g. taken from a source field);
* ``paragraphs``   split at blank lines (a convenience for given boundaries).

Why character ranges: the same ranges serve naive chunking (embed each chunk alone), the
API's late chunking (send the chunk strings with ``late_chunking: true``) and local late
chunking (``migrate.embed.pooling.plan_spans`` maps them to token spans via offsets).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from migrate.embed.pooling import Span, encode
from migrate.errors import ConfigError, InputError

CHUNKER_KINDS = ("tokens", "sentences", "boundaries", "paragraphs")
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")


@dataclass(frozen=True)
class ChunkerSpec:
    """A parsed ``--chunker`` value."""

    kind: str
    size: int = 0
    boundaries: tuple[int, ...] = ()

    def describe(self) -> str:
        """Canonical string, recorded in manifests and reports."""
        if self.kind in ("tokens", "sentences"):
            return f"{self.kind}:{self.size}"
        if self.kind == "boundaries" and self.boundaries:
            return "boundaries:" + ",".join(map(str, self.boundaries))
        return self.kind


def parse_chunker(spec: str | ChunkerSpec) -> ChunkerSpec:
    """Parse ``tokens:256``, ``sentences:3``, ``boundaries[:0,120]`` or ``paragraphs``."""
    if isinstance(spec, ChunkerSpec):
        return spec
    kind, _, arg = spec.strip().partition(":")
    kind = {"fixed": "tokens", "sentence": "sentences", "paragraph": "paragraphs"}.get(kind, kind)
    if kind not in CHUNKER_KINDS:
        raise ConfigError(f"unknown chunker {spec!r}", hint="use tokens:N, sentences:N, boundaries or paragraphs")
    if kind in ("tokens", "sentences"):
        try:
            size = int(arg)
        except ValueError:
            raise ConfigError(f"chunker {spec!r} needs a whole number after the colon", hint=f"e.g. {kind}:{256 if kind == 'tokens' else 3}") from None
        if size < 1:
            raise ConfigError(f"chunker {spec!r}: size must be at least 1")
        return ChunkerSpec(kind, size)
    if kind == "boundaries" and arg:
        try:
            cuts = tuple(int(x) for x in arg.split(","))
        except ValueError:
            raise ConfigError(f"chunker {spec!r}: boundaries are comma-separated character offsets", hint="e.g. boundaries:0,120,480") from None
        return ChunkerSpec(kind, boundaries=cuts)
    return ChunkerSpec(kind)


def _trim(text: str, a: int, b: int) -> Span:
    """Shrink [a, b) so it neither starts nor ends with whitespace."""
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


def _ranges_from_cuts(text: str, cuts: Sequence[int]) -> list[Span]:
    """Chunks starting at each cut (0 and len(text) implied), trimmed, empties dropped."""
    n = len(text)
    for c in cuts:
        if not 0 <= c <= n:
            raise InputError(f"chunk boundary {c} is outside the document ({n} characters)")
    points = sorted(set([0, *cuts, n]))
    out = []
    for a, b in zip(points, points[1:]):
        a, b = _trim(text, a, b)
        if b > a:
            out.append((a, b))
    return out


def _token_ranges(text: str, size: int, tokenizer: Any) -> list[Span]:
    if tokenizer is None:
        raise ConfigError("the tokens:N chunker needs the model's tokenizer")
    enc = encode(tokenizer, text, add_special_tokens=False)
    cuts = [enc.offsets[i][0] for i in range(size, len(enc.ids), size)]
    return _ranges_from_cuts(text, cuts)


def _sentence_ranges(text: str, n_sentences: int) -> list[Span]:
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    cuts = ends[n_sentences - 1 :: n_sentences]
    return _ranges_from_cuts(text, cuts)


def chunk_ranges(text: str, spec: str | ChunkerSpec, tokenizer: Any = None, *, boundaries: Sequence[int] | None = None) -> list[Span]:
    """Character ranges of the chunks of ``text``: sorted, disjoint, never empty, trimmed.

    A text with no non-space character gives ``[]``. ``boundaries`` (character offsets
    where chunks start) overrides the offsets in a ``boundaries:`` spec.
    """
    cs = parse_chunker(spec)
    if not text.strip():
        return []
    if cs.kind == "tokens":
        return _token_ranges(text, cs.size, tokenizer)
    if cs.kind == "sentences":
        return _sentence_ranges(text, cs.size)
    if cs.kind == "paragraphs":
        return _ranges_from_cuts(text, [m.end() for m in _PARAGRAPH_BREAK.finditer(text)])
    cuts = list(boundaries) if boundaries is not None else list(cs.boundaries)
    return _ranges_from_cuts(text, cuts)


def chunk_document(text: str, spec: str | ChunkerSpec, tokenizer: Any = None, *, boundaries: Sequence[int] | None = None) -> list[str]:
    """The chunk strings of ``text`` (see ``chunk_ranges``), in document order."""
    return [text[a:b] for a, b in chunk_ranges(text, spec, tokenizer, boundaries=boundaries)]
