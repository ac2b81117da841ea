"""Four Ray workers, one API key: does the run stay within the key's TPM, and use it?

Side by side, in one run, on the same documents and the same real local Ray cluster
(head + one worker node, 2 logical CPUs each, separate process trees on loopback):

1. ``shared``: the Ray executor as shipped: the four workers pace through one
   ``RateBudget`` actor.
2. ``private``: the same four workers, each with its own limiter told the key's full
   limit (what you get by starting four independent processes with the same key).

The local Jina-compatible server (its own process, fast static stand-in) bills the
tokens and enforces the limit per key with a 60 s bucket, like a per-minute quota.
A thread polls its ``/v1/usage`` every 0.2 s; the achieved rate in a window is the
server-billed tokens admitted in it, per minute, divided by the limit. Reported:

* ``mean``: over the busy period (first to last billed token);
* ``max10`` / ``max60``: the highest sliding 10 s / 60 s window (the pass rule: never
  more than 2 % over the limit in any window);
* ``429``: requests the server refused.

    python bench/ray_rate.py [--tpm 120000] [--seconds 75] [--workers 4] [--json]

Documents: SciFact (../shared/data/scifact) if present, else the bundled sample repeated.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["RAY_AUTH_MODE"] = "disabled"  # the loopback cluster below runs without token auth

KEY_ENV = "JINA_MIGRATE_BENCH_KEY"
SCIFACT = REPO.parent / "shared" / "data" / "scifact" / "corpus.jsonl"


def build_docs(path: Path, tokens_wanted: int, tokenizer_dir: Path) -> tuple[int, int]:
    """Write documents whose static-tokenizer count adds up to ``tokens_wanted``."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    src = SCIFACT if SCIFACT.exists() else REPO / "fixtures" / "sample" / "docs.jsonl"
    rows = [json.loads(line) for line in src.read_text().splitlines() if line.strip()]
    out, total, i = [], 0, 0
    while total < tokens_wanted:
        r = rows[i % len(rows)]
        text = (r.get("text") or "").strip()
        doc = {"id": f"{r.get('_id', r.get('id'))}-{i // len(rows)}", "title": r.get("title", ""), "text": text}
        total += len(tok.encode(f"{doc['title']} {text}").ids)
        out.append(json.dumps(doc))
        i += 1
    path.write_text("\n".join(out) + "\n")
    return len(out), total


class Poller(threading.Thread):
    """Samples the server's billed-token counter."""

    def __init__(self, handle, every_s: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.handle, self.every_s = handle, every_s
        self.samples: list[tuple[float, int, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        import httpx

        with httpx.Client(timeout=5) as c:
            while not self.stop.is_set():
                t = time.monotonic()
                try:
                    u = c.get(self.handle.base_url + "/v1/usage", headers={"Authorization": f"Bearer {self.handle.api_key}"}).json()
                    self.samples.append((t, int(u["total_tokens"]), int(u["rate_limited"])))
                except Exception:  # noqa: BLE001 - a missed sample only widens a window
                    pass
                self.stop.wait(self.every_s)


def window_stats(samples: list[tuple[float, int, int]], tpm: int) -> dict[str, float]:
    t = [s[0] for s in samples]
    n = [s[1] for s in samples]
    # The busy period: from the sample before the first 1 % of the tokens (the workers'
    # one-text probes come earlier, while models load) to the first sample holding them all.
    floor = n[0] + 0.01 * (n[-1] - n[0])
    busy_from = max(next(i for i in range(len(n)) if n[i] > floor) - 1, 0)
    last = next(i for i in range(len(n)) if n[i] == n[-1])
    res = {"busy_s": round(t[last] - t[busy_from], 1), "tokens": n[last] - n[busy_from]}
    res["mean"] = round((n[last] - n[busy_from]) / (t[last] - t[busy_from]) * 60 / tpm, 4)
    for w in (10, 60):
        best, j = None, busy_from
        for i in range(busy_from, last + 1):
            while j <= last and t[j] - t[i] < w:
                j += 1
            if j > last:
                break
            r = (n[j] - n[i]) / (t[j] - t[i]) * 60 / tpm
            best = r if best is None else max(best, r)
        res[f"max{w}"] = round(best, 4) if best is not None else None
    res["429"] = samples[-1][2] - samples[0][2]
    return res


def run_mode(mode: str, cluster, docs: Path, args, tmp: Path) -> dict:
    from migrate import pipeline
    from migrate.progress import NullReporter
    from migrate.config import load_config
    from migrate.embed.jina_api import JinaAPIEmbedder
    from migrate.executors.ray_executor import RayExecutor
    from migrate.rehearsal.limits import ServerLimits
    from migrate.rehearsal.run import run_server
    from migrate.embed.standins import model_dir

    limits = ServerLimits(tpm=args.tpm, rpm=args.rpm * 10, window_s=60.0)
    with run_server(fast=True, limits=limits, mode="process") as h:
        os.environ[KEY_ENV] = h.api_key
        cfg = load_config({"docs": docs, "out": tmp / mode, "title_field": "title",
                           "model": "jina-api:jina-embeddings-v3", "shard_size": args.shard_size,
                           "base_url": h.base_url, "api_key_env": KEY_ENV, "tpm": args.tpm, "rpm": args.rpm,
                           "concurrency": args.concurrency, "restart": True})
        make = functools.partial(JinaAPIEmbedder, "jina-embeddings-v3", base_url=h.base_url, api_key_env=KEY_ENV,
                                 tokenizer=str(model_dir("static")), tpm=args.tpm, rpm=args.rpm,
                                 concurrency=args.concurrency, max_retries=100, backoff_max_s=5.0)
        executor = RayExecutor(cluster.address, workers=args.workers, shared_rate_limit=(mode == "shared"),
                               start_grace_s=120, progress_every_s=1e9)
        job = pipeline.prepare(cfg)
        pipeline.commit(job, NullReporter())
        poller = Poller(h)
        poller.start()
        t0 = time.monotonic()
        summary = pipeline.execute(job, make, executor=executor)
        wall = time.monotonic() - t0
        time.sleep(0.5)
        poller.stop.set()
        poller.join()
    stats = window_stats(poller.samples, args.tpm)
    nodes = executor.last_run.get("nodes", {})
    return {"mode": mode, "wall_s": round(wall, 1), "state": summary["state"], "docs": summary["embedded"],
            "workers": args.workers, "nodes": len(nodes),
            "shards_per_node": sorted(v["shards"] for v in nodes.values()), **stats}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tpm", type=int, default=120_000)
    ap.add_argument("--rpm", type=int, default=6_000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=75.0, help="busy time wanted at the limit, per mode")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--shard-size", type=int, default=20)
    ap.add_argument("--modes", default="shared,private")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from support.ray_cluster import LocalRayCluster
    from migrate.embed.standins import model_dir

    tmp = Path(tempfile.mkdtemp(prefix="jm-ray-rate-"))
    docs = tmp / "docs.jsonl"
    n_docs, n_tokens = build_docs(docs, int(args.tpm / 60 * args.seconds), model_dir("static"))
    results = []
    try:
        with LocalRayCluster(head_cpus=args.workers // 2 or 1, env={"HF_HUB_OFFLINE": "1"}) as cluster:
            cluster.add_node(num_cpus=args.workers - (args.workers // 2 or 1) or 1)
            for mode in args.modes.split(","):
                results.append(run_mode(mode, cluster, docs, args, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps({"tpm": args.tpm, "docs": n_docs, "tokens": n_tokens, "results": results}, indent=2))
        return
    print(f"limit {args.tpm} TPM, {args.workers} Ray workers on 2 nodes, {n_docs} docs / {n_tokens} tokens, "
          f"shards of {args.shard_size}")
    print(f"{'mode':8} {'mean':>7} {'max10':>7} {'max60':>7} {'429':>5} {'busy_s':>7} {'wall_s':>7}  shards/node")
    for r in results:
        m60 = f"{r['max60']:.4f}" if r["max60"] is not None else "   n/a"
        print(f"{r['mode']:8} {r['mean']:7.4f} {r['max10']:7.4f} {m60:>7} {r['429']:5d} {r['busy_s']:7.1f} "
              f"{r['wall_s']:7.1f}  {r['shards_per_node']}")
    shared = next((r for r in results if r["mode"] == "shared"), None)
    if shared:
        worst = max(v for v in (shared["max10"], shared["max60"]) if v is not None)
        ok = worst <= 1.02 and shared["mean"] >= 0.9
        print(f"shared budget: worst window {worst:.4f} x limit (rule <= 1.02), mean {shared['mean']:.4f} "
              f"x limit (rule >= 0.90): {'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
