"""SIGKILL at seeded random moments and at every write phase; each resume ends identical to a clean run.

The harness is ``bench/crash_test.py`` (also a script); see its docstring for every check. The
default suite runs a fast subset (API backend against the local server, one kill per required
phase); ``--slow`` runs the full seeded schedule (>= 20 kills) for the local and the API backend.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from reliability_util import needs_static

pytest_plugins = ["reliability_plugin"]

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
crash_test = pytest.importorskip("crash_test")

FAST_PHASES = ["manifest-before:1", "shard-partial:1", "record-before:1", "random", "build:1", "index-before:1",
               "embeddings-after:1", "manifest-after:1"]


def _rows(reliability, report: dict, label: str) -> None:
    c = report["checks"]
    same = (f"resumed every time; final output identical (ids once, vectors bit-identical, faiss ids, "
            f"tokens {report['reference']['tokens_total']}), verify clean, no temp files")
    if "billed_bound" in c:
        same += (f"; completed shards never re-billed, {c['billed_beyond_one_pass']} tokens billed beyond one pass "
                 f"(in-flight shards + probes, bound {c['billed_bound']})")
    reliability.add("Crash", f"SIGKILL, {label}: {report['kills']} kills in {len(report['attempts'])} attempts "
                    f"({report['docs']} docs, {report['reference']['shards']} shards, seed {report['seed']})",
                    report["kills"], same + f" [{report['seconds']} s]")
    groups = {"shard write": ("shard-partial", "shard-before", "shard-after", "record-before", "record-after"),
              "manifest update": ("manifest-before", "manifest-after"), "index build": ("build", "index-before",
                                                                                         "index-after"),
              "finalize": ("embeddings-before", "embeddings-after", "idmap-before"), "random moment": ("random",)}
    for name, phases in groups.items():
        n = sum(report["phases_killed"].get(p, 0) for p in phases)
        hit = sorted(p for p in phases if report["phases_killed"].get(p))
        reliability.add("Crash", f"SIGKILL during {name}, {label}", n, "resumed, identical (" + ", ".join(hit) + ")")


def _assert_ok(report: dict) -> None:
    c = report["checks"]
    assert not report["problems"], report["problems"]
    assert c["final_exit"] == 0 and c["final_state"] == "complete"
    assert c["ids_identical"] and c["ids_unique"] and c["faiss_ids_identical"]
    assert c["vectors_identical"], c["max_abs_diff"]
    assert c["tokens_total_equal"] and c["verify_ok"], c["verify_problems"]
    assert c["temp_files_left"] == []
    assert c.get("billing_within_bound", True), c
    assert report["ok"]


@needs_static
def test_crash_fast_subset_api_backend(tmp_path, reliability):
    report = crash_test.crash_test("api", kills=len(FAST_PHASES), seed=3, work=tmp_path, n_docs=24, shard_size=4,
                                   phases=FAST_PHASES, log=lambda *_: None)
    _assert_ok(report)
    for phase in ("manifest-before", "shard-partial", "record-before", "build", "index-before", "embeddings-after"):
        assert report["phases_killed"].get(phase), (phase, report["phases_killed"])
    assert report["kills"] >= len(FAST_PHASES) - 1  # the random kill may land after the run ended
    _rows(reliability, report, "API backend, fast subset")


@pytest.mark.slow
@needs_static
@pytest.mark.parametrize("backend", ["local", "api"])
def test_crash_full_20_kills(backend, tmp_path, reliability):
    report = crash_test.crash_test(backend, kills=20, seed=7, work=tmp_path, n_docs=96, shard_size=4,
                                   log=lambda *_: None)
    _assert_ok(report)
    assert report["kills"] >= 20
    for group in (("shard-partial", "shard-before", "shard-after", "record-before", "record-after"),
                  ("manifest-before", "manifest-after"), ("build", "index-before", "index-after"),
                  ("embeddings-before", "embeddings-after", "idmap-before")):
        assert any(report["phases_killed"].get(p) for p in group), (group, report["phases_killed"])
    _rows(reliability, report, f"{'local' if backend == 'local' else 'API'} backend, full seeded run")
