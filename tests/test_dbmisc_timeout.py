"""A request that times out is sent again in halves; the timeout is a setting (issue 18, item 15).

A small Jina-compatible server (Starlette on a loopback port, in this test process) answers quickly for
small requests and sleeps past the client's timeout for big ones, as a loaded server does. `jina-migrate
run --request-timeout` (the installed console script) must split the requests that time out and finish
with every document's vector in place; against a server that never answers in time it must stop with
one error line naming the setting to raise.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

uvicorn = pytest.importorskip("uvicorn")
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EXE = REPO / ".venv" / "bin" / "jina-migrate"
KEY = "jina_timeout_test_key"
DIMS = 32
ENV = {k: v for k, v in os.environ.items() if not k.startswith("JINA_MIGRATE_") and k != "JINA_API_BASE_URL"} | {
    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def vector_of(text: str) -> np.ndarray:
    """The server's answer for one text: a unit vector seeded by the text (so order mistakes show)."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(DIMS).astype(np.float32)
    return v / np.linalg.norm(v)


class SlowForBigRequests:
    """Sleeps ``delay`` seconds before answering a request of more than ``fast_up_to`` inputs."""

    def __init__(self, fast_up_to: int, delay: float) -> None:
        self.fast_up_to, self.delay = fast_up_to, delay
        self.sizes: list[int] = []
        self.app = Starlette(routes=[Route("/v1/embeddings", self.embeddings, methods=["POST"])])

    async def embeddings(self, request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return JSONResponse({"detail": "Invalid API key"}, status_code=401)
        body = await request.json()
        texts = body["input"]
        self.sizes.append(len(texts))
        if len(texts) > self.fast_up_to:
            await asyncio.sleep(self.delay)
        data = [{"object": "embedding", "index": i, "embedding": vector_of(t).tolist()} for i, t in enumerate(texts)]
        tokens = sum(len(t.split()) + 2 for t in texts)
        return JSONResponse({"model": body["model"], "object": "list", "data": data,
                             "usage": {"total_tokens": tokens, "prompt_tokens": tokens}})


def _serve(app) -> tuple[str, uvicorn.Server, threading.Thread]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "test server did not start"
        time.sleep(0.02)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server, thread


@pytest.fixture
def slow_server(request):
    fast_up_to, delay = request.param
    handler = SlowForBigRequests(fast_up_to, delay)
    url, server, thread = _serve(handler.app)
    yield url, handler
    server.should_exit = True
    thread.join(timeout=10)


def _docs(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"id": f"d{i:03d}", "text": f"document number {i} about tents and boots"})
                            + "\n" for i in range(n)))
    return path


def _run(tmp_path: Path, url: str, *extra: str) -> subprocess.CompletedProcess:
    (tmp_path / "key.txt").write_text(KEY + "\n")
    return subprocess.run(
        [str(EXE), "run", "--docs", str(_docs(tmp_path, 40)), "--model", "jina-api:jina-embeddings-v3",
         "--dimensions", str(DIMS), "--base-url", url, "--api-key-file", str(tmp_path / "key.txt"),
         "--out", str(tmp_path / "out"), "--yes", "--tier", "tier1", *extra],
        env=ENV, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("slow_server", [(6, 3.0)], indirect=True)
def test_timed_out_requests_are_split_and_the_run_completes(tmp_path, slow_server):
    url, handler = slow_server
    proc = _run(tmp_path, url, "--request-timeout", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events[-1]["event"] == "finish" and events[-1]["state"] == "complete"
    big = [n for n in handler.sizes if n > 6]
    assert 40 in big, handler.sizes  # the whole shard was tried first, and timed out
    assert 20 in big and 10 in big, handler.sizes  # then halves, and halves of halves
    assert max(n for n in handler.sizes if n <= 6) == 5, handler.sizes  # until requests came back in time
    emb = pq.read_table(tmp_path / "out" / "embeddings.parquet")
    got = dict(zip(emb.column("id").to_pylist(), np.asarray(emb.column("vector").to_pylist(), np.float32)))
    assert len(got) == 40
    for i in range(40):  # each document's own vector, in place
        np.testing.assert_allclose(got[f"d{i:03d}"], vector_of(f"document number {i} about tents and boots"),
                                   atol=1e-6)


@pytest.mark.parametrize("slow_server", [(0, 3.0)], indirect=True)
def test_a_server_that_never_answers_in_time_names_the_setting(tmp_path, slow_server):
    url, handler = slow_server
    t0 = time.monotonic()
    proc = _run(tmp_path, url, "--request-timeout", "0.5")
    assert proc.returncode == 4, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "--request-timeout" in errors[0] and "0.5 s" in errors[0], proc.stderr
    assert handler.sizes.count(1) <= 3  # a single text gets a few tries, not the whole retry budget
    assert time.monotonic() - t0 < 120
