"""Piped output is for programs (issue 18, item 14).

* `run` without `--json` whose stdout is a pipe writes JSON lines only (the README: JSON lines are the
  default when stdout is not a terminal), so `jq` can read every line; the human summary goes to stderr.
* `compare` piped is not squeezed to 80 columns: each metric row is one line with its whole verdict.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("static_model")

REPO = Path(__file__).resolve().parents[1]
EXE = REPO / ".venv" / "bin" / "jina-migrate"
SAMPLE = REPO / "fixtures" / "sample"
ENV = {k: v for k, v in os.environ.items() if k != "COLUMNS"} | {
    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The console script with stdout and stderr both pipes (as in CI, or `... | jq`)."""
    return subprocess.run([str(EXE), *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def piped_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("piped")
    proc = _cli("run", "--docs", str(SAMPLE / "docs.jsonl"), "--title-field", "title",
                "--model", "local:standin:static", "--shard-size", "100", "--out", "out", cwd=cwd)
    return cwd, proc


def test_piped_run_stdout_is_json_lines_only(piped_run):
    _, proc = piped_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    events = [json.loads(line) for line in lines]  # every line parses: nothing human in between
    assert [e["event"] for e in events][0] == "start"
    assert [e["event"] for e in events].count("shard_done") == 4
    assert events[-1]["event"] == "finish" and events[-1]["state"] == "complete"
    assert events[-1]["outputs"]["rows"] == 320
    # the person who redirected stdout still reads the outcome, on stderr
    assert "complete: 4 shards embedded" in proc.stderr
    assert "manifest: out/manifest.json" in proc.stderr


ROW = re.compile(r"^\s*(ndcg@10|recall@10|recall@100|mrr@10|map@100)\s+\d\.\d{4}\s+\d\.\d{4}\s+[+-]\d\.\d{4}\s+"
                 r"[+-]\d\.\d{4}\.\.[+-]\d\.\d{4}\s+\S+\s+(no significant difference|significantly better|"
                 r"significantly worse)\s*$")


def test_piped_compare_is_not_squeezed(piped_run):
    cwd, run = piped_run
    assert run.returncode == 0, run.stderr[-2000:]
    proc = _cli("compare", "--old-index", str(SAMPLE / "old_index.faiss"), "--id-map", str(SAMPLE / "id_map.csv"),
                "--old-model", "local:standin:minilm", "--new", "out", "--queries", str(SAMPLE / "queries.jsonl"),
                "--qrels", str(SAMPLE / "qrels.tsv"), "--docs", str(SAMPLE / "docs.jsonl"),
                "--report-dir", "rep", "--no-github-summary", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "…" not in proc.stdout, proc.stdout
    rows = [line for line in proc.stdout.splitlines() if ROW.match(line)]
    assert [ROW.match(r).group(1) for r in rows] == ["ndcg@10", "recall@10", "recall@100", "mrr@10", "map@100"], \
        proc.stdout
    old = [line for line in proc.stdout.splitlines() if line.startswith("old: ")]
    assert len(old) == 1 and "all-MiniLM-L6-v2" in old[0] and old[0].rstrip().endswith(")"), proc.stdout
