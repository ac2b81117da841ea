"""Overlap the stages of a run: load the next item and store the previous one while this one is worked.

``overlapped(items, load, work, store, ahead=1, behind=1)``:

* a loader thread calls ``load(item)`` for each item, in order, and hands the results over a
  queue of ``ahead`` slots: at most ``ahead`` loaded items wait, plus the one being loaded;
* the calling thread calls ``work`` on each loaded item, in order (the model runs there: torch's
  threads and a CUDA context stay with the thread that made them, and Ctrl-C arrives there);
* a storer thread calls ``store`` on each result, in order, over a queue of ``behind`` slots.

Memory: at most ``ahead + behind + 3`` items are alive at once. Errors: the first error of any
stage stops every stage and is raised here, unchanged (one error, whichever thread met it).
Errors keep the items' order: what was loaded before a failed load is still worked and stored,
and what was worked before a failed ``work`` is still stored, so nothing finished is lost. No
stage waits forever on a queue: every wait wakes up to see whether the others have stopped.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")
L = TypeVar("L")
W = TypeVar("W")

_END = object()
_POLL = 0.05  # seconds between looks at the other stages while a queue is full or empty


class _Failed:
    """A load error, handed over in the items' order."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _put(q: queue.Queue, item: Any, give_up: Callable[[], bool]) -> bool:
    """Put ``item``, waiting for room unless ``give_up()`` turns true (then False)."""
    while True:
        try:
            q.put(item, timeout=_POLL)
            return True
        except queue.Full:
            if give_up():
                return False


def _get(q: queue.Queue, give_up: Callable[[], bool]) -> Any:
    """The next item, or ``_END`` once ``give_up()`` turns true while waiting."""
    while True:
        try:
            return q.get(timeout=_POLL)
        except queue.Empty:
            if give_up():
                return _END


def overlapped(items: Iterable[T], load: Callable[[T], L], work: Callable[[L], W], store: Callable[[W], Any], *,
               ahead: int = 1, behind: int = 1) -> None:
    """Run ``store(work(load(item)))`` for every item, the three stages overlapping (see the module)."""
    if ahead < 1 or behind < 1:
        raise ValueError("ahead and behind must be at least 1")
    halt = threading.Event()  # the loader stops at its next step
    loaded: queue.Queue = queue.Queue(maxsize=ahead)
    worked: queue.Queue = queue.Queue(maxsize=behind)
    store_errors: list[BaseException] = []

    def loader() -> None:
        try:
            for item in items:
                if halt.is_set():
                    return
                if not _put(loaded, load(item), halt.is_set):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, raised there
            _put(loaded, _Failed(exc), halt.is_set)
            return
        _put(loaded, _END, halt.is_set)

    def storer() -> None:
        while True:
            result = worked.get()
            if result is _END:
                return
            try:
                store(result)
            except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread
                store_errors.append(exc)
                return

    load_thread = threading.Thread(target=loader, name="jina-migrate-load", daemon=True)
    store_thread = threading.Thread(target=storer, name="jina-migrate-store", daemon=True)
    load_thread.start()
    store_thread.start()
    storer_gone = lambda: not store_thread.is_alive()  # noqa: E731
    error: BaseException | None = None
    try:
        while True:
            item = _get(loaded, storer_gone)
            if item is _END:
                break
            if isinstance(item, _Failed):
                raise item.exc
            if not _put(worked, work(item), storer_gone):
                break
    except BaseException as exc:  # noqa: BLE001 - re-raised below, after the other stages stopped
        error = exc
    finally:
        halt.set()
        _put(worked, _END, storer_gone)  # the storer finishes what was worked, then ends
        store_thread.join()
        if not isinstance(error, KeyboardInterrupt):  # Ctrl-C does not wait for a load in progress
            load_thread.join()
    if error is not None:
        raise error
    if store_errors:
        raise store_errors[0]
