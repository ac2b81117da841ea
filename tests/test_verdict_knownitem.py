"""The known-item regression guard (migrate.report.knownitem) and its sentence splitter.

Real computations only: sentence spans checked against hand-written expectations; ranks
checked on hand-made vectors whose answer is known by construction; the guard run on a
SciFact subset with the static stand-in model (same model on both sides: no regression,
exactly; a model that knows nothing, vectors drawn at random per text: a regression at
chance level), through a vector cache, and through a LanceDB collection built with lancedb's
own client, which must give the numbers the in-memory index gives.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pytest

from migrate.errors import ConfigError, InputError
from migrate.report.evidence import NO_REGRESSION_GUARD, REGRESSION, SKIPPED
from migrate.report.knownitem import (GuardSide, KnownItem, KnownItemSample, SourceDoc, guard_side, make_item, ranks,
                                      run_guard, sample_items)
from migrate.report.scorecache import ScoreCache
from migrate.report.sentences import remove_span, sentence_spans, sentences
from migrate.report.side import VectorStore

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"


# --------------------------------------------------------------------------- sentences


@pytest.mark.parametrize("text, expected", [
    ("", []),
    ("   \n\t  ", []),
    ("... !!! ???", []),
    ("no punctuation at all", ["no punctuation at all"]),
    ("One sentence only.", ["One sentence only."]),
    ("Dr. Smith went home. He slept! Did he?  Yes.", ["Dr. Smith went home.", "He slept!", "Did he?", "Yes."]),
    ("We used e.g. the cat. Fig. 3 shows it. Values were 3.5 times higher.",
     ["We used e.g. the cat.", "Fig. 3 shows it.", "Values were 3.5 times higher."]),
    ("J. R. R. Tolkien wrote books. They sold.", ["J. R. R. Tolkien wrote books.", "They sold."]),
    ('He said "stop." Then he left.', ['He said "stop."', "Then he left."]),
    ("Title line\nBody one. Body two.", ["Title line", "Body one.", "Body two."]),
    ("这是第一句。这是第二句！第三句？", ["这是第一句。", "这是第二句！", "第三句？"]),
    ("مرحبا بك؟ كيف حالك. أنا بخير.", ["مرحبا بك؟", "كيف حالك.", "أنا بخير."]),
    ("यह पहला वाक्य है। यह दूसरा है।", ["यह पहला वाक्य है।", "यह दूसरा है।"]),
    ("Das ist z.B. gut. Der Rest folgt.", ["Das ist z.B. gut.", "Der Rest folgt."]),
])
def test_sentences_on_hostile_and_foreign_text(text, expected):
    assert sentences(text) == expected
    for s, e in sentence_spans(text):
        assert text[s:e] == text[s:e].strip() and text[s:e]


def test_remove_span_joins_what_is_left():
    t = "A one here. B two here. C three here."
    spans = sentence_spans(t)
    assert remove_span(t, spans[1]) == "A one here. C three here."
    assert remove_span(t, spans[0]) == "B two here. C three here."
    assert remove_span(t, spans[2]) == "A one here. B two here."
    zh = "这是第一句。这是第二句！第三句？"
    assert remove_span(zh, sentence_spans(zh)[1]) == "这是第一句。第三句？"  # no space invented


# --------------------------------------------------------------------------- queries


def test_title_where_there_is_one_else_a_sentence_taken_out():
    titled = SourceDoc("a", "Body of the first document, long enough to stand alone.", "Known title here")
    item = make_item(titled)
    assert item == KnownItem("a", "Known title here", "Body of the first document, long enough to stand alone.", "title")
    body = ("The first sentence talks about glaciers melting fast. The second sentence covers ocean currents in "
            "winter. The third sentence is about coral reefs and fish.")
    item = make_item(SourceDoc("b", body))
    assert item.kind == "sentence" and item.query in sentences(body)
    assert item.query not in item.rest and len(item.rest) == len(body) - len(item.query) - 1
    # sentence mode with a title: the sentence comes from the body, the title stays in what is indexed
    item = make_item(SourceDoc("c", body, "Earth"), kind="sentence")
    assert item.rest.startswith("Earth ") and item.query in sentences(body) and item.query not in item.rest
    assert make_item(SourceDoc("d", body, "§ 2")).kind == "sentence"  # a title of one character is no query


@pytest.mark.parametrize("doc, kind, reason", [
    (SourceDoc("x", ""), "auto", "no sentence long enough to be a query"),
    (SourceDoc("x", "Too short. Also short."), "auto", "no sentence long enough to be a query"),
    (SourceDoc("x", "Only one sentence here, and it is long enough to be a query."), "auto",
     "a single sentence (nothing left once it is taken out)"),
    (SourceDoc("x", "Some body text that is long enough."), "title", "no title"),
    (SourceDoc("x", "tiny", "A title"), "auto", "nothing but a title"),
    (SourceDoc("x", "Some body text that is long enough.", "§ 2"), "title", "a title too short to be a query"),
])
def test_documents_that_make_no_query_say_why(doc, kind, reason):
    assert make_item(doc, kind=kind) == reason


def test_no_usable_document_is_one_clear_error():
    with pytest.raises(InputError, match="got no documents"):
        sample_items([])
    docs = [SourceDoc(str(i), "short") for i in range(5)] + [SourceDoc("t", "tiny", "Title")]
    with pytest.raises(InputError) as e:
        sample_items(docs)
    msg = str(e.value)
    assert "none of the 6 documents" in msg and "5 no sentence long enough" in msg and "1 nothing but a title" in msg
    with pytest.raises(ConfigError, match="kind"):
        sample_items(docs, kind="paragraph")
    with pytest.raises(ConfigError, match="at least 1"):
        sample_items(docs, sample=0)


def _docs(n: int) -> list[SourceDoc]:
    return [SourceDoc(f"d{i}", f"Document {i} opens with a sentence about topic {i}. It ends with another "
                               f"sentence about subject {i * 7}.") for i in range(n)]


def test_sample_depends_on_seed_and_ids_not_on_order():
    docs = _docs(200)
    a = sample_items(docs, sample=50, seed=1)
    shuffled = docs[:]
    random.Random(3).shuffle(shuffled)
    b = sample_items(shuffled, sample=50, seed=1)
    assert a.items == b.items and len(a.items) == 50 and a.documents == 200
    c = sample_items(docs, sample=50, seed=2)
    assert {i.doc_id for i in c.items} != {i.doc_id for i in a.items}
    # adding documents keeps the ones already sampled unless a new one hashes lower
    grown = sample_items(docs + _docs(260)[200:], sample=50, seed=1)
    assert len({i.doc_id for i in grown.items} & {i.doc_id for i in a.items}) >= 35
    assert sample_items(docs[:1], sample=300).kinds == {"sentence": 1}  # one document: one query


# --------------------------------------------------------------------------- ranks, by construction


def _unit(*v: float) -> np.ndarray:
    x = np.asarray(v, dtype=np.float32)
    return x / np.linalg.norm(x)


def _at_cos(c: float, axis: int, other: int, dim: int = 4) -> np.ndarray:
    v = np.zeros(dim, np.float32)
    v[axis], v[other] = c, np.sqrt(1 - c * c)
    return v


class Lookup:
    """An encoder that maps known texts to hand-made vectors (the test's model)."""

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table, self.calls = table, 0

    def __call__(self, texts):
        self.calls += 1
        return np.stack([self.table[t] for t in texts])


def test_rank_is_one_plus_the_other_documents_scoring_above_the_shortened_one():
    e0 = _unit(1, 0, 0, 0)
    index = {"A": e0,  # A's original: the query's own text still inside, cos 1.0: must not count
             "B": _at_cos(0.9, 0, 1), "C": _at_cos(0.7, 0, 2), "D": _at_cos(0.1, 0, 3)}
    enc = Lookup({"qa": e0, "ra": _at_cos(0.8, 0, 1), "qd": _unit(0, 0, 0, 1), "rd": _at_cos(0.95, 3, 2)})
    store = VectorStore("idx", list(index), np.stack(list(index.values())))
    side = GuardSide("s", store, enc, enc)
    items = [KnownItem("A", "qa", "ra", "sentence"), KnownItem("D", "qd", "rd", "sentence")]
    # A: shortened cos 0.8; above it only B (0.9): rank 2. D: shortened cos 0.95, others below 0.32: rank 1
    assert ranks(side, items, k=10) == [2, 1]
    assert ranks(side, items, k=1) == [None, 1]  # rank 2 is past k = 1


def test_guard_verdicts_and_skips_by_construction():
    rng = np.random.default_rng(0)
    n = 60
    ids = [f"d{i}" for i in range(n)]
    good = rng.normal(size=(n, 16)).astype(np.float32)
    table = {}
    for i in range(n):
        table[f"q{i}"] = good[i]
        table[f"r{i}"] = good[i] + 0.05 * rng.normal(size=16).astype(np.float32)
    items = KnownItemSample([KnownItem(ids[i], f"q{i}", f"r{i}", "sentence") for i in range(n)], 0, n, "auto", n)
    store = VectorStore("good", ids, good)
    enc = Lookup(table)
    same = run_guard(items, GuardSide("old", store, enc, enc), GuardSide("new", store, enc, enc))
    assert same.verdict == NO_REGRESSION_GUARD and same.mrr.delta == 0 and same.old.mrr == 1.0
    # new: a model (and the index it built) whose vectors have nothing to do with the texts
    noise = rng.normal(size=(n, 16)).astype(np.float32)
    lost = Lookup({t: rng.normal(size=16).astype(np.float32) for t in table})
    bad = run_guard(items, GuardSide("old", store, enc, enc), GuardSide("new", VectorStore("bad", ids, noise), lost, lost))
    assert bad.verdict == REGRESSION and bad.code == "regression" and bad.mrr.delta_ci[1] < -bad.margin
    assert "less often" in bad.reason
    # the guard never says better: the same pair the other way round is only "no regression"
    assert run_guard(items, GuardSide("old", VectorStore("bad", ids, noise), lost, lost),
                     GuardSide("new", store, enc, enc)).verdict == NO_REGRESSION_GUARD
    skipped = run_guard(items, guard_side("old", store, None, query_task="none", doc_task="none",
                                          why_not="old: the model 'v2-base' cannot run here"),
                        GuardSide("new", store, enc, enc))
    assert skipped.verdict == SKIPPED and skipped.reason == "old: the model 'v2-base' cannot run here"
    assert skipped.mrr is None and json.dumps(skipped.as_dict())
    few = KnownItemSample(items.items[:19], 0, 300, "auto", 19)
    too_few = run_guard(few, GuardSide("old", store, enc, enc), GuardSide("new", VectorStore("bad", ids, noise), lost, lost))
    assert too_few.verdict == SKIPPED and "only 19 documents" in too_few.reason  # never fires on a handful
    chunked = VectorStore("c", ids[:2], np.stack([good[0], good[1], good[1]]), np.array([0, 1, 1]))
    assert guard_side("new", chunked, object(), query_task="none", doc_task="none").skip_reason.endswith(
        "would need the run's chunker")
    with pytest.raises(ConfigError, match="64 dims but the index has 16"):
        wide = Lookup({k: np.resize(v, 64) for k, v in table.items()})
        run_guard(items, GuardSide("old", store, wide, wide), GuardSide("new", store, enc, enc))


# --------------------------------------------------------------------------- SciFact, real model


def _scifact(n: int) -> list[SourceDoc]:
    out = []
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            out.append(SourceDoc(d["_id"], d["text"], d.get("title") or None))
            if len(out) == n:
                break
    return out


class RandomModel:
    """A model that knows nothing: each text's vector is drawn at random, seeded by the text."""

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim

    def info(self):
        from migrate.embed.base import EmbedderInfo

        return EmbedderInfo("test", "random", self.dim)

    def embed(self, texts, *, task, late_chunking=False):
        from migrate.embed.base import EmbedResult

        rows = [np.random.default_rng(int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "big")).normal(size=self.dim)
                for t in texts]
        return EmbedResult(np.asarray(rows, np.float32), np.ones(len(texts), np.int64))


class Counting:
    def __init__(self, inner) -> None:
        self.inner, self.texts = inner, 0

    def info(self):
        return self.inner.info()

    def embed(self, texts, *, task, late_chunking=False):
        self.texts += len(texts)
        return self.inner.embed(texts, task=task)


@pytest.fixture(scope="module")
def scifact_static():
    if not (SCIFACT / "corpus.jsonl").exists():
        pytest.skip("SciFact not available (../shared/data/scifact)")
    from migrate.embed.registry import get_embedder

    docs = _scifact(1000)
    emb = get_embedder("local:standin:static", device="cpu")
    texts = [f"{d.title} {d.text}" if d.title else d.text for d in docs]
    return docs, emb, emb.embed(texts, task="none").vectors


def test_scifact_same_model_no_regression_random_model_regression(scifact_static, tmp_path):
    docs, emb, vectors = scifact_static
    ids = [d.id for d in docs]
    sample = sample_items(docs, sample=120, seed=7)
    assert sample.kinds == {"title": 120}  # SciFact has titles: title-as-query
    store = VectorStore("static", ids, vectors)
    counted = Counting(emb)
    cache = ScoreCache(tmp_path / "cache.sqlite")
    old = guard_side("old", store, counted, query_task="none", doc_task="none")
    new = guard_side("new", store, counted, query_task="none", doc_task="none")
    same = run_guard(sample, old, new, cache=cache)
    assert same.verdict == NO_REGRESSION_GUARD and same.mrr.delta == 0.0 and same.mrr.delta_ci == (0.0, 0.0)
    assert 0.1 < same.old.mrr <= 1.0 and same.old.recall >= same.old.mrr  # Recall@10 >= MRR@10 always
    assert counted.texts == 240  # 120 queries + 120 shortened documents, once (the other side hit the cache)
    again = run_guard(sample, old, new, cache=cache)
    assert counted.texts == 240 and again.per_query == same.per_query  # all from the cache, same numbers
    rnd = RandomModel()
    noise_store = VectorStore("random", ids, rnd.embed([f"{d.title} {d.text}" for d in docs], task="none").vectors)
    bad = run_guard(sample, old, guard_side("new", noise_store, rnd, query_task="none", doc_task="none"))
    assert bad.verdict == REGRESSION
    assert bad.new.mrr < 0.05  # chance level among 1,000 documents
    assert bad.per_query[0].keys() == {"doc_id", "kind", "rank_old", "rank_new"}
    text = json.dumps(bad.as_dict())
    assert sample.items[0].query not in text  # no query or document text in the report


def test_guard_on_a_lancedb_collection_matches_the_index_in_memory(scifact_static, tmp_path):
    lancedb = pytest.importorskip("lancedb")
    from migrate.report.collection import open_collection

    docs, emb, vectors = scifact_static
    docs, vectors = docs[:400], vectors[:400]
    db = lancedb.connect(str(tmp_path / "lance"))
    db.create_table("docs", data=[{"id": d.id, "vector": v.tolist(), "text": d.text} for d, v in zip(docs, vectors)])
    sample = sample_items(docs, sample=60, seed=3)
    mem = guard_side("old", VectorStore("mem", [d.id for d in docs], vectors), emb, query_task="none", doc_task="none")
    store = open_collection(f"lancedb://{tmp_path / 'lance'}?table=docs")
    try:
        coll = guard_side("new", store, emb, query_task="none", doc_task="none")
        res = run_guard(sample, mem, coll)
    finally:
        store.engine.close()
    assert [q["rank_old"] for q in res.per_query] == [q["rank_new"] for q in res.per_query]
    assert res.mrr.delta == 0.0 and res.verdict == NO_REGRESSION_GUARD
