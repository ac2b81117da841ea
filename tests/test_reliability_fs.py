"""Disk and filesystem faults: disk full during a shard write, a read-only output, odd path names.

Disk full and read-only use a real small tmpfs the test mounts (root only; skipped otherwise). Each
fault must give one clear error line, leave only complete shards marked complete, and a rerun once
the fault is gone must finish with the same vectors as an undisturbed run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from reliability_util import assert_clean_failure, cli_inproc, fast_server_with_key, needs_static, short

pytest_plugins = ["reliability_plugin"]

REPO = Path(__file__).resolve().parents[1]
N_DOCS = 48


@pytest.fixture(scope="module")
def server():
    if not __import__("importlib").util.find_spec("static_model"):
        pytest.skip("tokenlearn-static-model not installed")
    with fast_server_with_key() as h:
        yield h


def run_argv(server, docs: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--docs", str(docs), "--model", "jina-api:jina-embeddings-v3", "--base-url", server.base_url,
            "--tier", "tier2", "--shard-size", "8", "--out", str(out), "--json", *extra]


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> Path:
    lines = (REPO / "fixtures" / "sample" / "docs.jsonl").read_text(encoding="utf-8").splitlines()[:N_DOCS]
    p = tmp_path_factory.mktemp("fsdocs") / "docs.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def reference(server, docs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fsref") / "out"
    rc, _, err = cli_inproc(*run_argv(server, docs, out))
    assert rc == 0, err
    return out


def vectors(out: Path) -> tuple[list[str], np.ndarray]:
    t = pq.read_table(out / "embeddings.parquet")
    return t.column("id").to_pylist(), np.asarray(t.column("vector").to_pylist(), dtype=np.float32)


def complete_shards(out: Path) -> tuple[int, int]:
    """(shards whose record matches their file, records in total)."""
    from migrate.atomic import sha256_file

    recs = list((out / "shards").glob("*.done.json")) if (out / "shards").is_dir() else []
    good = sum(1 for r in recs if (p := r.with_name(r.name.replace(".done.json", ".parquet"))).exists()
               and sha256_file(p) == json.loads(r.read_text())["sha256"])
    return good, len(recs)


def _mount_tmpfs(where: Path, size: str, *opts: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join((f"size={size}", *opts)), "tmpfs", str(where)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()})")


def _umount(where: Path) -> None:
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.fixture
def tmpfs(tmp_path):
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mounts: list[Path] = []

    def make(name: str, size: str, *opts: str) -> Path:
        d = tmp_path / name
        _mount_tmpfs(d, size, *opts)
        mounts.append(d)
        return d

    yield make
    for d in reversed(mounts):
        _umount(d)


def _fill(disk: Path, leave_bytes: int) -> Path:
    """Fill the tmpfs so that only about ``leave_bytes`` stay free."""
    st = os.statvfs(disk)
    free = st.f_bavail * st.f_frsize
    filler = disk / "filler.bin"
    with open(filler, "wb") as fh:
        fh.write(b"\0" * max(0, free - leave_bytes))
    return filler


@needs_static
def test_disk_full_during_shard_writes_then_resume(server, docs, reference, tmpfs, reliability):
    disk = tmpfs("disk", "2m")
    out = disk / "out"
    # Enough room for the plan and a few shards, not for all of them (each shard is ~13 KB of vectors).
    filler = _fill(disk, 60_000)
    rc, stdout, err = cli_inproc(*run_argv(server, docs, out))
    line = assert_clean_failure(rc, err, None, code=3, match="disk is full")
    assert "resume" in line
    good, recs = complete_shards(out)
    assert good == recs and 0 < good < N_DOCS // 8, (good, recs)  # some finished, none marked done wrongly
    assert not list(out.rglob(".tmp-*")), "temp files left on a full disk"
    assert not (out / "index.faiss").exists()
    rc2, stdout2, _ = cli_inproc("status", "--out", out, "--json")
    assert rc2 == 0 and json.loads(stdout2)["done"] == good
    # Space comes back: the same command resumes and ends identical to an undisturbed run.
    filler.unlink()
    rc, stdout, err = cli_inproc(*run_argv(server, docs, out))
    assert rc == 0, err
    summary = [json.loads(x) for x in stdout.splitlines() if x.startswith("{")][-1]
    assert summary["shards_skipped"] == good and summary["state"] == "complete"
    ids, vecs = vectors(out)
    rids, rvecs = vectors(reference)
    assert ids == rids and np.array_equal(vecs, rvecs)
    from migrate.pipeline import verify

    assert verify(out)["ok"]
    reliability.add("Disk and filesystem", "disk full during shard writes (2 MiB tmpfs, 60 KB left)", 1,
                    f"exit 3, {good} complete shards kept, none half-marked, no temp files; "
                    f"rerun after freeing space resumed and matched the reference: `{short(line)}`")


@needs_static
def test_disk_full_during_finalize_then_resume(server, docs, reference, tmpfs, reliability):
    disk = tmpfs("disk2", "2m")
    out = disk / "out"
    rc, _, err = cli_inproc(*run_argv(server, docs, out, "--shard", "0/1"))
    assert rc == 0, err
    (out / "embeddings.parquet").unlink()
    (out / "index.faiss").unlink()
    (out / "id_map.parquet").unlink()
    m = json.loads((out / "manifest.json").read_text())
    m["state"] = "running"
    m.pop("outputs", None)
    (out / "manifest.json").write_text(json.dumps(m))
    filler = _fill(disk, 20_000)
    rc, _, err = cli_inproc("finalize", "--out", out)
    line = assert_clean_failure(rc, err, None, code=3, match="disk is full")
    assert json.loads((out / "manifest.json").read_text())["state"] != "complete"
    assert not list(out.glob(".tmp-*"))
    filler.unlink()
    rc, _, err = cli_inproc("finalize", "--out", out)
    assert rc == 0, err
    from migrate.pipeline import verify

    assert verify(out)["ok"] and np.array_equal(vectors(out)[1], vectors(reference)[1])
    reliability.add("Disk and filesystem", "disk full while finalize writes the outputs", 1,
                    f"exit 3, manifest not marked complete, no temp files; finalize after freeing space "
                    f"matched the reference: `{short(line)}`")


@needs_static
def test_read_only_output_directory(server, docs, reference, tmpfs, reliability):
    disk = tmpfs("ro", "4m")
    out = disk / "out"
    # Half the work done on a writable disk ...
    rc, _, err = cli_inproc(*run_argv(server, docs, out, "--shard", "0/2"))
    assert rc == 0, err
    done_before = complete_shards(out)
    # ... then the file system turns read-only (remount), as after a disk error.
    r = subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot remount read-only: {r.stderr.strip()}")
    try:
        rc, _, err = cli_inproc(*run_argv(server, docs, out))
        line = assert_clean_failure(rc, err, None, code=3, match="read-only")
        assert complete_shards(out) == done_before
        # A fresh output dir on the read-only file system fails the same way, before any model is loaded.
        rc, _, err2 = cli_inproc(*run_argv(server, docs, disk / "new-out"))
        line2 = assert_clean_failure(rc, err2, None, code=3, match="read-only")
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(disk)], capture_output=True)
    rc, _, err = cli_inproc(*run_argv(server, docs, out))
    assert rc == 0, err
    assert np.array_equal(vectors(out)[1], vectors(reference)[1])
    reliability.add("Disk and filesystem", "read-only output directory (tmpfs remounted ro mid-migration)", 2,
                    f"exit 3 with finished shards kept; rerun once writable resumed and matched: `{short(line)}`; "
                    f"new dir: `{short(line2)}`")


@needs_static
def test_output_path_with_spaces_and_unicode(server, docs, reference, tmp_path, reliability):
    out = tmp_path / "my runs" / "Ünïcødé 索引 ☃ (v3)" / "out dir"
    d2 = tmp_path / "input files" / "döcs – ✓.jsonl"
    d2.parent.mkdir(parents=True)
    shutil.copyfile(docs, d2)
    rc, stdout, err = cli_inproc(*run_argv(server, d2, out))
    assert rc == 0, err
    assert cli_inproc("verify", "--out", out)[0] == 0
    rc, stdout, _ = cli_inproc("status", "--out", out, "--json")
    assert rc == 0 and json.loads(stdout)["out"] == str(out)
    ids, vecs = vectors(out)
    assert ids == vectors(reference)[0] and np.array_equal(vecs, vectors(reference)[1])
    # An error about such a path is still one clean line that names it.
    rc, _, err = cli_inproc(*run_argv(server, d2.with_name("missing ✗.jsonl"), out))
    line = assert_clean_failure(rc, err, None, code=2, match="missing ✗.jsonl")
    reliability.add("Disk and filesystem", "output and input paths with spaces and unicode", 3,
                    "run, verify and status work; output identical; errors name the path in one line")
