"""``jina-migrate serve-api`` as a user runs it: a child process on a loopback port."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("static_model")

REPO = Path(__file__).resolve().parents[1]


def _announced_url(proc: subprocess.Popen, lines: list[str], pattern: str, timeout: float = 300) -> str:
    """The URL the server prints once it listens. Waits on that line, not a fixed time: loading the
    stand-ins took over a minute on a loaded 2-core machine (issue 20)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if m := next((m for m in (re.search(pattern, s) for s in lines) if m), None):
            return m.group(1)
        if proc.poll() is not None:
            pytest.fail(f"serve-api exited ({proc.returncode}) before it listened:\n{''.join(lines)}")
        time.sleep(0.1)
    pytest.fail(f"serve-api did not print its URL in {timeout:.0f} s:\n{''.join(lines)}")


def test_serve_api_command(tmp_path):
    key_file = tmp_path / "keys.txt"
    key_file.write_text("# local keys\njina_cli_test_key_1\njina_cli_test_key_2\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "migrate", "serve-api", "--port", "0", "--fast", "--api-key-file", str(key_file),
         "--rpm", "600", "--tpm", "60000", "--window", "5", "--fault-500", "0.0"],
        cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    lines: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        url = _announced_url(proc, lines, r"(http://127\.0\.0\.1:\d+)")
        for key in ("jina_cli_test_key_1", "jina_cli_test_key_2"):
            r = httpx.post(url + "/v1/embeddings", json={"model": "jina-embeddings-v2-base-en", "input": ["hi"]},
                           headers={"Authorization": f"Bearer {key}"}, timeout=60)
            assert r.status_code == 200 and r.headers["x-ratelimit-limit-tokens"] == "60000"
            assert r.headers["x-jina-migrate-stand-in"] == "static"
        r = httpx.post(url + "/v1/embeddings", json={"model": "jina-embeddings-v3", "input": ["hi"]},
                       headers={"Authorization": "Bearer jina_other"}, timeout=60)
        assert r.status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    text = "".join(lines)
    assert "stand-in" in text and "jina_cli_test_key" not in text


def test_serve_api_rejects_impossible_fault_rates():
    r = subprocess.run([sys.executable, "-m", "migrate", "serve-api", "--fast", "--api-key-env", "SERVE_TEST_KEY",
                        "--fault-500", "0.9", "--fault-503", "0.9"], cwd=REPO, capture_output=True, text=True,
                       timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1", "SERVE_TEST_KEY": "k"})
    assert r.returncode == 2 and "add up to at most 1" in r.stderr


def test_serve_api_help_names_the_rehearsal_options():
    r = subprocess.run([sys.executable, "-m", "migrate", "serve-api", "--help"], cwd=REPO, capture_output=True, text=True,
                       timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"})
    assert r.returncode == 0 and "Traceback" not in r.stderr
    assert "--long-context" in r.stdout and "--api-key-file" in r.stdout


def test_readme_example_runs_against_serve_api(tmp_path):
    """The README's worked example, verbatim apart from the paths: key file, --base-url, --dimensions 1024."""
    import json

    key_file = tmp_path / "key.txt"
    key_file.write_text("jina_readme_example_key_0001\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("JINA_API_KEY", None)
    proc = subprocess.Popen([sys.executable, "-m", "migrate", "serve-api", "--port", "0", "--fast",
                             "--api-key-file", str(key_file)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: [lines.append(s) for s in proc.stderr], daemon=True).start()
    try:
        url = _announced_url(proc, lines, r"server at (http://127\.0\.0\.1:\d+)")
        docs = tmp_path / "docs.jsonl"
        docs.write_text("".join(ln + "\n" for ln in (REPO / "fixtures/sample/docs.jsonl").read_text().splitlines()[:40]))
        out = tmp_path / "out"
        run = subprocess.run([sys.executable, "-m", "migrate", "run", "--docs", str(docs), "--title-field", "title",
                              "--model", "jina-api:jina-embeddings-v3", "--dimensions", "1024", "--base-url", url,
                              "--api-key-file", str(key_file), "--out", str(out), "--yes", "--json"],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr
        verify = subprocess.run([sys.executable, "-m", "migrate", "verify", "--out", str(out), "--json"],
                                cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["embedder"]["dimensions"] == 1024 and manifest["embedder"]["stand_in"] == "static"
        assert "jina_readme_example_key_0001" not in run.stdout + run.stderr + (out / "manifest.json").read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
