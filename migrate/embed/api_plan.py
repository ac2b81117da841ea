"""Which requests one ``embed`` call becomes, and what is refused before anything is sent.

What: ``plan_requests`` packs texts into requests (``packing.pack_requests``) and, with
late chunking, one request per document (all of its chunks, at most 2048 inputs and
8192 tokens joined); ``precheck_long`` refuses texts over 8192 tokens when the
tokenizer is exact and ``truncate`` is off.

Why (jina-spec §1.5, §4.3): with ``late_chunking`` the API embeds all inputs of a
request as one text, so a document must travel whole and is never cut silently; a text
over the per-input limit would be refused by the server after tokens may have been spent
on the other requests of the call.
"""

from __future__ import annotations

from collections.abc import Sequence

from migrate.embed.jina_tokens import TokenEstimator
from migrate.embed.jina_wire import MAX_INPUTS_PER_REQUEST, MAX_LATE_CHUNKING_TOKENS, MAX_TOKENS_PER_INPUT
from migrate.embed.packing import Batch, pack_requests
from migrate.errors import ConfigError, InputError


def _too_long(pairs: list[tuple[int, int]]) -> InputError:
    i, n = pairs[0]
    return InputError(f"{len(pairs)} text(s) exceed {MAX_TOKENS_PER_INPUT} tokens (first: text {i}, {n} tokens)",
                      hint="pass --truncate to let the API cut them, or split them")


def precheck_long(texts: Sequence[str], estimator: TokenEstimator, *, truncate: bool) -> None:
    """Refuse texts over the per-input limit. A text has at most one token per character
    plus its special tokens, so only texts longer than the limit in characters are counted."""
    if not estimator.exact or truncate:
        return
    idx = [i for i, t in enumerate(texts) if len(t) + 4 > MAX_TOKENS_PER_INPUT]
    if not idx:
        return
    counts = estimator.count([texts[i] for i in idx])
    too_long = [(i, n) for i, n in zip(idx, counts) if n > MAX_TOKENS_PER_INPUT]
    if too_long:
        raise _too_long(too_long)


def plan_requests(texts: list[str], estimator: TokenEstimator, *, late_chunking: bool, groups: Sequence[int] | None,
                  truncate: bool, max_inputs: int, max_request_tokens: int) -> tuple[list[Batch], list[int]]:
    """``(requests, estimated tokens per text)`` for one call."""
    est = estimator.count(texts)
    if not late_chunking:
        if estimator.exact and not truncate:
            too_long = [(i, n) for i, n in enumerate(est) if n > MAX_TOKENS_PER_INPUT]
            if too_long:
                raise _too_long(too_long)
        return pack_requests(est, max_inputs=max_inputs, max_tokens=max_request_tokens), est
    sizes = list(groups) if groups is not None else [len(texts)]
    if sum(sizes) != len(texts) or any(s <= 0 for s in sizes):
        raise ConfigError(f"late-chunking groups {sizes[:5]}... do not add up to the {len(texts)} texts")
    batches, start = [], 0
    for d, n in enumerate(sizes):
        if n > MAX_INPUTS_PER_REQUEST:
            raise InputError(
                f"late chunking: document {d} has {n} chunks, the API takes at most {MAX_INPUTS_PER_REQUEST} per request",
                hint="use bigger chunks or turn late chunking off for this index",
            )
        joined = estimator.count_joined(texts[start : start + n])
        if joined > MAX_LATE_CHUNKING_TOKENS:
            kind = "has" if estimator.exact else "is estimated at"
            raise InputError(
                f"late chunking: document {d} (texts {start}..{start + n - 1}) {kind} {joined} tokens; "
                f"one late-chunking request holds at most {MAX_LATE_CHUNKING_TOKENS}",
                hint="split the document, or turn late chunking off; it is never cut silently",
            )
        batches.append(Batch(start, start + n, joined))
        start += n
    return batches, est
