"""One background thread per process that folds monitors' buffers off the serving path.

The hot path wakes it when a buffer passes its soft limit; it also folds every
``interval`` seconds so windows and pushed exports stay fresh. After ``fork`` (the
``registry.AFTER_FORK`` event) the child reseeds its monitors' ids and starts its own
thread (threads do not survive fork).
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import TYPE_CHECKING

from . import registry

if TYPE_CHECKING:
    from ..monitor import Monitor

INTERVAL_S = 1.0


def _ignore(exc: Exception) -> None:
    return None  # a FOLDER_STARTED subscriber must never stop the folder or a monitor


def _run_start_hooks() -> None:
    # Whenever the thread is ensured (in the calling thread), and on every tick.
    registry.emit(registry.FOLDER_STARTED, on_error=_ignore)


class Folder:
    def __init__(self, interval: float = INTERVAL_S) -> None:
        self.interval = interval
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._pending: weakref.WeakSet[Monitor] = weakref.WeakSet()

    def wake(self, monitor: Monitor) -> None:
        self._pending.add(monitor)
        self._ensure_started()
        self._wake.set()

    def after_fork(self) -> None:
        """In a forked child: new lock, new id prefixes, and a thread of its own."""
        self._thread = None
        self._lock = threading.Lock()
        monitors = registry.monitors()
        for monitor in monitors:
            # A random prefix per monitor and process: ids never collide across the
            # workers a pre-forking server makes.
            monitor.ids.reseed()
        if monitors:
            self.ensure_started()

    def ensure_started(self) -> None:
        """Start the thread in this process if it is not running."""
        self._ensure_started()
        _run_start_hooks()

    def _ensure_started(self) -> None:
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._lock:
            if self._thread is not None and self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._wake = threading.Event()
            self._thread = threading.Thread(target=self._run, name="modelmon-fold", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            _run_start_hooks()
            _fold_all()


def _fold_all() -> None:
    # A function of its own: the loop variable must not keep the last monitor alive
    # while the thread sleeps (a replaced monitor is freed when nobody references it).
    for monitor in registry.monitors():
        monitor.background_fold()


FOLDER = Folder()
registry.on(registry.AFTER_FORK, FOLDER.after_fork)
