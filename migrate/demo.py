"""``jina-migrate demo``: the whole tool on the bundled sample, offline, with no key.

1. start the bundled Jina-compatible server on a loopback port (real stand-in models:
   ``jina-embeddings-v3`` is served by multilingual-e5-small, see migrate/rehearsal);
2. migrate the bundled sample ``migrate/data/sample`` (320 help-centre articles + a FAISS index with an id map)
   through the real API client, task ``retrieval.passage``, in resumable shards;
3. ``verify`` the output;
4. write the before/after retrieval report (old index + its model vs the new index,
   queries with ``retrieval.query``, judged with the sample's qrels).

Rerunning resumes (nothing is embedded twice).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from migrate.errors import ConfigError, VerifyFailed

SAMPLE = Path(__file__).resolve().parent / "data" / "sample"


def sample_dir() -> Path:
    """The sample shipped inside the package (``migrate/data/sample``)."""
    if not (SAMPLE / "docs.jsonl").exists():
        raise ConfigError(f"{SAMPLE}: bundled sample not found", hint="reinstall jina-migrate (the sample is package data)")
    return SAMPLE


def run_demo(out: Path | str, *, json_out: bool = False, fast: bool = False) -> dict[str, Any]:
    from migrate import pipeline
    from migrate.config import load_config
    from migrate.progress import make_reporter
    from migrate.rehearsal.run import run_server

    sample = sample_dir()
    out = Path(out)
    say = (lambda *_: None) if json_out else (lambda msg: print(msg, file=sys.stderr, flush=True))
    say("starting the local Jina-compatible server (stand-in models, loopback only)...")
    server_options: dict[str, Any] = {"fast": True} if fast else {"preload": ("e5-small",)}
    with run_server(**server_options) as server, tempfile.TemporaryDirectory() as tmp:
        key_file = Path(tmp) / "key"
        key_file.write_text(server.api_key)
        key_file.chmod(0o600)
        say(f"server up at {server.base_url}; migrating {sample / 'docs.jsonl'} -> {out}")
        cfg = load_config({
            "docs": sample / "docs.jsonl", "title_field": "title", "old_index": str(sample / "old_index.faiss"),
            "id_map": sample / "id_map.csv", "out": out, "model": "jina-api:jina-embeddings-v3",
            "task": "retrieval.passage", "shard_size": 64, "base_url": server.base_url, "api_key_file": key_file,
            "tier": "free",  # the budget of a free key (the local server itself is unlimited)
            "json": json_out or None,
        }, environ={})
        reporter = make_reporter(json_out)
        prepared = pipeline.prepare(cfg)
        pipeline.commit(prepared, reporter)
        summary = pipeline.execute(prepared, pipeline.EmbedderMaker.from_config(cfg), reporter)
        check = pipeline.verify(out)
        if not check["ok"]:
            raise VerifyFailed(f"{out}: verify found problems: {'; '.join(check['problems'])}")
        say(f"verify: OK ({check['checks']['rows']} vectors, {check['checks']['dimensions']} dims)")
        say("writing the before/after retrieval report...")
        report_dir = out / "report"
        env = dict(os.environ, JINA_API_KEY=server.api_key, JINA_API_BASE_URL=server.base_url, HF_HUB_OFFLINE="1")
        proc = subprocess.run(
            [sys.executable, "-m", "migrate", "compare", "--new", str(out), "--base-url", server.base_url,
             "--old", str(sample / "old_index.faiss"), "--id-map", str(sample / "id_map.csv"),
             "--old-model", "local:standin:minilm", "--queries", str(sample / "queries.jsonl"),
             "--qrels", str(sample / "qrels.tsv"), "--corpus", str(sample / "docs.jsonl"),
             "--report-dir", str(report_dir), "--no-github-summary", "--title", "jina-migrate demo: v2 -> v3"],
            env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ConfigError(f"compare failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    result = {"out": str(out), "index": summary.get("outputs", {}).get("index"),
              "embeddings": summary.get("outputs", {}).get("embeddings"), "manifest": str(out / "manifest.json"),
              "report": str(report_dir / "report.html"), "report_markdown": str(report_dir / "report.md"),
              "verify": check, "summary": summary}
    if not json_out:
        print(f"new index:  {result['index']}")
        print(f"embeddings: {result['embeddings']}")
        print(f"manifest:   {result['manifest']}")
        print(f"report:     {result['report']}")
        md = report_dir / "report.md"
        if md.exists():
            head = [ln for ln in md.read_text().splitlines() if ln.startswith("|")][:8]
            print("\n".join(head))
    return result
