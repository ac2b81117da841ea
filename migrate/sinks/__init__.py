"""Sinks: where the finished vectors go (see :mod:`migrate.sinks.base`).

The FAISS + Parquet directory beside the shards is always built. Each further kind of
destination registers one line in ``SINKS`` (a URI scheme -> "module:Class").
"""

from __future__ import annotations

from typing import Any

from migrate.sinks.base import PlanFacts, Sink, SinkResult
from migrate.sinks.faiss_dir import FaissDirSink
from migrate.workspace import Manifest, Workspace

#: kind of destination -> "module:Class" (one line each; imported when used).
SINKS: dict[str, str] = {"collection": "migrate.sinks.database:CollectionSink"}


def open_sinks(ws: Workspace, manifest: Manifest, documents: Any = None) -> list[Any]:
    """The sinks a manifest asks for: the FAISS directory, then each database destination it names.

    ``documents`` (a DocumentSpec) gives a destination the documents' text as payload when the
    source is a file (a source collection's own payload is used otherwise).
    """
    import importlib

    sinks: list[Any] = [FaissDirSink(ws, manifest.index, normalized=bool(manifest.config.get("normalized", True)))]
    if not manifest.sinks:
        return sinks
    module, _, name = SINKS["collection"].partition(":")
    cls = getattr(importlib.import_module(module), name)
    for spec in manifest.sinks:
        sinks.append(cls(ws, spec.uri, manifest.index, run=manifest.run_id, payload_from=spec.payload_from,
                         documents=None if spec.payload_from else documents, delete_missing=spec.delete_missing))
    return sinks


__all__ = ["SINKS", "FaissDirSink", "PlanFacts", "Sink", "SinkResult", "open_sinks"]
