"""Qdrant adapter against qdrant-client's local mode (``path=``): the same API as a server.

Local mode is the client's own Python implementation (exact search, no HNSW graph), so these
tests prove the calls, ids, payloads and aliases, not the Rust server's speed.
"""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from support.engines import EngineContract, sample_rows, table_of

from migrate.engines import open_engine
from migrate.engines.qdrant import point_id


@pytest.fixture(scope="module")
def qdrant_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("qdrant")


@pytest.fixture(scope="module")
def engine(qdrant_dir):
    eng = open_engine(f"qdrant://{qdrant_dir / 'db'}")
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def reader(engine):
    return engine  # local mode allows one client per folder; a server would take a second one


class TestQdrant(EngineContract):
    UNICODE_OK = True

    def make_foreign(self, engine, name, rows):
        """An application's collection: random UUID point ids, the document id in payload 'doc_id'."""
        from qdrant_client import QdrantClient, models

        path = engine.address.path.parent / "foreign"
        client = QdrantClient(path=str(path))
        client.create_collection(name, vectors_config=models.VectorParams(size=384, distance=models.Distance.COSINE))
        client.upsert(name, points=[models.PointStruct(id=str(uuid.uuid4()), vector=v,
                                                       payload={"doc_id": r["id"], "title": r["title"],
                                                                "n_words": r["n_words"], "tags": r["tags"]})
                                    for r, v in zip(rows.to_pylist(), rows.column("vector").to_pylist())])
        client.close()
        return open_engine(f"qdrant://{path}?id=doc_id")


def test_point_ids_are_stable_and_round_trip(engine):
    assert point_id("42") == 42 and point_id("042") != 42 and point_id("-1") != -1
    u = str(uuid.uuid4())
    assert point_id(u) == u and point_id(u.upper()) != u.upper()
    assert point_id("kb-0001") == point_id("kb-0001") == str(uuid.uuid5(uuid.UUID(
        "6f1c8f0e-7a43-5b7e-9a55-6a696e612d6d"), "kb-0001"))
    rows = sample_rows(4)
    odd = ["7", "007", u, "kb/ü 'quoted'"]
    import pyarrow as pa

    rows = rows.set_column(0, "id", pa.array(odd))
    engine.create("t_ids", dim=384, payload=pa.schema([rows.schema.field("title")]),
                  index=__import__("migrate.engines", fromlist=["IndexSpec"]).IndexSpec(), run="r")
    engine.upsert("t_ids", rows.select(["id", "vector", "title"]))
    assert sorted(table_of(engine.scan("t_ids")).column("id").to_pylist()) == sorted(odd)
    assert engine.fetch("t_ids", ["007", "7"]).column("id").to_pylist() == ["007", "7"]
    hits = engine.search("t_ids", np.asarray([rows.column("vector")[3].as_py()], np.float32), 1)
    assert hits[0][0][0] == odd[3]


def test_a_collection_named_like_the_alias_is_never_replaced(engine):
    from migrate.errors import StateError

    rows = sample_rows(3)
    TestQdrant()._create(engine, "t_real_app", rows)
    TestQdrant()._create(engine, "t_real_app_v3", rows)
    with pytest.raises(StateError):
        engine.point_alias("t_real_app", "t_real_app_v3")
    assert engine.alias_target("t_real_app") == "t_real_app"
