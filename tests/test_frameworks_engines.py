"""Collections a framework wrote inside a vector database migrate as the framework laid them out (issue 17, item 3).

Each source is written with the framework's own vector-store class over a small deterministic ``Embeddings`` of
this test (32-d, seeded by the text), then the installed console script migrates it to 64-d v3 vectors
(``local:standin:static``) in a child process. After ``cutover`` the framework's own reader opens the new
collection (through the alias or view the application uses) and answers a 64-d query, with no error:

* LangChain ``QdrantVectorStore``: vector named ``""``, ``page_content`` + nested ``metadata``; the text is
  ``page_content`` with no ``&text=``, the destination keeps the vector name, the payload and LangChain's Cosine.
* LlamaIndex ``QdrantVectorStore``: ``_node_content`` holds the node as JSON; v3 embeds the text LlamaIndex
  embedded from it (its metadata lines, then its text), and the plan says the field holds JSON.
* LangChain PGVector (langchain-community's schema; langchain-postgres' too where it is installed): one table
  holds every collection; ``&collection=NAME`` selects one through ``langchain_pg_collection``, reading the table
  whole is refused while it holds several, the destination keeps ``uuid`` / ``json`` / ``jsonb`` columns, and
  cutover never hides another collection.
* LangChain ``Chroma``: the text is Chroma's ``documents``.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from support.engines import jina_migrate, postgres_server

pytest.importorskip("static_model")

MODEL = ("--model", "local:standin:static")
ROWS = 24


def _vector(text: str, dim: int) -> list[float]:
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little"))
    v = rng.standard_normal(dim)
    return (v / np.linalg.norm(v)).tolist()


def _lc_embeddings(dim: int = 32):
    from langchain_core.embeddings import Embeddings

    class Seeded(Embeddings):
        """The same unit vector for the same text (the v2 side; 64-d: a v3 query)."""

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [_vector(t, dim) for t in texts]

        def embed_query(self, text: str) -> list[float]:
            return _vector(text, dim)

    return Seeded()


def _texts(prefix: str, n: int = ROWS) -> tuple[list[str], list[dict]]:
    return ([f"{prefix} passage {i} on topic {i % 4}" for i in range(n)],
            [{"source": f"file{i // 6}.txt", "page": i % 6} for i in range(n)])


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _ok(proc):
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


def _one_line_error(proc, code: int = 2) -> str:
    assert proc.returncode == code, f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr and lines and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def _out_rows(out) -> dict[str, str]:
    t = pq.read_table(out / "embeddings.parquet", columns=["id", "text_sha256"])
    return dict(zip(t.column("id").to_pylist(), t.column("text_sha256").to_pylist()))


def _migrate(old: str, sink: str, out, verify: bool = True) -> None:
    _ok(jina_migrate("run", "--old-index", old, "--sink", sink, *MODEL, "--out", str(out), "--yes"))
    if verify:
        _ok(jina_migrate("verify", "--out", str(out)))


# --------------------------------------------------------------------------- Qdrant

def test_langchain_qdrant_collection_migrates_and_langchain_reads_the_new_one(tmp_path):
    pytest.importorskip("langchain_qdrant")
    from langchain_qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    path = tmp_path / "q"
    texts, metas = _texts("langchain")
    store = QdrantVectorStore.from_texts(texts, _lc_embeddings(), metadatas=metas, path=str(path),
                                        collection_name="kb")
    source = {str(p.id): p.payload for p in store.client.scroll("kb", limit=100)[0]}
    store.client.close()
    base = f"qdrant://{path}?collection="
    _migrate(base + "kb", base + "kb_v3&alias=kb_live", tmp_path / "out")
    # ids are LangChain's point ids, the text its page_content (no &text=)
    assert _out_rows(tmp_path / "out") == {i: _sha(p["page_content"]) for i, p in source.items()}
    _ok(jina_migrate("cutover", "--out", str(tmp_path / "out")))

    client = QdrantClient(path=str(path))
    try:
        params = client.get_collection("kb_v3").config.params.vectors
        assert list(params) == [""] and params[""].size == 64 and params[""].distance.name == "COSINE"
        copied = {str(p.id): p.payload for p in client.scroll("kb_v3", limit=100)[0]}
        assert copied == source  # the same payload, nothing added
        found = QdrantVectorStore(client=client, collection_name="kb_live", embedding=_lc_embeddings(64)) \
            .similarity_search("a question", k=3)
        assert len(found) == 3 and all(d.page_content in texts and d.metadata["source"] for d in found)
    finally:
        client.close()


def _llama_embed_model(dim: int):
    from llama_index.core.embeddings import BaseEmbedding

    class Seeded(BaseEmbedding):
        def _get_text_embedding(self, text: str) -> list[float]:
            return _vector(text, dim)

        def _get_query_embedding(self, query: str) -> list[float]:
            return _vector(query, dim)

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return _vector(query, dim)

    return Seeded()


def test_llamaindex_qdrant_collection_embeds_the_text_llamaindex_embedded(tmp_path):
    pytest.importorskip("llama_index.vector_stores.qdrant")
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.core.schema import MetadataMode
    from llama_index.core.vector_stores.utils import metadata_dict_to_node
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    path = tmp_path / "q"
    embedded: dict[str, str] = {}
    model = _llama_embed_model(32)
    texts, _ = _texts("llama")
    docs = [Document(text=t, metadata={"title": f"Title {i}", "n": i}, excluded_embed_metadata_keys=["n"])
            for i, t in enumerate(texts)]
    client = QdrantClient(path=str(path))
    try:
        VectorStoreIndex.from_documents(docs, embed_model=model, storage_context=StorageContext.from_defaults(
            vector_store=QdrantVectorStore(client=client, collection_name="li")))
        for p in client.scroll("li", limit=100)[0]:
            embedded[str(p.id)] = metadata_dict_to_node(p.payload).get_content(MetadataMode.EMBED)
    finally:
        client.close()
    assert all(t.startswith("title: Title ") for t in embedded.values())  # metadata lines, then the text

    base = f"qdrant://{path}?collection="
    proc = _ok(jina_migrate("plan", "--old-index", base + "li", "--from-model", "custom:32", "--json"))
    found = {f["code"]: f for f in json.loads(proc.stdout)["findings"]}
    assert found["text-from-node-json"]["severity"] == "warning"
    assert "'_node_content' holds LlamaIndex's node JSON" in found["text-from-node-json"]["message"]

    _migrate(base + "li", base + "li_v3&alias=li_live", tmp_path / "out", verify=False)
    assert _out_rows(tmp_path / "out") == {i: _sha(t) for i, t in embedded.items()}
    _ok(jina_migrate("cutover", "--out", str(tmp_path / "out")))
    client = QdrantClient(path=str(path))
    try:
        index = VectorStoreIndex.from_vector_store(QdrantVectorStore(client=client, collection_name="li_live"),
                                                   embed_model=_llama_embed_model(64))
        got = index.as_retriever(similarity_top_k=3).retrieve("a question")
        assert len(got) == 3 and all(n.node.get_content(MetadataMode.EMBED) in embedded.values() for n in got)
    finally:
        client.close()


# --------------------------------------------------------------------------- PGVector

@pytest.fixture(scope="module")
def pg():
    pytest.importorskip("langchain_community")
    with postgres_server() as (srv, uri):
        yield srv, uri


def _database(pg, name: str) -> tuple[str, str]:
    """A fresh database: (jina-migrate's address, SQLAlchemy's URL for LangChain)."""
    srv, uri = pg
    srv.psql(f"CREATE DATABASE {name}")
    host = uri.split("host=", 1)[1]
    return f"postgresql://postgres@/{name}?host={host}", f"postgresql+psycopg://postgres@/{name}?host={host}"


def _columns(pg, db: str, table: str) -> dict[str, str]:
    import psycopg

    with psycopg.connect(db) as conn:
        rows = conn.execute("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                            "%s::regclass AND attnum > 0 AND NOT attisdropped", (table,)).fetchall()
    return dict(rows)


def _community_pgvector(url: str, name: str, dim: int = 32):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from langchain_community.vectorstores.pgvector import PGVector

        return PGVector(connection_string=url, embedding_function=_lc_embeddings(dim), collection_name=name,
                        use_jsonb=False)


def test_langchain_pgvector_collection_is_selected_and_langchain_reads_it_after_cutover(pg, tmp_path):
    db, url = _database(pg, "lc_community")
    texts, metas = _texts("pgvector")
    _community_pgvector(url, "kb").add_texts(texts, metadatas=metas)
    other = _community_pgvector(url, "other")
    other.add_texts(["another application's row"] * 3)
    old = f"{db}&table=langchain_pg_embedding"
    sink = f"{db}&table=kb_v3&alias=langchain_pg_embedding"

    line = _one_line_error(jina_migrate("run", "--old-index", old, "--sink", sink, *MODEL, "--out",
                                        str(tmp_path / "all"), "--yes"))
    assert "holds 2 LangChain collections: kb (24 rows), other (3 rows)" in line, line
    line = _one_line_error(jina_migrate("plan", "--old-index", old + "&collection=nope", "--from-model",
                                        "custom:32", "--json"))
    assert "no LangChain collection 'nope'" in line and "kb, other" in line, line

    _migrate(old + "&collection=kb", sink, tmp_path / "out")
    assert sorted(_out_rows(tmp_path / "out").values()) == sorted(_sha(t) for t in texts)  # text=document
    cols = _columns(pg, db, "kb_v3")
    assert cols["uuid"] == "uuid" and cols["collection_id"] == "uuid" and cols["cmetadata"] == "json", cols
    assert cols["embedding"] == "vector(64)" and cols["document"] == "character varying", cols

    # a view of kb_v3 in place of the shared table would hide "other": refused, nothing changed
    line = _one_line_error(jina_migrate("cutover", "--out", str(tmp_path / "out")), code=3)
    assert "also holds 3 rows of 1 other LangChain collections" in line, line
    other.delete_collection()
    _ok(jina_migrate("cutover", "--out", str(tmp_path / "out")))
    found = _community_pgvector(url, "kb", 64).similarity_search("a question", k=3)
    assert len(found) == 3 and all(d.page_content in texts and "source" in d.metadata for d in found)


# --------------------------------------------------------------------------- Chroma

def test_langchain_chroma_documents_are_the_text(tmp_path):
    pytest.importorskip("langchain_chroma")
    import chromadb
    from langchain_chroma import Chroma

    path = tmp_path / "c"
    texts, metas = _texts("chroma")
    Chroma.from_texts(texts, _lc_embeddings(), metadatas=metas, persist_directory=str(path))
    client = chromadb.PersistentClient(path=str(path))
    source = client.get_collection("langchain").get(include=["documents"])
    client.close()
    base = f"chroma://{path}?collection="
    _migrate(base + "langchain", base + "langchain_v3", tmp_path / "out", verify=False)
    assert _out_rows(tmp_path / "out") == {i: _sha(d) for i, d in zip(source["ids"], source["documents"])}
    found = Chroma(collection_name="langchain_v3", embedding_function=_lc_embeddings(64),
                   persist_directory=str(path)).similarity_search("a question", k=3)
    assert len(found) == 3 and all(d.page_content in texts for d in found)
