"""Memory and throughput at scale, measured side by side in one run.

The same synthetic corpus generator at two sizes (default 100,000 and 1,000,000 documents),
the static stand-in model (64-d, fast on CPU, so the tool's own costs dominate), the same
shard size and index type; each migration runs as a separate `jina-migrate run` process
whose peak RSS is read from the kernel (wait4). Then a 10,000,000-document corpus is only
planned (read, validated, hashed, cut into shards, plan written; nothing embedded).

    python bench/scale.py                       # 100k vs 1M, then plan 10M
    python bench/scale.py --sizes 20000,200000 --plan-size 0     # quicker

Targets (issue 12): peak RSS at 1M <= 1.10 x peak RSS at 100k; docs/s at 1M >= 0.9 x docs/s at
100k; planning 10M under 2 GB peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

WORDS = ("tent stove sleeping bag jacket boots trail rain warm pack light frame zip seam wash dry store "
         "return order refund size fit care repair warranty down synthetic insulation layer hike camp "
         "water filter lamp battery charge strap buckle sole grip lace waterproof breathable mesh").split()


def make_corpus(path: Path, n: int, seed: int = 0, words: int = 24) -> None:
    """n documents of ``words`` words each (about 150 characters), written in row groups of 100k."""
    rng = np.random.default_rng(seed)
    vocab = np.array(WORDS, dtype=object)
    schema = pa.schema([("id", pa.string()), ("title", pa.string()), ("text", pa.string())])
    with pq.ParquetWriter(path, schema, compression="zstd") as w:
        for start in range(0, n, 100_000):
            m = min(100_000, n - start)
            picks = vocab[rng.integers(0, len(vocab), size=(m, words))]
            texts = [" ".join(row) for row in picks]
            titles = [" ".join(row[:3]) for row in picks]
            w.write_table(pa.table({"id": [f"doc-{i}" for i in range(start, start + m)], "title": titles,
                                    "text": texts}, schema=schema))


def run_child(cmd: list[str], env: dict[str, str]) -> tuple[int, float, int, str]:
    """Start, then reap with wait4 ourselves so the peak RSS is that child's alone."""
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as so, tempfile.TemporaryFile() as se:
        proc = subprocess.Popen(cmd, env=env, stdout=so, stderr=se)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
        se.seek(0)
        so.seek(0)
        err = se.read().decode(errors="replace")
        out = so.read().decode(errors="replace")
    tail = (err.strip().splitlines() or out.strip().splitlines() or [""])[-1]
    return proc.returncode, wall, usage.ru_maxrss * 1024, tail


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100000,1000000", help="two corpus sizes, small,large")
    ap.add_argument("--plan-size", type=int, default=10_000_000, help="documents to plan only (0: skip)")
    ap.add_argument("--shard-size", type=int, default=10_000)
    ap.add_argument("--index-type", default="ivfpq", help="flat holds N x d floats by design; ivfpq stays small")
    ap.add_argument("--work", type=Path, default=None, help="scratch directory (default: a temp dir)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    small, large = (int(x) for x in args.sizes.split(","))
    work = args.work or Path(tempfile.mkdtemp(prefix="jm-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    exe = [sys.executable, "-m", "migrate"]
    results: dict[str, dict] = {}
    try:
        for n in (small, large):
            corpus = work / f"corpus-{n}.parquet"
            t = time.monotonic()
            make_corpus(corpus, n)
            print(f"generated {n:,} documents in {time.monotonic() - t:.1f}s ({corpus.stat().st_size / 1e6:.0f} MB)",
                  flush=True)
            out = work / f"out-{n}"
            shutil.rmtree(out, ignore_errors=True)
            rc, wall, rss, tail = run_child(exe + ["run", "--docs", str(corpus), "--title-field", "title",
                                                   "--model", "local:standin:static", "--out", str(out),
                                                   "--shard-size", str(args.shard_size), "--index-type",
                                                   args.index_type, "--json"], env)
            if rc != 0:
                sys.exit(f"run of {n} documents failed (exit {rc}): {tail}")
            rc_v, wall_v, rss_v, tail_v = run_child(exe + ["verify", "--out", str(out)], env)
            results[str(n)] = {"docs": n, "seconds": round(wall, 1), "docs_per_s": round(n / wall, 1),
                               "peak_rss_mb": round(rss / 2**20, 1), "verify_exit": rc_v,
                               "verify_peak_rss_mb": round(rss_v / 2**20, 1)}
            print(f"{n:>10,} docs: {wall:7.1f}s  {n / wall:9.1f} docs/s  peak RSS {rss / 2**20:7.1f} MB  "
                  f"(verify exit {rc_v}, peak {rss_v / 2**20:.1f} MB)", flush=True)
            shutil.rmtree(out, ignore_errors=True)
            corpus.unlink()
        a, b = results[str(small)], results[str(large)]
        rss_ratio = b["peak_rss_mb"] / a["peak_rss_mb"]
        speed_ratio = b["docs_per_s"] / a["docs_per_s"]
        print(f"peak RSS {large:,} / {small:,} = {rss_ratio:.3f}  (target <= 1.10)")
        print(f"docs/s   {large:,} / {small:,} = {speed_ratio:.3f}  (target >= 0.90)")
        results["ratios"] = {"peak_rss": round(rss_ratio, 3), "docs_per_s": round(speed_ratio, 3)}
        if args.plan_size:
            n = args.plan_size
            corpus = work / f"corpus-{n}.parquet"
            t = time.monotonic()
            make_corpus(corpus, n)
            print(f"generated {n:,} documents in {time.monotonic() - t:.1f}s", flush=True)
            out = work / f"plan-{n}"
            code = ("import sys; from migrate import pipeline; from migrate.config import load_config; "
                    "from migrate.progress import NullReporter; "
                    f"cfg = load_config({{'docs': {str(corpus)!r}, 'title_field': 'title', 'out': {str(out)!r}, "
                    f"'model': 'local:standin:static', 'shard_size': {args.shard_size}}}, environ={{}}); "
                    "p = pipeline.prepare(cfg); pipeline.commit(p, NullReporter()); "
                    "print(len(p.plan.shards), 'shards', file=sys.stderr)")
            rc, wall, rss, tail = run_child([sys.executable, "-c", code], env)
            if rc != 0:
                sys.exit(f"planning {n} documents failed (exit {rc}): {tail}")
            results["plan"] = {"docs": n, "seconds": round(wall, 1), "peak_rss_mb": round(rss / 2**20, 1)}
            print(f"planned {n:,} documents ({tail}) in {wall:.1f}s, peak RSS {rss / 2**20:.1f} MB "
                  f"(target < 2048 MB)")
        load = os.getloadavg()
        results["load_average"] = [round(x, 2) for x in load]
        print(f"load average during the bench: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
