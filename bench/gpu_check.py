"""GPU check of the local v3 backend: tokens/s for bf16 vs fp32, padded vs length-sorted batches.

What: writes a *randomly initialised* jina-embeddings-v3-sized model (JinaEmbeddingsV3Model,
24 layers, hidden 1024, 16 heads, FFN 4096, five random LoRA task adapters; the vocabulary
is the small test tokenizer's, which does not change the per-token compute of the layers),
then embeds the same synthetic corpus with ``migrate.embed.jina_v3.JinaV3Embedder`` four
ways, side by side in one run:

* fp32 / bf16 weights (pooling always fp32),
* ``padded``: fixed batches of ``--batch-size`` in input order, padded to the longest;
* ``sorted``: length-sorted batches packed to ``--token-budget`` padded tokens.

tokens/s counts real (non-padding) tokens. Why random weights: no real v3 weights are
available offline; throughput depends on shapes, not on weight values.

    python bench/gpu_check.py                 # v3 size (needs a GPU to be quick)
    python bench/gpu_check.py --tiny          # 2 layers x 64 hidden, for a CPU dry run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # test-only helpers (support.random_v3)


def synthetic_corpus(n: int, seed: int, mean_words: float) -> list[str]:
    """Texts with a long-tailed (log-normal) length distribution, like abstracts."""
    from support.random_v3 import _WORDS

    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(np.log(mean_words), 0.7, n).astype(int), 3, 1500)
    words = np.array(_WORDS)
    return [" ".join(rng.choice(words, k)) + "." for k in lengths]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="2 layers, hidden 64 (CPU dry run)")
    ap.add_argument("--n-texts", type=int, default=None)
    ap.add_argument("--mean-words", type=float, default=120.0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--token-budget", type=int, default=32768)
    ap.add_argument("--dtypes", default="bf16,fp32")
    ap.add_argument("--task", default="retrieval.passage")
    ap.add_argument("--no-adapters", action="store_true", help="write no LoRA adapters (then use --task none)")
    ap.add_argument("--out", default=os.environ.get("OUT"))
    args = ap.parse_args()

    import torch
    import transformers

    from migrate.embed.jina_v3 import JinaV3Embedder
    from support.random_v3 import write_random_v3

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dev_name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    if args.no_adapters:
        args.task = "none"
    print(f"torch {torch.__version__}  transformers {transformers.__version__}  device {dev_name}", flush=True)
    size = dict(hidden=64, layers=2, heads=4, intermediate=256) if args.tiny else dict(hidden=1024, layers=24, heads=16, intermediate=4096)
    n = args.n_texts or (64 if args.tiny else 3000)
    texts = synthetic_corpus(n, seed=0, mean_words=args.mean_words if not args.tiny else 40)

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        adapters = () if args.no_adapters else None
        extra = {"adapters": adapters} if adapters is not None else {}
        path = write_random_v3(Path(tmp) / "v3-random", max_positions=8194, seed=0, **size, **extra)
        print(f"wrote random model {size} in {time.perf_counter() - t0:.1f}s", flush=True)
        for dtype in args.dtypes.split(","):
            emb = JinaV3Embedder(str(path), device=device, dtype=dtype, token_budget=args.token_budget)
            lengths = emb.count_tokens(texts, task=args.task)
            real = int(sum(lengths))
            emb.embed(texts[: min(64, n)], task=args.task)  # warm-up (kernels, allocator)
            for mode in ("padded", "sorted"):
                emb.batch_size = args.batch_size if mode == "padded" else None
                if device == "cuda":
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                t = time.perf_counter()
                vecs = emb.embed(texts, task=args.task).vectors
                if device == "cuda":
                    torch.cuda.synchronize()
                dt = time.perf_counter() - t
                row = {
                    "dtype": dtype, "mode": mode, "texts": n, "real_tokens": real, "seconds": round(dt, 3),
                    "tokens_per_s": round(real / dt, 1), "attention": emb.attn_implementation,
                    "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None,
                    "finite": bool(np.isfinite(vecs).all()),
                }
                results.append(row)
                print(json.dumps(row), flush=True)
            emb.close()
            del emb
            if device == "cuda":
                torch.cuda.empty_cache()

    by = {(r["dtype"], r["mode"]): r["tokens_per_s"] for r in results}
    print("\nsummary (tokens/s, real tokens):")
    for dtype in args.dtypes.split(","):
        p, s = by.get((dtype, "padded")), by.get((dtype, "sorted"))
        if p and s:
            print(f"  {dtype:5s} padded {p:12.1f}  sorted {s:12.1f}  sorted/padded x{s / p:.2f}")
    if ("bf16", "sorted") in by and ("fp32", "sorted") in by:
        print(f"  bf16/fp32 (sorted) x{by[('bf16', 'sorted')] / by[('fp32', 'sorted')]:.2f}")
    if ("bf16", "padded") in by and ("fp32", "padded") in by:
        print(f"  bf16/fp32 (padded) x{by[('bf16', 'padded')] / by[('fp32', 'padded')]:.2f}")
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "gpu_check.json").write_text(json.dumps({"device": dev_name, "size": size, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
