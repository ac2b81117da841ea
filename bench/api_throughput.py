"""Throughput of the jina-api client against a TPM-limited local server, side by side with
a plain sequential loop, in one run.

The server (its own process, fast static stand-in so its compute is not the bottleneck)
enforces ``--tpm`` per key with a ``--window``-second bucket. Four runs over the same
texts:

1. the tool (``JinaAPIEmbedder.embed``, told the same TPM), no faults
2. a plain sequential loop: one request of 2048 inputs after another, sleeping
   ``Retry-After`` on 429 and retrying on errors, no faults
3. the tool with ``--faults`` (default 5%, mixed over all fault kinds)
4. the sequential loop with the same faults

For each: useful tokens (the billed usage of the responses the caller kept) per minute
divided by the limit (``ratio``), the same computed from everything the server billed
(``billed_ratio``, includes tokens wasted on faulty responses), and ``steady_ratio``:
(server-billed tokens - (bucket level before - bucket level after)) / elapsed / limit,
i.e. the fraction of the limit's refill the client actually used. It removes what a
client gains from the initial full bucket or from ending in debt, so it cannot exceed 1
whatever the burst pattern. Elapsed runs from the first request sent to the last
response received.

    python bench/api_throughput.py [--tpm 600000] [--seconds 40] [--faults 0.05] [--json]

Texts: SciFact sentences from ../shared/data/scifact if present, else generated ones.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from migrate.embed.jina_api import JinaAPIEmbedder  # noqa: E402
from migrate.rehearsal.faults import FaultConfig  # noqa: E402
from migrate.rehearsal.limits import ServerLimits  # noqa: E402
from migrate.rehearsal.run import run_server  # noqa: E402
from migrate.embed.standins import model_dir  # noqa: E402

MODEL = "jina-embeddings-v3"
ENV = "JINA_BENCH_KEY"


def load_texts(target_tokens: int) -> tuple[list[str], str]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir("static") / "tokenizer.json"))
    corpus = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact" / "corpus.jsonl"
    source = "generated"
    sentences: list[str] = []
    if corpus.is_file():
        source = f"SciFact sentences ({corpus})"
        with open(corpus, encoding="utf-8") as fh:
            for line in fh:
                doc = json.loads(line)
                sentences += [s.strip() for s in re.split(r"(?<=[.!?])\s+", doc.get("text", "")) if len(s.strip()) > 20]
    else:
        rng = np.random.default_rng(0)
        words = "cell protein gene expression patient study effect risk increase level model data analysis".split()
        sentences = [" ".join(rng.choice(words, size=int(rng.integers(8, 40)))) + "." for _ in range(200_000)]
    out, total = [], 0
    for s, enc in zip(sentences, tok.encode_batch(sentences)):
        out.append(s)
        total += len(enc.ids)
        if total >= target_tokens:
            break
    return out, source


def _level(usage: dict) -> float:
    """The key's token-bucket level (a fresh key has a full bucket)."""
    rl = usage["rate_limit"]  # this key's bucket (the server shows only the asking key's)
    level = rl["levels"]["tokens"]
    return level if level is not None else rl["capacity"]["tokens"]


def run_tool(url: str, texts: list[str], tpm: int, rpm: int, concurrency: int, u0: dict, h) -> dict:
    e = JinaAPIEmbedder(MODEL, base_url=url, api_key_env=ENV, tpm=tpm, rpm=rpm, concurrency=concurrency, timeout=30)
    try:
        e.probe()  # connection + dims, as the CLI does; not timed
        time.sleep(1.0)  # let the bucket refill after the probe
        u1 = h.usage()
        billed0 = e.stats.billed_tokens
        t0 = time.monotonic()
        res = e.embed(texts, task="retrieval.passage")
        elapsed = time.monotonic() - t0
        assert res.vectors.shape[0] == len(texts)
        return {"useful_tokens": res.total_tokens, "elapsed_s": elapsed, "requests": e.stats.requests - 1,
                "billed_before": u1["total_tokens"], "level_before": _level(u1),
                "retries": e.stats.retries, "failures": dict(e.stats.failures), "vectors": res.vectors,
                "client_billed": e.stats.billed_tokens - billed0}
    finally:
        e.close()


def run_sequential(url: str, key: str, texts: list[str]) -> dict:
    """The plain loop a user might write: 2048 inputs per request, one after another."""
    useful, requests, retries = 0, 0, 0
    vectors = []
    t0 = time.monotonic()
    with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {key}"}) as c:
        for i in range(0, len(texts), 2048):
            body = {"model": MODEL, "input": texts[i : i + 2048], "task": "retrieval.passage", "normalized": True}
            while True:
                requests += 1
                try:
                    r = c.post(url + "/v1/embeddings", json=body)
                    if r.status_code == 200:
                        j = r.json()
                        if len(j["data"]) == len(body["input"]):
                            break
                    elif r.status_code == 429:
                        time.sleep(float(r.headers.get("retry-after", "1")))
                except (httpx.HTTPError, ValueError, KeyError):
                    pass
                retries += 1
            useful += j["usage"]["total_tokens"]
            vectors.append(np.array([d["embedding"] for d in sorted(j["data"], key=lambda d: d["index"])], np.float32))
    return {"useful_tokens": useful, "elapsed_s": time.monotonic() - t0, "requests": requests, "retries": retries,
            "vectors": np.concatenate(vectors)}


def measure(kind: str, faults: float, args, texts: list[str]) -> dict:
    fc = FaultConfig.mixed(faults, seed=args.seed, slow_s=2.0) if faults else FaultConfig()
    limits = ServerLimits(tpm=args.tpm, rpm=args.rpm, concurrency=args.concurrency, window_s=args.window)
    with run_server(fast=True, limits=limits, faults=fc, mode="process") as h:
        os.environ[ENV] = h.api_key
        u0 = h.usage()
        if kind == "tool":
            r = run_tool(h.base_url, texts, args.tpm, args.rpm, args.concurrency, u0, h)
        else:
            r = run_sequential(h.base_url, h.api_key, texts)
            r["level_before"] = _level(u0)
        usage = h.usage()
    limit_per_s = args.tpm / 60.0
    billed = usage["total_tokens"] - r.pop("billed_before", u0["total_tokens"])
    level_change = r["level_before"] - _level(usage)
    r.update(
        kind=kind,
        faults=faults,
        server_billed_tokens=billed,
        server_429=usage["rate_limited"],
        injected=usage["faults"],
        ratio=r["useful_tokens"] / r["elapsed_s"] / limit_per_s,
        billed_ratio=billed / r["elapsed_s"] / limit_per_s,
        steady_ratio=(billed - level_change) / r["elapsed_s"] / limit_per_s,
        tokens_per_min=r["useful_tokens"] / r["elapsed_s"] * 60,
    )
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tpm", type=int, default=600_000)
    ap.add_argument("--rpm", type=int, default=3_000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--window", type=float, default=5.0, help="server bucket size in seconds of budget")
    ap.add_argument("--seconds", type=float, default=40.0, help="workload size: this many seconds at the limit")
    ap.add_argument("--faults", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    texts, source = load_texts(int(args.tpm / 60 * args.seconds))
    runs = [measure("tool", 0.0, args, texts), measure("sequential", 0.0, args, texts),
            measure("tool", args.faults, args, texts), measure("sequential", args.faults, args, texts)]
    same = bool(np.array_equal(runs[0]["vectors"], runs[2]["vectors"]))
    rows = [{k: v for k, v in r.items() if k != "vectors"} for r in runs]
    summary = {"texts": len(texts), "source": source, "tpm_limit": args.tpm, "rpm_limit": args.rpm,
               "concurrency": args.concurrency, "window_s": args.window, "fault_rate": args.faults,
               "tool_vectors_identical_with_faults": same, "runs": rows,
               "acceptance": {"tool_no_faults>=0.95": rows[0]["ratio"] >= 0.95,
                              "tool_with_faults>=0.90": rows[2]["ratio"] >= 0.90}}
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"{len(texts)} texts ({source}); server limit {args.tpm} TPM, {args.rpm} RPM, concurrency "
          f"{args.concurrency}, {args.window:g}s window; faults {args.faults:.0%} mixed")
    print(f"{'run':<12}{'faults':>7}{'tokens/min':>12}{'ratio':>8}{'steady':>8}{'billed':>8}{'elapsed':>9}"
          f"{'requests':>9}{'retries':>8}{'429s':>6}")
    for r in rows:
        print(f"{r['kind']:<12}{r['faults']:>7.0%}{r['tokens_per_min']:>12.0f}{r['ratio']:>8.3f}{r['steady_ratio']:>8.3f}"
              f"{r['billed_ratio']:>8.3f}{r['elapsed_s']:>8.1f}s{r['requests']:>9}{r['retries']:>8}{r['server_429']:>6}")
    print(f"tool/sequential (no faults): {rows[0]['ratio'] / rows[1]['ratio']:.2f}x; "
          f"with faults: {rows[2]['ratio'] / rows[3]['ratio']:.2f}x; tool vectors identical with faults: {same}")
    print("acceptance:", summary["acceptance"])


if __name__ == "__main__":
    main()
