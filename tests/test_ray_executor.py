"""``run --executor ray`` on a real multi-node Ray cluster on loopback.

The cluster is real: ``ray start --head`` and ``ray start --address`` as separate
process trees (``tests/support/ray_cluster.py``), one CPU each. Each test runs the CLI
as a user would, once with the local executor and once on the cluster, and compares
the outputs byte for byte (ids, vectors, hashes, FAISS ids); the completion records
say on which node each shard ran.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

pytest.importorskip("ray")
pytest.importorskip("static_model")

from conftest import REPO, cli, json_lines  # noqa: E402

from support.ray_cluster import LocalRayCluster  # noqa: E402
from migrate.executors.ray_executor import node_summary  # noqa: E402
from migrate.shards import ShardPlan  # noqa: E402
from migrate.workspace import Workspace, arrow_to_vectors  # noqa: E402
from migrate.rehearsal.faults import FaultConfig  # noqa: E402
from migrate.rehearsal.limits import ServerLimits  # noqa: E402
from migrate.rehearsal.run import run_server  # noqa: E402

STATIC = "local:standin:static"
V3 = "jina-api:jina-embeddings-v3"
KEY_ENV = "JINA_MIGRATE_RAY_TEST_KEY"
NODE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
#: Wait for every worker before handing out shards, so that each node gets some.
RAY_ENV = {"JINA_MIGRATE_RAY_START_GRACE": "180", "JINA_MIGRATE_RAY_READY_TIMEOUT": "300"}


@pytest.fixture(scope="module")
def cluster():
    """Head node plus one worker node, one CPU each, as separate process trees."""
    with LocalRayCluster(env=NODE_ENV) as c:
        c.add_node(num_cpus=1)
        assert c.alive_nodes() == 2
        yield c


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> Path:
    lines = (REPO / "fixtures" / "sample" / "docs.jsonl").read_text().splitlines()[:48]
    path = tmp_path_factory.mktemp("ray-docs") / "docs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def server():
    """One local Jina-compatible server (static stand-in); tests change its limits and faults."""
    with run_server(fast=True) as h:
        yield h


def api_args(h) -> list[str]:
    return ["--base-url", h.base_url, "--api-key-env", KEY_ENV, "--rpm", "6000", "--concurrency", "4"]


@pytest.fixture(scope="module")
def api_reference(server, docs, tmp_path_factory) -> Path:
    """The API migration run in one process with the local executor (no limits, no faults)."""
    out = tmp_path_factory.mktemp("ray-api-ref") / "single"
    migrate(docs, out, V3, *api_args(server), "--tpm", "60000", env={KEY_ENV: server.api_key})
    return out


SAMPLE = REPO / "fixtures" / "sample"
#: The fixture's old v2 index and its id map (its other 272 vectors have no document here: skipped).
OLD_INDEX = ("--old-index", str(SAMPLE / "old_index.faiss"), "--id-map", str(SAMPLE / "id_map.csv"),
             "--on-missing", "skip")


def single_process(docs: Path, out: Path, model: str, shard_size: int = 6) -> None:
    """The reference: the same configuration (with ``OLD_INDEX``) through the local executor, in this process."""
    from migrate import pipeline
    from migrate.config import load_config
    from migrate.progress import NullReporter

    cfg = load_config({"docs": docs, "out": out, "title_field": "title", "model": model,
                       "shard_size": shard_size, "old_index": OLD_INDEX[1], "id_map": OLD_INDEX[3],
                       "on_missing": "skip"})
    prepared = pipeline.prepare(cfg)
    pipeline.commit(prepared, NullReporter())
    pipeline.execute(prepared, pipeline.EmbedderMaker.from_config(cfg))


def migrate(docs: Path, out: Path, model: str, *extra: str, cluster: LocalRayCluster | None = None,
            env: dict | None = None, shard_size: int = 6) -> list[dict]:
    args = ["run", "--docs", str(docs), "--title-field", "title", "--model", model, "--shard-size", str(shard_size),
            "--out", str(out), "--json", *extra]
    run_env = {**RAY_ENV, **(env or {})}
    if cluster is not None:
        args += ["--executor", "ray", "--ray-address", cluster.address]
        run_env |= cluster.driver_env
    proc = cli(*args, env=run_env, check=True, timeout=600)
    assert proc.stdout.lstrip().startswith("{"), "stdout must hold only JSON lines"
    return json_lines(proc.stdout)


def assert_same_output(a: Path, b: Path) -> None:
    ta, tb = pq.read_table(a / "embeddings.parquet"), pq.read_table(b / "embeddings.parquet")
    for col in ("id", "text_sha256", "faiss_id"):
        assert ta.column(col).to_pylist() == tb.column(col).to_pylist(), col
    va, vb = arrow_to_vectors(ta.column("vector")), arrow_to_vectors(tb.column("vector"))
    assert va.shape == vb.shape and np.array_equal(va, vb)
    assert pq.read_table(a / "id_map.parquet").equals(pq.read_table(b / "id_map.parquet"))


def records(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "shards").glob("*.done.json"))]


def test_local_model_on_two_nodes_matches_one_process(cluster, docs, tmp_path):
    single, on_ray = tmp_path / "single", tmp_path / "ray"
    single_process(docs, single, STATIC)
    events = migrate(docs, on_ray, STATIC, *OLD_INDEX, cluster=cluster)

    assert_same_output(single, on_ray)
    faiss_ids = pq.read_table(on_ray / "id_map.parquet").column("faiss_id").to_pylist()
    assert 1001 in faiss_ids  # the old index's int64 ids are kept (kb-0001 -> 1001)
    finish = events[-1]
    assert finish["state"] == "complete" and finish["shards_run"] == 8 and finish["embedded"] == 48
    recs = records(on_ray)
    assert sorted(r["index"] for r in recs) == list(range(8))
    nodes = Counter(r["node"] for r in recs)
    assert len(nodes) == 2, nodes  # shards ran on the head and on the worker node
    manifest = json.loads((on_ray / "manifest.json").read_text())
    assert manifest["executor"]["kind"] == "ray"
    assert {k: v["shards"] for k, v in manifest["executor"]["nodes"].items()} == dict(nodes)
    # `status` can aggregate the same per-node counts from the records alone
    plan = ShardPlan.from_dict(manifest["plan"])
    assert node_summary(Workspace(on_ray), plan.shards) == manifest["executor"]["nodes"]
    start = next(e for e in events if e["event"] == "ray_start")
    assert start["workers"] == 2 and start["cluster"]["nodes"] == 2 and start["shared_rate_limit"] is False
    progress = next(e for e in events if e["event"] == "ray_done")
    assert progress["shards_done"] == 8 and progress["docs"] == 48 and len(progress["nodes"]) == 2


class BilledTokens(threading.Thread):
    """Samples the in-process server's billed-token counter every 20 ms."""

    def __init__(self, server) -> None:
        super().__init__(daemon=True)
        self.server, self.samples, self.halt = server, [], threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            billed = sum(u.total_tokens for u in list(self.server.usage.values()))  # every key's usage
            self.samples.append((time.monotonic(), billed))
            time.sleep(0.02)

    def busy_rate_per_minute(self) -> float:
        """Tokens billed per minute from the first to the last billed token of the run."""
        t0, n0 = self.samples[0]
        changes = [(t, n) for (t, n), (_, prev) in zip(self.samples[1:], self.samples) if n != prev]
        (t_first, _), (t_last, n_last) = changes[0], changes[-1]
        return (n_last - n0) / (t_last - t_first) * 60


def test_api_workers_share_one_rate_budget(cluster, docs, server, api_reference, tmp_path):
    """Two workers, each told the key's 30k TPM: together they still send at 30k TPM.

    The server here admits everything (its bucket holds a minute), so only the client
    side paces: two private limiters would send at about twice the limit. Through the
    one shared budget the rate the server bills stays at the limit (the margin covers
    the first request of the run, which a token bucket lets through at once).
    """
    tpm = 30_000
    on_ray = tmp_path / "ray"
    assert server.server is not None
    server.server.set_limits(ServerLimits(tpm=tpm, window_s=60.0))
    meter = BilledTokens(server.server)
    try:
        meter.start()
        events = migrate(docs, on_ray, V3, *api_args(server), "--tpm", str(tpm), cluster=cluster,
                         env={KEY_ENV: server.api_key})
    finally:
        meter.halt.set()
        meter.join()
        server.server.set_limits(ServerLimits())

    assert_same_output(api_reference, on_ray)
    rate = meter.busy_rate_per_minute()
    print(f"billed rate {rate:.0f} TPM = {rate / tpm:.3f} x limit")
    assert 0.8 * tpm <= rate <= 1.3 * tpm, rate
    start = next(e for e in events if e["event"] == "ray_start")
    assert start["shared_rate_limit"] is True and start["workers"] == 2
    assert all(e["shared_limiter"] for e in events if e["event"] == "ray_worker_ready")
    done = next(e for e in events if e["event"] == "ray_done")
    assert done["rate_limit"]["acquired"] >= 8 and done["rate_limit"]["in_flight"] == 0
    nodes = Counter(r["node"] for r in records(on_ray))
    assert len(nodes) == 2, nodes
    # The key went to the workers in memory only: not in the output, the events or the records.
    blob = "".join(p.read_text(errors="ignore") for p in on_ray.rglob("*.json")) + json.dumps(events)
    assert server.api_key not in blob


def test_token_budget_holds_across_workers(cluster, docs, server, tmp_path):
    """``--max-tokens`` with two workers: the run stops resumably before the budget is spent."""
    limit = 2500  # the 48 documents need about 5500
    before = server.usage()["total_tokens"]
    proc = cli("run", "--docs", str(docs), "--title-field", "title", "--model", V3, *api_args(server),
               "--tpm", "10000000", "--shard-size", "6", "--out", str(tmp_path / "out"), "--json",
               "--max-tokens", str(limit), "--executor", "ray", "--ray-address", cluster.address,
               env={**RAY_ENV, **cluster.driver_env, KEY_ENV: server.api_key}, timeout=600)
    billed = server.usage()["total_tokens"] - before
    assert proc.returncode == 5 and "token budget" in proc.stderr, proc.stderr[-2000:]
    spent = sum(r["tokens"] for r in records(tmp_path / "out"))
    assert 0 < spent <= limit and billed <= limit + 50  # + the two workers' one-text probes
    assert json_lines(proc.stdout)[-1]["state"] == "stopped"


def test_worker_node_killed_mid_run(cluster, docs, server, api_reference, tmp_path):
    """A third node dies (SIGKILL of its whole process tree) while it holds shards.

    The run completes; the lost shards run again elsewhere; each shard is counted once;
    the output is identical to a one-process run.
    """
    victim = cluster.add_node(num_cpus=1)
    shard_size = 3  # 16 shards
    on_ray = tmp_path / "ray"
    assert server.server is not None
    server.server.set_faults(FaultConfig(slow=1.0, slow_s=0.6))  # every answer takes 0.6 s
    try:
        args = ["run", "--docs", str(docs), "--title-field", "title", "--model", V3, "--shard-size", str(shard_size),
                "--out", str(on_ray), "--json", "--executor", "ray", "--ray-address", cluster.address,
                *api_args(server), "--tpm", "10000000"]
        proc = subprocess.Popen([sys.executable, "-m", "migrate", *args], cwd=REPO, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env={**os.environ, **RAY_ENV, **cluster.driver_env, KEY_ENV: server.api_key})
        killed_after = None
        deadline = time.monotonic() + 400
        while proc.poll() is None and time.monotonic() < deadline:
            if victim.node_id and (on_ray / "shards").is_dir():
                on_victim = [r for r in records(on_ray) if r.get("node") == victim.node_id]
                if on_victim:  # the victim finished one shard and holds the next ones: kill it now
                    cluster.kill_node(victim)
                    killed_after = len(records(on_ray))
                    break
            time.sleep(0.05)
        stdout, stderr = proc.communicate(timeout=400)
    finally:
        server.server.set_faults(FaultConfig())
    assert proc.returncode == 0, stderr[-3000:]
    assert killed_after is not None, "the victim node never ran a shard"
    events = json_lines(stdout)
    finish = events[-1]
    assert finish["state"] == "complete"
    assert finish["shards_run"] == 16 == finish["shards_total"]  # counted once each
    assert finish["embedded"] == 48
    done = next(e for e in events if e["event"] == "ray_done")
    assert done["workers_lost"] >= 1 and done["shards_redone"] >= 1 and done["shards_done"] == 16
    assert any(e["event"] == "shard_retry" for e in events)
    recs = records(on_ray)
    assert sorted(r["index"] for r in recs) == list(range(16))  # one record per shard
    assert killed_after < 16
    assert_same_output(api_reference, on_ray)
    assert cli("verify", "--out", str(on_ray)).returncode == 0
    # every shard file on disk is one that a completion record vouches for
    names = {p.name.removesuffix(".parquet") for p in (on_ray / "shards").glob("shard-*.parquet")}
    assert names == {r["shard"] for r in recs}


def test_no_cluster_there_is_one_error_line_fast(docs, tmp_path):
    """Ray itself retries an unreachable GCS for minutes; the tool says so in one line at once."""
    t0 = time.monotonic()
    proc = cli("run", "--docs", str(docs), "--model", STATIC, "--out", str(tmp_path / "out"), "--executor", "ray",
               "--ray-address", "127.0.0.1:1", "--json", timeout=120)
    assert proc.returncode == 2 and time.monotonic() - t0 < 60
    assert "cannot reach the Ray cluster at 127.0.0.1:1" in proc.stderr and "Traceback" not in proc.stderr
