"""What a new user throws at `run`, and the output directory's state around failures (issue 11).

Inputs: a UTF-8 BOM, dictionary-encoded Parquet strings, a ';' CSV, a FAISS id column in the
documents, a duplicate id in an id map. State: a refused run leaves nothing that refuses the
corrected rerun, --restart recovers a damaged manifest, verify notices a hand-edited manifest
or record, a deleted output is named, files follow the umask, Ctrl-C says how to resume.
Everything runs the real CLI in a child process with the static stand-in (64-d, fast).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import REPO, SAMPLE, cli, json_lines

pytest_plugins = ["reliability_plugin"]
pytest.importorskip("static_model")

STATIC = "local:standin:static"
ROWS = [json.loads(line) for line in (SAMPLE / "docs.jsonl").read_text().splitlines()[:40]]


def run(docs: Path, out: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    return cli("run", "--docs", str(docs), "--model", STATIC, "--out", str(out), "--shard-size", "16", "--json",
               *extra, check=check)


def one_error(proc: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    for n in needles:
        assert n in errors[0], errors[0]
    return errors[0]


def ids_and_vectors(out: Path) -> tuple[list[str], np.ndarray]:
    t = pq.read_table(out / "embeddings.parquet")
    return t.column("id").to_pylist(), np.asarray(t.column("vector").to_pylist(), dtype=np.float32)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The 40 documents as plain JSONL, migrated once: every other input format must give the same vectors."""
    d = tmp_path_factory.mktemp("ref")
    docs = d / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in ROWS))
    run(docs, d / "out")
    return d / "out"


def test_utf8_bom_jsonl_and_csv_are_read(tmp_path, reference, reliability):
    jsonl = tmp_path / "bom.jsonl"
    jsonl.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n"
                                                 for r in ROWS).encode())
    csv_path = tmp_path / "bom.csv"
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["id", "text"])
    for r in ROWS:
        w.writerow([r["id"], r["text"]])
    csv_path.write_bytes(b"\xef\xbb\xbf" + buf.getvalue().encode())
    for docs in (jsonl, csv_path):
        out = tmp_path / f"out-{docs.suffix[1:]}"
        run(docs, out)
        assert ids_and_vectors(out)[0] == ids_and_vectors(reference)[0]
        assert np.array_equal(ids_and_vectors(out)[1], ids_and_vectors(reference)[1])
    plan = cli("plan", "--docs", str(jsonl), "--estimate-only", "--json")
    assert plan.returncode == 0, plan.stderr
    reliability.add('Hostile input', 'a UTF-8 BOM at the start of JSONL and CSV (run, plan)', 3, "read; vectors identical to the plain file's")


def test_semicolon_csv_is_sniffed_and_delimiter_can_be_given(tmp_path, reference, reliability):
    text = "id;text\n" + "".join(f'{r["id"]};"{r["text"]}"\n' for r in ROWS)
    docs = tmp_path / "docs.csv"
    docs.write_text(text)
    run(docs, tmp_path / "sniffed")
    assert np.array_equal(ids_and_vectors(tmp_path / "sniffed")[1], ids_and_vectors(reference)[1])
    run(docs, tmp_path / "given", "--delimiter", ";")
    assert ids_and_vectors(tmp_path / "given")[0] == ids_and_vectors(reference)[0]
    # a wrong delimiter is named in the error, with the record's line
    one_error(run(docs, tmp_path / "wrong", "--delimiter", ",", check=False), 2, "docs.csv", "--delimiter")
    reliability.add('Hostile input', "a ';' CSV: sniffed, --delimiter given, the wrong --delimiter", 3, 'read twice identically; the wrong one is one error line naming --delimiter')


def test_dictionary_encoded_parquet_strings(tmp_path, reference, reliability):
    table = pa.table({"id": pa.array([r["id"] for r in ROWS]).dictionary_encode(),
                      "text": pa.array([r["text"] for r in ROWS]).dictionary_encode()})
    docs = tmp_path / "dict.parquet"
    pq.write_table(table, docs)
    assert pa.types.is_dictionary(pq.read_schema(docs).field("text").type)
    run(docs, tmp_path / "out")
    assert np.array_equal(ids_and_vectors(tmp_path / "out")[1], ids_and_vectors(reference)[1])
    reliability.add('Hostile input', 'dictionary-encoded Parquet string columns', 1, 'read; vectors identical')


def _old_index_with_own_ids(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A v2-style FAISS index whose int64 ids are the application's own (not document ids)."""
    fids = np.arange(7000, 7000 + len(ROWS), dtype=np.int64)
    idx = faiss.IndexIDMap2(faiss.IndexFlatIP(8))
    rng = np.random.default_rng(0)
    v = rng.standard_normal((len(ROWS), 8)).astype(np.float32)
    idx.add_with_ids(v / np.linalg.norm(v, axis=1, keepdims=True), fids)
    path = tmp_path / "v2.faiss"
    faiss.write_index(idx, str(path))
    return path, fids


def test_faiss_id_field_maps_the_old_index_without_an_id_map(tmp_path, reliability):
    index, fids = _old_index_with_own_ids(tmp_path)
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": r["id"], "text": r["text"], "vid": int(f)}) + "\n"
                            for r, f in zip(ROWS, fids)))
    # without a mapping, run refuses and says how to map
    one_error(run(docs, tmp_path / "refused", "--old-index", str(index), check=False), 2,
              "--id-map", "--faiss-id-field")
    assert not (tmp_path / "refused" / "manifest.json").exists()
    plan = cli("plan", "--docs", str(docs), "--old-index", str(index), "--estimate-only", "--json")
    codes = {f["code"] for f in json.loads(plan.stdout)["findings"]}
    assert "faiss-ids-unmapped" in codes
    # with the column, the old int64 ids are kept
    run(docs, tmp_path / "out", "--old-index", str(index), "--faiss-id-field", "vid")
    t = pq.read_table(tmp_path / "out" / "id_map.parquet")
    assert t.column("faiss_id").to_pylist() == fids.tolist()
    assert t.column("id").to_pylist() == [r["id"] for r in ROWS]
    plan = cli("plan", "--docs", str(docs), "--old-index", str(index), "--faiss-id-field", "vid", "--estimate-only",
               "--json")
    assert plan.returncode == 0 and "faiss-ids-unmapped" not in plan.stdout, plan.stderr
    reliability.add('Hostile input', 'a FAISS index with its own int64 ids and no id map', 3, 'run refuses naming --id-map/--faiss-id-field, plan reports it; --faiss-id-field keeps the ids')


def test_duplicate_document_id_in_the_id_map_names_the_id_map(tmp_path, reliability):
    index, fids = _old_index_with_own_ids(tmp_path)
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in ROWS))
    ids = [r["id"] for r in ROWS]
    ids[5] = ids[4]
    idmap = tmp_path / "ids.csv"
    idmap.write_text("faiss_id,id\n" + "".join(f"{f},{i}\n" for f, i in zip(fids, ids)))
    line = one_error(run(docs, tmp_path / "o", "--old-index", str(index), "--id-map", str(idmap), check=False), 2,
                     "ids.csv", ids[4])
    assert "v2.faiss" not in line.split(":")[0]
    reliability.add('Hostile input', 'a duplicate document id in the id map', 1, 'one error line naming the id-map file')


def test_a_refused_run_does_not_refuse_the_corrected_rerun(tmp_path, reliability):
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in ROWS))
    out = tmp_path / "out"
    # the static stand-in is 64-d: 128 cannot be made, and nothing may be left that blocks the fix
    proc = run(docs, out, "--dimensions", "128", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert not list((out / "shards").glob("*.parquet")) if (out / "shards").exists() else True
    run(docs, out, "--dimensions", "32")
    assert ids_and_vectors(out)[1].shape == (len(ROWS), 32)
    assert json.loads(cli("verify", "--out", str(out), "--json").stdout)["ok"]


@pytest.mark.parametrize("damage", ["truncated", "list", "binary"])
def test_restart_recovers_a_damaged_manifest(tmp_path, reference, damage, reliability):
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in ROWS))
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_bytes({"truncated": b'{"tool": "jina-migrate", "plan": {"sh',
                                         "list": b"[1, 2, 3]", "binary": b"\x00\xff\xfe"}[damage])
    one_error(run(docs, out, check=False), 3, "manifest.json", "--restart")
    run(docs, out, "--restart")
    assert np.array_equal(ids_and_vectors(out)[1], ids_and_vectors(reference)[1])
    reliability.add('Output state', 'a run that fails before any shard, then the corrected run', 2, 'the corrected run is not refused; verify passes')
    reliability.add('Output state', 'a damaged manifest (truncated, a JSON list, binary), then --restart', 2, 'exit 3 naming --restart; --restart recovers, identical vectors')


def _copy_output(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_verify_notices_a_hand_edited_manifest_or_record(tmp_path, reference, reliability):
    assert json.loads(cli("verify", "--out", str(reference), "--json").stdout)["ok"]
    for field, value in (("dimensions", 32), ("task", "retrieval.passage"), ("model", "local:standin:minilm")):
        out = _copy_output(reference, tmp_path / f"cfg-{field}")
        m = json.loads((out / "manifest.json").read_text())
        m["config"][field] = value
        (out / "manifest.json").write_text(json.dumps(m))
        proc = cli("verify", "--out", str(out), "--json")
        assert proc.returncode == 6, (field, proc.stdout, proc.stderr)
        assert any("edited" in p for p in json.loads(proc.stdout)["problems"]), proc.stdout
    # the configuration and its fingerprint edited together: the shards still name the old configuration
    out = _copy_output(reference, tmp_path / "cfg-both")
    m = json.loads((out / "manifest.json").read_text())
    m["config"]["dimensions"] = 32
    from migrate.shards import canonical_hash

    m["config_fingerprint"] = canonical_hash(m["config"])
    (out / "manifest.json").write_text(json.dumps(m))
    assert cli("verify", "--out", str(out)).returncode == 6
    # a completion record's token count edited (its checksum kept)
    out = _copy_output(reference, tmp_path / "record")
    rec_path = sorted((out / "shards").glob("*.done.json"))[0]
    rec = json.loads(rec_path.read_text())
    rec["tokens"] += 1000
    rec_path.write_text(json.dumps(rec))
    proc = cli("verify", "--out", str(out), "--json")
    assert proc.returncode == 6 and any("record" in p for p in json.loads(proc.stdout)["problems"]), proc.stdout
    reliability.add('Output state', "manifest config edited (with and without its fingerprint), a record's tokens edited", 5, 'verify exit 6 names the edit each time')


def test_search_names_what_is_missing(tmp_path, reference, reliability):
    out = _copy_output(reference, tmp_path / "out")
    (out / "embeddings.parquet").unlink()
    one_error(cli("search", "hello", "--out", str(out)), 3, "embeddings.parquet", "missing")
    reliability.add('Output state', 'embeddings.parquet deleted from a finished output, then search', 1, 'exit 3 naming the missing file')


def test_outputs_follow_the_umask(tmp_path, reference, reliability):
    for name in ("manifest.json", "embeddings.parquet", "index.faiss", "id_map.parquet", "plan.parquet"):
        mode = (reference / name).stat().st_mode & 0o777
        assert mode == 0o666 & ~_umask(), (name, oct(mode))
    shard = next((reference / "shards").glob("*.parquet"))
    assert shard.stat().st_mode & 0o777 == 0o666 & ~_umask()
    reliability.add('Output state', 'file modes of every output', 6, "the umask's (0644 with 022), not 0600")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_non_v3_local_model_says_the_task_is_ignored(tmp_path):
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in ROWS[:8]))
    proc = run(docs, tmp_path / "out")
    notes = [e for e in json_lines(proc.stdout) if e["event"] == "warning"]
    assert any("text-matching" in e["message"] and "ignore" in e["message"] for e in notes), proc.stdout


def _shards_done(out: Path) -> int:
    return len(list((out / "shards").glob("*.done.json"))) if (out / "shards").is_dir() else 0


def test_ctrl_c_says_how_to_resume_and_status_says_stopped(tmp_path, reliability):
    """SIGINT reaches a run that is provably still working, however fast or loaded the machine.

    The run embeds through the bundled server, whose key may send 3 requests at once and then
    1 a minute (RPM 1, a 180 s burst window): the probe and the first two shards go through, the
    next request is answered 429 with Retry-After ~60 s. The signal is sent once the server has
    refused that request, so the run is waiting on the server's clock, not racing the test: its
    10 remaining shards need 9 more minutes whatever the CPU does.
    """
    from migrate.rehearsal.limits import ServerLimits
    from migrate.rehearsal.run import run_server

    docs = tmp_path / "docs.jsonl"
    rows = [json.loads(line) for line in (SAMPLE / "docs.jsonl").read_text().splitlines()[:48]]
    docs.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in rows))
    total = len(rows) // 4
    out = tmp_path / "out"
    with run_server(fast=True, limits=ServerLimits(rpm=1, window_s=180)) as h:
        env = dict(os.environ, PYTHONUNBUFFERED="1", JINA_API_KEY=h.api_key)
        proc = subprocess.Popen([sys.executable, "-m", "migrate", "run", "--docs", str(docs), "--model",
                                 "jina-api:jina-embeddings-v3", "--base-url", h.base_url, "--out", str(out),
                                 "--shard-size", "4", "--json"], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 300
            while proc.poll() is None and time.monotonic() < deadline:
                if _shards_done(out) >= 2 and h.usage()["rate_limited"] >= 1:
                    break
                time.sleep(0.05)
            if proc.poll() is not None:
                stdout, stderr = proc.communicate()
                pytest.fail(f"the run ended (exit {proc.returncode}) before it was held by the rate limit, with "
                            f"{_shards_done(out)}/{total} shards done; stderr:\n{stderr[-2000:]}")
            held = h.usage()
            assert _shards_done(out) >= 2 and held["rate_limited"] >= 1, (
                f"not held after 300 s: {_shards_done(out)}/{total} shards done, server usage {held}")
            status = json.loads(cli("status", "--out", str(out), "--json", check=True).stdout)
            assert status["state"] == "running" and status["runs"][0]["alive"] is True, status
            alive_at_signal = proc.poll() is None
            done_at_signal = _shards_done(out)
            proc.send_signal(signal.SIGINT)
            stdout, stderr = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert alive_at_signal and done_at_signal < total, (
        f"the run was not working when SIGINT was sent: alive={alive_at_signal}, "
        f"{done_at_signal}/{total} shards done, exit {proc.returncode}")
    assert proc.returncode == 130, (f"SIGINT reached a working run ({done_at_signal}/{total} shards done) "
                                    f"but it exited {proc.returncode}; stderr:\n{stderr[-2000:]}")
    assert "Traceback" not in stderr, stderr
    assert any(e["event"] == "interrupted" for e in json_lines(stdout)), stdout
    assert "rerun the same command to resume" in stderr, stderr
    status = json.loads(cli("status", "--out", str(out), "--json", check=True).stdout)
    assert status["state"] == "stopped" and 2 <= status["done"] < total and not status["runs"], status
    reliability.add('Output state', 'Ctrl-C (SIGINT) mid-run, held by the server\'s rate limit', 1, "exit 130, an 'interrupted' JSON event and the resume line; status says stopped, not running")
