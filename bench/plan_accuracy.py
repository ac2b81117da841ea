"""Plan accuracy on ../shared/data/scifact, measured side by side in one run.

1. Tokens: the plan's token total (exact path: v3's XLM-R tokenizer via the e5-small
   stand-in; estimate path: the character model) against the tokens the local
   Jina-compatible server bills (`usage.total_tokens`, summed over every response of a
   full pass over the corpus, and the server's own /v1/usage count).
2. Local time: the plan's calibrated local-time prediction (--local-model) against the
   measured wall time of `jina-migrate run` with the same local model on the same docs.

    HF_HUB_OFFLINE=1 python bench/plan_accuracy.py tokens [--limit N]
    HF_HUB_OFFLINE=1 python bench/plan_accuracy.py local-time [--limit N] [--model minilm]

The server pass embeds every document with e5-small on CPU (about 15 minutes for the
whole corpus on 2 cores); --limit N plans and sends only the first N documents.
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
SCIFACT = ROOT.parent / "shared" / "data" / "scifact" / "corpus.jsonl"


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
    from migrate.plan import PlanOptions, build_plan

    opts = PlanOptions(documents=docs, title_field="title", from_model="base-en", use_case="search")
    for kv in extra:
        k, v = kv.split("=", 1)
        setattr(opts, k, type(getattr(opts, k))(v) if getattr(opts, k) is not None else v)
    return build_plan(opts)


def tokens(limit: int | None) -> None:
    import httpx

    from migrate.sources import open_documents
    from migrate.testing.server_run import run_server

    with tempfile.TemporaryDirectory() as tmp:
        docs = corpus(limit, Path(tmp))
        t0 = time.perf_counter()
        exact = plan_for(docs)
        t_exact = time.perf_counter() - t0
        est = plan_for(docs, "estimate_only=1")
        forced = plan_for(docs, "full_max_chars=1000", "sample_size=1000")
        texts = open_documents(docs, title_field="title").texts
        billed = 0
        t1 = time.perf_counter()
        with run_server(mode="process", preload=("e5-small",)) as srv:
            headers = {"Authorization": f"Bearer {srv.api_key}"}
            with httpx.Client(base_url=srv.base_url, headers=headers, timeout=600) as client:
                for i in range(0, len(texts), 64):
                    body = {"model": "jina-embeddings-v3", "input": texts[i:i + 64], "task": "retrieval.passage",
                            "dimensions": 32}
                    r = client.post("/v1/embeddings", json=body)
                    r.raise_for_status()
                    billed += r.json()["usage"]["total_tokens"]
            server_count = srv.usage()["total_tokens"]
        t_server = time.perf_counter() - t1
    for name, p in (("exact", exact), ("sample (forced)", forced), ("estimate", est)):
        t = p["tokens"]
        err = t["total"] / billed - 1
        within = t["low"] <= billed <= t["high"]
        print(f"plan {name:16s} total {t['total']:>10,}  bounds [{t['low']:,}, {t['high']:,}]  "
              f"vs server usage {billed:,}: error {err:+.3%}  within stated bound: {within}")
    print(f"server /v1/usage total_tokens {server_count:,} (sum of response usage {billed:,}); "
          f"{len(texts)} docs; plan took {t_exact:.1f} s, server pass {t_server:.0f} s")


def local_time(limit: int | None, model: str) -> None:
    from migrate.testing.standins import model_dir

    path = model_dir(model)
    with tempfile.TemporaryDirectory() as tmp:
        docs = corpus(limit, Path(tmp))
        p = plan_for(docs, f"local_model={path}", "deployment=local")
        pred = p["measured"]["local_calibration"]["predicted_seconds"]
        out = Path(tmp) / "out"
        cmd = [sys.executable, "-m", "migrate", "run", "--docs", str(docs), "--title-field", "title",
               "--model", f"local:{path}", "--task", "retrieval.passage", "--out", str(out), "--yes"]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env=os.environ | {"HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL)
        measured = time.perf_counter() - t0
    cal = p["measured"]["local_calibration"]
    print(f"local model {model}: calibration {p['local_time']['sample_docs']} docs in {cal['sample_seconds']} s "
          f"({cal['tokens_per_second']} tok/s), load {cal['load_seconds']} s")
    print(f"predicted {pred:.1f} s vs measured `run` {measured:.1f} s: ratio {pred / measured:.3f} "
          f"(error {pred / measured - 1:+.1%}, acceptance: within 25%)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["tokens", "local-time"])
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--model", default="minilm")
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if a.what == "tokens":
        tokens(a.limit)
    else:
        local_time(a.limit, a.model)


if __name__ == "__main__":
    main()
