"""One background thread per process that folds monitors' buffers off the serving path.

The hot path wakes it when a buffer passes its soft limit; it also folds every
``interval`` seconds so windows and pushed exports stay fresh. After ``fork`` the
child starts its own thread lazily (threads do not survive fork).
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

    def _after_fork(self) -> None:
        self._thread = None
        self._lock = threading.Lock()
        monitors = registry.monitors()
        for monitor in monitors:
            monitor._reseed_ids()
        if monitors:
            self.ensure_started()

    def ensure_started(self) -> None:
        """Start the thread in this process if it is not running."""
        self._ensure_started()

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
            _fold_all()


def _fold_all() -> None:
    # A function of its own: the loop variable must not keep the last monitor alive
    # while the thread sleeps (a replaced monitor is freed when nobody references it).
    for monitor in registry.monitors():
        monitor._background_fold()


FOLDER = Folder()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=FOLDER._after_fork)
