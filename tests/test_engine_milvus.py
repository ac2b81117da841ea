"""Milvus adapter against Milvus Lite (a real embedded Milvus in a ``.db`` file)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from support.engines import EngineContract, payload_schema, sample_rows, table_of

from migrate.engines import IndexSpec, open_engine


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    eng = open_engine(f"milvus://{tmp_path_factory.mktemp('milvus') / 'm.db'}")
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def reader(engine):
    eng = open_engine(engine.address)  # a second client on the same Milvus Lite database
    yield eng
    eng.close()


class TestMilvus(EngineContract):
    def make_foreign(self, engine, name, rows):
        """An application's collection: its own primary-key and vector field names, plain inserts."""
        from pymilvus import DataType, MilvusClient

        client = MilvusClient(str(engine.address.path))
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
        schema.add_field("doc_id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=384)
        schema.add_field("title", DataType.VARCHAR, max_length=512)
        schema.add_field("n_words", DataType.INT64)
        params = client.prepare_index_params()
        params.add_index(field_name="embedding", index_type="FLAT", metric_type="IP")
        client.create_collection(name, schema=schema, index_params=params)
        client.insert(name, [{"doc_id": r["id"], "embedding": v, "title": r["title"], "n_words": r["n_words"],
                              "tags": r["tags"] or []}
                             for r, v in zip(rows.to_pylist(), rows.column("vector").to_pylist())])
        client.close()


def test_ids_with_quotes_are_escaped_in_filters(engine):
    """pymilvus's own get/delete by ids do not escape quotes; the adapter builds escaped literals."""
    rows = sample_rows(4)
    odd = ['x"y', "q'z\\", "a\"] or id != [\"", "日本 \n"]
    rows = rows.set_column(0, "id", pa.array(odd))
    engine.create("t_quotes", dim=384, payload=payload_schema(rows), index=IndexSpec(), run="r")
    engine.upsert("t_quotes", rows)
    assert engine.fetch("t_quotes", [odd[2], odd[0]]).column("id").to_pylist() == [odd[2], odd[0]]
    engine.delete("t_quotes", [odd[2]])
    assert sorted(table_of(engine.scan("t_quotes")).column("id").to_pylist()) == sorted([odd[0], odd[1], odd[3]])


def test_index_parameters_reach_milvus(engine):
    rows = sample_rows(10)
    engine.create("t_hnsw", dim=384, payload=payload_schema(rows), index=IndexSpec(m=8, ef_construction=64), run="r")
    engine.upsert("t_hnsw", rows)
    engine.build_index("t_hnsw", IndexSpec(m=8, ef_construction=64))
    client = engine._client
    desc = client.describe_index("t_hnsw", client.list_indexes("t_hnsw")[0])
    assert desc["index_type"] == "HNSW" and desc["metric_type"] == "COSINE"  # Lite does not echo M / efConstruction
    assert desc["indexed_rows"] + desc.get("pending_index_rows", 0) == 10
    props = client.describe_collection("t_hnsw")["properties"]
    assert json.loads(props["jina_migrate"])["run"] == "r"
    hits = engine.search("t_hnsw", np.asarray([rows.column("vector")[4].as_py()], np.float32), 2)
    assert hits[0][0][0] == rows.column("id")[4].as_py()


def test_scalar_json_values_round_trip(engine):
    """Milvus JSON fields refuse bare scalars; the adapter wraps and unwraps them."""
    rows = sample_rows(4).select(["id", "vector"])
    values = ['"text"', "5", "true", '{"a":[1,2]}']
    rows = rows.append_column("j", pa.ExtensionArray.from_storage(pa.json_(), pa.array(values)))
    engine.create("t_json", dim=384, payload=pa.schema([rows.schema.field("j")]), index=IndexSpec(), run="r")
    engine.upsert("t_json", rows)
    got = engine.fetch("t_json", rows.column("id").to_pylist())
    assert got.column("j").combine_chunks().storage.to_pylist() == values
