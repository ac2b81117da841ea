"""Chroma adapter against a real ``chromadb.PersistentClient`` directory."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from support.engines import EngineContract, payload_schema, sample_rows, table_of

from migrate.engines import IndexSpec, open_engine
from migrate.errors import InputError


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    eng = open_engine(f"chroma://{tmp_path_factory.mktemp('chroma') / 'db'}?text=text")
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def reader(engine):
    return engine  # one PersistentClient per directory and process


class TestChroma(EngineContract):
    EXTRA_HOSTILE = ["x/../y", "ab", "-docs", "x" * 513]

    def make_foreign(self, engine, name, rows):
        """An application's collection: text as Chroma documents, a few metadata keys."""
        col = engine._client.create_collection(name, embedding_function=None, metadata={"hnsw:space": "cosine"})
        col.add(ids=rows.column("id").to_pylist(), embeddings=np.stack(
            [np.asarray(v, np.float32) for v in rows.column("vector").to_pylist()]),
                documents=rows.column("text").to_pylist(),
                metadatas=[{"title": r["title"], "n_words": r["n_words"]} for r in rows.to_pylist()])


def test_text_field_becomes_the_document(engine):
    rows = sample_rows(5)
    engine.create("t_docs", dim=384, payload=payload_schema(rows), index=IndexSpec(), run="r")
    engine.upsert("t_docs", rows)
    got = engine._client.get_collection("t_docs", embedding_function=None).get(ids=[rows.column("id")[0].as_py()],
                                                                               include=["documents", "metadatas"])
    assert got["documents"] == [rows.column("text")[0].as_py()]
    assert "text" not in got["metadatas"][0] and got["metadatas"][0]["title"] == rows.column("title")[0].as_py()
    assert table_of(engine.scan("t_docs")).column("text").to_pylist() == rows.column("text").to_pylist()


def test_non_unit_vectors_are_refused(engine):
    rows = sample_rows(2)
    engine.create("t_unit", dim=384, payload=payload_schema(rows), index=IndexSpec(), run="r")
    v = np.stack([np.asarray(x, np.float32) for x in rows.column("vector").to_pylist()]) * 3
    bad = rows.set_column(1, "vector", pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), 384))
    with pytest.raises(InputError):
        engine.upsert("t_unit", bad)
    assert engine.count("t_unit") == 0
