"""``--precision`` into database destinations (issue 19, part 3): each engine stores the type it declares in its
``LIMITS.precisions`` natively, and a run migrates, verifies, searches and cuts over; a pair it cannot store is
an error finding in ``plan`` and refused by ``run`` (exit 2, one line) before anything is embedded.

What each engine should hold is computed here from the float32 shard vectors with numpy alone (float16 cast,
sign bits), never by the code under test. One CLI run per supported pair on a 30-document corpus with the
static stand-in; one PostgreSQL server for the module.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from support.engines import jina_migrate, opened, postgres_server

WORDS = "apple banana cherry date elder fig grape honeydew kiwi lemon mango nectarine olive peach quince".split()
N = 30
SUPPORTED = [("postgres", "float16"), ("postgres", "binary"), ("qdrant", "float16"), ("qdrant", "int8"),
             ("qdrant", "binary"), ("lancedb", "float16")]
REFUSED = [("postgres", "int8", "pgvector has no int8 vector type"),
           ("milvus", "float16", "Milvus Lite has FLOAT_VECTOR fields only"),
           ("lancedb", "binary", "a LanceDB vector column holds floats"),
           ("chroma", "int8", "Chroma stores float32 embeddings only")]


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("precision-db") / "docs.jsonl"
    with path.open("w") as f:
        for i in range(N):
            text = " ".join(WORDS[(i * j + i) % len(WORDS)] for j in range(1, 9)) + f" item {i}"
            f.write(json.dumps({"id": f"d{i}", "text": text, "n": i}) + "\n")
    return path


@pytest.fixture(scope="module")
def pg():
    with postgres_server() as (srv, uri):
        yield srv, uri


def _base(engine: str, root: Path, pg_uri: str | None) -> str:
    return {"postgres": pg_uri or "", "qdrant": f"qdrant://{root / 'q'}", "lancedb": f"lancedb://{root / 'lance'}",
            "milvus": f"milvus://{root / 'milvus.db'}", "chroma": f"chroma://{root / 'chroma'}"}[engine]


def _uri(base: str, engine: str, collection: str, **opts: str) -> str:
    key = "table" if engine in ("postgres", "lancedb") else "collection"
    return f"{base}{'&' if '?' in base else '?'}{key}={collection}" + "".join(f"&{k}={v}" for k, v in opts.items())


def _shard_vectors(out: Path) -> dict[str, np.ndarray]:
    """The float32 vectors the model made, from the shards (what every sink is built from)."""
    got: dict[str, np.ndarray] = {}
    for path in sorted((out / "shards").glob("shard-*.parquet")):
        t = pq.read_table(path, columns=["id", "vector"])
        vecs = np.asarray(t.column("vector").combine_chunks().flatten(), np.float32).reshape(t.num_rows, -1)
        got.update(zip(t.column("id").to_pylist(), vecs))
    return got


def _one_error(proc) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error")]
    assert len(errors) == 1, proc.stderr[-3000:]
    return errors[0]


#: Qdrant float16 / int8 differ from Qdrant binary only in the collection's config (same write and read paths): slow.
_SLOW = {("qdrant", "float16"), ("qdrant", "int8")}


@pytest.mark.parametrize("engine,precision", [pytest.param(e, p, id=f"{e}-{p}", marks=[pytest.mark.slow] if (e, p) in _SLOW
                                                           else []) for e, p in SUPPORTED])
def test_a_precision_run_migrates_verifies_searches_and_cuts_over(engine, precision, docs, tmp_path, request):
    pg_uri = request.getfixturevalue("pg")[1] if engine == "postgres" else None
    base = _base(engine, tmp_path, pg_uri)
    collection = f"docs_{precision}"
    out = tmp_path / "out"
    run = jina_migrate("run", "--docs", str(docs), "--model", "local:standin:static", "--out", str(out),
                       "--shard-size", "16", "--precision", precision,
                       "--sink", _uri(base, engine, collection, alias=f"app_{precision}"))
    assert run.returncode == 0, run.stderr[-3000:]
    shards = _shard_vectors(out)
    ids = sorted(shards)
    want32 = np.stack([shards[i] for i in ids])
    d = want32.shape[1]

    # 1. stored natively: the engine's own type, and read back as the codec says (computed here with numpy)
    if engine == "postgres":
        import psycopg

        with psycopg.connect(pg_uri) as conn:
            (typ,) = conn.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                                  "%s::regclass AND attname = 'vector'", (collection,)).fetchone()
            (idx,) = conn.execute("SELECT string_agg(indexdef, ' ') FROM pg_indexes WHERE tablename = %s",
                                  (collection,)).fetchone()
            if precision == "binary":
                bits = dict(conn.execute(f'SELECT id, vector::text FROM "{collection}"').fetchall())
        assert typ == {"float16": f"halfvec({d})", "binary": f"bit({d})"}[precision]
        assert {"float16": "USING hnsw (vector halfvec_", "binary": "USING hnsw (vector bit_hamming_ops)"}[precision] in idx
        if precision == "binary":  # the sign bits, as the Jina API's ubinary packs them
            assert bits == {i: "".join("1" if x > 0 else "0" for x in shards[i]) for i in ids}
    if engine == "lancedb":
        import lancedb

        field = lancedb.connect(str(tmp_path / "lance")).open_table(collection).schema.field("vector")
        assert str(field.type) == f"fixed_size_list<item: halffloat>[{d}]"
    with opened(_uri(base, engine, collection)) as eng:
        got = eng.fetch(collection, ids)
        assert got.column("id").to_pylist() == ids
        have = np.asarray(got.column("vector").combine_chunks().flatten(), np.float32).reshape(len(ids), d)
        expected = {"float16": want32.astype(np.float16).astype(np.float32),
                    "binary": np.where(want32 > 0, 1.0, -1.0).astype(np.float32) / np.float32(math.sqrt(d)),
                    "int8": want32}[precision]  # Qdrant's int8: float32 kept beside its quantised index
        if engine == "qdrant" and precision == "binary":
            expected = want32
        np.testing.assert_array_equal(have, expected)
        # 2. the engine's own search with a float query finds each document's own vector first
        hits = eng.search(collection, want32[:5], 3)
        assert [h[0][0] for h in hits] == ids[:5], hits
        if engine == "postgres" and precision == "binary":
            assert all(h[0][1] == pytest.approx(1.0) for h in hits)  # hamming 0: 1 - 2·0/d
    # 3. verify compares the read-back with the codec's round trip of the shards (float32 would differ by far
    #    more than its 1e-6 from a halfvec or bit read-back)
    verify = jina_migrate("verify", "--out", str(out), "--json")
    assert verify.returncode == 0, verify.stdout[-2000:] + verify.stderr[-2000:]
    checks = json.loads(verify.stdout)
    assert precision in json.dumps(checks), checks
    search = jina_migrate("search", "--out", str(out), "apple banana cherry", "-k", "3", "--json")
    assert search.returncode == 0 and len(json.loads(search.stdout)["new"]) == 3, search.stderr[-2000:]
    # 4. cutover points the application's name at the new collection, which answers through it
    cut = jina_migrate("cutover", "--out", str(out))
    assert cut.returncode == 0, cut.stderr[-3000:]
    with opened(_uri(base, engine, collection)) as eng:
        assert eng.alias_target(f"app_{precision}") == collection
        if engine != "lancedb":  # LanceDB's pointer is read by the application (alias_target), not searched
            assert eng.search(f"app_{precision}", want32[:1], 1)[0][0][0] == ids[0]
    if engine == "postgres":  # a vector changed behind the tool's back is found in the stored type
        import psycopg

        with psycopg.connect(pg_uri, autocommit=True) as conn:
            conn.execute(f'UPDATE "{collection}" SET vector = (SELECT vector FROM "{collection}" WHERE id = %s) '
                         "WHERE id = %s", (ids[1], ids[0]))
        bad = jina_migrate("verify", "--out", str(out))
        assert bad.returncode == 6 and "differ from the shards" in bad.stdout + bad.stderr, bad.stdout + bad.stderr


@pytest.mark.parametrize("engine,precision,why", REFUSED, ids=[f"{e}-{p}" for e, p, _ in REFUSED])
def test_an_engine_that_cannot_store_the_type_is_refused_before_embedding(engine, precision, why, docs, tmp_path,
                                                                          request):
    pg_uri = request.getfixturevalue("pg")[1] if engine == "postgres" else None
    sink = _uri(_base(engine, tmp_path, pg_uri), engine, "docs_v3")
    out = tmp_path / "out"
    run = jina_migrate("run", "--docs", str(docs), "--model", "local:standin:static", "--out", str(out),
                       "--precision", precision, "--sink", sink)
    assert run.returncode == 2, run.stderr[-3000:]
    line = _one_error(run)
    assert f"--precision {precision} is not supported there" in line and why in line, line
    assert not (out / "shards").exists() or not any((out / "shards").iterdir())  # nothing embedded
    with opened(sink) as eng:
        assert not eng.exists("docs_v3")


def test_plan_reports_the_refused_pair_as_an_error_finding(docs, tmp_path):
    sink = _uri(_base("lancedb", tmp_path, None), "lancedb", "docs_v3")
    plan = jina_migrate("plan", "--docs", str(docs), "--local-model", "standin:static", "--sink", sink,
                        "--precision", "binary", "--json")
    assert plan.returncode == 8, plan.stderr[-2000:]
    found = [f for f in json.loads(plan.stdout)["findings"] if "--precision binary" in f["message"]]
    assert len(found) == 1 and found[0]["severity"] == "error", found
    assert "a LanceDB vector column holds floats" in found[0]["message"] and "--precision" in found[0]["fix"]
    assert json.loads(plan.stdout)["storage"]  # the plan still prices every precision
