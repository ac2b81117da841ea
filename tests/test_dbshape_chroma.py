"""Chroma stores as applications keep them, through the installed ``jina-migrate`` (issue 18, items 11, 19, 20).

* The text of a Chroma collection lives in its ``documents``: a source without ``&text=`` reads them, and a
  destination made by the README's own commands stores the text there again (not in a metadata field).
* A store written by an older chromadb (0.5, ``fixtures/chroma05``) is refused before the installed chromadb
  opens it, since opening upgrades it in place: every file stays byte for byte; ``&upgrade=1`` allows it.
* An empty collection is reported as empty, not as a collection without text.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from support.engines import jina_migrate

REPO = Path(__file__).resolve().parents[1]
OLD_STORE = REPO / "fixtures" / "chroma05" / "store.tar.gz"
MODEL = ["--model", "local:standin:static"]
DOCS = {f"d{i}": f"document {i} of the application: topic {i % 3}, written in full sentences." for i in range(10)}

#: The application: its own chromadb client, its own collection (documents, metadata, its own vectors).
BUILD = """
import sys, chromadb, numpy as np
docs = {docs!r}
client = chromadb.PersistentClient(sys.argv[1])
rng = np.random.default_rng(3)
v = rng.normal(size=(len(docs), 64)).astype("float32")
v /= np.linalg.norm(v, axis=1, keepdims=True)
col = client.create_collection("docs-v2", metadata={{"hnsw:space": "cosine"}})
col.add(ids=list(docs), embeddings=v, documents=list(docs.values()),
        metadatas=[{{"title": f"Title {{i}}", "rank": i}} for i in range(len(docs))])
client.create_collection("empty-one")
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """The application's store, made in a child process (so this one holds no Chroma system for the path)."""
    root = tmp_path_factory.mktemp("chroma") / "store"
    subprocess.run([sys.executable, "-c", BUILD.format(docs=DOCS), str(root)], check=True, timeout=300)
    return root


def _error_line(proc) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    return errors[0]


def test_source_without_text_option_reads_documents(store):
    plan = jina_migrate("plan", "--old-index", f"chroma://{store}?collection=docs-v2", "--json", timeout=300)
    assert plan.returncode == 0, plan.stderr[-2000:]
    p = json.loads(plan.stdout)
    assert p["sources"]["documents"] == len(DOCS)
    assert p["tokens"]["chars"] == sum(len(t) for t in DOCS.values())  # the documents were the text counted


def test_readme_flow_keeps_the_text_in_documents(store, tmp_path):
    """The README's Chroma commands: the new collection's ``documents`` hold the texts, as the old one's did."""
    c = f"chroma://{store}"
    run = jina_migrate("run", "--old-index", f"{c}?collection=docs-v2&text=text",
                       "--sink", f"{c}?collection=docs-v3&alias=docs", *MODEL, "--out", str(tmp_path / "v3c"),
                       "--yes", timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    import chromadb

    client = chromadb.PersistentClient(str(store))  # first opened here now: sees what the CLI wrote
    got = client.get_collection("docs-v3", embedding_function=None).get(include=["documents", "metadatas"])
    assert dict(zip(got["ids"], got["documents"])) == DOCS
    assert all(set(m) == {"title", "rank"} for m in got["metadatas"]), got["metadatas"][:2]


def test_empty_collection_is_reported_as_empty(store):
    plan = jina_migrate("plan", "--old-index", f"chroma://{store}?collection=empty-one", timeout=300)
    assert plan.returncode == 2
    line = _error_line(plan)
    assert "'empty-one' is empty" in line and "cannot find the text" not in line, line


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_store_of_an_older_chromadb_is_never_upgraded(tmp_path, small_docs):
    """chromadb 1.x would migrate the 0.5 store on open; a dry run, a source and a destination refuse it first."""
    old = tmp_path / "old"
    with tarfile.open(OLD_STORE) as tar:
        tar.extractall(old, filter="data")
    before = _digests(old)
    source = f"chroma://{old}?collection=docs-v2"
    plan = jina_migrate("plan", "--old-index", source, timeout=300)
    assert plan.returncode == 2
    line = _error_line(plan)
    assert "older chromadb" in line and "&upgrade=1" in line and "copy" in line, line
    out = tmp_path / "out"
    run = jina_migrate("run", "--old-index", source, *MODEL, "--out", str(out), "--yes", timeout=300)
    assert run.returncode == 2 and "older chromadb" in _error_line(run)
    sink = jina_migrate("plan", "--docs", str(small_docs), "--sink", f"chroma://{old}?collection=docs-v3", "--json",
                        timeout=300)
    assert sink.returncode == 8, sink.stderr[-2000:]
    assert any(f["severity"] == "error" and "older chromadb" in f["message"]
               for f in json.loads(sink.stdout)["findings"])
    assert _digests(old) == before and not out.exists()  # not one byte changed
    allowed = jina_migrate("plan", "--old-index", f"{source}&upgrade=1", "--json", timeout=300)
    assert allowed.returncode == 0, allowed.stderr[-2000:]
    assert json.loads(allowed.stdout)["sources"]["documents"] == 8
