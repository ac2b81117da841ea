"""How long ``compare`` takes on SciFact beyond query embedding (budget: 10 s).

Everything a CI run does after the queries are embedded is timed: exact search on both
sides, pytrec_eval metrics, paired tests + bootstrap CIs, overlap/RBO/rank shifts, a
Matryoshka sweep, the ANN check, gates, and rendering + writing HTML, Markdown and JSON.

Two runs, side by side in one process:

1. SciFact (5,183 docs, 300 test queries) with real vectors: the MiniLM / e5-small corpus
   vectors cached by ``bench/scifact_compare.py`` when present, else the (fast) static model.
2. The same corpus and queries at jina-embeddings-v3 size: 1024-d vectors (the real
   vectors randomly rotated up to 1024-d), sweep 1024/768/512/256/128/64/32, with a flat
   FAISS index for the ANN check.

Usage::  HF_HUB_OFFLINE=1 python bench/compare_speed.py [--data ../shared/data/scifact]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BUDGET_S = 10.0


def _embedded_side(name, spec, corpus, queries, doc_task, query_task, embedder, cache):
    """Side with corpus vectors (cached) and query vectors embedded once up front (timed separately)."""
    import numpy as np

    from migrate.report.build import side_from_model
    from migrate.report.side import Side

    side = side_from_model(spec, corpus, name=name, doc_task=doc_task, query_task=query_task, embedder=embedder,
                           cache=cache)
    t0 = time.perf_counter()
    qv = side.encode_queries([q.text for q in queries])
    enc_s = time.perf_counter() - t0
    lookup = {q.text: v for q, v in zip(queries, qv)}
    pre = Side(name, side.doc_ids, side.vectors, lambda t: np.stack([lookup[x] for x in t]), side.description)
    return pre, enc_s


def _time_compare(old, new, queries, qrels, dims, corpus, ann_side=None):
    from migrate.atomic import write_text
    from migrate.report.engine import CompareConfig, compare
    from migrate.report.gates import evaluate_gates
    from migrate.report.render_html import render_html
    from migrate.report.render_json import render_json
    from migrate.report.render_md import render_markdown

    c0 = time.process_time()
    t0 = time.perf_counter()
    rep = compare(old, new, queries, qrels, CompareConfig(dims=dims, ann=ann_side is not None),
                  doc_text=corpus.lookup())
    t1 = time.perf_counter()
    evaluate_gates(rep, ["ndcg@10 < old - 0.01", "overlap@10 < 0.1"])
    with tempfile.TemporaryDirectory() as d:
        write_text(Path(d) / "r.html", render_html(rep))
        write_text(Path(d) / "r.md", render_markdown(rep))
        write_text(Path(d) / "r.json", render_json(rep))
    t2 = time.perf_counter()
    rep["_cpu_s"] = time.process_time() - c0
    return rep, t1 - t0, t2 - t1


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    ap.add_argument("--cache", type=Path, default=ROOT / ".cache" / "compare")
    args = ap.parse_args()
    if not (args.data / "corpus.jsonl").exists():
        print(f"SciFact not found at {args.data}", file=sys.stderr)
        return 2
    import faiss
    import numpy as np

    from migrate.report.build import _corpus_key
    from migrate.report.data import read_corpus, read_qrels, read_queries
    from migrate.report.search import faiss_ann
    from migrate.report.side import AnnIndex, Side
    from migrate.embed.standins import model_dir

    corpus = read_corpus(args.data)
    qrels = read_qrels(args.data)
    queries = read_queries(args.data, only=set(qrels))
    cached = list(args.cache.glob("*.npy")) if args.cache.exists() else []
    minilm, e5 = f"local:{model_dir('minilm')}", f"local:{model_dir('e5-small')}"
    have = {p.stem for p in cached}

    from migrate.embed.registry import get_embedder

    def is_cached(spec, emb, task):
        return _corpus_key(spec, emb.info().as_dict(), task, corpus) in have

    sides = []
    m_emb = get_embedder(minilm, max_tokens=256, device="cpu")
    e_emb = get_embedder(e5, max_tokens=512, device="cpu")
    if is_cached(minilm, m_emb, "none") and is_cached(e5, e_emb, "retrieval.passage"):
        sides.append(_embedded_side("minilm", minilm, corpus, queries, "none", "none", m_emb, args.cache))
        sides.append(_embedded_side("e5-small", e5, corpus, queries, "retrieval.passage", "retrieval.query", e_emb,
                                    args.cache))
        label = "MiniLM (384-d) vs e5-small (384-d), cached corpus vectors"
    else:  # no e5 corpus vectors yet (16 min to embed): the static model embeds SciFact in seconds
        static = "local:standin:static"
        s_emb = get_embedder(static, device="cpu")
        sides.append(_embedded_side("static", static, corpus, queries, "none", "none", s_emb, None))
        sides.append(_embedded_side("minilm", minilm, corpus, queries, "none", "none", m_emb, args.cache))
        label = "static (64-d) vs MiniLM (384-d)"
    (old, enc_old), (new, enc_new) = sides
    rep, t_cmp, t_out = _time_compare(old, new, queries, qrels, [256, 128, 64, 32], corpus)

    # v3-sized: rotate the new side's real vectors into 1024-d (same geometry, v3 storage size)
    rng = np.random.default_rng(0)
    rot, _ = np.linalg.qr(rng.normal(size=(1024, 1024)))
    rot = rot[: new.dim].astype(np.float32)
    docs1024 = new.vectors @ rot
    q1024 = {q.text: v for q, v in zip(queries, new.encode_queries([q.text for q in queries]) @ rot)}
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(1024))
    index.add_with_ids(docs1024, np.arange(len(new.doc_ids), dtype=np.int64))
    big = Side("v3-sized", new.doc_ids, docs1024, lambda t: np.stack([q1024[x] for x in t]), {},
               ann=AnnIndex(faiss_ann(index, np.arange(len(new.doc_ids))), {"type": "IndexIDMap2(IndexFlatIP)"}))
    rep_big, t_cmp_big, t_out_big = _time_compare(old, big, queries, qrels, [768, 512, 256, 128, 64, 32], corpus,
                                                  ann_side=big)

    print(f"SciFact test split: {len(corpus.ids)} docs, {len(queries)} queries, {len(qrels)} judged")
    print(f"query embedding (excluded): {old.name} {enc_old:.2f}s, {new.name} {enc_new:.2f}s")
    rows = [(label, t_cmp, t_out, rep), ("same old side vs 1024-d new side, 7-point sweep, ANN check", t_cmp_big,
                                          t_out_big, rep_big)]
    print(f"machine load average (1 min): {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
          "(wall times stretch when other work shares the cores; CPU time does not)")
    print(f"{'run':62s} {'compare s':>10s} {'render+write s':>15s} {'total s':>8s} {'/ budget':>9s} {'CPU s':>7s}")
    ok = True
    for name, a, b, r in rows:
        total = a + b
        ok &= total < BUDGET_S
        print(f"{name:62s} {a:10.2f} {b:15.2f} {total:8.2f} {total / BUDGET_S:9.2f} {r['_cpu_s']:7.2f}")
        print(f"    engine breakdown: {r['timings']}")
    print(f"nDCG@10: {old.name} {rep['metrics']['means'][old.name]['ndcg@10']:.4f}, "
          f"{new.name} {rep['metrics']['means'][new.name]['ndcg@10']:.4f}")
    print("PASS: under 10 s beyond query embedding" if ok else "FAIL: over the 10 s budget")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
