"""A 200,000-document migration under a memory cap: planning, embedding and finalize stream.

The cap is set from the same process's own floor: a 1,000-document run of the same command
(the imports, the static stand-in model and the engine's buffers). The big run may use at most
``HEADROOM`` more than that: version 0.1 needed about 2.4 KB per document on top (Python lists of
every id, text and hash, and three copies of every vector at finalize), i.e. ~480 MB more at 200k,
and is stopped by this cap; the streaming pipeline holds one shard plus ~60 bytes per document.

The cap is enforced on the kernel's own peak-RSS record (``VmHWM``), polled while the child runs
(it is killed as soon as it crosses the cap) and checked again from ``wait4`` at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import REPO

pytest.importorskip("static_model")

HEADROOM = 250 * 2**20
WORDS = np.array("tent stove sleeping bag jacket boots trail rain warm pack light frame zip seam wash dry store "
                 "return order refund size fit care repair warranty down synthetic insulation layer".split(),
                 dtype=object)


def corpus(path: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    schema = pa.schema([("id", pa.string()), ("text", pa.string())])
    with pq.ParquetWriter(path, schema) as w:
        for start in range(0, n, 50_000):
            m = min(50_000, n - start)
            picks = WORDS[rng.integers(0, len(WORDS), size=(m, 20))]
            w.write_table(pa.table({"id": [f"doc-{i}" for i in range(start, start + m)],
                                    "text": [" ".join(r) for r in picks]}, schema=schema))
    return path


def peak_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return 0


def run_capped(args: list[str], cap: int | None) -> tuple[int, int, str]:
    """(exit code, peak RSS bytes, stderr tail) of `python -m migrate ARGS`, killed if its peak crosses ``cap``."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    err_path = Path(args[args.index("--out") + 1] + ".stderr")
    with open(err_path, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "migrate", *args], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
        crossed = threading.Event()

        def watch() -> None:
            while proc.poll() is None:
                if cap is not None and peak_of(proc.pid) > cap:
                    crossed.set()
                    proc.send_signal(signal.SIGKILL)
                    return
                time.sleep(0.02)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        watcher.join()
    tail = err_path.read_text()[-1500:]
    if crossed.is_set():
        tail = f"killed: peak RSS crossed the cap of {cap / 2**20:.0f} MB\n" + tail
    return proc.returncode, usage.ru_maxrss * 1024, tail


def test_two_hundred_thousand_documents_under_a_memory_cap(tmp_path):
    small = corpus(tmp_path / "small.parquet", 1_000)
    big = corpus(tmp_path / "big.parquet", 200_000)
    common = ["--model", "local:standin:static", "--shard-size", "10000", "--json"]
    rc, floor, tail = run_capped(["run", "--docs", str(small), "--out", str(tmp_path / "small"), *common], None)
    assert rc == 0, tail
    cap = floor + HEADROOM
    rc, peak, tail = run_capped(["run", "--docs", str(big), "--out", str(tmp_path / "big"), *common], cap)
    assert rc == 0, tail
    assert peak <= cap, f"peak {peak / 2**20:.0f} MB over the cap {cap / 2**20:.0f} MB (floor {floor / 2**20:.0f} MB)"
    verify = subprocess.run([sys.executable, "-m", "migrate", "verify", "--out", str(tmp_path / "big"), "--json"],
                            cwd=REPO, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert verify.returncode == 0, verify.stdout[-2000:] + verify.stderr[-2000:]
    print(f"floor {floor / 2**20:.0f} MB, 200k peak {peak / 2**20:.0f} MB, cap {cap / 2**20:.0f} MB")
