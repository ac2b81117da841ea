"""The installed ``jina-migrate``, driven in a subprocess through user mistakes: one clear line each.

Every row of ``CASES`` is one mistake a user makes (a misspelled option, a bad value in a flag,
the TOML file or the environment, a file that is not there...). For each, the console script
must print exactly one line starting ``error:`` (the FIRST line of stderr), exit with the
documented code (2 = usage or settings, 3 = output state), never show a traceback, and, for
``run``, write nothing: no manifest, nothing marked complete (the whole configuration is
checked before anything is written). No case loads a model or embeds: all fail up front.

Adding a case is one line: ``M(id, "args with {docs} {out} {d}", code, "text in the error")``;
``files={"name": "content"}`` creates files in the case's folder ``{d}``, ``env={...}`` sets
variables. ``{docs}`` is a small valid JSONL file, ``{out}`` an output folder not yet created.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from reliability_util import complete_marks, short

pytest_plugins = ["reliability_plugin"]

REPO = Path(__file__).resolve().parents[1]
DOCS = "".join(f'{{"id": "d{i}", "text": "Document {i} is about item {i % 3}."}}\n' for i in range(8))


@dataclass(frozen=True)
class M:
    """One mistake: ``jina-migrate ARGS`` must fail with ``code`` and ``match`` in its error line."""

    id: str
    args: str
    code: int
    match: str = ""
    files: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


RUN = "run --docs {docs} --out {out}"

CASES: list[M] = [
    # --- the parser: every class of click usage error, whichever click typer vendors
    M("misspelled option", "run --dimension 384", 2, "No such option"),
    M("unknown command", "plna", 2, "No such command 'plna'"),
    M("missing required option", "verify", 2, "Missing option '--out'"),
    M("option without its value", "run --cache", 2, "requires an argument"),
    M("missing argument", "search --out {d}", 2, "Missing argument"),
    M("extra argument", "models extra", 2, "unexpected extra argument"),
    M("flag given a value", "verify --out {d} --json=yes", 2, "does not take a value"),
    M("unknown top-level option", "--colour", 2, "No such option"),
    M("empty --out", "verify --out ''", 2, "expected a path"),
    M("wrong type on the command line", RUN + " --dimensions abc", 2, "--dimensions: expected a whole number"),
    # --- settings given as flags: strict types, ranges, choices, the model's sizes
    M("float for an int", RUN + " --dimensions 31.9", 2, "--dimensions: expected a whole number"),
    M("float-looking int", RUN + " --shard-size 10.0", 2, "--shard-size: expected a whole number"),
    M("v3 dimensions over 1024", RUN + " --dimensions 1025", 2, "outside 32..1024"),
    M("v3 dimensions under 32", RUN + " --dimensions 16", 2, "outside 32..1024"),
    M("v2 model cannot be truncated", RUN + " --model jina-api:jina-embeddings-v2-base-en --dimensions 32", 2,
      "jina-embeddings-v2-base-en makes 768-d"),
    M("unknown API model", RUN + " --model jina-api:jina-embeddings-v4", 2, "unknown Jina API model"),
    M("API model by its alias", RUN + " --model jina-api:v3", 2, "jina-api:jina-embeddings-v3"),
    M("unknown backend", RUN + " --model openai:text-embedding-3", 2, "unknown embedding backend 'openai'"),
    M("model without backend", RUN + " --model jina-embeddings-v3", 2, "--model: expected BACKEND:NAME"),
    M("embedding type", RUN + " --embedding-type int8", 2, "--embedding-type: expected one of float"),
    M("negative tpm", RUN + " --tpm -1", 2, "--tpm: must be at least 1"),
    M("zero rpm", RUN + " --rpm 0", 2, "--rpm: must be at least 1"),
    M("zero concurrency", RUN + " --concurrency 0", 2, "--concurrency: must be at least 1"),
    M("zero shard size", RUN + " --shard-size 0", 2, "--shard-size: must be at least 1"),
    M("negative token budget", RUN + " --token-budget -5", 2, "--token-budget: must be at least 1"),
    M("zero max tokens", RUN + " --max-tokens 0", 2, "--max-tokens: must be at least 1"),
    M("API reads 8192 tokens", RUN + " --max-input-tokens 512", 2, "--max-input-tokens"),
    M("hnsw m negative (23 GB)", RUN + " --index-type hnsw --hnsw-m -3", 2, "--hnsw-m: must be at least 2"),
    M("hnsw m zero (FAISS abort)", RUN + " --index-type hnsw --hnsw-m 0", 2, "--hnsw-m: must be at least 2"),
    M("hnsw m huge", RUN + " --index-type hnsw --hnsw-m 100000", 2, "--hnsw-m: must be at most 512"),
    M("ivf nlist zero", RUN + " --index-type ivfpq --ivf-nlist 0", 2, "--ivf-nlist: must be at least 1"),
    M("pq m does not divide", RUN + " --index-type ivfpq --pq-m 7", 2, "--pq-m: 7 does not divide the 1024"),
    M("pq m against --dimensions", RUN + " --index-type ivfpq --dimensions 256 --pq-m 48", 2, "--pq-m"),
    M("pq nbits", RUN + " --index-type ivfpq --pq-nbits 17", 2, "--pq-nbits: must be at most 16"),
    M("index type", RUN + " --index-type annoy", 2, "--index-type: expected one of flat, hnsw, ivfpq"),
    M("task", RUN + " --task retrieval", 2, "--task: expected one of"),
    M("task and use case", RUN + " --task retrieval.passage --use-case search", 2, "not both"),
    M("use case", RUN + " --use-case shopping", 2, "unknown --use-case"),
    M("tier", RUN + " --tier gold", 2, "--tier: expected one of conservative"),
    M("shard out of range", RUN + " --shard 4/4", 2, "--shard: need 0 <= I < N"),
    M("shard not I/N", RUN + " --shard half", 2, "--shard: expected I/N"),
    M("chunker without late chunking", RUN + " --chunker tokens:64", 2, "only applies with late chunking"),
    M("chunker spec", RUN + " --late-chunking --chunker tokens:many", 2, "--chunker:"),
    M("budget without price", RUN + " --max-cost 5", 2, "needs --price-per-million"),
    M("cost not a number", RUN + " --max-cost nan --price-per-million 0.02", 2, "--max-cost: expected a number"),
    M("negative price", RUN + " --max-cost 5 --price-per-million -1", 2, "--price-per-million: must be greater"),
    M("base url scheme", RUN + " --base-url ftp://example.org", 2, "--base-url: expected an http://"),
    M("device", RUN + " --device gpu", 2, "--device: expected auto, cpu"),
    M("dtype", RUN + " --dtype fp8", 2, "--dtype: expected one of auto"),
    M("on-missing", RUN + " --on-missing ignore", 2, "--on-missing: expected one of fail, skip"),
    M("api key env name", RUN + " --api-key-env 'MY KEY'", 2, "--api-key-env"),
    M("executor", RUN + " --executor spark", 2, "--executor: expected local or ray"),
    M("cache folder missing", RUN + " --cache {d}/earlier", 2, "--cache: "),
    M("cache is a file", RUN + " --cache {d}/note.txt", 2, "is not a directory", files={"note.txt": "x"}),
    M("key file missing", RUN + " --api-key-file {d}/key.txt", 2, "--api-key-file"),
    M("out is a file", "run --docs {docs} --out {d}/note.txt", 2, "is not a directory", files={"note.txt": "x"}),
    M("empty docs path", "run --docs '' --out {out}", 2, "--docs: expected a path"),
    # --- the TOML file: TOML types are kept, keys are the option names
    M("toml: shard as a number", RUN + " --config {d}/s.toml", 2, "s.toml: shard: expected text",
      files={"s.toml": "shard = 3\n"}),
    M("toml: migrate not a table", RUN + " --config {d}/s.toml", 2, "s.toml: migrate: expected a table",
      files={"s.toml": "migrate = 5\n"}),
    M("toml: model as a number", RUN + " --config {d}/s.toml", 2, "s.toml: model: expected text",
      files={"s.toml": "[migrate]\nmodel = 5\n"}),
    M("toml: base_url as a number", RUN + " --config {d}/s.toml", 2, "s.toml: base_url: expected",
      files={"s.toml": "base_url = 42\n"}),
    M("toml: bool as a word", RUN + " --config {d}/s.toml", 2, "s.toml: normalized: expected true or false",
      files={"s.toml": 'normalized = "maybe"\n'}),
    M("toml: float dimensions", RUN + " --config {d}/s.toml", 2, "s.toml: dimensions: expected a whole number",
      files={"s.toml": "dimensions = 31.9\n"}),
    M("toml: bool shard size", RUN + " --config {d}/s.toml", 2, "s.toml: shard_size: expected a whole number",
      files={"s.toml": "shard_size = true\n"}),
    M("toml: number as text", RUN + " --config {d}/s.toml", 2, "s.toml: dimensions: expected a whole number",
      files={"s.toml": 'dimensions = "256"\n'}),
    M("toml: dashed key range", RUN + " --config {d}/s.toml", 2, "s.toml: hnsw-m: must be at least 2",
      files={"s.toml": "[migrate]\nindex-type = \"hnsw\"\nhnsw-m = 0\n"}),
    M("toml: unknown key", RUN + " --config {d}/s.toml", 2, "unknown setting 'colour'",
      files={"s.toml": 'colour = "blue"\n'}),
    M("toml: invalid", RUN + " --config {d}/s.toml", 2, "invalid TOML", files={"s.toml": "task = [unclosed\n"}),
    M("toml: missing file", RUN + " --config {d}/none.toml", 2, "config file not found"),
    # --- the environment: text parsed exactly, booleans may also be 1/0, yes/no, on/off
    M("env: bool word", RUN, 2, "JINA_MIGRATE_NORMALIZED: expected true or false",
      env={"JINA_MIGRATE_NORMALIZED": "banana"}),
    M("env: float for int", RUN, 2, "JINA_MIGRATE_SHARD_SIZE: expected a whole number",
      env={"JINA_MIGRATE_SHARD_SIZE": "1.5"}),
    M("env: dimensions range", RUN, 2, "JINA_MIGRATE_DIMENSIONS: 2000 is outside",
      env={"JINA_MIGRATE_DIMENSIONS": "2000"}),
    M("env: tier", RUN, 2, "JINA_MIGRATE_TIER: expected one of", env={"JINA_MIGRATE_TIER": "gold"}),
    M("env: empty path", "run --docs {docs}", 2, "JINA_MIGRATE_OUT: expected a path", env={"JINA_MIGRATE_OUT": ""}),
    # --- files and folders that are not there
    M("documents not found", "run --docs {d}/nonexistent.jsonl --out {out}", 2, "file not found"),
    M("no --out", "run --docs {docs}", 2, "--out"),
    M("plan file not found", "run --plan {d}/plan.json --out {out}", 2, "plan file not found"),
    M("status of nothing", "status --out {d}/none", 3, "no such output directory"),
    M("verify of nothing", "verify --out {d}/none", 3, "no such output directory"),
    M("verify of a folder that is no output", "verify --out {d}", 3, "no manifest.json"),
    M("finalize of nothing", "finalize --out {d}/none", 3, "no such output directory"),
    # --- sources, id maps and destinations
    M("delimiter of two characters", "run --docs {d}/d.csv --out {out} --delimiter ';;'", 2, "one character",
      files={"d.csv": "id,text\n1,a\n"}),
    M("csv read with the wrong delimiter", "run --docs {d}/d.csv --out {out} --delimiter ','", 2,
      "pass --delimiter ';'", files={"d.csv": "id;text\n1;a\n"}),
    M("id map without an index", RUN + " --id-map {d}/ids.csv", 2, "--id-map needs --old-index",
      files={"ids.csv": "faiss_id,id\n0,d0\n"}),
    M("faiss id field missing", RUN + " --faiss-id-field vid", 2, "'vid'"),
    M("password in a destination address", RUN + " --sink 'postgresql://app:s3cret@db/shop?table=t'", 2,
      "PGPASSWORD"),
    M("password in a source address", "run --old-index 'postgresql://app:s3cret@db/shop?table=t' --out {out}", 2,
      "PGPASSWORD"),
    M("destination without a collection", RUN + " --sink 'qdrant:///{d}/q'", 2, "names no collection"),
    M("hostile collection name", RUN + " --sink \"qdrant:///{d}/q?collection=a';drop\"", 2, "--sink"),
    M("unknown database option", RUN + " --sink 'qdrant:///{d}/q?colection=x'", 2, "--sink"),
    M("late chunking into a database", RUN + " --late-chunking --sink 'qdrant:///{d}/q?collection=x'", 2,
      "one vector per document"),
    M("cutover of nothing", "cutover --out {d}/none", 3, "no such output directory"),
    M("rollback of nothing", "rollback --out {d}/none", 3, "no such output directory"),
]


def console_script() -> list[str]:
    """The installed ``jina-migrate`` (beside this interpreter), else ``python -m migrate``."""
    exe = Path(sys.executable).parent / "jina-migrate"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("jina-migrate")
    return [found] if found else [sys.executable, "-m", "migrate"]


def run_case(case: M, d: Path) -> subprocess.CompletedProcess:
    for name, content in case.files.items():
        (d / name).write_text(content, encoding="utf-8")
    (d / "docs.jsonl").write_text(DOCS, encoding="utf-8")
    args = shlex.split(case.args.format(docs=d / "docs.jsonl", out=d / "out", d=d))
    env = {k: v for k, v in os.environ.items() if not k.startswith("JINA_MIGRATE_") and k != "JINA_API_KEY"}
    env |= {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            "HF_HUB_OFFLINE": "1", "COLUMNS": "100"} | case.env
    return subprocess.run(console_script() + args, capture_output=True, text=True, env=env, cwd=d, timeout=120)


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple]:
    """Run the selected cases, a few processes at a time (one process per case)."""
    from concurrent.futures import ThreadPoolExecutor

    selected = [item.callspec.params["case"] for item in request.session.items
                if getattr(item, "callspec", None) is not None and isinstance(item.callspec.params.get("case"), M)]
    dirs = {c.id: tmp_path_factory.mktemp("mistake") for c in selected}
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        procs = dict(zip(dirs, pool.map(lambda c: run_case(c, dirs[c.id]), selected)))
    return {k: (procs[k], dirs[k]) for k in procs}


def test_there_are_at_least_forty_mistakes():
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_user_mistake_gives_one_error_line(case: M, outcomes: dict[str, tuple], reliability) -> None:
    proc, d = outcomes[case.id]
    err = proc.stderr
    assert "Traceback" not in err + proc.stdout, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines and lines[0].startswith("error:"), f"first stderr line is not an error line: {err!r}"
    assert sum(ln.startswith("error:") for ln in lines) == 1, err
    assert all(ln.startswith(("error:", "hint:")) for ln in lines), f"more than the error and a hint: {err!r}"
    assert proc.returncode == case.code, f"exit {proc.returncode}, expected {case.code}: {err}"
    assert case.match.lower() in lines[0].lower(), f"{case.match!r} not in {lines[0]!r}"
    out = d / "out"
    if case.args.startswith("run"):
        assert not (out / "manifest.json").exists(), "a refused run wrote a manifest"
        assert not out.exists() or complete_marks(out) == []
    reliability.add("Hostile input", f"user mistake through the console script: {case.id}", 1,
                    f"exit {proc.returncode}: `{short(lines[0])}`")
