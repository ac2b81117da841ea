"""Fault matrix against the local server: every fault kind alone and mixed, at rising rates.

The harness is ``bench/fault_matrix.py``. Each cell must end ``identical`` to the fault-free run,
or ``stopped`` with a one-line ``EmbeddingError`` after which a resume against a healthy server is
identical and redoes no finished shard. The default suite runs each kind at 30%, two kinds at
100% and mixed faults at 10/30/60%; ``--slow`` runs every kind at 10/30/60/100% and mixed to 90%.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from reliability_util import needs_static

pytest_plugins = ["reliability_plugin"]

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
fault_matrix = pytest.importorskip("fault_matrix")


def _record(reliability, report: dict) -> None:
    for c in report["cells"]:
        if c["outcome"] == "identical":
            outcome = (f"retried ({c['retries']} retries for {sum(c['injected'].values())} injected faults); "
                       f"result identical; {c['billed_extra']} tokens billed beyond one pass")
        else:
            outcome = (f"stopped with message `{c['message'][:90]}`; resume on a healthy server identical "
                       f"({c['shards_done_at_stop']} finished shards kept, {c['shards_redone_on_resume']} redone)")
        reliability.add("API faults", f"{c['name']} of {report['docs']} docs "
                        f"(injected: {', '.join(f'{k}x{v}' for k, v in c['injected'].items()) or 'none'})",
                        1, outcome)


def _check(report: dict) -> None:
    bad = [c for c in report["cells"] if not (
        c["outcome"] == "identical"
        or (c["outcome"] == "stopped" and c["resumed_identical"] and c["shards_redone_on_resume"] == 0
            and "\n" not in c["message"] and "still failing" in c["message"]))]
    assert not bad, bad
    for c in report["cells"]:
        kind_rate = c["name"]
        if c["outcome"] == "identical" and c["injected"]:
            assert c["retries"] >= sum(c["injected"].values()) - 1, c  # each fault answered by a retry
        if kind_rate.endswith("@ 100%"):
            assert c["outcome"] == "stopped", c
    assert report["ok"]


@needs_static
def test_fault_matrix_fast(tmp_path, reliability):
    report = fault_matrix.run_matrix(full=False, work=tmp_path, n_docs=48, log=lambda *_: None)
    _check(report)
    assert sum(c["outcome"] == "identical" for c in report["cells"]) >= 9
    _record(reliability, report)


@pytest.mark.slow
@needs_static
def test_fault_matrix_full(tmp_path, reliability):
    report = fault_matrix.run_matrix(full=True, work=tmp_path, n_docs=48, log=lambda *_: None)
    _check(report)
    _record(reliability, report)
