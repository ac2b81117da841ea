"""The bundled server answers a v3 name without `dimensions` in the API's default width (issue 18, item 17).

jina-spec §1.2: `dimensions` defaults to 1024 for jina-embeddings-v3. `plan` promises 1024, so the run
against `jina-migrate serve-api` must write 1024-d vectors too. The stand-in's vector is zero-padded
(documented in `migrate.rehearsal.server.default_dimensions`): norms and cosines are the stand-in's, and
Matryoshka truncation of the default answer equals the answer asked with `dimensions`. v2 names keep the
stand-in's own width (an index built with a v2 name's stand-in is searched with that name).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest

pytest.importorskip("static_model")

REPO = Path(__file__).resolve().parents[1]
EXE = REPO / ".venv" / "bin" / "jina-migrate"
KEY = "jina_width_test_key"
V3 = "jina-embeddings-v3"
ENV = {k: v for k, v in os.environ.items() if not k.startswith("JINA_MIGRATE_") and k != "JINA_API_BASE_URL"} | {
    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
TEXTS = ["Put heavy items close to your back.", "Standard delivery takes three to five days.", "Tents need vents."]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`jina-migrate serve-api --fast` (the 64-d static stand-in for every name) on a free port."""
    key_file = tmp_path_factory.mktemp("srv") / "key.txt"
    key_file.write_text(KEY + "\n")
    proc = subprocess.Popen([str(EXE), "serve-api", "--fast", "--port", "0", "--api-key-file", str(key_file)],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()  # type: ignore[arg-type]
    try:
        deadline = time.monotonic() + 180
        url = None
        while url is None:
            assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)
            found = [re.search(r"(http://127\.0\.0\.1:\d+)", s) for s in list(lines)]
            url = next((m.group(1) for m in found if m), None)
            time.sleep(0.1)
        yield {"url": url, "key_file": key_file}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _embed(server, body: dict) -> np.ndarray:
    r = httpx.post(server["url"] + "/v1/embeddings", json=body, headers={"Authorization": f"Bearer {KEY}"},
                   timeout=60)
    assert r.status_code == 200, r.text
    return np.asarray([d["embedding"] for d in sorted(r.json()["data"], key=lambda d: d["index"])], np.float64)


def test_v3_without_dimensions_answers_1024_like_the_api(server):
    base = {"model": V3, "input": TEXTS, "task": "retrieval.passage", "normalized": True}
    default = _embed(server, base)
    assert default.shape == (3, 1024)
    np.testing.assert_allclose(np.linalg.norm(default, axis=1), 1.0, atol=1e-5)
    own = _embed(server, base | {"dimensions": 64})  # the stand-in's own width
    np.testing.assert_allclose(default[:, :64], own, atol=1e-6)
    assert not default[:, 64:].any()  # the padding carries nothing
    # Matryoshka: the first N of the default answer, re-normalised, is the answer asked with dimensions=N
    small = _embed(server, base | {"dimensions": 32})
    head = default[:, :32] / np.linalg.norm(default[:, :32], axis=1, keepdims=True)
    np.testing.assert_allclose(head, small, atol=1e-5)
    # v2 names keep the stand-in's width
    assert _embed(server, {"model": "jina-embeddings-v2-base-en", "input": TEXTS}).shape == (3, 64)
    models = httpx.get(server["url"] + "/v1/models", timeout=60).json()["data"]
    v3 = next(m for m in models if m["id"] == V3)
    assert v3["dimensions"]["default"] == 1024 and v3["dimensions"]["stand_in_width"] == 64


def test_plan_and_run_agree_on_the_width(server, tmp_path):
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": f"d{i}", "text": f"{t} ({i})"}) + "\n"
                            for i, t in enumerate(TEXTS * 4)))
    plan = subprocess.run([str(EXE), "plan", "--docs", str(docs), "--estimate-only", "--json"], env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert plan.returncode == 0, plan.stderr[-2000:]
    promised = json.loads(plan.stdout)["mapping"]["dimensions"]
    assert promised == 1024
    run = subprocess.run([str(EXE), "run", "--docs", str(docs), "--model", f"jina-api:{V3}", "--base-url",
                          server["url"], "--api-key-file", str(server["key_file"]), "--out", str(tmp_path / "out"),
                          "--yes"], env=ENV, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    finish = json.loads(run.stdout.splitlines()[-1])
    assert finish["outputs"]["dimensions"] == promised
    emb = pq.read_table(tmp_path / "out" / "embeddings.parquet")
    assert emb.schema.field("vector").type.list_size == promised and emb.num_rows == 12
