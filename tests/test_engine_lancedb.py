"""LanceDB adapter against an embedded LanceDB directory."""

from __future__ import annotations

import pyarrow as pa
import pytest
from support.engines import EngineContract, payload_schema, sample_rows, table_of

from migrate.engines import IndexSpec, open_engine
from migrate.engines.lancedb import POINTER_TABLE


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    eng = open_engine(f"lancedb://{tmp_path_factory.mktemp('lance') / 'db'}")
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def reader(engine):
    eng = open_engine(engine.address)  # a second connection: sees each pointer commit
    yield eng
    eng.close()


class TestLance(EngineContract):
    def make_foreign(self, engine, name, rows):
        """An application's table written with lancedb itself: vector column 'embedding'."""
        import lancedb

        db = lancedb.connect(str(engine.address.path))
        db.create_table(name, data=pa.table({"id": rows.column("id"), "embedding": rows.column("vector"),
                                             "title": rows.column("title"), "n_words": rows.column("n_words")}))


def test_pointer_table_is_what_the_application_reads(engine):
    rows = sample_rows(5)
    for name in ("t_ptr_a", "t_ptr_b"):
        engine.create(name, dim=384, payload=payload_schema(rows), index=IndexSpec(), run="r")
        engine.upsert(name, rows)
    engine.point_alias("t_ptr_app", "t_ptr_a")
    engine.point_alias("t_ptr_app", "t_ptr_b")
    import lancedb

    db = lancedb.connect(str(engine.address.path))
    ptr = db.open_table(POINTER_TABLE).to_arrow()
    assert ptr.filter(pa.compute.equal(ptr.column("alias"), "t_ptr_app")).column("target").to_pylist() == ["t_ptr_b"]
    assert POINTER_TABLE not in engine.collections()
    assert engine.describe("t_ptr_app").alias_of == "t_ptr_b"
    assert table_of(engine.scan("t_ptr_app")).num_rows == 5


def test_ids_with_quotes_are_escaped_in_filters(engine):
    rows = sample_rows(3).set_column(0, "id", pa.array(["o'brien", "x') OR ('1'='1", "plain"]))
    engine.create("t_quotes", dim=384, payload=payload_schema(rows), index=IndexSpec(), run="r")
    engine.upsert("t_quotes", rows)
    assert engine.fetch("t_quotes", ["x') OR ('1'='1"]).column("id").to_pylist() == ["x') OR ('1'='1"]
    engine.delete("t_quotes", ["x') OR ('1'='1"])
    assert sorted(table_of(engine.scan("t_quotes")).column("id").to_pylist()) == ["o'brien", "plain"]
