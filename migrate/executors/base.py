"""Executors run the shard step; they differ only in where (this process, a Ray cluster).

In the spirit of datatrove, the step (:func:`migrate.step.run_shard`) knows nothing of
executors, and an executor knows nothing of embedding: it gets a :class:`Job` and a list
of pending shards, runs the step for each, reports every completion record, and honours
the token budget. Completion records on disk are the truth: a resumed run, or a run
finished by another executor, counts what is there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from migrate.config import RunConfig
from migrate.embed.base import Embedder
from migrate.errors import BudgetExceeded
from migrate.progress import Reporter
from migrate.shards import Shard, ShardPlan
from migrate.step import StepContext
from migrate.workspace import Workspace

#: Builds the embedder where the step runs. Keyword overrides (``api_key``, ``limiter``) come from the executor.
EmbedderFactory = Callable[..., Embedder]


@dataclass
class Budget:
    """Stop before a token budget (``--max-tokens`` / ``--max-cost``) would be exceeded."""

    max_tokens: int | None
    spent: int = 0

    def check_before(self, estimate: int) -> None:
        if self.max_tokens is not None and self.spent + estimate > self.max_tokens:
            raise BudgetExceeded(f"token budget reached: {self.spent} spent, next shard needs about {estimate} "
                                 f"(limit {self.max_tokens})", hint="raise --max-tokens/--max-cost and rerun to resume")


@dataclass
class Job:
    """Everything an executor needs to run shards of one migration."""

    ctx: StepContext
    plan: ShardPlan
    make_embedder: EmbedderFactory
    cache_dirs: list[Path] = field(default_factory=list)
    #: The driver records how vectors are made (the embedder's info) and the executor's summary in the manifest.
    on_embedder: Callable[[dict[str, Any]], None] = lambda info: None
    on_executor: Callable[[dict[str, Any]], None] = lambda info: None

    @property
    def config(self) -> RunConfig:
        return self.ctx.config

    @property
    def ws(self) -> Workspace:
        return Workspace(Path(self.ctx.out))

    def is_done(self, shard: Shard) -> bool:
        return self.ws.is_complete(shard, self.ctx.config_fingerprint)


class Executor(Protocol):
    def __call__(self, job: Job, shards: list[Shard], reporter: Reporter, budget: Budget) -> None: ...


def estimate_tokens(records: list[dict[str, Any]], rows: int) -> int:
    """Tokens the next shard of ``rows`` documents will likely cost, from the shards done so far."""
    embedded = sum(int(r.get("embedded", 0)) for r in records)
    if not embedded:
        return 0
    return int(sum(int(r.get("tokens", 0)) for r in records) / embedded * rows)
