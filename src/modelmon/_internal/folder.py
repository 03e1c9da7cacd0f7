"""One background thread per process that folds monitors' buffers off the serving path.

The hot path wakes it when a buffer passes its soft limit; it also folds every
``interval`` seconds so windows and pushed exports stay fresh. After ``fork`` (the
``registry.AFTER_FORK`` event) the child reseeds its monitors' ids and starts its own
thread (threads do not survive fork).

It also keeps the drift statistics fresh off the scrape path: after a fold (the
``registry.AFTER_FOLD`` event) a monitor's statistics are marked stale with a refresh
pending, and the thread recomputes them at most every ``DRIFT_REFRESH_S`` seconds
(environment ``MODELMON_DRIFT_REFRESH_S``, default 1; 0 turns the background refresh
off: a scrape then computes whatever changed). See ``modelmon.aggregates.stats_cache``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING

from . import registry

if TYPE_CHECKING:
    from ..monitor import Monitor

INTERVAL_S = 1.0
_log = logging.getLogger("modelmon")


def _refresh_setting() -> float:
    """``MODELMON_DRIFT_REFRESH_S`` in seconds; a value that is not a number >= 0 is
    logged (once, at import) and the default used."""
    raw = os.environ.get("MODELMON_DRIFT_REFRESH_S", "").strip()
    if not raw:
        return 1.0
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not value >= 0 or math.isinf(value):
        _log.warning("MODELMON_DRIFT_REFRESH_S=%r is not a number of seconds >= 0; using 1", raw)
        return 1.0
    return value


DRIFT_REFRESH_S = _refresh_setting()


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
        # Monitors whose statistics a refresh is due for; added by whichever thread folds,
        # so taken under a lock (iterating a WeakSet another thread adds to raises).
        self._stale: weakref.WeakSet[Monitor] = weakref.WeakSet()
        self._stale_lock = threading.Lock()
        self._refreshed_at = 0.0  # time.monotonic() of the last statistics refresh

    def wake(self, monitor: Monitor) -> None:
        self._ensure_started()
        self._wake.set()

    def after_fold(self, monitor: Monitor) -> None:
        """``AFTER_FOLD``: the monitor's statistics are stale; this thread refreshes them."""
        if DRIFT_REFRESH_S <= 0:
            return
        for aggregate in list(monitor.aggregates.values()):
            pending = getattr(aggregate, "statistics_pending", None)
            if pending is not None:
                pending(DRIFT_REFRESH_S + self.interval)
        with self._stale_lock:
            self._stale.add(monitor)

    def refresh_due(self) -> None:
        """Recompute the stale monitors' statistics, at most every ``DRIFT_REFRESH_S``."""
        now = time.monotonic()
        if not self._stale or now - self._refreshed_at < DRIFT_REFRESH_S:
            return
        self._refreshed_at = now
        # Weakly: a replaced version is freed as soon as its app drops it, not after
        # every other monitor's refresh. A fold during the refresh marks its monitor again.
        with self._stale_lock:
            refs = [weakref.ref(monitor) for monitor in self._stale]
            self._stale.clear()
        for ref in refs:
            monitor = ref()
            if monitor is not None:
                _refresh(monitor)
            del monitor

    def after_fork(self) -> None:
        """In a forked child: new lock, new id prefixes, and a thread of its own."""
        self._thread = None
        self._lock = threading.Lock()
        self._stale_lock = threading.Lock()  # another thread may have held it at fork
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
            self.refresh_due()


def _fold_all() -> None:
    # Weak references, and a function of its own: neither the list nor the loop variable
    # may keep a monitor alive while another is folded or the thread sleeps (a replaced
    # monitor is freed when its app stops referencing it).
    for ref in registry.monitor_refs():
        monitor = ref()
        if monitor is not None:
            monitor.background_fold()
        del monitor


def _refresh(monitor: Monitor) -> None:
    """Recompute ``monitor``'s drift statistics under its fold lock; never raises."""
    try:
        with monitor.folding.lock:
            for aggregate in list(monitor.aggregates.values()):
                refresh = getattr(aggregate, "refresh_statistics", None)
                if refresh is not None:
                    refresh()
    except Exception as exc:  # the folder thread must survive anything (strict too)
        with contextlib.suppress(Exception):
            monitor.health.error("refresh", exc)


FOLDER = Folder()
registry.on(registry.AFTER_FORK, FOLDER.after_fork)
registry.on(registry.AFTER_FOLD, FOLDER.after_fold)
