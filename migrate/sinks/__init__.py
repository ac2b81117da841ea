"""Sinks: where the finished vectors go (see :mod:`migrate.sinks.base`).

The FAISS + Parquet directory beside the shards is always built. Each further kind of
destination registers one line in ``SINKS`` (a URI scheme -> "module:Class").
"""

from __future__ import annotations

from typing import Any

from migrate.sinks.base import PlanFacts, Sink, SinkResult
from migrate.sinks.faiss_dir import FaissDirSink
from migrate.workspace import Manifest, Workspace

SINKS: dict[str, str] = {}


def open_sinks(ws: Workspace, manifest: Manifest) -> list[Any]:
    """The sinks a manifest asks for: the FAISS directory, then any destination it names."""
    sinks: list[Any] = [FaissDirSink(ws, manifest.index, normalized=bool(manifest.config.get("normalized", True)))]
    return sinks


__all__ = ["SINKS", "FaissDirSink", "PlanFacts", "Sink", "SinkResult", "open_sinks"]
