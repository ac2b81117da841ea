"""How long `jina-migrate plan` takes on 100k documents (acceptance: under a minute).

Builds a 100k-document corpus from ../shared/data/scifact (each abstract repeated with a
new id and a short variant marker, so the texts differ) as JSONL and Parquet, then runs
the real CLI (`python -m migrate plan ... --json`) in a subprocess, with no key and
HF_HUB_OFFLINE=1, and reports wall time, the counting method and the token total.
For scale it also times the exact full count (every document tokenized) in the same run.

    HF_HUB_OFFLINE=1 python bench/plan_speed.py [--docs 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
# ../shared beside the checkout (a git worktree may sit one level deeper)
SCIFACT = next((p / "shared" / "data" / "scifact" / "corpus.jsonl" for p in ROOT.parents
                if (p / "shared" / "data" / "scifact" / "corpus.jsonl").exists()),
               ROOT.parent / "shared" / "data" / "scifact" / "corpus.jsonl")


def make_corpus(n: int, tmp: Path) -> tuple[Path, Path]:
    base = [json.loads(line) for line in SCIFACT.open()]
    ids, titles, texts = [], [], []
    for i in range(n):
        d = base[i % len(base)]
        ids.append(f"{d['_id']}-{i // len(base)}")
        titles.append(d["title"])
        texts.append(d["text"] + ("" if i < len(base) else f" (copy {i // len(base)})"))
    pq.write_table(pa.table({"id": ids, "title": titles, "text": texts}), tmp / "docs.parquet")
    with (tmp / "docs.jsonl").open("w") as fh:
        for i, t, x in zip(ids, titles, texts):
            fh.write(json.dumps({"id": i, "title": t, "text": x}) + "\n")
    return tmp / "docs.parquet", tmp / "docs.jsonl"


def run_plan(path: Path, *extra: str) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "migrate", "plan", "--docs", str(path), "--title-field", "title",
           "--from-model", "base-en", "--use-case", "search", "--json", "--fail-on", "never", *extra]
    env = {k: v for k, v in os.environ.items() if "KEY" not in k} | {"HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    res = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return time.perf_counter() - t0, json.loads(res.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--skip-full", action="store_true", help="do not time the exact full count")
    a = ap.parse_args()
    if not SCIFACT.exists():
        sys.exit(f"{SCIFACT} not found")
    with tempfile.TemporaryDirectory() as tmp:
        pq_path, jl_path = make_corpus(a.docs, Path(tmp))
        rows = []
        for label, path, extra in (("parquet, default", pq_path, ()), ("jsonl, default", jl_path, ()),
                                   ("parquet, estimate only", pq_path, ("--estimate-only",))):
            secs, plan = run_plan(path, *extra)
            rows.append((label, secs, plan))
        if not a.skip_full:
            secs, plan = run_plan(pq_path, "--full-max-chars", str(10 ** 12))
            rows.append(("parquet, exact full count", secs, plan))
    full = next((p for lbl, _, p in rows if "full" in lbl), None)
    print(f"{a.docs:,} documents, {os.cpu_count()} CPUs")
    for label, secs, plan in rows:
        t = plan["tokens"]
        vs = f", vs exact {t['total'] / full['tokens']['total'] - 1:+.3%}" if full else ""
        print(f"  {label:28s} {secs:6.1f} s  method={t['method']:8s} total={t['total']:,} "
              f"[{t['low']:,}, {t['high']:,}]{vs}  under a minute: {secs < 60}")


if __name__ == "__main__":
    main()
