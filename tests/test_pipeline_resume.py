"""Crash safety and incremental reruns, driven through the CLI in child processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import REPO, cli, json_lines

MINILM = "local:standin:minilm"
SHARD = "8"


def run_args(docs: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--docs", str(docs), "--title-field", "title", "--model", MINILM, "--shard-size", SHARD,
            "--out", str(out), "--json", *extra]


def load(out: Path) -> tuple[list[str], np.ndarray]:
    t = pq.read_table(out / "embeddings.parquet").to_pydict()
    return t["id"], np.asarray(t["vector"], dtype=np.float32)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    base = tmp_path_factory.mktemp("ref")
    lines = (REPO / "fixtures/sample/docs.jsonl").read_text().splitlines()[:96]
    docs = base / "docs.jsonl"
    docs.write_text("\n".join(lines) + "\n")
    out = base / "out"
    proc = cli(*run_args(docs, out), check=True)
    return docs, out, json_lines(proc.stdout)[-1]


def done_records(out: Path) -> int:
    return len(list((out / "shards").glob("*.done.json"))) if (out / "shards").exists() else 0


def test_sigkill_at_several_points_then_resume_is_identical(reference, tmp_path):
    docs, ref_out, ref_summary = reference
    out = tmp_path / "out"
    total = ref_summary["shards_total"]
    env = dict(os.environ)
    kills = []
    for wait_for in (1, 4, 8):
        proc = subprocess.Popen([sys.executable, "-m", "migrate", *run_args(docs, out)], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 180
        while done_records(out) < wait_for and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, (f"the run ended (exit {proc.returncode}) before it could be killed after "
                                     f"{wait_for} shards: {done_records(out)}/{total} done")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done = done_records(out)
        kills.append(done)
        # Resume exactly what is left: no completed shard is redone.
        if wait_for == 8:
            break
        status = json.loads(cli("status", "--out", str(out), "--json", check=True).stdout)
        # the killed run left its lock file; status tells it is dead, not running
        assert status["done"] == done and status["state"] == "stopped" and status["eta_s"] is None
        assert [r["alive"] for r in status["runs"]] == [False] * len(status["runs"]) and status["runs"]
    final = cli(*run_args(docs, out), check=True)
    summary = json_lines(final.stdout)[-1]
    assert summary["state"] == "complete"
    assert summary["shards_run"] == total - kills[-1]
    assert summary["shards_skipped"] == kills[-1]
    ids, vecs = load(out)
    ref_ids, ref_vecs = load(ref_out)
    assert ids == ref_ids and len(set(ids)) == len(ids)
    assert np.allclose(vecs, ref_vecs, atol=1e-6)
    assert summary["tokens_total"] == ref_summary["tokens_total"]
    assert cli("verify", "--out", str(out)).returncode == 0
    assert not list((out / "shards").glob(".tmp-*"))


def test_corrupt_shard_is_redone(reference, tmp_path):
    docs, ref_out, _ = reference
    out = tmp_path / "out"
    shutil.copytree(ref_out, out)
    victim = sorted((out / "shards").glob("*.parquet"))[3]
    victim.write_bytes(victim.read_bytes()[:100])  # truncated by a crash or a bad disk
    assert cli("verify", "--out", str(out)).returncode == 6
    status = json.loads(cli("status", "--out", str(out), "--json").stdout)
    assert status["failed"] == 1
    summary = json_lines(cli(*run_args(docs, out), check=True).stdout)[-1]
    assert summary["shards_run"] == 1 and summary["embedded"] == 8
    assert cli("verify", "--out", str(out)).returncode == 0
    assert np.allclose(load(out)[1], load(ref_out)[1], atol=1e-6)


def test_two_workers_then_finalize_equals_single_run(reference, tmp_path):
    docs, ref_out, _ = reference
    out = tmp_path / "out"
    first = json_lines(cli(*run_args(docs, out, "--shard", "0/2"), check=True).stdout)[-1]
    assert first["state"] == "partial" and first["shards_run"] == 6
    early = cli("finalize", "--out", str(out))
    assert early.returncode == 3 and "not done" in early.stderr and "Traceback" not in early.stderr
    # Worker 1 runs now; worker 0 again finds nothing to do (both at once, as in a CI matrix).
    procs = [subprocess.Popen([sys.executable, "-m", "migrate", *run_args(docs, out, "--shard", f"{i}/2")], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    runs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr
        runs.append(json_lines(stdout)[-1])
    assert [r["shards_run"] for r in runs] == [0, 6] and all(r["state"] == "partial" for r in runs)
    assert not (out / "index.faiss").exists()
    fin = cli("finalize", "--out", str(out), "--json", check=True)
    assert json.loads(fin.stdout)["rows"] == 96
    ids, vecs = load(out)
    ref_ids, ref_vecs = load(ref_out)
    assert ids == ref_ids and np.allclose(vecs, ref_vecs, atol=1e-6)
    assert cli("verify", "--out", str(out)).returncode == 0


def test_adding_five_percent_new_documents_embeds_only_those(reference, tmp_path):
    docs, ref_out, _ = reference
    out = tmp_path / "out"
    shutil.copytree(ref_out, out)
    lines = docs.read_text().splitlines()
    new_docs = [json.dumps({"id": f"new-{i}", "title": "New article", "text": f"Fresh text number {i} about "
                            "lightweight trekking poles and how to adjust them."}) for i in range(5)]
    # Scattered inserts shift every later shard: the content-hash cache must still reuse the vectors.
    for pos, line in zip((3, 30, 50, 70, 95), new_docs):
        lines.insert(pos, line)
    grown = tmp_path / "docs_grown.jsonl"
    grown.write_text("\n".join(lines) + "\n")
    summary = json_lines(cli(*run_args(grown, out), check=True).stdout)[-1]
    assert summary["state"] == "complete" and summary["rows"] == 101
    assert summary["embedded"] == 5
    # Shards whose documents did not change are skipped; changed shards take the old vectors from the cache.
    assert summary["embedded"] + summary["cached"] == 8 * summary["shards_run"] - (8 * 13 - 101)
    assert summary["cached"] > 0
    ids, vecs = load(out)
    ref_ids, ref_vecs = load(ref_out)
    pos = {i: n for n, i in enumerate(ids)}
    assert np.allclose(vecs[[pos[i] for i in ref_ids]], ref_vecs, atol=1e-6)
    assert len(ids) == 101 and cli("verify", "--out", str(out)).returncode == 0
    # Stale shards of the old plan were removed after finalize.
    assert len(list((out / "shards").glob("*.parquet"))) == 13


def test_cache_dir_from_an_earlier_run(reference, tmp_path):
    docs, ref_out, _ = reference
    out = tmp_path / "fresh"
    summary = json_lines(cli(*run_args(docs, out, "--cache", str(ref_out)), check=True).stdout)[-1]
    assert summary["embedded"] == 0 and summary["cached"] == 96 and summary["tokens"] == 0
