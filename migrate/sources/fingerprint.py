"""Fingerprints of the source files: a changed file changes the plan, and ``run --plan`` refuses it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from migrate.atomic import sha256_file


def fingerprint_sources(paths: Iterable[Path | str | None]) -> list[dict[str, Any]]:
    """Path, size and sha256 of each source file; for a collection its address (no secret) and row count."""
    from migrate.engines import is_address

    out = []
    for p in paths:
        if p is None:
            continue
        if is_address(str(p)):
            out.append(_collection_print(str(p)))
            continue
        from migrate.sources.formats import format_files

        for f in format_files(p) or [Path(p)]:  # an index a framework saved: each of its files
            out.append({"path": str(f), "size": f.stat().st_size, "sha256": sha256_file(f)})
    return out


def _collection_print(address: str) -> dict[str, Any]:
    """A collection changes while it lives: its row count and the engine-side checksum over ids, vectors and
    payload (streamed, order-independent) stand for size and sha256, so an edited payload is noticed too."""
    from migrate.engines import collection_name, open_engine, parse_address

    addr = parse_address(address)
    collection = collection_name(addr)
    engine = open_engine(addr)
    try:
        info = engine.describe(collection)
        digest = engine.checksum(collection)
    finally:
        engine.close()
    return {"path": str(addr), "size": info.rows, "sha256": f"collection:{digest}"}
