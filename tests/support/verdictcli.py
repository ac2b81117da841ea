"""Shared pieces of the label-free verdict CLI tests (tests/test_verdictcli_*.py).

``jm(...)`` runs the installed console script (the venv's ``jina-migrate``) in a child process,
the way the README runs it; ``corpus(...)`` writes a small corpus whose documents each have a
distinct title and several sentences (so every document can make a known-item query), and a
query log in the three formats a team may have.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).with_name("jina-migrate")

NOUNS = ("glacier", "volcano", "orchard", "harbour", "lighthouse", "meadow", "canyon", "reef", "tundra", "delta",
         "monsoon", "quarry", "vineyard", "marsh", "geyser", "lagoon", "prairie", "fjord", "dune", "savanna")
TOPICS = ("salmon", "copper", "lantern", "violin", "saffron", "granite", "falcon", "cedar", "basalt", "mustard",
          "walrus", "pepper", "comet", "marble", "otter", "bamboo", "cobalt", "heron", "juniper", "quartz")
VERBS = ("feeds", "shelters", "erodes", "warms", "floods", "guards", "colours", "surrounds", "cools", "hides")
SYLLABLES = ("ka", "lo", "mi", "ru", "te", "sa", "no", "vi", "bo", "de", "fu", "ga")
EXTRA = ("every spring", "at dawn", "after heavy rain", "in late autumn", "during the long winter", "near the coast",
         "under a full moon", "beside the old road", "for many decades", "since the first survey")


def jm(*args: str, stdin: str | None = None, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """``jina-migrate ARGS`` through the installed console script."""
    full = {k: v for k, v in os.environ.items() if k not in ("JINA_API_BASE_URL", "JINA_API_KEY", "GITHUB_STEP_SUMMARY")}
    full.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                 "COLUMNS": "200"})
    full.update(env or {})
    return subprocess.run([str(SCRIPT), *map(str, args)], input=stdin, capture_output=True, text=True, env=full,
                          cwd=REPO, timeout=timeout)


def one_line_error(proc: subprocess.CompletedProcess, *needles: str, code: int) -> str:
    """Exactly one ``error:`` line on stderr holding every needle, no traceback, and exit ``code``."""
    assert proc.returncode == code, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def corpus(folder: Path, n_docs: int = 60, seed: int = 7) -> list[dict]:
    """``docs.jsonl`` (id, title, text: three sentences), each document distinct; returns the rows."""
    rng = random.Random(seed)
    rows = []
    for i in range(n_docs):
        noun, topic = NOUNS[i % len(NOUNS)], TOPICS[(i * 7) % len(TOPICS)]
        n = len(SYLLABLES)
        name = (SYLLABLES[i % n] + SYLLABLES[(i // n + i * 5 + 3) % n] + SYLLABLES[(i // n) % n]).capitalize()
        title = f"{name} {noun} and its {topic}"
        sentences = [f"The {noun} of {name} {rng.choice(VERBS)} the {topic} {rng.choice(EXTRA)}.",
                     f"Visitors say the {rng.choice(TOPICS)} {rng.choice(VERBS)} a {rng.choice(NOUNS)} {rng.choice(EXTRA)}.",
                     f"Record {i} notes that a {rng.choice(NOUNS)} {rng.choice(VERBS)} the {rng.choice(TOPICS)} "
                     f"{rng.choice(EXTRA)}."]
        rows.append({"id": f"d{i:03d}", "title": title, "text": " ".join(sentences)})
    (folder / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def query_texts(n: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.choice(TOPICS)} {rng.choice(NOUNS)} {rng.choice(EXTRA)}" for _ in range(n)]


def read_run(path: Path, k: int = 10) -> dict[str, list[str]]:
    """A TREC run file (``compare`` writes one per side) as qid -> its top ``k`` document ids."""
    rows: dict[str, list[tuple[float, str]]] = {}
    for line in path.read_text().splitlines():
        qid, _, did, _, score, _ = line.split()
        rows.setdefault(qid, []).append((float(score), did))
    return {q: [d for _, d in sorted(r, key=lambda x: -x[0])][:k] for q, r in rows.items()}


def ndcg_at_10(ranked: list[str], grades: dict[str, int]) -> float:
    """nDCG@10 with linear gains (trec_eval's ndcg_cut_10), written out here, independent of the tool."""
    dcg = sum(grades.get(d, 0) / math.log2(r + 2) for r, d in enumerate(ranked[:10]))
    ideal = sorted(grades.values(), reverse=True)[:10]
    idcg = sum(g / math.log2(r + 2) for r, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0
