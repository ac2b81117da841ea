"""Crash-safe file writes: write to a temp file in the same directory, fsync, rename.

A reader never sees a half-written file under its final name, and a file that
exists under its final name was fully flushed to disk before it got that name.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from migrate.errors import StateError

TMP_PREFIX = ".tmp-"

#: OS errors a user fixes by freeing space or picking a writable place; reported in one line.
_ENV_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
               errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
               errno.EPERM: "permission denied", errno.EFBIG: "the file is too large for this file system"}


def write_failed(path: Path, exc: OSError) -> StateError:
    """A one-line error for a write the environment refused (disk full, read-only, no permission)."""
    why = _ENV_ERRNOS.get(exc.errno or -1, exc.strerror or type(exc).__name__)
    return StateError(f"{path}: cannot write: {why}",
                      hint="free space or make the output directory writable, then run the same command "
                           "again to resume (finished shards are kept)")


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


def _file_mode(private: bool) -> int:
    """0600 for files that hold secrets; otherwise what the umask gives a new file (as ``open`` would)."""
    if private:
        return 0o600
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_path(final: Path | str, *, private: bool = False) -> Iterator[Path]:
    """Yield a temp path next to ``final``; on success fsync it and rename it into place.

    On any exception the temp file is removed and ``final`` is left untouched. The file gets the
    umask's permissions (``mkstemp`` would make every output 0600), or 0600 when ``private``.
    """
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX + final.name + ".", dir=final.parent)
    except OSError as exc:
        if exc.errno in _ENV_ERRNOS:
            raise write_failed(final, exc) from None
        raise
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, _file_mode(private))
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        fsync_dir(final.parent)
    except BaseException as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(exc, OSError) and exc.errno in _ENV_ERRNOS:
            raise write_failed(final, exc) from None
        if isinstance(exc, Exception) and not isinstance(exc, OSError) and _disk_full_cause(exc):
            raise write_failed(final, OSError(errno.ENOSPC, "No space left on device")) from None
        raise


def _disk_full_cause(exc: BaseException) -> bool:
    """Writers like pyarrow and faiss wrap ENOSPC in their own exception types; recognise it by text."""
    text = str(exc).lower()
    return "no space left on device" in text or "errno 28" in text or "disk quota exceeded" in text


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


def clean_temp_files(directory: Path, older_than_s: float | None = None) -> int:
    """Remove temp files left by a crash (only those older than ``older_than_s`` if given)."""
    import time

    n = 0
    if directory.is_dir():
        now = time.time()
        for p in directory.glob(TMP_PREFIX + "*"):
            try:
                if older_than_s is not None and now - p.stat().st_mtime < older_than_s:
                    continue
            except OSError:
                continue
            p.unlink(missing_ok=True)
            n += 1
    return n