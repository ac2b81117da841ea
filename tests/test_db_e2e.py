"""Vector databases end to end through the installed CLI, once per engine (issue 13).

For each engine (PostgreSQL + pgvector, Qdrant local mode, Milvus Lite, LanceDB, Chroma) a real
collection is built from the bundled sample with payload fields of many types, as the
application's v2 index, reachable under the application's name ``docs`` (PostgreSQL: the real
table itself; Qdrant and Milvus: an alias; LanceDB and Chroma: jina-migrate's pointer). Then
``jina-migrate run --old-index URI --sink NEW_URI`` migrates it in a child process and:

* the new collection holds every id once, the vectors of the FAISS output of the same run, and
  the source's payload (every field, every type);
* SIGKILL at five points of the writes and the cutover ends, after a rerun of the same command,
  in the same contents (checksum) and the right alias;
* a thread searching ``docs`` during ``jina-migrate cutover`` never fails or comes back empty,
  and every answer is wholly the old or wholly the new collection's; ``rollback`` points back;
* the source collection's checksum never changes.

Embedded engines allow one process at a time, so the test opens an engine only between CLI runs
(``opened``), and the query thread of the cutover test runs inside the cutover's own process.
"""

from __future__ import annotations

import json
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest_plugins = ["reliability_plugin"]
from support.engines import (assert_same_rows, build_collection, jina_migrate, opened, postgres_server, table_of,
                             v2_rows)

ENGINES = ["postgres", "qdrant", "milvus", "lancedb", "chroma"]
N_DOCS = 60
SHARD = 20  # three shards: kills land between and inside them
RUN = ["--title-field", "title", "--model", "local:standin:static", "--shard-size", str(SHARD), "--json"]


@dataclass
class World:
    """One engine with the application's v2 collection in it."""

    engine: str
    root: Path
    base: str  # address without a collection
    source: str  # the v2 collection's own name
    app: str = "docs"  # what the application queries
    rows: pa.Table = None  # type: ignore[assignment]
    source_checksum: str = ""
    seeds: dict = field(default_factory=dict)

    def uri(self, collection: str, **opts: str) -> str:
        key = "table" if self.engine in ("postgres", "lancedb") else "collection"
        extra = "".join(f"&{k}={v}" for k, v in opts.items())
        return f"{self.base}{'&' if '?' in self.base else '?'}{key}={collection}{extra}"

    def checksum(self, collection: str) -> str:
        with opened(self.uri(collection)) as eng:
            return eng.checksum(collection)

    def alias_target(self, name: str) -> str | None:
        with opened(self.uri(name)) as eng:
            return eng.alias_target(name)


@pytest.fixture(scope="module", params=ENGINES)
def world(request, tmp_path_factory):
    engine = request.param
    root = tmp_path_factory.mktemp(f"db-{engine}")
    rows = v2_rows(N_DOCS)
    if engine == "postgres":
        with postgres_server() as (_srv, uri):
            w = World(engine, root, uri, source="docs")  # the application queries the real table
            w.rows, w.source_checksum = rows, build_collection(w.uri("docs"), rows)
            yield w
        return
    base = {"qdrant": f"qdrant://{root / 'q'}", "milvus": f"milvus://{root / 'milvus.db'}",
            "lancedb": f"lancedb://{root / 'lance'}", "chroma": f"chroma://{root / 'chroma'}"}[engine]
    w = World(engine, root, base, source="docs_v2")
    w.rows, w.source_checksum = rows, build_collection(w.uri("docs_v2"), rows)
    with opened(w.uri("docs_v2")) as eng:
        eng.point_alias("docs", "docs_v2")  # the application's name, as it was before the migration
    yield w


def _run_args(w: World, out: Path, sink: str) -> list[str]:
    return ["run", "--old-index", w.uri(w.source), "--sink", sink, "--out", str(out), *RUN]


def _finish(proc) -> dict:
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return next(e for e in events if e.get("event") == "finish")


#: Finished outputs of earlier engines' runs (same documents): a later engine's run starts from a copy.
_EMBEDDED: list[Path] = []


@pytest.fixture(scope="module")
def seed(world):
    """The uninterrupted migration into ``docs_v3`` (alias ``docs``): the reference every other test compares to.

    The output directory starts as a copy of an earlier engine's finished output when there is one: the
    documents are the same, so when the engine scans them in the same order the plan is identical, every
    shard is already embedded, and the run only reads the collection, plans, and writes the destination
    (the FAISS output is rebuilt by this run too). Otherwise it embeds; either way the same command runs.
    """
    out = world.root / "out"
    if _EMBEDDED:
        shutil.copytree(_EMBEDDED[0], out)
    proc = jina_migrate(*_run_args(world, out, world.uri("docs_v3", alias=world.app)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    world.seeds["reference"] = world.checksum("docs_v3")
    if not _EMBEDDED:
        _EMBEDDED.append(shutil.copytree(out, world.root.parent / f"embedded-{world.engine}"))
    return {"out": out, "finish": _finish(proc), "stderr": proc.stderr}


def _single_error(proc, code: int) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


# --------------------------------------------------------------------------- 1. read back what was written

def test_migrates_into_a_new_collection_and_reads_back(world, seed, reliability):
    out = seed["out"]
    dest = seed["finish"]["outputs"]["destinations"]
    assert [(d["collection"], d["rows"], d["upserted"], d["deleted"], d["unchanged"]) for d in dest] == \
        [("docs_v3", N_DOCS, N_DOCS, 0, 0)]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["destinations"][f"{world.engine}:docs_v3"]["upserted"] == N_DOCS
    faiss = pq.read_table(out / "embeddings.parquet", columns=["id", "vector"])
    by_id = dict(zip(faiss.column("id").to_pylist(), faiss.column("vector").to_pylist()))
    with opened(world.uri("docs_v3")) as eng:
        got = table_of(eng.scan("docs_v3", batch_rows=17))
        info = eng.describe("docs_v3")
    assert (info.dim, info.created_by_run) == (64, manifest["run_id"])
    # every id once; the vectors of the FAISS sink bit for bit; the source's payload, every field and type
    src = world.rows
    want_vecs = pa.array([by_id[i] for i in src.column("id").to_pylist()], pa.list_(pa.float32(), 64))
    assert_same_rows(got, src.set_column(1, "vector", want_vecs))
    assert got.schema.names == src.schema.names
    assert world.checksum(world.source) == world.source_checksum
    check = jina_migrate("verify", "--out", str(out), "--json")
    assert check.returncode == 0, check.stdout + check.stderr
    report = json.loads(check.stdout)
    assert report["ok"] and report["checks"][f"{world.engine}:docs_v3"]["sampled"] == N_DOCS
    reliability.add('Databases', 'a collection with payload fields of many types into a new collection (each engine)', 1, "every id once, vectors bit-equal to the FAISS sink's, payload and types equal; verify passes")


# --------------------------------------------------------------------------- 2. SIGKILL during the writes

@pytest.mark.parametrize("point", ["upsert-mid:2", "upsert-after:2", "index"])
def test_sigkill_during_the_writes_then_rerun(world, seed, tmp_path, point, reliability):
    """Killed mid-upsert (half of shard 2 written), between shard 2's upsert and its delivery record,
    or during the index build: the rerun of the same command ends with the reference contents."""
    out = tmp_path / "out"
    shutil.copytree(seed["out"], out)  # the embedded shards of the reference run: only the writes repeat
    coll = "docs_v3_" + point.split(":")[0].replace("-", "_")
    args = _run_args(world, out, world.uri(coll))
    killed = jina_migrate(*args, kill=f"{world.engine}:{point}")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    records = sorted(p.name for p in (out / "shards").glob("*.to-*.json"))
    with opened(world.uri(coll)) as eng:
        partial = eng.count(coll)
    delivered = [r for r in records if coll in json.loads((out / "shards" / r).read_text())["sink"]]
    if point.startswith("upsert-mid"):
        assert len(delivered) == 1 and partial == SHARD + SHARD // 2
    elif point.startswith("upsert-after"):
        assert len(delivered) == 1 and partial == 2 * SHARD
    else:
        assert len(delivered) == 3 and partial == N_DOCS
    rerun = jina_migrate(*args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    dest = _finish(rerun)["outputs"]["destinations"][0]
    assert world.checksum(coll) == world.seeds["reference"]
    assert dest["rows"] == N_DOCS and dest["upserted"] == {"upsert-mid": SHARD - SHARD // 2 + SHARD,
                                                           "upsert-after": SHARD, "index": 0}[point.split(":")[0]]
    if world.engine == "postgres":
        with opened(world.uri(coll)) as eng:
            assert "hnsw" in (eng.describe(coll).index or "")
    assert world.checksum(world.source) == world.source_checksum
    reliability.add('Databases', 'SIGKILL mid-upsert / between upsert and record / during the index build (each engine), then a rerun', 2, 'same collection checksum as an uninterrupted run')


# --------------------------------------------------------------------------- 3 + 4. cutover under queries, rollback

def test_cutover_under_queries_sigkill_and_rollback(world, seed, tmp_path, reliability):
    """1. A thread searches the application's name while ``jina-migrate cutover`` switches it: no error, no
    empty answer, each answer wholly the old or wholly the new collection's. 2. ``rollback`` points the
    name back. 3. A cutover killed after it saved the previous target but before the switch, then its
    rerun killed right after the switch, then a rerun: the name points at the new collection and the
    manifest knows where it pointed before, so 4. ``rollback`` works. The old collection is never
    written (its checksum holds throughout) and nothing is dropped."""
    out = seed["out"]
    faiss = pq.read_table(out / "embeddings.parquet", columns=["vector"])
    q = np.asarray(faiss.column("vector").take([3, 41]).to_pylist(), np.float32)
    k = 4
    with opened(world.uri(world.source)) as eng:
        old = eng.search(world.source, q, k)
        new = eng.search("docs_v3", q, k)
        assert eng.alias_target(world.app) == world.source
    assert [[i for i, _ in a] for a in old] != [[i for i, _ in a] for a in new]
    answers_file = tmp_path / "answers.json"
    cut = jina_migrate("cutover", "--out", str(out),
                       query={"uri": world.uri(world.app), "name": world.app, "vectors": q.tolist(), "k": k,
                              "out": str(answers_file)})
    assert cut.returncode == 0, cut.stderr[-3000:]
    seen = json.loads(answers_file.read_text())
    assert not seen["errors"], seen["errors"][:3]
    assert len(seen["answers"]) >= 4
    kinds: list[list[str]] = [[] for _ in q]
    for answer in seen["answers"]:  # one search call: a list of hits per query vector
        assert len(answer) == len(q)
        for j, hits in enumerate(answer):
            assert len(hits) == k, hits  # never empty, never short
            which = [name for name, ref in (("old", old[j]), ("new", new[j]))
                     if [h[0] for h in hits] == [i for i, _ in ref]
                     and np.allclose([h[1] for h in hits], [s for _, s in ref], atol=1e-5)]
            assert which, f"an answer that is neither the old nor the new collection's: {hits}"
            kinds[j].append(which[0])
    for per_query in kinds:
        assert per_query[0] == "old" and per_query[-1] == "new", per_query
        assert per_query == sorted(per_query, key=["old", "new"].index), "the name switched back and forth"
    assert world.alias_target(world.app) == "docs_v3"
    # The old collection is kept, unchanged (PostgreSQL moved the application's table aside under a new name).
    old_now = "docs_pre_jm" if world.engine == "postgres" else world.source
    assert world.checksum(old_now) == world.source_checksum
    if world.engine == "postgres":  # its source name now leads to the destination: a rerun is refused
        again = jina_migrate(*_run_args(world, out, world.uri("docs_v3", alias=world.app)))
        assert "now points at the destination" in _single_error(again, 2)
    back = jina_migrate("rollback", "--out", str(out), "--json")
    assert back.returncode == 0, back.stderr[-3000:]
    assert json.loads(back.stdout)[0]["previous"] == world.source
    assert world.alias_target(world.app) == world.source
    assert world.checksum(world.source) == world.source_checksum
    with opened(world.uri(world.source)) as eng:
        assert [[i for i, _ in a] for a in eng.search(world.app, q, k)] == [[i for i, _ in a] for a in old]

    # SIGKILL inside cutover, twice, then the rerun finishes.
    def record() -> dict:
        return json.loads((out / "manifest.json").read_text())["cutover"][f"{world.engine}:docs_v3"]

    killed = jina_migrate("cutover", "--out", str(out), kill=f"{world.engine}:switch-before")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert world.alias_target(world.app) == world.source
    before = {"kind": "table", "aside": "docs_pre_jm"} if world.engine == "postgres" else \
        {"kind": "alias", "target": world.source}
    assert {k: record()[k] for k in ("alias", "previous", "target", "state", "before")} == \
        {"alias": world.app, "previous": world.source, "target": "docs_v3", "state": "switching", "before": before}
    killed = jina_migrate("cutover", "--out", str(out), kill=f"{world.engine}:switch-after")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert world.alias_target(world.app) == "docs_v3"
    assert record()["state"] == "switching"
    done = jina_migrate("cutover", "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)[0]["target"] == "docs_v3"
    assert world.alias_target(world.app) == "docs_v3"
    assert (record()["state"], record()["previous"]) == ("done", world.source)
    assert world.checksum("docs_v3") == world.seeds["reference"]
    back = jina_migrate("rollback", "--out", str(out))
    assert back.returncode == 0, back.stderr[-3000:]
    assert world.alias_target(world.app) == world.source
    assert world.checksum(world.source) == world.source_checksum
    with opened(world.uri(world.source)) as eng:
        assert "docs_v3" in eng.collections()  # nothing is dropped either way
    reliability.add('Databases', 'cutover killed before and after the switch, under a thread querying the alias; rollback (each engine)', 4, 'no error or empty answer, each answer wholly old or new; right alias after the rerun; source checksum unchanged')
