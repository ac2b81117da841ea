"""Where finished vectors go: the ``Sink`` protocol.

A sink receives the migration's vectors from the output directory (the
:class:`~migrate.workspace.Workspace`), never from the embedder: shards are the single
source of truth, so any sink can be (re)built or verified from them. The FAISS + Parquet
directory is the default sink; a vector database collection is another. Adding a sink
touches its own module plus one line in ``migrate.sinks.SINKS``.

Lifecycle, called by the pipeline:

* ``check(plan)`` before anything is embedded: refuse parameters that cannot work
  (index settings against the corpus size and the vectors' width, an unreachable
  destination), so no money is spent on a run that would fail at the end.
* ``write_shard(shard, table)`` after each shard is written (databases upsert it; the
  FAISS directory does nothing until the end). Must be idempotent.
* ``finalize()`` once every shard is done: build what is left (files, indexes), return
  the outputs to pin in the manifest.
* ``verify()`` re-checks a finished sink against the shards; returns the problems found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa

from migrate.precision import VectorFormat
from migrate.shards import Shard
from migrate.workspace.outputs import SinkCheck, SinkResult


@dataclass
class PlanFacts:
    """What a sink may check before embedding."""

    documents: int  # planned documents
    dimensions: int | None  # output width when known before embedding (explicit, or the backend's)
    chunked: bool = False
    vector_format: VectorFormat | None = None  # how the vectors will be stored (``--precision``); None: float32


class Sink(Protocol):
    """A destination of the finished vectors (its ``finalize`` and ``verify`` make it a workspace ``BuiltOutput``)."""

    name: str

    def describe(self) -> dict[str, Any]: ...

    def check(self, facts: PlanFacts) -> None: ...

    def write_shard(self, shard: Shard, table: pa.Table) -> None: ...

    def finalize(self) -> SinkResult: ...

    def verify(self) -> SinkCheck: ...


__all__ = ["PlanFacts", "Sink", "SinkCheck", "SinkResult"]
