"""Overlap (issue 19, part 2): loading the next shard, the model, and writing the previous shard run
as a pipeline with bounded queues; an error in any stage is one error and stops every stage.

``overlapped`` is tested with counting stages; the local executor with a counting document
source around the real one and the static stand-in model.
"""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import pytest

from migrate.errors import EmbeddingError, StateError
from migrate.executors.overlap import overlapped

STAGES_TIMEOUT = pytest.mark.timeout(30)  # a hang is a failure, not a stuck suite
EXECUTOR_TIMEOUT = pytest.mark.timeout(240)  # includes loading torch and the stand-in on a busy machine


class Boom(Exception):
    pass


def stage_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name in ("jina-migrate-load", "jina-migrate-store")]


def reach(counter: list, n: int, timeout: float = 15) -> int:
    """Wait (on a busy machine too) until ``counter`` holds ``n``, then a little longer: how many it holds."""
    deadline = time.monotonic() + timeout
    while len(counter) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # a stage that does not stop at its bound goes past it meanwhile
    return len(counter)


@STAGES_TIMEOUT
@pytest.mark.parametrize("ahead, behind", [(1, 1), (3, 2)])
def test_read_ahead_and_write_behind_are_bounded(ahead, behind):
    pulled, loaded, worked, stored = [], [], [], []
    release_work, release_store = threading.Event(), threading.Event()
    observed = {}

    def items():  # a counting source: how far the pipeline read
        for i in range(50):
            pulled.append(i)
            yield i

    def work(x):
        worked.append(x)
        release_work.wait()
        return x

    def store(x):
        release_store.wait()
        stored.append(x)

    def watch():
        # the model is stuck on item 0: the loader must stop at its bound
        observed["loaded_while_model_blocked"] = reach(loaded, 1 + ahead + 1)
        release_work.set()
        # now the writer is stuck on item 0: the model must stop at its bound, and the loader behind it
        observed["worked_while_store_blocked"] = reach(worked, 1 + behind + 1)
        observed["loaded_while_store_blocked"] = reach(loaded, (1 + behind + 1) + ahead + 1)
        release_store.set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    overlapped(items(), lambda i: loaded.append(i) or i, work, store, ahead=ahead, behind=behind)
    watcher.join()
    # one item in the model, `ahead` waiting, one being loaded (blocked handing it over)
    assert observed["loaded_while_model_blocked"] == 1 + ahead + 1
    # one item being stored, `behind` waiting, one worked (blocked handing it over)
    assert observed["worked_while_store_blocked"] == 1 + behind + 1
    assert observed["loaded_while_store_blocked"] == (1 + behind + 1) + ahead + 1  # at most ahead + behind + 3 alive
    assert stored == list(range(50)) and len(pulled) == 50
    assert not stage_threads()


@STAGES_TIMEOUT
def test_a_failed_load_is_raised_after_the_items_before_it_are_stored():
    err = Boom("cannot read shard 3")
    stored, loaded = [], []

    def load(i):
        loaded.append(i)
        if i == 3:
            raise err
        return i

    with pytest.raises(Boom) as got:
        overlapped(range(100), load, lambda x: x, stored.append)
    assert got.value is err  # the error itself, once, in the caller's thread
    assert stored == [0, 1, 2] and max(loaded) == 3  # nothing past the failure was loaded
    assert not stage_threads()


@STAGES_TIMEOUT
def test_a_failed_model_call_stops_loading_and_keeps_what_was_done():
    stored, loaded = [], []

    def work(x):
        if x == 2:
            raise EmbeddingError("local model failed on a batch of 8")
        return x

    with pytest.raises(EmbeddingError, match="failed on a batch"):
        overlapped(range(100), lambda i: loaded.append(i) or i, work, stored.append)
    assert stored == [0, 1]
    assert len(loaded) <= 2 + 1 + 1 + 1  # item 2, one waiting, one being loaded when it failed
    assert not stage_threads()


@STAGES_TIMEOUT
def test_a_failed_write_stops_the_model_and_the_loader():
    loaded, worked = [], []

    def store(x):
        if x == 1:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        overlapped(range(100), lambda i: loaded.append(i) or i, lambda x: worked.append(x) or x, store)
    assert len(worked) <= 1 + 1 + 1 + 1 and len(loaded) <= len(worked) + 2
    assert not stage_threads()


@STAGES_TIMEOUT
def test_ctrl_c_in_the_model_stops_the_pipeline():
    stored = []

    def work(x):
        if x == 3:
            raise KeyboardInterrupt
        return x

    with pytest.raises(KeyboardInterrupt):
        overlapped(range(100), lambda i: i, work, stored.append)
    assert stored == [0, 1, 2]
    time.sleep(0.3)  # the loader is not waited for on Ctrl-C, but it stops at its next step
    assert not stage_threads()


# ----------------------------------------------------------------------------- the local executor


class Instrumented:
    """The static stand-in with a counter of source reads at each model call; close() keeps it open."""

    def __init__(self, inner, reads, fail_at=None):
        self.inner, self.reads, self.fail_at = inner, reads, fail_at
        self.calls: list[int] = []  # source reads done when the model started each shard

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def embed_prepared(self, prepared):
        self.calls.append(len(self.reads))
        if self.fail_at is not None and len(self.calls) - 1 == self.fail_at:
            raise EmbeddingError("local model failed on a batch of 8: out of memory")
        time.sleep(0.2)  # a slow model: the loader has time to run as far ahead as it may
        return self.inner.embed_prepared(prepared)

    def close(self):
        pass


@pytest.fixture(scope="module")
def static():
    pytest.importorskip("static_model")
    from migrate.embed.local import LocalEmbedder

    emb = LocalEmbedder("standin:static", device="cpu")
    yield emb
    emb.close()


@pytest.fixture
def run_job(tmp_path, small_docs, monkeypatch):
    """Plan 96 sample documents in shards of 8; run them with a source that counts (and may fail) reads."""
    from migrate import pipeline
    from migrate.config import load_config
    from migrate.progress import NullReporter
    from migrate.step import StepContext

    reads: list[int] = []
    fail = {"at": None}
    real_source = StepContext.source

    class CountingSource:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def read(self, locs, ids):
            if fail["at"] is not None and len(reads) == fail["at"]:
                raise StateError(f"{small_docs}: document {ids[0]!r} changed since the run was planned")
            reads.append(len(ids))
            return self.inner.read(locs, ids)

    monkeypatch.setattr(StepContext, "source", lambda self: CountingSource(real_source(self)))

    def run(embedder):
        cfg = load_config({"docs": small_docs, "title_field": "title", "out": tmp_path / "out",
                           "model": "local:standin:static", "shard_size": 8}, environ={})
        job = pipeline.prepare(cfg)
        pipeline.commit(job, NullReporter())
        return job, pipeline.execute(job, lambda **_: embedder, NullReporter())

    return SimpleNamespace(run=run, reads=reads, fail=fail, out=tmp_path / "out")


@EXECUTOR_TIMEOUT
def test_executor_reads_ahead_of_the_model_within_its_bound(run_job, static):
    from migrate.executors.local import AHEAD

    emb = Instrumented(static, run_job.reads)
    job, summary = run_job.run(emb)
    assert summary["state"] == "complete" and summary["embedded"] == 96 and len(run_job.reads) == 12
    ahead_of_model = [n - (k + 1) for k, n in enumerate(emb.calls)]  # shards read beyond the one in the model
    assert max(ahead_of_model) <= AHEAD + 1  # one waiting, one being read: memory stays a few shards
    assert max(ahead_of_model) >= 1  # and the next shard was indeed read while the model worked
    assert not stage_threads()


@EXECUTOR_TIMEOUT
def test_executor_read_error_is_one_error_after_earlier_shards_are_written(run_job, static):
    run_job.fail["at"] = 3
    with pytest.raises(StateError, match="changed since the run was planned"):
        run_job.run(Instrumented(static, run_job.reads))
    assert_done(run_job.out, 3)


@EXECUTOR_TIMEOUT
def test_executor_model_error_is_one_error_after_earlier_shards_are_written(run_job, static):
    with pytest.raises(EmbeddingError, match="out of memory"):
        run_job.run(Instrumented(static, run_job.reads, fail_at=2))
    assert len(run_job.reads) <= 2 + 1 + 2  # the failing shard, one waiting, one being read
    assert_done(run_job.out, 2)


def assert_done(out, n):
    """Exactly the first ``n`` shards are complete on disk; no stage thread is left."""
    from migrate.workspace import Workspace

    ws = Workspace(out)
    shards = ws.manifest().shard_plan().shards
    done = [ws.is_complete(s) for s in shards]
    assert done == [True] * n + [False] * (len(shards) - n), done
    assert all(json.loads(ws.record_path(s).read_text())["rows"] == 8 for s in shards[:n])
    assert not stage_threads()
