"""`plan` validates exactly as `run` does (issue 18, item 16).

`plan` builds the very settings object `run` builds from the same options (flags, `--config` TOML,
`JINA_MIGRATE_*`), so a value `run` refuses is refused by `plan` with the same one line and exit 2,
before any plan is written; and what `plan` accepts, `run --plan` runs.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXE = REPO / ".venv" / "bin" / "jina-migrate"
DOCS = REPO / "fixtures" / "sample" / "docs.jsonl"
ENV = {k: v for k, v in os.environ.items() if not k.startswith("JINA_MIGRATE_")} | {
    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _cli(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(EXE), *args], cwd=cwd, env={**ENV, **(env or {})}, capture_output=True, text=True,
                          timeout=300)


def _error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-1000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    line = proc.stderr.splitlines()[0]
    assert line.startswith("error: ")
    return line


@pytest.mark.parametrize("case,args,env,needle", [
    ("dimensions below the API's range", ["--dimensions", "16"], {}, "--dimensions: 16 is outside 32..1024"),
    ("use case and task together", ["--use-case", "search", "--task", "retrieval.passage"], {},
     "give --task or --use-case, not both"),
    ("dimensions from the environment", [], {"JINA_MIGRATE_DIMENSIONS": "2048"},
     "JINA_MIGRATE_DIMENSIONS: 2048 is outside 32..1024"),
    ("dimensions from a TOML file", ["--config", "run.toml"], {}, "run.toml: dimensions: 16 is outside 32..1024"),
    ("index parameters against the width", ["--dimensions", "100", "--index-type", "ivfpq"],
     {"JINA_MIGRATE_PQ_M": "64"}, "JINA_MIGRATE_PQ_M: 64 does not divide the 100"),
])
def test_plan_refuses_what_run_refuses(tmp_path, case, args, env, needle):
    (tmp_path / "run.toml").write_text("[migrate]\ndimensions = 16\n")
    plan = _cli(tmp_path, "plan", "--docs", str(DOCS), "--estimate-only", "--out", "plan.json", *args, env=env)
    run = _cli(tmp_path, "run", "--docs", str(DOCS), "--out", "out", "--yes", *args, env=env)
    plan_line, run_line = _error_line(plan), _error_line(run)
    assert needle in plan_line, (case, plan_line)
    assert plan_line == run_line, case  # one settings object: the same message from both commands
    assert not (tmp_path / "plan.json").exists() and not (tmp_path / "out").exists()


def test_plan_writes_the_settings_run_would_use(tmp_path):
    """What plan accepts lands in the plan's run_config as run reads it (the use case as its task; TOML values
    of shared settings)."""
    (tmp_path / "run.toml").write_text("[migrate]\ndimensions = 256\nshard-size = 80\n")
    proc = _cli(tmp_path, "plan", "--docs", str(DOCS), "--use-case", "search", "--config", "run.toml",
                "--estimate-only", "--out", "plan.json", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rc = json.loads((tmp_path / "plan.json").read_text())["run_config"]
    assert (rc["task"], rc["dimensions"], rc["shard_size"], rc["model"]) == \
        ("retrieval.passage", 256, 80, "jina-api:jina-embeddings-v3")
