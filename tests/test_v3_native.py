"""Local jina-embeddings-v3 backend on a tiny random model of the real architecture.

The folder is the transformers-native layout (JinaEmbeddingsV3Model + one PEFT LoRA
adapter per task in ``retrieval_query/`` ...), with an XLM-R-style Unigram tokenizer built
with the ``tokenizers`` library. Reference values come from plain model calls made here,
independently of the backend: peft's own ``PeftModel`` for an adapter, the bare model for
``--task none``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("peft")
from transformers import AutoTokenizer, JinaEmbeddingsV3Model  # noqa: E402

from migrate.embed import pooling  # noqa: E402
from migrate.models import TASK_NONE, V3_TASK_PREFIXES, V3_TASKS# noqa: E402
from migrate.embed.jina_v3 import JinaV3Embedder, adapter_folder, detect_layout  # noqa: E402
from support.random_v3 import write_random_v3  # noqa: E402
from migrate.errors import ConfigError  # noqa: E402

TEXTS = [
    "the cells were found",
    "protein gene expression in mice was increased after treatment. the study found a role for the gene.",
    "x",
    "cancer risk",
    "human data analysis of clinical response and disease activity in patients with high expression",
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_random_v3(tmp_path_factory.mktemp("v3tiny"), hidden=32, layers=2, heads=4, seed=3)


@pytest.fixture(scope="module")
def emb(model_dir):
    return JinaV3Embedder(str(model_dir))


def _plain(model_dir, texts, task):
    """Reference: plain model (peft adapter or none) on prefix+text, mean pool, normalise."""
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    base = JinaEmbeddingsV3Model.from_pretrained(str(model_dir), add_pooling_layer=False).eval()
    if task != TASK_NONE:
        from peft import PeftModel

        base = PeftModel.from_pretrained(base, str(model_dir / adapter_folder(task))).eval()
    prefix = V3_TASK_PREFIXES[task]
    out = []
    with torch.no_grad():
        for t in texts:
            enc = tok(prefix + t, return_tensors="pt")
            h = base(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])[0]
            v = h[0].float().mean(0)
            out.append((v / v.norm()).numpy())
    return np.stack(out)


def test_layout_and_info(model_dir, emb):
    assert detect_layout(model_dir) == "v3-native"
    info = emb.info().as_dict()
    assert info["layout"] == "v3-native" and info["dtype"] == "float32" and info["device"] == "cpu"
    assert sorted(info["adapters"]) == sorted(V3_TASKS)
    assert info["prefixes"]["retrieval.query"] == V3_TASK_PREFIXES["retrieval.query"]
    assert info["prefixes"][TASK_NONE] == ""


@pytest.mark.parametrize("task", ["retrieval.query", "retrieval.passage", "text-matching", TASK_NONE])
def test_matches_plain_model_call(model_dir, emb, task):
    got = emb.embed(TEXTS, task=task).vectors
    want = _plain(model_dir, TEXTS, task)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_adapters_change_output_per_task(emb):
    vecs = {t: emb.embed(TEXTS[:2], task=t).vectors for t in (*V3_TASKS, TASK_NONE)}
    names = list(vecs)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert np.abs(vecs[a] - vecs[b]).max() > 1e-3, (a, b)
    # switching back gives the same vectors (adapter state is not sticky)
    np.testing.assert_allclose(emb.embed(TEXTS[:2], task="retrieval.query").vectors, vecs["retrieval.query"], atol=1e-6)


def test_prefixes_are_applied(emb):
    tok = emb.tokenizer
    q = emb.count_tokens(TEXTS, task="retrieval.query")
    n = emb.count_tokens(TEXTS, task="text-matching")
    want = [len(tok(V3_TASK_PREFIXES["retrieval.query"] + t)["input_ids"]) for t in TEXTS]
    assert q == want and all(a > b for a, b in zip(q, n))
    assert emb.embed(TEXTS[:1], task="retrieval.query").tokens[0] == want[0]


def test_unknown_task_and_missing_adapter(model_dir, emb, tmp_path):
    with pytest.raises(ConfigError):
        emb.embed(TEXTS, task="retrieval")
    import shutil

    partial = tmp_path / "partial"
    shutil.copytree(model_dir, partial)
    shutil.rmtree(partial / "classification")
    e2 = JinaV3Embedder(str(partial))
    with pytest.raises(ConfigError, match="no adapter for task 'classification'"):
        e2.embed(TEXTS, task="classification")
    assert e2.embed(TEXTS[:1], task="separation").vectors.shape == (1, 32)


def test_matryoshka_truncate_then_normalise(model_dir, emb):
    full = JinaV3Embedder(str(model_dir), normalize=False)
    raw = full.embed(TEXTS, task="retrieval.passage").vectors
    small = JinaV3Embedder(str(model_dir), dimensions=16).embed(TEXTS, task="retrieval.passage").vectors
    assert small.shape == (len(TEXTS), 16)
    np.testing.assert_allclose(np.linalg.norm(small, axis=1), 1.0, atol=1e-6)
    want = raw[:, :16] / np.linalg.norm(raw[:, :16], axis=1, keepdims=True)
    np.testing.assert_allclose(small, want, atol=1e-6)
    # normalise-then-truncate (the old v3 bug) is not what we do: those vectors are not unit length
    wrong = (raw / np.linalg.norm(raw, axis=1, keepdims=True))[:, :16]
    assert np.abs(np.linalg.norm(wrong, axis=1) - 1).max() > 1e-3
    with pytest.raises(ConfigError, match="Matryoshka"):
        JinaV3Embedder(str(model_dir), dimensions=12)
    anyd = JinaV3Embedder(str(model_dir), dimensions=12, allow_any_dimensions=True)
    assert anyd.embed(TEXTS[:1], task="retrieval.passage").vectors.shape == (1, 12)


def test_order_restored_after_length_sorting(model_dir, emb):
    one_by_one = np.concatenate([emb.embed([t], task="retrieval.passage").vectors for t in TEXTS])
    sorted_small = JinaV3Embedder(str(model_dir), token_budget=64)
    got = sorted_small.embed(TEXTS, task="retrieval.passage")
    np.testing.assert_allclose(got.vectors, one_by_one, atol=1e-5)
    fixed = JinaV3Embedder(str(model_dir), batch_size=2).embed(TEXTS, task="retrieval.passage").vectors
    np.testing.assert_allclose(fixed, one_by_one, atol=1e-5)


def test_late_chunking_equals_manual_span_pooling(model_dir, emb):
    chunks = ["the cells were found.", "protein gene expression in mice", "was increased after treatment."]
    got = emb.embed(chunks, task="retrieval.passage", late_chunking=True)
    assert got.vectors.shape == (3, 32)
    # manual: one forward pass of the adapter model over prefix + " ".join(chunks)
    tok = emb.tokenizer
    from peft import PeftModel

    base = JinaEmbeddingsV3Model.from_pretrained(str(model_dir), add_pooling_layer=False).eval()
    model = PeftModel.from_pretrained(base, str(model_dir / "retrieval_passage")).eval()
    text = V3_TASK_PREFIXES["retrieval.passage"] + " ".join(chunks)
    enc = tok(text, return_tensors="pt", return_offsets_mapping=True)
    with torch.no_grad():
        h = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])[0][0]
    # spans by hand: boundary tokens are the ones whose text starts each chunk
    offsets = enc["offset_mapping"][0].tolist()
    starts = [len(V3_TASK_PREFIXES["retrieval.passage"]) + len(" ".join(chunks[:i])) + (1 if i else 0) for i in range(3)]
    first_tok = [next(j for j, (a, b) in enumerate(offsets) if b > s and b > a) for s in starts]
    spans = [(0, first_tok[1]), (first_tok[1], first_tok[2]), (first_tok[2], len(offsets))]
    want = np.stack([h[a:b].mean(0).numpy() for a, b in spans])
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(got.vectors, want, atol=1e-5)
    assert got.total_tokens == len(offsets)
    # and late chunking differs from embedding the chunks alone
    alone = emb.embed(chunks, task="retrieval.passage").vectors
    assert np.abs(alone - got.vectors).max() > 1e-3


def test_embed_document_and_long_late_chunking(model_dir):
    doc = " ".join(["the cells were found. protein gene expression in mice was increased."] * 6)
    ranges = [(0, 70), (70, 212), (212, len(doc))]
    ranges = [(a + (doc[a] == " "), b) for a, b in ranges]
    one = JinaV3Embedder(str(model_dir))
    whole = one.embed_document(doc, ranges, task="retrieval.passage")
    plan = pooling.plan_spans(one.tokenizer, doc, ranges, prefix=V3_TASK_PREFIXES["retrieval.passage"])
    assert plan.n_tokens > 40
    windowed_emb = JinaV3Embedder(str(model_dir), max_tokens=40, late_overlap=8)
    windowed = windowed_emb.embed_document(doc, ranges, task="retrieval.passage")
    # manual windows with the same adapter model
    one._select("retrieval.passage")
    with torch.no_grad():
        parts = []
        for s, e, keep in pooling.macro_windows(plan.n_tokens, 40, 8):
            ids = torch.tensor([plan.input_ids[s:e]])
            parts.append(one.model(input_ids=ids, attention_mask=torch.ones_like(ids))[0][0][keep:])
        h = torch.cat(parts)
    want = np.stack([h[a:b].mean(0).numpy() for a, b in plan.spans])
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(windowed.vectors, want, atol=1e-5)
    assert np.abs(windowed.vectors - whole.vectors).max() > 1e-4  # windows really cut the context


def test_bf16_runs_with_fp32_pooling(model_dir, emb):
    half = JinaV3Embedder(str(model_dir), dtype="bf16")
    got = half.embed(TEXTS, task="retrieval.query").vectors
    assert got.dtype == np.float32
    ref = emb.embed(TEXTS, task="retrieval.query").vectors
    assert np.abs(got - ref).max() < 5e-2


def test_registry_and_local_delegation(model_dir):
    from migrate.embed.registry import get_embedder

    e = get_embedder(f"local:{model_dir}")
    assert type(e).__name__ == "JinaV3Embedder"

    e2 = get_embedder(f"jina-local:{model_dir}", dimensions=16)
    assert e2.embed(TEXTS[:1], task="retrieval.query").vectors.shape == (1, 16)
