"""Crash-safe file writes: write to a temp file in the same directory, fsync, rename.

A reader never sees a half-written file under its final name, and a file that
exists under its final name was fully flushed to disk before it got that name.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TMP_PREFIX = ".tmp-"


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename inside it survives power loss."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(final: Path | str) -> Iterator[Path]:
    """Yield a temp path next to ``final``; on success fsync it and rename it into place.

    On any exception the temp file is removed and ``final`` is left untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX + final.name + ".", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        fsync_dir(final.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(final: Path | str, data: bytes) -> None:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)


def write_text(final: Path | str, text: str) -> None:
    write_bytes(final, text.encode("utf-8"))


def write_json(final: Path | str, obj: Any) -> None:
    write_text(final, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_with(final: Path | str, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and atomically publish what it wrote."""
    with atomic_path(final) as tmp:
        writer(tmp)


def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def clean_temp_files(directory: Path) -> int:
    """Remove temp files left by a crash; returns how many were removed."""
    n = 0
    if directory.is_dir():
        for p in directory.glob(TMP_PREFIX + "*"):
            p.unlink(missing_ok=True)
            n += 1
    return n
