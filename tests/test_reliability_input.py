"""Hostile and broken input: each gives one clear error line, a non-zero exit, and nothing marked complete.

Sources (documents, old index, id map) are attacked through ``jina-migrate run`` in this process;
outputs (manifest, shards, id map, symlinks) after a real finished migration. The readers also get
property-based tests: whatever bytes they are fed, they return consistent data or an ``InputError``.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reliability_util import assert_clean_failure, cli_inproc, fast_server_with_key, needs_static, short

pytest_plugins = ["reliability_plugin"]

MODEL = "jina-api:jina-embeddings-v3"  # against the local server (static stand-in): no torch start-up per run
N_DOCS = 24
GOOD = [{"id": f"d{i:02d}", "text": f"Document {i} explains how item {i % 5} is fitted, cleaned and stored."}
        for i in range(N_DOCS)]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


_SERVER: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def server():
    """One local Jina-compatible server for the module; its key in JINA_API_KEY while the module runs."""
    if not __import__("importlib").util.find_spec("static_model"):
        yield None
        return
    with fast_server_with_key() as h:
        _SERVER["base_url"] = h.base_url
        yield h


def run_argv(docs: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--docs", str(docs), "--model", MODEL, "--base-url", _SERVER.get("base_url", ""), "--tier", "tier2",
            "--shard-size", "6", "--out", str(out), "--json", *extra]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> dict[str, Path]:
    """Good documents in every format, an old index in every format, and their bytes to damage."""
    import faiss

    d = tmp_path_factory.mktemp("hostile")
    files = {"jsonl": write_jsonl(d / "docs.jsonl", GOOD)}
    pq.write_table(pa.table({"id": [r["id"] for r in GOOD], "text": [r["text"] for r in GOOD]}), d / "docs.parquet")
    files["parquet"] = d / "docs.parquet"
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((N_DOCS, 8)).astype(np.float32)
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(8))
    index.add_with_ids(vecs, np.arange(1000, 1000 + N_DOCS, dtype=np.int64))
    faiss.write_index(index, str(d / "old.faiss"))
    files["faiss"] = d / "old.faiss"
    (d / "id_map.csv").write_text("faiss_id,id\n" + "".join(f"{1000 + i},{r['id']}\n" for i, r in enumerate(GOOD)))
    files["id_map"] = d / "id_map.csv"
    files["vectors"] = vecs  # type: ignore[assignment]
    files["dir"] = d
    return files


# --------------------------------------------------------------------------- source files

def _truncate(p: Path, dst: Path, frac: float = 0.5) -> Path:
    b = p.read_bytes()
    dst.write_bytes(b[: int(len(b) * frac)])
    return dst


def _corrupt_middle(p: Path, dst: Path, seed: int = 1) -> Path:
    b = bytearray(p.read_bytes())
    rng = np.random.default_rng(seed)
    lo, hi = 8, len(b) - 8
    b[lo:hi] = rng.integers(0, 256, hi - lo, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(b))
    return dst


def _source_cases(base: dict, d: Path) -> list[tuple[str, list[str], str]]:
    """(case, extra run args after --docs X, expected words in the error)."""
    j, pqf, fa = base["jsonl"], base["parquet"], base["faiss"]
    lines = j.read_text().splitlines()
    cases: list[tuple[str, list[str], str]] = []

    def docs(name: str, content: bytes | str) -> str:
        p = d / name
        p.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        return str(p)

    cases.append(("truncated Parquet documents", [str(_truncate(pqf, d / "t.parquet"))], "cannot read as parquet"))
    cases.append(("corrupt Parquet documents (random bytes inside)", [str(_corrupt_middle(pqf, d / "c.parquet"))],
                  "cannot read as parquet"))
    cases.append(("truncated JSONL (cut inside a record)", [docs("t.jsonl", "\n".join(lines)[:-15])], "invalid JSON"))
    cases.append(("PNG bytes named .parquet", [docs("img.parquet", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)],
                  "cannot read as parquet"))
    cases.append(("binary bytes named .jsonl", [docs("bin.jsonl", bytes(range(128, 256)) * 8)], "not valid UTF-8"))
    cases.append(("unsupported file type (.txt)", [docs("docs.txt", "hello")], "unknown file type"))
    cases.append(("a directory given as documents", [str(d)], "unknown file type" if d.suffix else "directory"))
    cases.append(("empty documents file", [docs("empty.jsonl", "")], "no records"))
    cases.append(("non-UTF-8 text (Latin-1 byte)", [docs("latin1.jsonl", lines[0].encode() + b"\n"
                                                          + b'{"id": "x", "text": "caf\xe9"}\n')], "not valid UTF-8"))
    cases.append(("NUL bytes in a text", [docs("nul.jsonl", lines[0] + "\n" + json.dumps({"id": "n", "text": "a\x00b"}))],
                  "NUL"))
    cases.append(("empty text", [docs("e1.jsonl", lines[0] + "\n" + json.dumps({"id": "e", "text": ""}))], "empty text"))
    cases.append(("whitespace-only text", [docs("e2.jsonl", lines[0] + "\n" + json.dumps({"id": "w", "text": " \n\t "}))],
                  "empty text"))
    cases.append(("duplicate ids", [docs("dup.jsonl", "\n".join(lines + lines[:2]))], "duplicate document ids"))
    cases.append(("missing id (null)", [docs("noid.jsonl", lines[0] + "\n" + json.dumps({"id": None, "text": "x"}))],
                  "record has no 'id'"))
    cases.append(("no id field at all", [docs("nofield.jsonl", json.dumps({"text": "x"}))], "cannot find the id field"))
    cases.append(("text of the wrong type", [docs("num.jsonl", json.dumps({"id": "a", "text": 5}))], "expected a string"))
    cases.append(("JSON array instead of object", [docs("arr.jsonl", "[1, 2]\n")], "expected a JSON object"))
    cases.append(("deeply nested JSON", [docs("deep.jsonl", "[" * 100_000 + "]" * 100_000 + "\n")], "nested too deeply"))

    def old(name: str, table: pa.Table) -> str:
        pq.write_table(table, d / name)
        return str(d / name)

    ids = [r["id"] for r in GOOD]
    v = base["vectors"]
    nan = v.copy()
    nan[3, 2] = np.nan
    inf = v.copy()
    inf[5, 0] = np.inf
    cases.append(("NaN in stored vectors (Parquet old index)",
                  [str(j), "--old-index", old("nan.parquet", pa.table({"id": ids, "vector": list(nan)}))], "NaN"))
    cases.append(("inf in stored vectors (JSONL old index)",
                  [str(j), "--old-index", docs("inf.jsonl", "".join(
                      json.dumps({"id": i, "vector": [float(x) if np.isfinite(x) else 1e999 for x in row]}) + "\n"
                      for i, row in zip(ids, inf)))], "infinite"))
    import faiss

    ix = faiss.IndexFlatIP(8)
    ix.add(inf)
    faiss.write_index(ix, str(d / "inf.faiss"))
    cases.append(("inf in stored vectors (FAISS old index)", [str(j), "--old-index", str(d / "inf.faiss")], "infinite"))
    ragged = [list(map(float, r)) for r in v]
    ragged[4] = ragged[4][:5]
    cases.append(("mismatched vector dimensions (ragged old index)",
                  [str(j), "--old-index", old("ragged.parquet", pa.table({"id": ids, "vector": ragged}))],
                  "different dimensions"))
    cases.append(("truncated FAISS old index", [str(j), "--old-index", str(_truncate(fa, d / "t.faiss"))],
                  "not a readable FAISS index"))
    cases.append(("corrupt FAISS old index", [str(j), "--old-index", str(_corrupt_middle(fa, d / "c.faiss"))],
                  "not a readable FAISS index"))
    cases.append(("JSONL file named .faiss", [str(j), "--old-index", docs("text.faiss", lines[0])],
                  "not a readable FAISS index"))
    cases.append(("id map missing ids of the index", [str(j), "--old-index", str(fa), "--id-map",
                                                       docs("short_map.csv", "faiss_id,id\n1000,d00\n")],
                  "no document id for faiss ids"))
    cases.append(("id map with a repeated faiss id", [str(j), "--old-index", str(fa), "--id-map",
                                                       docs("dup_map.csv", "faiss_id,id\n1000,d00\n1000,d01\n")],
                  "appears more than once"))
    cases.append(("old index with ids that have no document",
                  [docs("few.jsonl", "\n".join(lines[:5])), "--old-index", str(fa), "--id-map", str(base["id_map"])],
                  "have no document"))
    return cases


@needs_static
def test_broken_sources_fail_cleanly(base, tmp_path, reliability):
    cases = _source_cases(base, tmp_path)
    failures = []
    for case, args, match in cases:
        out = tmp_path / f"out-{abs(hash(case))}"
        rc, _stdout, stderr = cli_inproc(*run_argv(Path(args[0]), out, *args[1:]))
        try:
            line = assert_clean_failure(rc, stderr, out, code=2, match=match)
            reliability.add("Hostile input", case, 1, f"exit {rc}: `{short(line)}`")
        except AssertionError as exc:
            failures.append(f"{case}: {exc}")
    assert not failures, "\n".join(failures)
    assert len(cases) >= 25


def _huge_line(path: Path, mib: int) -> Path:
    """One JSONL record of ``mib`` MiB, written in pieces (the test never holds it in memory)."""
    chunk = "word " * (1 << 18)  # 1.25 MiB
    with open(path, "w", encoding="utf-8") as fh:
        fh.write('{"id": "huge", "text": "')
        written = 0
        while written < mib << 20:
            fh.write(chunk)
            written += len(chunk)
        fh.write('"}\n')
    return path


@needs_static
def test_single_jsonl_line_of_hundreds_of_mb_is_refused_without_reading_it(tmp_path, reliability):
    import resource

    docs = _huge_line(tmp_path / "huge.jsonl", 300)
    assert docs.stat().st_size > 300 << 20
    out = tmp_path / "out"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.monotonic()
    rc, _, stderr = cli_inproc(*run_argv(docs, out))
    seconds = time.monotonic() - t0
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    line = assert_clean_failure(rc, stderr, out, code=2, match="longer than 64 MiB")
    assert "huge.jsonl:1" in line
    assert seconds < 30 and grown_mib < 200, (seconds, grown_mib)
    reliability.add("Hostile input", "one JSONL line of 300 MiB", 1,
                    f"exit {rc} in {seconds:.1f} s, peak memory +{grown_mib:.0f} MiB: `{short(line)}`")
    docs.unlink()


def _api_big_doc(tmp_path: Path, server, mb: int) -> tuple[int, str, Path, int]:
    text = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * (mb * 20_000))[: mb * 1_000_000]
    docs = write_jsonl(tmp_path / "big.jsonl", [{"id": "big-doc", "text": text}, *GOOD[:3]])
    out = tmp_path / "out-api"
    before = server.usage()["total_tokens"]
    rc, _, stderr = cli_inproc(*run_argv(docs, out))
    return rc, stderr, out, server.usage()["total_tokens"] - before


@needs_static
def test_one_megabyte_document_is_refused_by_the_api_backend_before_spending(tmp_path, server, reliability):
    rc, stderr, out, billed = _api_big_doc(tmp_path, server, 1)
    line = assert_clean_failure(rc, stderr, out, code=2, match="exceed 8192 tokens")
    assert billed < 50  # only the one-line probe was billed
    reliability.add("Hostile input", "1 MB single document, API backend", 1,
                    f"exit {rc}, {billed} tokens billed (probe only): `{short(line)}`")


@pytest.mark.slow
@needs_static
def test_ten_megabyte_document(tmp_path, server, reliability):
    rc, stderr, out, billed = _api_big_doc(tmp_path, server, 10)
    line = assert_clean_failure(rc, stderr, out, code=2, match="exceed 8192 tokens")
    assert billed < 50
    reliability.add("Hostile input", "10 MB single document, API backend", 1,
                    f"exit {rc}, {billed} tokens billed (probe only): `{short(line)}`")
    # The local backend cuts every input at the model's max_tokens (documented), so it embeds it.
    docs = tmp_path / "big.jsonl"
    t0 = time.monotonic()
    rc, stdout, stderr = cli_inproc("run", "--docs", docs, "--model", "local:standin:static", "--out",
                                    tmp_path / "out-local", "--json")
    assert rc == 0, stderr
    emb = pq.read_table(tmp_path / "out-local" / "embeddings.parquet")
    assert emb.num_rows == 4 and np.isfinite(np.asarray(emb.column("vector").to_pylist())).all()
    reliability.add("Hostile input", "10 MB single document, local backend", 1,
                    f"embedded, cut at the model's max_tokens as documented ({time.monotonic() - t0:.0f} s)")


# --------------------------------------------------------------------------- outputs attacked after a run

@pytest.fixture(scope="module")
def finished(base, tmp_path_factory) -> Path:
    """A real finished migration (static stand-in, 4 shards) to copy and damage."""
    out = tmp_path_factory.mktemp("finished") / "out"
    rc, _, stderr = cli_inproc(*run_argv(base["jsonl"], out))
    assert rc == 0, stderr
    return out


def _copy(finished: Path, tmp_path: Path, name: str = "out") -> Path:
    dst = tmp_path / name
    shutil.copytree(finished, dst, symlinks=True)
    return dst


def _vectors(out: Path) -> tuple[list[str], np.ndarray]:
    t = pq.read_table(out / "embeddings.parquet")
    return t.column("id").to_pylist(), np.asarray(t.column("vector").to_pylist(), dtype=np.float32)


@needs_static
def test_manifest_edited_by_hand(base, finished, tmp_path, reliability):
    from migrate.pipeline import verify

    # Not JSON at all.
    out = _copy(finished, tmp_path, "garbage")
    (out / "manifest.json").write_text("{ this is not json")
    for cmd in (["status", "--out", out], ["finalize", "--out", out]):
        rc, _, err = cli_inproc(*cmd)
        line = assert_clean_failure(rc, err, None, code=3, match="not valid JSON")
    reliability.add("Hostile input", "manifest replaced by invalid JSON", 2, f"status/finalize exit 3: `{short(line)}`")
    # Plan edited: a shard key that walks out of the directory.
    out = _copy(finished, tmp_path, "traversal")
    m = json.loads((out / "manifest.json").read_text())
    m["plan"]["shards"][1]["key"] = "../../../../../tmp/evil"
    (out / "manifest.json").write_text(json.dumps(m))
    for cmd in (["status", "--out", out], ["finalize", "--out", out], ["verify", "--out", out]):
        rc, _, err = cli_inproc(*cmd)
        assert rc in (3, 6) and "Traceback" not in err, err
    assert not verify(out)["ok"]
    rc, _, err = cli_inproc("finalize", "--out", out)
    line = assert_clean_failure(rc, err, None, code=3, match="shard plan in the manifest")
    assert not Path("/tmp/evil.parquet").exists() and not Path("/tmp/evil.done.json").exists()
    reliability.add("Hostile input", "path traversal in a manifest shard key", 3,
                    f"status/finalize exit 3, verify exit 6, nothing outside touched: `{short(line)}`")
    # A rerun with the real sources replaces the edited plan and finishes identically.
    rc, _, err = cli_inproc(*run_argv(base["jsonl"], out))
    assert rc == 0, err
    assert verify(out)["ok"] and _vectors(out)[0] == _vectors(finished)[0]
    assert np.array_equal(_vectors(out)[1], _vectors(finished)[1])
    # Plan edited: rows that no longer tile the corpus.
    out = _copy(finished, tmp_path, "rows")
    m = json.loads((out / "manifest.json").read_text())
    m["plan"]["shards"][0]["stop"] += 2
    (out / "manifest.json").write_text(json.dumps(m))
    rc, _, err = cli_inproc("finalize", "--out", out)
    assert_clean_failure(rc, err, None, code=3, match="shard plan")
    # Config edited: an unknown setting.
    out = _copy(finished, tmp_path, "config")
    m = json.loads((out / "manifest.json").read_text())
    m["config"]["evil_setting"] = 1
    (out / "manifest.json").write_text(json.dumps(m))
    rc, _, err = cli_inproc("status", "--out", out)
    line = assert_clean_failure(rc, err, None, code=3, match="edited by hand")
    # Outputs edited: a name outside the directory.
    out = _copy(finished, tmp_path, "outputs")
    m = json.loads((out / "manifest.json").read_text())
    m["outputs"]["../../../etc/passwd"] = {"sha256": "x"}
    (out / "manifest.json").write_text(json.dumps(m))
    res = verify(out)
    assert not res["ok"] and any("unexpected outputs" in p for p in res["problems"])
    # State flipped to complete on a half-done output: nothing trusts it.
    out = tmp_path / "half"
    rc, _, err = cli_inproc(*run_argv(base["jsonl"], out, "--shard", "0/2"))
    assert rc == 0, err
    m = json.loads((out / "manifest.json").read_text())
    m["state"] = "complete"
    (out / "manifest.json").write_text(json.dumps(m))
    rc, _, err = cli_inproc("verify", "--out", out)
    assert rc == 6 and "Traceback" not in err
    rc, _, err = cli_inproc("search", "hello", "--out", out)
    assert_clean_failure(rc, err, None, code=3, match="not finished")
    reliability.add("Hostile input", "manifest edited: plan rows, unknown config key, outputs path, state flipped", 5,
                    "each refused with one line (exit 3) or listed by verify (exit 6); a rerun repairs")


@needs_static
def test_shard_swapped_with_another_runs(base, finished, tmp_path, reliability):
    from migrate.workspace import Workspace
    from migrate.pipeline import verify

    other_docs = write_jsonl(tmp_path / "other.jsonl", [{"id": r["id"], "text": r["text"] + " (revised)"} for r in GOOD])
    other = tmp_path / "other"
    rc, _, err = cli_inproc(*run_argv(other_docs, other))
    assert rc == 0, err
    out = _copy(finished, tmp_path)
    ws = Workspace(out)
    m = ws.manifest()
    plan = m.shard_plan()
    victim = plan.shards[1]
    foreign = sorted((other / "shards").glob("shard-00001-*.parquet"))[0]
    shutil.copyfile(foreign, ws.shard_path(victim))  # same name, another run's vectors
    assert not ws.is_complete(victim, m.config_fingerprint)
    assert not verify(out)["ok"]
    rc, stdout, _ = cli_inproc("status", "--out", out, "--json")
    assert json.loads(stdout)["failed"] == 1
    # Also rename another run's shard *and* record to a name of this plan (record forged to match the file).
    victim2 = plan.shards[2]
    foreign2 = sorted((other / "shards").glob("shard-00002-*.parquet"))[0]
    shutil.copyfile(foreign2, ws.shard_path(victim2))
    shutil.copyfile(foreign2.with_name(foreign2.name.replace(".parquet", ".done.json")), ws.record_path(victim2))
    assert not ws.is_complete(victim2, m.config_fingerprint)
    rc, stdout, err = cli_inproc(*run_argv(base["jsonl"], out))
    assert rc == 0, err
    summary = [json.loads(x) for x in stdout.splitlines() if x.startswith("{")][-1]
    assert summary["shards_run"] == 2 and summary["shards_skipped"] == len(plan.shards) - 2
    ids, vecs = _vectors(out)
    ref_ids, ref_vecs = _vectors(finished)
    assert ids == ref_ids and np.array_equal(vecs, ref_vecs) and verify(out)["ok"]
    reliability.add("Hostile input", "a shard (and its record) swapped with another run's", 2,
                    "detected (checksum / record name), shown as failed, redone on rerun; output identical")


@needs_static
def test_path_traversal_in_ids_and_id_map_stays_data(base, tmp_path, reliability):
    """Ids are data, never paths: hostile ids end up in the index verbatim and nothing is written outside."""
    import faiss

    hostile = ["../../../../tmp/pwned", "/etc/passwd", "..", "a/../../b", "C:\\Windows\\system32", "ok\u202eevil"]
    rows = [{"id": h, "text": f"text for a hostile id number {i}"} for i, h in enumerate(hostile)]
    docs = write_jsonl(tmp_path / "docs.jsonl", rows)
    vecs = np.random.default_rng(1).standard_normal((len(rows), 8)).astype(np.float32)
    ix = faiss.IndexIDMap2(faiss.IndexFlatIP(8))
    ix.add_with_ids(vecs, np.arange(len(rows), dtype=np.int64) + 7)
    faiss.write_index(ix, str(tmp_path / "old.faiss"))
    pq.write_table(pa.table({"faiss_id": np.arange(len(rows), dtype=np.int64) + 7, "id": hostile}),
                   tmp_path / "map.parquet")
    out = tmp_path / "work" / "out"
    rc, _, err = cli_inproc(*run_argv(docs, out, "--old-index", str(tmp_path / "old.faiss"),
                                      "--id-map", str(tmp_path / "map.parquet")))
    assert rc == 0, err
    assert not Path("/tmp/pwned").exists()
    t = pq.read_table(out / "id_map.parquet").to_pydict()
    assert t["id"] == hostile and t["faiss_id"] == list(range(7, 7 + len(rows)))
    written = {p.relative_to(tmp_path) for p in tmp_path.rglob("*")}
    assert all(str(p).startswith(("work", "docs.jsonl", "old.faiss", "map.parquet")) for p in written)
    reliability.add("Hostile input", "path traversal in document ids and the id map", 1,
                    "ids kept verbatim as data; old faiss ids kept; nothing written outside the output")


@needs_static
def test_symlinks_out_of_the_output_dir(base, finished, tmp_path, reliability):
    from migrate.pipeline import verify

    outside = tmp_path / "outside"
    outside.mkdir()
    # shards/ is a symlink to a directory elsewhere: refused before anything is written there.
    out = tmp_path / "o1"
    out.mkdir()
    (out / "shards").symlink_to(outside, target_is_directory=True)
    rc, _, err = cli_inproc(*run_argv(base["jsonl"], out))
    line = assert_clean_failure(rc, err, out, code=3, match="outside the output directory")
    assert list(outside.iterdir()) == []
    reliability.add("Hostile input", "shards/ is a symlink out of the output dir", 1, f"exit {rc}: `{short(line)}`")
    # manifest.json is a symlink to a file elsewhere: refused, the file is not read or replaced.
    out = tmp_path / "o2"
    out.mkdir()
    secret = outside / "secret.json"
    secret.write_text('{"tool": "jina-migrate", "plan": {}}')
    (out / "manifest.json").symlink_to(secret)
    rc, _, err = cli_inproc(*run_argv(base["jsonl"], out))
    line = assert_clean_failure(rc, err, out, code=3, match="outside the output directory")
    assert secret.read_text() == '{"tool": "jina-migrate", "plan": {}}'
    reliability.add("Hostile input", "manifest.json is a symlink out of the output dir", 1, f"exit {rc}: `{short(line)}`")
    # A shard file symlinked to a file elsewhere (record forged to match): not trusted, redone, file untouched.
    out = _copy(finished, tmp_path, "o3")
    from migrate.workspace import Workspace

    ws = Workspace(out)
    m = ws.manifest()
    s = m.shard_plan().shards[0]
    target = outside / "shard.parquet"
    shutil.copyfile(ws.shard_path(s), target)
    ws.shard_path(s).unlink()
    ws.shard_path(s).symlink_to(target)
    before = target.read_bytes()
    assert not ws.is_complete(s, m.config_fingerprint) and not verify(out)["ok"]
    # index.faiss symlinked to a file elsewhere: finalize replaces the link, never writes through it.
    victim = outside / "precious.bin"
    victim.write_bytes(b"do not overwrite")
    (out / "index.faiss").unlink()
    (out / "index.faiss").symlink_to(victim)
    rc, _, err = cli_inproc(*run_argv(base["jsonl"], out))
    assert rc == 0, err
    assert target.read_bytes() == before and victim.read_bytes() == b"do not overwrite"
    assert not ws.shard_path(s).is_symlink() and not (out / "index.faiss").is_symlink()
    assert verify(out)["ok"] and np.array_equal(_vectors(out)[1], _vectors(finished)[1])
    reliability.add("Hostile input", "a shard and index.faiss symlinked out of the output dir", 1,
                    "link not trusted, shard redone, links replaced; files outside untouched; output identical")


# --------------------------------------------------------------------------- property-based readers

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)


def _check_docs(path: Path, rec=None, case: str = ""):
    from migrate.errors import InputError
    from migrate.sources import open_documents

    try:
        docs = open_documents(path)
    except InputError as exc:
        assert str(exc) and "\n" not in str(exc)
        if rec is not None:
            rec.tick("Hostile input", case, "one-line InputError")
        return None
    if rec is not None:
        rec.tick("Hostile input", case, "read as valid documents")
    ids, texts = docs.ids, docs.texts
    assert len(ids) == len(texts) == len(docs)
    assert all(isinstance(i, str) for i in ids) and all(isinstance(t, str) for t in texts)
    assert not any("\x00" in t for t in texts)
    return docs


_json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                            lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                            max_leaves=8)


@given(st.binary(max_size=2000))
@SETTINGS
def test_property_jsonl_reader_on_arbitrary_bytes(tmp_path_factory, reliability, data):
    p = tmp_path_factory.mktemp("pj") / "x.jsonl"
    p.write_bytes(data)
    _check_docs(p, reliability, "hypothesis: JSONL reader on arbitrary bytes")


@given(st.lists(st.dictionaries(st.sampled_from(["id", "_id", "text", "title", "vector", "x"]), _json_values,
                                max_size=5), min_size=1, max_size=6))
@SETTINGS
def test_property_jsonl_reader_on_arbitrary_records(tmp_path_factory, reliability, records):
    p = tmp_path_factory.mktemp("pr") / "x.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in records))
    _check_docs(p, reliability, "hypothesis: JSONL reader on arbitrary JSON records")


@given(st.binary(max_size=1500), st.sampled_from(["csv", "tsv"]))
@SETTINGS
def test_property_csv_reader_on_arbitrary_bytes(tmp_path_factory, reliability, data, ext):
    p = tmp_path_factory.mktemp("pc") / f"x.{ext}"
    p.write_bytes(data)
    _check_docs(p, reliability, "hypothesis: CSV/TSV reader on arbitrary bytes")


@pytest.fixture(scope="module")
def parquet_bytes(tmp_path_factory) -> bytes:
    p = tmp_path_factory.mktemp("pq") / "d.parquet"
    pq.write_table(pa.table({"id": [r["id"] for r in GOOD], "text": [r["text"] for r in GOOD],
                             "vector": [list(map(float, range(4)))] * N_DOCS}), p)
    return p.read_bytes()


def _mutate(data: bytes, cuts: list[tuple[int, int]], trunc: int | None) -> bytes:
    b = bytearray(data)
    for pos, val in cuts:
        b[pos % len(b)] = val
    return bytes(b[: trunc % len(b)] if trunc is not None else b)


_mutations = st.tuples(st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=6),
                       st.none() | st.integers(0, 1 << 20))


@given(_mutations)
@SETTINGS
def test_property_parquet_reader_on_damaged_files(parquet_bytes, tmp_path_factory, reliability, mutation):
    from migrate.errors import InputError
    from migrate.sources import open_old_index

    p = tmp_path_factory.mktemp("pp") / "x.parquet"
    p.write_bytes(_mutate(parquet_bytes, *mutation))
    docs = _check_docs(p, reliability, "hypothesis: Parquet documents + vectors with flipped bytes / truncation")
    try:
        old = open_old_index(p)
    except InputError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    # Read as a vector dataset (which needs no text column): the vectors are whole and finite, and when the
    # documents read too, both readers agree on the ids.
    assert old.vectors is not None and np.isfinite(old.vectors).all()
    assert old.vectors.shape == (len(old.ids), old.dim)
    if docs is not None:
        assert list(old.ids) == list(docs.ids)


@given(_mutations)
@SETTINGS
def test_property_faiss_reader_on_damaged_files(base, tmp_path_factory, reliability, mutation):
    from migrate.errors import InputError
    from migrate.sources.faiss_index import read_faiss

    case = "hypothesis: FAISS index with flipped bytes / truncation"
    p = tmp_path_factory.mktemp("pf") / "x.faiss"
    p.write_bytes(_mutate(base["faiss"].read_bytes(), *mutation))
    try:
        info = read_faiss(p)
    except InputError as exc:
        assert "\n" not in str(exc)
        reliability.tick("Hostile input", case, "one-line InputError")
        return
    reliability.tick("Hostile input", case, "read, vectors finite")
    assert info.vectors is not None and info.vectors.shape == (info.ntotal, info.dim)
    assert np.isfinite(info.vectors).all()
    assert info.faiss_ids is None or len(np.unique(info.faiss_ids)) == info.ntotal


@given(st.lists(st.one_of(st.lists(st.floats(width=32), min_size=0, max_size=5), st.none()), min_size=1, max_size=8))
@SETTINGS
def test_property_vector_dataset_reader(tmp_path_factory, reliability, vectors):
    from migrate.errors import InputError
    from migrate.sources import open_old_index

    case = "hypothesis: old-index vectors with NaN/inf/ragged/null/empty rows"
    p = tmp_path_factory.mktemp("pv") / "v.parquet"
    pq.write_table(pa.table({"id": [f"i{n}" for n in range(len(vectors))],
                             "vector": pa.array(vectors, pa.list_(pa.float32()))}), p)
    try:
        old = open_old_index(p)
    except InputError as exc:
        assert "\n" not in str(exc)
        reliability.tick("Hostile input", case, "one-line InputError")
        return
    reliability.tick("Hostile input", case, "read, vectors finite")
    assert np.isfinite(old.vectors).all() and old.vectors.shape[0] == len(vectors)
    assert all(v is not None and len(v) == old.dim for v in vectors)
