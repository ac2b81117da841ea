"""Executors: where the shard step runs. ``local`` (this process) or ``ray`` (an existing Ray cluster).

One line per executor in ``EXECUTORS``; each is built by ``make_executor(name, **options)``.
"""

from __future__ import annotations

from typing import Any

from migrate.errors import ConfigError
from migrate.executors.base import Budget, EmbedderFactory, Executor, Job

EXECUTORS = {"local": "migrate.executors.local:local_executor", "ray": "migrate.executors.ray_executor:make_ray_executor"}


def make_executor(name: str, **options: Any) -> Executor:
    import importlib

    target = EXECUTORS.get(name)
    if target is None:
        raise ConfigError(f"unknown executor {name!r}", hint=f"use {' or '.join(EXECUTORS)}")
    module, _, attr = target.partition(":")
    obj = getattr(importlib.import_module(module), attr)
    return obj(**options) if name != "local" else obj


__all__ = ["Budget", "EXECUTORS", "EmbedderFactory", "Executor", "Job", "make_executor"]
