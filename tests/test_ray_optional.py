"""The Ray executor is an optional extra: without Ray the tool works and says what to install.

These tests need no Ray installation and start no cluster.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from migrate.errors import ConfigError
from migrate.shards import Shard


def test_missing_ray_is_a_config_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    from migrate.executors.ray_executor import make_ray_executor

    executor = make_ray_executor("auto")
    job = SimpleNamespace(config=None)
    with pytest.raises(ConfigError, match=r"jina-migrate\[ray\]"):
        executor(job, [Shard(0, 0, 1, "0" * 16)], None, None)


def test_nothing_to_do_needs_no_cluster(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    from migrate.executors.ray_executor import make_ray_executor

    assert make_ray_executor("auto")(SimpleNamespace(), [], None, None) is None  # returns before importing ray


@pytest.mark.parametrize("name,value", [("JINA_MIGRATE_RAY_WORKERS", "many"), ("JINA_MIGRATE_RAY_WORKERS", "0"),
                                        ("JINA_MIGRATE_RAY_GPUS_PER_WORKER", "one")])
def test_bad_knobs_are_refused(monkeypatch, name, value):
    from migrate.executors.ray_executor import make_ray_executor

    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        make_ray_executor("auto")


def test_secret_never_shows_in_repr():
    from migrate.secrets import Secret

    s = Secret("jina_abcdefghijklmnop")
    assert "jina_" not in repr(s) and "jina_" not in str(s) and "jina_" not in f"{[s]}"


def test_budget_frees_a_dead_workers_permits_and_not_its_successors():
    """The shared budget (used as a Ray actor) as plain asyncio: concurrency 1, worker w0 dies holding it."""
    import asyncio

    from migrate.executors.ray_limiter import RateBudget

    async def scenario() -> tuple[int, int, int, int]:
        budget = RateBudget(rpm=60_000, tpm=6_000_000, concurrency=1)
        held = await budget.acquire(10, "w0/100")  # the old process of worker w0
        waiting = asyncio.ensure_future(budget.acquire(10, "w0/100"))  # its next request, queued
        await asyncio.sleep(0.05)
        assert not waiting.done()  # the only slot is held
        freed = budget.release_owner("w0")
        queued_result = await asyncio.wait_for(waiting, 2)  # gets the slot, sees the owner is dead
        successor = await asyncio.wait_for(budget.acquire(10, "w0/200"), 2)  # the restarted process
        return freed, queued_result, successor, held

    freed, queued_result, successor, held = asyncio.run(scenario())
    assert freed == 1 and queued_result == -1 and successor > held
