"""Progress display: rich bars on a terminal, JSON lines otherwise (CI, ``--json``).

The runner emits events; a reporter renders them. JSON lines go to stdout, one object
per line, so a CI job can ``jq`` them; human output goes to stderr. Whether a command
speaks JSON lines is decided once (``json_lines``): ``--json``, or stdout is not a
terminal. Then nothing else may be written to stdout (a human summary goes to stderr).
"""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from rich.progress import TaskID


class Reporter(Protocol):
    def start(self, *, shards: int, rows: int, done_shards: int, done_rows: int) -> None: ...
    def shard_done(self, record: dict[str, Any]) -> None: ...
    def event(self, name: str, **fields: Any) -> None: ...
    def finish(self, summary: dict[str, Any]) -> None: ...


class _Rates:
    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.rows = 0
        self.tokens = 0
        self.total_rows = 0
        self.done_rows = 0

    def add(self, rows: int, tokens: int) -> dict[str, float | None]:
        self.rows += rows
        self.tokens += tokens
        self.done_rows += rows
        dt = max(time.monotonic() - self.t0, 1e-9)
        docs_s = self.rows / dt
        left = max(self.total_rows - self.done_rows, 0)
        return {"docs_per_s": round(docs_s, 2), "tokens_per_s": round(self.tokens / dt, 1),
                "eta_s": round(left / docs_s, 1) if docs_s > 0 else None}


class JsonReporter:
    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stdout
        self.rates = _Rates()

    def _emit(self, obj: dict[str, Any]) -> None:
        self.stream.write(json.dumps(obj, default=str) + "\n")
        self.stream.flush()

    def start(self, *, shards: int, rows: int, done_shards: int, done_rows: int) -> None:
        self.rates.total_rows, self.rates.done_rows = rows, done_rows
        self._emit({"event": "start", "shards": shards, "rows": rows, "done_shards": done_shards,
                    "done_rows": done_rows})

    def shard_done(self, record: dict[str, Any]) -> None:
        rates = self.rates.add(record.get("docs", record["rows"]), record.get("tokens", 0))
        keys = ("shard", "docs", "rows", "tokens", "embedded", "cached", "node", "worker")
        self._emit({"event": "shard_done", **{k: record[k] for k in keys if k in record}, **rates})

    def event(self, name: str, **fields: Any) -> None:
        self._emit({"event": name, **fields})

    def finish(self, summary: dict[str, Any]) -> None:
        self._emit({"event": "finish", **summary})


class RichReporter:
    """Live bar with docs/s, tokens/s and ETA on stderr."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = Console(stderr=True)
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=self.console,
                                 transient=False)
        self.rates = _Rates()
        self.task: TaskID | None = None

    def start(self, *, shards: int, rows: int, done_shards: int, done_rows: int) -> None:
        self.rates.total_rows, self.rates.done_rows = rows, done_rows
        if done_shards:
            self.console.print(f"resuming: {done_shards}/{shards} shards already done ({done_rows} rows)")
        self.progress.start()
        self.task = self.progress.add_task("embedding", total=rows, completed=done_rows, rate="")

    def shard_done(self, record: dict[str, Any]) -> None:
        docs = record.get("docs", record["rows"])
        r = self.rates.add(docs, record.get("tokens", 0))
        if self.task is None:
            return
        self.progress.update(self.task, advance=docs,
                             rate=f"{r['docs_per_s']:.1f} docs/s  {r['tokens_per_s']:.0f} tok/s")

    def event(self, name: str, **fields: Any) -> None:
        msg = fields.get("message") or " ".join(f"{k}={v}" for k, v in fields.items())
        self.console.print(f"[dim]{name}[/dim] {msg}")

    def finish(self, summary: dict[str, Any]) -> None:
        if self.task is not None:
            self.progress.stop()


class NullReporter:
    def start(self, **_: Any) -> None: ...
    def shard_done(self, record: dict[str, Any]) -> None: ...
    def event(self, name: str, **fields: Any) -> None: ...
    def finish(self, summary: dict[str, Any]) -> None: ...


def json_lines(json_flag: bool, stream=None) -> bool:
    """True when a command's stdout carries JSON lines: ``--json``, or stdout is not a terminal
    (piped into ``jq``, redirected to a file)."""
    stream = stream or sys.stdout
    return bool(json_flag) or not stream.isatty()


def make_reporter(json_mode: bool) -> Reporter:
    """JSON lines on stdout when ``json_mode`` (see ``json_lines``), else progress bars on stderr
    (plain lines when stderr is not a terminal: rich degrades by itself)."""
    if json_mode:
        return JsonReporter()
    return RichReporter()
