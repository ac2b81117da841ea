"""What the workspace asks of a sink when it finalizes or verifies an output (:mod:`migrate.workspace.lifecycle`).

The results live here, below the sinks, so the workspace never imports them: :class:`migrate.sinks.base.Sink`
returns these and so satisfies :class:`BuiltOutput`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class SinkResult:
    """What ``finalize`` produced: files to pin by checksum, and facts for the manifest."""

    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # file name -> {sha256, bytes}
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class SinkCheck:
    """What ``verify`` found: problems (empty when fine) and facts checked (counts, widths)."""

    problems: list[str] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)


class BuiltOutput(Protocol):
    """A sink as the workspace's finalize and verify use it."""

    name: str

    def finalize(self) -> SinkResult: ...

    def verify(self) -> SinkCheck: ...
