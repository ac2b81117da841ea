"""Fault matrix: migrations through the ``jina-api`` client against the local server under injected faults.

What: for each cell (one fault kind alone, or all kinds mixed, at a rate), start the local
Jina-compatible server with that seeded fault configuration, run a real migration (the library's
``prepare`` + ``execute``, the same path ``jina-migrate run`` takes) and classify the outcome:

* ``identical``: finished, and ids, vectors and token total equal the fault-free run;
* ``stopped``: the client gave up with a clear ``EmbeddingError`` (one line). The state must be
  resumable: the same migration resumed against a healthy server finishes ``identical`` and the
  shards finished before the stop are not embedded again;
* anything else (a wrong or missing vector, a duplicate, a traceback) is a failure.

Each row records the faults the server injected, the client's retries, and the tokens billed
beyond one clean pass (billed faults like a dropped connection are paid again on retry).

Usage::

    python bench/fault_matrix.py [--full] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

KEY_ENV = "JINA_MIGRATE_FAULT_MATRIX_KEY"
KINDS = ("p429", "p500", "p503", "drop", "slow", "truncated", "wrong_count")


@dataclass
class Cell:
    name: str
    faults: dict[str, float]
    outcome: str = ""
    injected: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    requests: int = 0
    billed_extra: int = 0
    message: str = ""
    resumed_identical: bool | None = None
    shards_done_at_stop: int = 0
    shards_redone_on_resume: int = 0
    seconds: float = 0.0


def cells(full: bool) -> list[Cell]:
    rates = (0.1, 0.3, 0.6, 1.0) if full else (0.3,)
    out = [Cell(f"{k.lstrip('p') if k.startswith('p') else k} @ {r:.0%}", {k: r}) for k in KINDS for r in rates]
    if not full:
        out += [Cell(f"{k.lstrip('p')} @ 100%", {k: 1.0}) for k in ("p503", "truncated")]
    for r in ((0.1, 0.3, 0.6, 0.9) if full else (0.1, 0.3, 0.6)):
        out.append(Cell(f"mixed @ {r:.0%}", {k: r / len(KINDS) for k in KINDS}))
    return out


def _make_embedder(base_url: str):
    from migrate.embed.registry import get_embedder

    def make():
        emb = get_embedder("jina-api:jina-embeddings-v3", base_url=base_url, api_key_env=KEY_ENV, tier="tier2",
                           timeout=0.5, backoff_max_s=0.05, max_retries=5, max_request_tokens=300)
        emb.probe(task="text-matching")
        return emb

    return make


def _migrate(docs: Path, out: Path, base_url: str) -> tuple[dict[str, Any], Any]:
    """One migration (prepare + execute); returns (summary, the embedder used, for its stats)."""
    from migrate import pipeline
    from migrate.progress import NullReporter
    from migrate.config import load_config

    made: list[Any] = []
    make = _make_embedder(base_url)

    def factory(**_):
        made.append(make())
        return made[-1]

    cfg = load_config({"docs": docs, "out": out, "model": "jina-api:jina-embeddings-v3", "shard_size": 8,
                       "base_url": base_url, "api_key_env": KEY_ENV})
    job = pipeline.prepare(cfg)
    pipeline.commit(job, NullReporter())
    summary = pipeline.execute(job, factory)
    return summary, (made[-1] if made else None)


def _vectors(out: Path):
    import numpy as np
    import pyarrow.parquet as pq

    t = pq.read_table(out / "embeddings.parquet")
    return t.column("id").to_pylist(), np.asarray(t.column("vector").to_pylist(), dtype=np.float32)


def _records(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (out / "shards").glob("*.done.json")} if (out / "shards").is_dir() else {}


def run_matrix(full: bool = False, work: Path | None = None, n_docs: int = 48, seed: int = 5,
               log=print) -> dict[str, Any]:
    import numpy as np

    from migrate.errors import EmbeddingError, MigrateError
    from migrate.rehearsal.faults import FaultConfig
    from migrate.rehearsal.run import run_server

    work = Path(work or tempfile.mkdtemp(prefix="fault-matrix-"))
    work.mkdir(parents=True, exist_ok=True)
    lines = (REPO / "fixtures" / "sample" / "docs.jsonl").read_text(encoding="utf-8").splitlines()[:n_docs]
    docs = work / "docs.jsonl"
    docs.write_text("\n".join(lines) + "\n", encoding="utf-8")
    old_key = os.environ.get(KEY_ENV)
    t_all = time.monotonic()
    try:
        with run_server(fast=True) as clean:
            os.environ[KEY_ENV] = clean.api_key
            ref_summary, _ = _migrate(docs, work / "ref", clean.base_url)
        ref_ids, ref_vecs = _vectors(work / "ref")
        results = []
        for cell in cells(full):
            t0 = time.monotonic()
            out = work / ("cell-" + "".join(c if c.isalnum() else "-" for c in cell.name))
            shutil.rmtree(out, ignore_errors=True)
            faults = FaultConfig(**cell.faults, slow_s=1.0, retry_after_s=0.05, seed=seed)
            with run_server(fast=True, faults=faults) as h:
                os.environ[KEY_ENV] = h.api_key
                try:
                    summary, emb = _migrate(docs, out, h.base_url)
                    ids, vecs = _vectors(out)
                    same = (ids == ref_ids and np.array_equal(vecs, ref_vecs)
                            and summary["tokens_total"] == ref_summary["tokens_total"])
                    cell.outcome = "identical" if same else "WRONG RESULT"
                    if emb is not None:
                        # a request that timed out is sent again in halves: a split answers a fault too
                        cell.retries, cell.requests = emb.stats.retries + emb.stats.splits, emb.stats.requests
                except EmbeddingError as exc:
                    cell.outcome = "stopped"
                    cell.message = str(exc)
                except MigrateError as exc:  # any other user-facing stop is not expected here
                    cell.outcome = f"UNEXPECTED {type(exc).__name__}"
                    cell.message = str(exc)
                usage = h.usage()
            cell.injected = {k: v for k, v in usage["faults"].items() if v}
            cell.billed_extra = int(usage["total_tokens"]) - int(ref_summary["tokens_total"])
            if cell.outcome == "stopped":
                before = _records(out)
                cell.shards_done_at_stop = len(before)
                with run_server(fast=True) as healthy:
                    os.environ[KEY_ENV] = healthy.api_key
                    summary, _ = _migrate(docs, out, healthy.base_url)
                ids, vecs = _vectors(out)
                after = _records(out)
                cell.shards_redone_on_resume = sum(1 for k, v in before.items() if after.get(k) != v)
                cell.resumed_identical = (ids == ref_ids and np.array_equal(vecs, ref_vecs)
                                          and summary["tokens_total"] == ref_summary["tokens_total"]
                                          and summary["shards_skipped"] == len(before))
            cell.seconds = round(time.monotonic() - t0, 2)
            results.append(cell)
            log(f"{cell.name:18s} {cell.outcome:10s} injected={cell.injected} retries={cell.retries} "
                f"extra_billed={cell.billed_extra} {cell.message[:100]}"
                + (f" resumed_identical={cell.resumed_identical}" if cell.outcome == "stopped" else ""))
    finally:
        if old_key is None:
            os.environ.pop(KEY_ENV, None)
        else:
            os.environ[KEY_ENV] = old_key
    ok = all(c.outcome == "identical" or (c.outcome == "stopped" and c.resumed_identical
                                          and c.shards_redone_on_resume == 0 and "\n" not in c.message)
             for c in results)
    return {"ok": ok, "cells": [asdict(c) for c in results], "reference_tokens": ref_summary["tokens_total"],
            "docs": len(lines), "seconds": round(time.monotonic() - t_all, 1), "work": str(work)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true", help="every kind at 10/30/60/100%% and mixed up to 90%%")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    report = run_matrix(full=args.full, log=(lambda *_: None) if args.json else print)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{'OK' if report['ok'] else 'FAILED'}: {len(report['cells'])} cells in {report['seconds']} s")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
