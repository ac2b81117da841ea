"""The CLI's API path end to end against the local server (child processes, real HTTP):

* a run killed while an API call is in flight, then resumed, spends no tokens twice for
  the shards that were complete (checked from the server's own token count);
* the API key never appears in stdout, stderr, logs, the manifest, shard records,
  reports or exception text.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("static_model")

from migrate.embed.jina_api import PROBE_TEXT  # noqa: E402
from migrate.rehearsal.faults import FaultConfig  # noqa: E402
from migrate.rehearsal.limits import ServerLimits  # noqa: E402
from migrate.rehearsal.run import run_server  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "fixtures" / "sample" / "docs.jsonl"
KEY = "jina_t3st" + "k3y" * 12  # distinctive, shaped like a real key


def _docs(tmp: Path, n: int) -> Path:
    if not SAMPLE.is_file():
        pytest.skip("fixtures/sample/docs.jsonl is missing")
    lines = SAMPLE.read_text().splitlines()[:n]
    p = tmp / "docs.jsonl"
    p.write_text("\n".join(lines) + "\n")
    return p


def _args(docs: Path, out: Path, base_url: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "migrate", "run", "--docs", str(docs), "--title-field", "title",
            "--model", "jina-api:jina-embeddings-v3", "--base-url", base_url, "--shard-size", "8",
            "--out", str(out), "--json", *extra]


def _env(key: str = KEY) -> dict[str, str]:
    return {**os.environ, "JINA_API_KEY": key, "HF_HUB_OFFLINE": "1"}


def _tokens(h, text: str) -> int:
    r = httpx.post(h.base_url + "/v1/embeddings", json={"model": "jina-embeddings-v3", "input": [text]},
                   headers={"Authorization": f"Bearer {h.api_key}"}, timeout=30)
    return r.json()["usage"]["total_tokens"]


def _done(out: Path) -> int:
    return len(list((out / "shards").glob("*.done.json"))) if (out / "shards").is_dir() else 0


def _wait_until(proc: subprocess.Popen, condition, what: str, out: Path, timeout: float = 300) -> None:
    """Poll ``condition`` while the run lives; fail naming what happened instead if it does not hold."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}, {_done(out)} shards done) before: {what}; "
                        f"stderr:\n{proc.communicate()[1][-2000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"not {what} after {timeout:.0f} s ({_done(out)} shards done)")
        time.sleep(0.02)


def _summary(stdout: str) -> dict:
    lines = [json.loads(s) for s in stdout.splitlines() if s.startswith("{")]
    return lines[-1]


def test_interrupted_mid_call_then_resumed_spends_no_tokens_twice(tmp_path):
    docs = _docs(tmp_path, 48)  # 6 shards of 8
    with run_server(fast=True, api_key=KEY) as h:
        probe = _tokens(h, PROBE_TEXT)
        base = h.usage()["total_tokens"]
        clean = subprocess.run(_args(docs, tmp_path / "clean", h.base_url), env=_env(), capture_output=True,
                               text=True, timeout=300)
        assert clean.returncode == 0, clean.stderr
        clean_tokens = h.usage()["total_tokens"] - base - probe
        assert clean_tokens == _summary(clean.stdout)["tokens"] > 0

        # Kill the run while a billed answer is pending, at a point the server fixes, not the clock:
        # the key may send 3 requests at once (the probe and two shards), then one every 10 s. As soon
        # as those 3 are billed, every answer is made to come 15 s after it is billed; the next request
        # the limit admits (>= 10 s later, whatever the machine's speed) is billed and held, and the
        # kill lands inside that wait, with exactly two shards done.
        h.server.set_limits(ServerLimits(rpm=6, window_s=30))
        out = tmp_path / "out"
        start_ok = h.usage()["requests_ok"]
        proc = subprocess.Popen(_args(docs, out, h.base_url), env=_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            _wait_until(proc, lambda: h.usage()["requests_ok"] >= start_ok + 3, "the probe and two shards billed", out)
            h.server.set_faults(FaultConfig(slow=1.0, slow_s=15.0))
            _wait_until(proc, lambda: h.usage()["requests_ok"] >= start_ok + 4, "a third shard request billed", out)
            assert _done(out) == 2, f"{_done(out)} shards done when the third was billed (expected 2)"
        finally:
            proc.kill()  # the 3rd shard's request is billed, its answer still pending
            proc.communicate()
        at_kill = h.usage()["total_tokens"]
        done_before = sorted(p.name for p in (out / "shards").glob("*.done.json"))
        assert len(done_before) == 2
        spent_before_kill = at_kill - base - clean_tokens - probe
        tokens_done_before = sum(json.loads((out / "shards" / n).read_text())["tokens"] for n in done_before)
        assert spent_before_kill > probe + tokens_done_before  # the in-flight call was billed

        h.server.set_limits(ServerLimits())
        h.server.set_faults(FaultConfig())
        resumed = subprocess.run(_args(docs, out, h.base_url), env=_env(), capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        s = _summary(resumed.stdout)
        resume_spent = h.usage()["total_tokens"] - at_kill
    assert s["state"] == "complete" and s["shards_skipped"] == 2 and s["shards_run"] == 4
    # The resumed run paid for its probe and the 4 unfinished shards, nothing for the 2 done ones.
    assert resume_spent == probe + s["tokens"]
    assert tokens_done_before + s["tokens"] == clean_tokens


def _grep_everything(key: str, texts: list[str], out_dirs: list[Path]) -> list[str]:
    hits = [f"text #{i}" for i, t in enumerate(texts) if key in t]
    for d in out_dirs:
        for p in d.rglob("*"):
            if p.is_file() and key.encode() in p.read_bytes():
                hits.append(str(p))
    return hits


def test_api_key_never_appears_in_any_output(tmp_path, capfd):
    docs = _docs(tmp_path, 24)
    outputs: list[str] = []
    dirs: list[Path] = []
    with run_server(fast=True, api_key=KEY, faults=FaultConfig.mixed(0.2, seed=5, slow_s=0.2)) as h:
        good = tmp_path / "good"
        r = subprocess.run(_args(docs, good, h.base_url, "--concurrency", "2"), env=_env(), capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        outputs += [r.stdout, r.stderr]
        dirs.append(good)
        for cmd in (["status", "--out", str(good), "--json"], ["verify", "--out", str(good), "--json"]):
            v = subprocess.run([sys.executable, "-m", "migrate", *cmd], env=_env(), capture_output=True, text=True,
                               timeout=120)
            outputs += [v.stdout, v.stderr]
        # A refused key (the server echoes nothing, but the client must not either).
        wrong = "jina_wr0ng" + "x" * 30
        bad = tmp_path / "bad"
        r = subprocess.run(_args(docs, bad, h.base_url), env=_env(wrong), capture_output=True, text=True, timeout=300)
        assert r.returncode != 0 and "401" in r.stderr
        outputs += [r.stdout, r.stderr]
        assert wrong not in r.stdout + r.stderr
        dirs.append(bad)
        # The key given through a file instead of the environment.
        key_file = tmp_path / "key.txt"
        key_file.write_text(KEY + "\n")
        via_file = tmp_path / "via-file"
        env = {k: v for k, v in _env().items() if k != "JINA_API_KEY"}
        r = subprocess.run(_args(docs, via_file, h.base_url, "--api-key-file", str(key_file)), env=env,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        outputs += [r.stdout, r.stderr]
        dirs.append(via_file)
        outputs.append(json.dumps(h.usage()))
        outputs.append(httpx.get(h.base_url + "/v1/models").text)
    captured = capfd.readouterr()
    outputs += [captured.out, captured.err]  # the in-process server's own logging
    assert _grep_everything(KEY, outputs, dirs) == []
    assert (good / "manifest.json").is_file()
