"""Hostile and foreign inputs to compare's label-free paths: one error line each, with its exit code.

Through the installed console script. The sides are the static stand-in embedding the documents
now (fast, no server); the judges are the bundled server's ``/v1/rerank`` with seeded faults, and a
tiny randomly initialised cross-encoder built here (``local:``), whose judged nDCG@10 is recomputed
from the model's own logits with transformers.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from support.verdictcli import corpus, jm, ndcg_at_10, one_line_error, query_texts, read_run

pytest.importorskip("static_model")

KEY = "jina_" + "cd" * 24
V2R = "jina-reranker-v2-base-multilingual"


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    d = tmp_path_factory.mktemp("verdictcli-inputs")
    corpus(d, 40)
    (d / "log.jsonl").write_text("".join(json.dumps({"query": q}) + "\n" for q in query_texts(12)))
    (d / "key.txt").write_text(KEY + "\n")
    return d


def _compare(d, *extra, log="log.jsonl", rep="rep"):
    return jm("compare", "--old-model", "local:standin:static", "--old-option", "dimensions=16", "--new-model",
              "local:standin:static", "--docs", d / "docs.jsonl", "--queries", d / log, "--report-dir", d / rep,
              "--cache", d / "cache", "--no-github-summary", "--api-key-file", d / "key.txt", *extra)


def test_inputs_refused_before_anything_is_embedded(d):
    (d / "empty.txt").write_text("\n   \n\n")
    one_line_error(_compare(d, log="empty.txt"), "empty.txt", "holds no queries", code=2)
    (d / "one.csv").write_text("id,query\n1,glacier salmon at dawn\n")
    one_line_error(_compare(d, "--judge", f"jina-api:{V2R}", log="one.csv"), "1 query to judge", "at least 2", code=2)
    (d / "bad.jsonl").write_text('{"qid": "q1", "doc_id": "d001", "grade": 2}\n{"qid": "q1", "doc_id": "d002", '
                                 '"grade": 7}\n')
    one_line_error(_compare(d, "--labels", d / "bad.jsonl"), "bad.jsonl:2", "grade 7 is not 0, 1, 2 or 3", code=2)
    one_line_error(_compare(d, "--fail-if", "judged.ndcg@10 < old"), "needs a judge", code=2)
    one_line_error(_compare(d, "--no-known-item", "--fail-if", "knownitem == regression"), "known-item guard", code=2)
    one_line_error(jm("label", d / "docs.jsonl", "--labels", d / "l.jsonl"), "docs.jsonl", "not a pool file", code=2)


@pytest.mark.parametrize("faults, words", [({"p500": 1.0}, "still failing after 2 attempts"),
                                           ({"wrong_count": 1.0}, "results for")])
def test_a_judge_that_fails_or_miscounts_is_one_error_line(d, faults, words):
    from migrate.rehearsal.faults import FaultConfig
    from migrate.rehearsal.run import run_server

    with run_server(fast=True, api_key=KEY, faults=FaultConfig(seed=1, **faults)) as srv:
        proc = _compare(d, "--judge", f"jina-api:{V2R}", "--judge-base-url", srv.base_url, "--judge-option",
                        "max_retries=1", "--judge-option", "backoff_max_s=0.05", "--judge-option", "tier=tier2",
                        rep=f"rep-{next(iter(faults))}")
    one_line_error(proc, f"judge jina-api:{V2R}", words, code=4)


def test_documents_that_make_no_known_item_query(d):
    (d / "flat.jsonl").write_text("".join(json.dumps({"id": f"x{i}", "text": f"word{i} salmon"}) + "\n"
                                          for i in range(30)))
    proc = jm("compare", "--old-model", "local:standin:static", "--old-option", "dimensions=16", "--new-model",
              "local:standin:static", "--docs", d / "flat.jsonl", "--queries", d / "log.jsonl", "--report-dir",
              d / "rep-flat", "--no-github-summary", "--known-item")
    one_line_error(proc, "--known-item: none of the 30 documents can make a known-item query", code=2)


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory):
    """A tiny randomly initialised BERT cross-encoder (one label) with a WordPiece vocabulary."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-ce")
    words = "der die das und ist im see berg fluss wald haus 湖 山 河 森林 房子 是 的 在".split()
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, handle_chinese_chars=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                            sep_token="[SEP]", mask_token="[MASK]", model_max_length=128).save_pretrained(folder)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=128, num_labels=1)
    BertForSequenceClassification(cfg).save_pretrained(folder)
    return folder


def test_another_language_with_a_local_cross_encoder_judge(tmp_path, cross_encoder):
    pytest.importorskip("sentence_transformers")
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    de = ["see", "berg", "fluss", "wald", "haus"]
    zh = ["湖", "山", "河", "森林", "房子"]
    docs = []
    for i in range(24):
        a, b = de[i % 5], de[(i * 3 + 1) % 5]
        docs.append({"id": f"de{i}", "title": f"Der {a} und das {b} Nummer {i}",
                     "text": f"Der {a} ist im {b} seit {i} Jahren. Das {b} liegt am {a} und wächst jedes Jahr. "
                             f"Eintrag {i} beschreibt den {a} im Winter."})
        x, y = zh[i % 5], zh[(i * 2 + 3) % 5]
        docs.append({"id": f"zh{i}", "title": f"{x}和{y}的记录{i}",
                     "text": f"{x}在{y}的旁边已经{i}年了。{y}每年都在变化。第{i}条记录描述了冬天的{x}。"})
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in docs))
    queries = [f"{de[i % 5]} im {de[(i + 2) % 5]}" for i in range(5)] + [f"{zh[i % 5]}的{zh[(i + 1) % 5]}" for i in range(5)]
    (tmp_path / "log.txt").write_text("\n".join(queries) + "\n")
    proc = jm("compare", "--old-model", "local:standin:static", "--old-option", "dimensions=16", "--new-model",
              "local:standin:static", "--docs", tmp_path / "docs.jsonl", "--title-field", "title", "--queries",
              tmp_path / "log.txt", "--judge", f"local:{cross_encoder}", "--known-item-sample", "48",
              "--show-queries", "--pool-out", tmp_path / "pool.jsonl", "--report-dir", tmp_path / "rep",
              "--cache", tmp_path / "cache", "--no-github-summary", "--fail-if", "verdict == worse")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["verdict"]["evidence"].startswith(f"judge local:{cross_encoder}")
    assert rep["knownitem"]["kinds"] == {"title": 48} and rep["knownitem"]["verdict"] != "skipped"
    assert queries[5] in (tmp_path / "rep" / "report.html").read_text()  # asked for: --show-queries
    # the judged metrics, recomputed from the model's logits and the run files
    pairs = [json.loads(x) for x in (tmp_path / "pool.jsonl").read_text().splitlines()[1:]]
    tok = AutoTokenizer.from_pretrained(cross_encoder)
    model = AutoModelForSequenceClassification.from_pretrained(cross_encoder).eval()
    with torch.no_grad():
        enc = tok([p["query"] for p in pairs], [p["text"] for p in pairs], padding=True, truncation=True,
                  return_tensors="pt")
        prob = torch.sigmoid(model(**enc).logits[:, 0]).numpy()
    assert len(set(np.round(prob, 5))) > 1
    grades: dict[str, dict[str, int]] = {}
    for p, s in zip(pairs, prob):
        grades.setdefault(p["qid"], {})[p["doc_id"]] = int(sum(s >= t for t in (0.2, 0.5, 0.8)))
    lists = {s: read_run(tmp_path / "rep" / "runs" / f"{s}.run") for s in ("old", "new")}
    for qid, per in rep["judged"]["per_query"].items():
        for side in ("old", "new"):
            assert per[side]["ndcg@10"] == pytest.approx(ndcg_at_10(lists[side][qid], grades[qid]), abs=1e-5)
