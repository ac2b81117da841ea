"""Plan accuracy on ../shared/data/scifact, measured side by side in one run.

1. Tokens: the plan's token total (exact path: v3's XLM-R tokenizer via the e5-small
   stand-in; estimate path: the character model) against the tokens the local
   Jina-compatible server bills (`usage.total_tokens`, summed over every response of a
   full pass over the corpus, and the server's own /v1/usage count).
2. Local time: the plan's calibrated local-time prediction (--local-model) against the
   measured wall time of `jina-migrate run` with the same local model on the same docs.

    HF_HUB_OFFLINE=1 python bench/plan_accuracy.py tokens [--limit N] [--http-docs N]
    HF_HUB_OFFLINE=1 python bench/plan_accuracy.py local-time [--limit N] [--model minilm]

The HTTP pass embeds every document it sends with e5-small on CPU (about 15 minutes for
the whole corpus on 2 cores), so by default it sends the first 300 documents (--http-docs);
the server's billing function is applied to all documents directly.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# ../shared beside the checkout (a git worktree may sit one level deeper)
SCIFACT = next((p / "shared" / "data" / "scifact" / "corpus.jsonl" for p in ROOT.parents
                if (p / "shared" / "data" / "scifact" / "corpus.jsonl").exists()),
               ROOT.parent / "shared" / "data" / "scifact" / "corpus.jsonl")


def corpus(limit: int | None, tmp: Path) -> Path:
    """SciFact as JSONL with id/title/text (the first ``limit`` documents)."""
    if not SCIFACT.exists():
        sys.exit(f"{SCIFACT} not found")
    out = tmp / "corpus.jsonl"
    with SCIFACT.open() as src, out.open("w") as dst:
        for i, line in enumerate(src):
            if limit is not None and i >= limit:
                break
            d = json.loads(line)
            dst.write(json.dumps({"id": d["_id"], "title": d["title"], "text": d["text"]}) + "\n")
    return out


def plan_for(docs: Path, *extra: str) -> dict:
    from migrate.planning import PlanOptions, build_plan

    opts = PlanOptions(documents=docs, title_field="title", from_model="base-en", use_case="search")
    for kv in extra:
        k, v = kv.split("=", 1)
        setattr(opts, k, type(getattr(opts, k))(v) if getattr(opts, k) is not None else v)
    return build_plan(opts)


def tokens(limit: int | None, http_docs: int) -> None:
    """Plan totals (exact, forced sample, estimate) against what the server bills.

    The HTTP pass (real server process, real e5-small embedding of every text) covers
    the first ``http_docs`` documents, because embedding all of SciFact with e5-small
    takes about 15 CPU-minutes; the server's own billing function (``runtimes.billed_tokens``,
    the code behind ``usage``) is applied to every document as well.
    """
    import httpx

    from migrate.sources import open_documents
    from migrate.rehearsal.runtimes import billed_tokens_of
    from migrate.rehearsal.run import run_server

    with tempfile.TemporaryDirectory() as tmp:
        docs = corpus(limit, Path(tmp))
        texts = open_documents(docs, title_field="title").texts
        t0 = time.perf_counter()
        plans = {"exact": plan_for(docs)}
        t_exact = time.perf_counter() - t0
        plans["sample (forced)"] = plan_for(docs, "full_max_chars=1000000", "sample_size=1000")
        plans["estimate"] = plan_for(docs, "estimate_only=1")
        server_all = int(sum(billed_tokens_of("e5-small", texts)))
        sub_dir = Path(tmp) / "sub"
        sub_dir.mkdir()
        sub = corpus(http_docs, sub_dir)
        sub_plan = plan_for(sub)
        sub_texts = open_documents(sub, title_field="title").texts
        billed = 0
        t1 = time.perf_counter()
        with run_server(mode="process", preload=("e5-small",)) as srv:
            headers = {"Authorization": f"Bearer {srv.api_key}"}
            with httpx.Client(base_url=srv.base_url, headers=headers, timeout=600) as client:
                for i in range(0, len(sub_texts), 64):
                    body = {"model": "jina-embeddings-v3", "input": sub_texts[i:i + 64], "task": "retrieval.passage",
                            "dimensions": 32}
                    r = client.post("/v1/embeddings", json=body)
                    r.raise_for_status()
                    billed += r.json()["usage"]["total_tokens"]
            server_count = srv.usage()["total_tokens"]
        t_server = time.perf_counter() - t1
    print(f"{len(texts)} documents; server billing function on all of them: {server_all:,} tokens")
    for name, p in plans.items():
        t = p["tokens"]
        within = t["low"] <= server_all <= t["high"]
        print(f"  plan {name:16s} total {t['total']:>10,}  bounds [{t['low']:,}, {t['high']:,}]  "
              f"error {t['total'] / server_all - 1:+.3%}  within stated bound: {within}")
    t = sub_plan["tokens"]
    print(f"HTTP pass over the first {len(sub_texts)} documents through the server process: usage sum {billed:,}, "
          f"/v1/usage {server_count:,}; plan ({t['method']}) {t['total']:,}: error {t['total'] / billed - 1:+.3%} "
          f"({t_server:.0f} s)")
    print(f"exact plan of {len(texts)} documents took {t_exact:.1f} s in-process")


def plan_cli(docs: Path, *extra: str) -> dict:
    """The plan from a fresh `jina-migrate plan` process (so model loading costs what it costs in a run)."""
    cmd = [sys.executable, "-m", "migrate", "plan", "--docs", str(docs), "--title-field", "title",
           "--from-model", "base-en", "--use-case", "search", "--json", "--fail-on", "never", *extra]
    res = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ | {"HF_HUB_OFFLINE": "1"})
    return json.loads(res.stdout)


def local_time(limit: int | None, model: str) -> None:
    """Plan (calibrate), run, plan again: the machine is shared, so the load can change
    between calibration and run; predicting on both sides shows how much that matters.
    Wall time and CPU time (of the plan process / of the run subprocess) are both compared."""
    import resource

    from migrate.embed.standins import model_dir

    path = model_dir(model)
    with tempfile.TemporaryDirectory() as tmp:
        docs = corpus(limit, Path(tmp))
        local = ("--deployment", "local", "--non-commercial", "--local-model", str(path))
        before = plan_cli(docs, *local)
        out = Path(tmp) / "out"
        cmd = [sys.executable, "-m", "migrate", "run", "--docs", str(docs), "--title-field", "title",
               "--model", f"local:{path}", "--task", "retrieval.passage", "--out", str(out), "--yes"]
        load0 = os.getloadavg()[0]
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env=os.environ | {"HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL)
        measured = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        load1 = os.getloadavg()[0]
        after = plan_cli(docs, *local)
    print(f"local model {model}, {limit or 'all'} docs, {os.cpu_count()} CPUs; load average {load0:.1f} -> {load1:.1f}"
          f" during the run; measured `run`: wall {measured:.1f} s, CPU {cpu:.1f} s")
    for name, p in (("before run", before), ("after run", after)):
        c = p["measured"]["local_calibration"]
        print(f"  calibration {name}: {c['sample_docs']} docs, {c['sample_seconds']} s ({c['tokens_per_second']} tok/s), "
              f"load {c['load_seconds']} s -> wall {c['predicted_seconds']:.1f} s (ratio {c['predicted_seconds'] / measured:.3f}), "
              f"CPU {c['predicted_cpu_seconds']:.1f} s (ratio {c['predicted_cpu_seconds'] / cpu:.3f})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["tokens", "local-time"])
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--http-docs", type=int, default=300, help="documents sent through the server over HTTP")
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if a.what == "tokens":
        tokens(a.limit, a.http_docs)
    else:
        local_time(a.limit, a.model)


if __name__ == "__main__":
    main()
