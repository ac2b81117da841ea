"""Fingerprints of the source files: a changed file changes the plan, and ``run --plan`` refuses it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from migrate.atomic import sha256_file


def fingerprint_sources(paths: Iterable[Path | str | None]) -> list[dict[str, Any]]:
    """Path, size and sha256 of each source file."""
    out = []
    for p in paths:
        if p is None:
            continue
        p = Path(p)
        out.append({"path": str(p), "size": p.stat().st_size, "sha256": sha256_file(p)})
    return out
