"""Third-party clients against the bundled server, pointed at it the way docs/notes-embed-server.md says.

* the official ``openai`` SDK (``base_url``; its default ``encoding_format`` is base64),
  with Jina's extra fields through ``extra_body``;
* langchain-community's ``JinaEmbeddings``, whose URL is the module constant
  ``JINA_API_URL`` (patched here, as the notes tell users to);
* the request body the langchain / llama-index / chroma Jina integrations send
  (``encoding_type``, ``Accept-Encoding: identity``), parsed the way they parse it.
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest

pytest.importorskip("static_model")

from migrate.rehearsal.run import run_server  # noqa: E402
from migrate.secrets import register_secret  # noqa: E402

V3 = "jina-embeddings-v3"
TEXTS = ["The quick brown fox jumps over the lazy dog.", "Quarterly revenue grew by twelve percent."]


@pytest.fixture(scope="module")
def srv():
    with run_server(fast=True) as h:
        yield h


def _reference(h, **fields):
    r = httpx.post(h.base_url + "/v1/embeddings", json={"model": V3, "input": TEXTS, **fields},
                   headers={"Authorization": f"Bearer {h.api_key}"})
    return np.array([d["embedding"] for d in r.json()["data"]], np.float32)


def test_openai_sdk(srv):
    openai = pytest.importorskip("openai")
    c = openai.OpenAI(base_url=srv.base_url + "/v1", api_key=srv.api_key, max_retries=0)
    resp = c.embeddings.create(model=V3, input=TEXTS, extra_body={"task": "retrieval.query", "normalized": True})
    got = np.array([d.embedding for d in resp.data], np.float32)
    assert np.array_equal(got, _reference(srv, task="retrieval.query", normalized=True))
    assert resp.usage.total_tokens > 0 and resp.model == V3
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=srv.base_url + "/v1", api_key="wrong", max_retries=0).embeddings.create(model=V3, input=TEXTS)
    with pytest.raises(openai.BadRequestError):
        c.embeddings.create(model="no-such-model", input=TEXTS)


def test_integration_style_request(srv):
    """Body and parsing of the langchain/llama-index/chroma Jina integrations (jina-spec §1.2-1.4)."""
    session = httpx.Client(headers={"Authorization": f"Bearer {srv.api_key}", "Accept-Encoding": "identity"})
    resp = session.post(srv.base_url + "/v1/embeddings", json={"input": TEXTS, "model": V3, "encoding_type": "float"}).json()
    if "data" not in resp:
        raise RuntimeError(resp["detail"])
    got = np.array([d["embedding"] for d in sorted(resp["data"], key=lambda e: e["index"])], np.float32)
    assert np.array_equal(got, _reference(srv))
    # llama-index's ubinary decoding
    ub = session.post(srv.base_url + "/v1/embeddings", json={"input": TEXTS, "model": V3, "encoding_type": "ubinary"}).json()
    bits = np.unpackbits(np.array([d["embedding"] for d in ub["data"]], dtype=np.uint8), axis=1)
    assert np.array_equal(bits.astype(bool), got > 0)
    # error path: they raise on resp["detail"]
    bad = session.post(srv.base_url + "/v1/embeddings", json={"input": TEXTS, "model": "nope"}).json()
    assert "data" not in bad and isinstance(bad["detail"], str)


def test_langchain_jina_embeddings_with_patched_url(srv, monkeypatch):
    lc_jina = pytest.importorskip("langchain_community.embeddings.jina")
    monkeypatch.setattr(lc_jina, "JINA_API_URL", srv.base_url + "/v1/embeddings")
    register_secret(srv.api_key)
    emb = lc_jina.JinaEmbeddings(jina_api_key=srv.api_key, model_name=V3)
    docs = np.array(emb.embed_documents(TEXTS), np.float32)
    query = np.array(emb.embed_query(TEXTS[0]), np.float32)
    assert np.array_equal(docs, _reference(srv))  # no task, server-default normalisation: same as a raw request
    assert np.array_equal(query, docs[0])
    bad = lc_jina.JinaEmbeddings(jina_api_key="jina_wrong_key_for_langchain", model_name=V3)
    with pytest.raises(RuntimeError, match="Invalid API key"):  # it raises resp["detail"], which must be there
        bad.embed_query("x")
