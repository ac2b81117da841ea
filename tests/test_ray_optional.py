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
    job = SimpleNamespace(texts=["a"], config=None)
    with pytest.raises(ConfigError, match=r"jina-migrate\[ray\]"):
        executor(job, [Shard(0, 0, 1, "0" * 16)], lambda: None, None, None)


def test_nothing_to_do_needs_no_cluster(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    from migrate.executors.ray_executor import make_ray_executor

    assert make_ray_executor("auto")(SimpleNamespace(texts=[]), [], lambda: None, None, None) == []


@pytest.mark.parametrize("name,value", [("JINA_MIGRATE_RAY_WORKERS", "many"), ("JINA_MIGRATE_RAY_WORKERS", "0"),
                                        ("JINA_MIGRATE_RAY_GPUS_PER_WORKER", "one")])
def test_bad_knobs_are_refused(monkeypatch, name, value):
    from migrate.executors.ray_executor import make_ray_executor

    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        make_ray_executor("auto")


def test_secret_never_shows_in_repr():
    from migrate.executors.ray_worker import Secret

    s = Secret("jina_abcdefghijklmnop")
    assert "jina_" not in repr(s) and "jina_" not in str(s) and "jina_" not in f"{[s]}"
