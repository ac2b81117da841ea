"""Sentence spans of a document, for known-item queries (``knownitem``).

What: ``sentence_spans(text)`` returns ``(start, end)`` character spans of the sentences of
``text``; ``remove_span`` takes one out and joins the rest with one space.
Why a regular-expression splitter: no sentence-segmentation library is a dependency of
jina-migrate (pysbd, nltk's punkt, blingfire, syntok: none installed), and the guard only
needs *a* sentence whose removal leaves the rest intact, not linguistic precision. The
rules, in order:

* a line break ends a sentence (titles, headings and list items stand alone);
* ``. ! ? … ‼ ⁇ ⁈ ⁉`` and the Arabic ``؟ ۔``, Devanagari ``। ॥`` and Ethiopic ``። ፧`` end
  a sentence when whitespace follows (closing quotes and brackets stay with it);
* the CJK full stops ``。 ！ ？ ｡`` end a sentence with no whitespace after them (Chinese
  and Japanese put none);
* not after a lone capital letter (``J. Smith``) or a listed abbreviation (``e.g.``,
  ``et al.``, ``Fig.``...), and not when the next sentence would begin with a lower-case
  letter (``approx. five``): cased scripts start sentences upper-case, uncased ones are
  unaffected. Decimals (``3.5``) have no whitespace after the point, so never split.

Known limits: abbreviations outside the list followed by a capital (``Corp. Ltd``) split;
Thai and other scripts without sentence punctuation give one sentence per line.
"""

from __future__ import annotations

import re

#: Sentence-final marks that need whitespace after them.
_SPACED_END = ".!?…‼⁇⁈⁉؟۔।॥።፧"
#: Sentence-final marks of scripts written without spaces (Chinese, Japanese).
_CJK_END = "。！？｡"
_CLOSERS = "\"'”’»)]}）」』】"
_BOUNDARY = re.compile(
    rf"(?P<spaced>[{re.escape(_SPACED_END)}]+[{re.escape(_CLOSERS)}]*)(?=\s)"
    rf"|(?P<cjk>[{re.escape(_CJK_END)}]+[{re.escape(_CLOSERS)}]*)"
    r"|(?P<newline>\s*\n\s*)"
)
#: Lower-cased abbreviations (without their final point) after which a point ends no sentence.
ABBREVIATIONS = frozenset({
    "e.g", "i.e", "al", "vs", "cf", "fig", "figs", "eq", "eqs", "ref", "refs", "no", "nos", "vol", "pp", "p",
    "dr", "mr", "mrs", "ms", "prof", "sr", "jr", "st", "approx", "ca", "resp", "incl", "dept", "univ", "inc",
    "ltd", "co", "corp", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    "z.b", "bzw", "ggf", "usw", "vgl",
})
_WORD_BEFORE = re.compile(r"([\w.]+)$")


def _is_abbreviation(text: str, end_of_mark: int, mark: str) -> bool:
    """True when the point at ``end_of_mark - 1`` closes an abbreviation or an initial."""
    if not mark.startswith("."):
        return False
    m = _WORD_BEFORE.search(text, 0, end_of_mark - len(mark))
    if not m:
        return False
    word = m.group(1).lower().rstrip(".")
    if len(word) == 1 and word.isalpha():
        return True  # an initial: "J. Smith", "p. 4"
    return word in ABBREVIATIONS


def _next_starts_lower(text: str, pos: int) -> bool:
    rest = text[pos:].lstrip()
    return bool(rest) and rest[0].islower()


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence of ``text``, trimmed of surrounding whitespace.

    A text with no sentence punctuation is one sentence; a text with no visible
    character has none.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        spaced = m.group("spaced")
        if spaced is not None:
            if _is_abbreviation(text, m.end(), spaced) or _next_starts_lower(text, m.end()):
                continue
            end = m.end()
        elif m.group("cjk") is not None:
            end = m.end()
        else:
            end = m.start()
        _add(text, start, end, spans)
        start = m.end()
    _add(text, start, len(text), spans)
    return spans


def _add(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    piece = text[start:end]
    stripped = piece.strip()
    if not stripped or not any(ch.isalnum() for ch in stripped):
        return
    lead = len(piece) - len(piece.lstrip())
    spans.append((start + lead, start + lead + len(stripped)))


def sentences(text: str) -> list[str]:
    """The sentences of ``text`` (see ``sentence_spans``)."""
    return [text[s:e] for s, e in sentence_spans(text)]


def remove_span(text: str, span: tuple[int, int]) -> str:
    """``text`` without ``span``, the two sides joined by one space (no space is invented
    where neither side had one, as between CJK sentences)."""
    s, e = span
    left, right = text[:s].rstrip(), text[e:].lstrip()
    if not left or not right:
        return (left + right).strip()
    spaced = text[s - 1:s].isspace() or text[e:e + 1].isspace()
    return left + (" " if spaced else "") + right


def word_chars(text: str) -> int:
    """Letters and digits in ``text`` (a length that means the same in every script)."""
    return sum(1 for ch in text if ch.isalnum())
