"""This process's state file: written after folds (throttled, from a thread) and on scrapes."""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..._internal import registry as monitor_registry
from ..._internal.health import Health
from ...aggregates.http import live_http_metrics
from ...monitor import DEFAULT_REGISTRY
from ...points import Family, ScalarPoint
from .archive import absorb_foreign, next_start_key
from .codec import encode, is_empty
from .files import (
    DIR_MODE,
    FINGERPRINT,
    FORMAT,
    FORMAT_VERSION,
    HEALTH,
    HTTP_POLL_S,
    MIN_WRITE_INTERVAL_S,
    UNREAD,
    Key,
    atomic_write,
    directory,
    directory_lock,
    pid_path,
    profile_path,
)
from .kinds import describe

if TYPE_CHECKING:
    from ...monitor import Monitor


def _registry_kind(monitor: Monitor) -> str:
    if monitor.registry is DEFAULT_REGISTRY:
        return "default"
    return "none" if monitor.registry is None else "custom"


def _live_entry(families: Iterable[Family]) -> list[list[Any]]:
    out: list[list[Any]] = []
    for family in families:
        points = [
            [dict(p.labels), float(p.value)] for p in family.points if isinstance(p, ScalarPoint)
        ]
        out.append([family.spec.name, points])
    return out


def _without_profile(entry: dict[str, Any]) -> dict[str, Any]:
    """A drift entry without its warm-up profile: that goes to the profile's sidecar file.

    A profile is a constant (with the reference quantiles): written once per directory,
    not into every state file at every write. Readers find it by its fingerprint.
    """
    state = entry.get("state")
    if entry.get("kind") == "drift" and isinstance(state, dict) and state.get("profile"):
        entry = {**entry, "state": {**state, "profile": None}}
    return entry


def snapshot(monitor: Monitor, now: float) -> dict[str, Any]:
    """The file entry of one monitor: its aggregates' states and its live values."""
    aggregates: dict[str, Any] = {}
    with monitor.folding.reading():
        for name, agg in monitor.aggregates.items():
            try:
                entry = describe(agg)
            except Exception as exc:
                monitor.health.error("multiprocess_state", exc)
                continue
            if entry is not None:
                aggregates[name] = _without_profile(entry)
    live = _live_entry(monitor.live_families(monitor.render_context(now)))
    return {
        "namespace": monitor.namespace,
        "model": monitor.model,
        "version": monitor.version,
        "registry": _registry_kind(monitor),
        "aggregates": aggregates,
        "live": live,
    }


class _Writer:
    """Writes this process's file: throttled from a thread after folds, at once on scrapes."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.pid = os.getpid()
        self.token = uuid.uuid4().hex
        self.lock = threading.Lock()
        self.start_lock = threading.Lock()  # never held while waiting for a fold lock
        self.event = threading.Event()
        self.thread: threading.Thread | None = None
        self.last = 0.0
        self.checked: str | None = None  # the directory whose old file of our pid was handled
        self.profiles_written: set[tuple[str, str]] = set()
        self.local = threading.local()
        self.http_seen = 0
        self.dirty = True  # a fold happened since the last write
        self.last_bytes: bytes | None = None  # the latest state, written or not
        self.failing = False
        self.started = 0  # this process's place in the merge order (see archive.py)
        self.keyed: str | None = None  # the directory where ``started`` was fixed

    def after_fork(self) -> None:
        self._reset()

    def notify(self) -> None:
        """A fold happened: write soon (at most every MIN_WRITE_INTERVAL_S)."""
        self.dirty = True
        if getattr(self.local, "writing", False):
            return
        if self.thread is None or self.pid != os.getpid():
            self._start()
        self.event.set()

    def _start(self) -> None:
        with self.start_lock:
            if self.thread is not None and self.pid == os.getpid():
                return
            if self.pid != os.getpid():
                self._reset()
            self.thread = threading.Thread(target=self._run, name="modelmon-mp-write", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        while True:
            # HTTP requests trigger no fold: poll their count once a second too.
            if not self.event.wait(HTTP_POLL_S) and not self._http_changed():
                continue
            delay = self.last + MIN_WRITE_INTERVAL_S - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.event.clear()
            with contextlib.suppress(Exception):  # write() counts and logs its failures
                path = self.write(fold=False)
                if path is not None:
                    UNREAD.check(os.path.dirname(path), time.monotonic())

    def _http_changed(self) -> bool:
        return sum(m.recorded for m in live_http_metrics()) != self.http_seen

    def stale(self) -> bool:
        """Whether the file lacks something this process has done (for flush requests)."""
        if self.dirty or self.last_bytes is None or self._http_changed():
            return True
        return any(m.buffer.items for m in monitor_registry.monitors())

    def write(self, fold: bool) -> str | None:
        """Write this process's file now (folding first when ``fold``); returns its path.

        A failed write (read-only or full directory) is counted in
        ``modelmon_internal_errors_total{stage="multiprocess_write"}``, logged at most
        once a minute and re-raised; :attr:`last_bytes` holds the state all the same.
        """
        path = directory()
        if path is None:
            return None
        if self.pid != os.getpid():  # forked without the at-fork hook (os.fork is hooked)
            self._reset()
        monitors = monitor_registry.monitors()
        self.local.writing = True
        try:
            if fold:
                for monitor in monitors:
                    monitor.fold()
            with self.lock:
                try:
                    target = self._write_locked(path, monitors)
                except Exception as exc:
                    self.failing = True
                    health_of(monitors).error("multiprocess_write", exc)
                    raise
                self.failing = False
                return target
        finally:
            self.local.writing = False

    def _write_locked(self, path: str, monitors: list[Monitor]) -> str:
        now = time.time()
        self.dirty = False
        target = pid_path(path, self.pid)
        entries = [snapshot(m, now) for m in one_per_key(monitors)]
        http = live_http_metrics()
        doc: dict[str, Any] = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "pid": self.pid,
            "token": self.token,
            "written_at": now,
            "started": self.started if self.keyed == path else None,
            "monitors": entries,
            "http": [m.state() for m in http],
        }
        self.http_seen = sum(m.recorded for m in http)
        self.last_bytes = encode(doc)
        self.last = time.monotonic()
        os.makedirs(path, mode=DIR_MODE, exist_ok=True)
        needs_key = self.keyed != path and not is_empty(doc)
        if self.checked == path and not needs_key:
            self._write_files(path, target, monitors)
            return target
        # The first write, and the first with data, happen under the directory lock: an
        # old file of our pid is kept first, and our place in the merge order is fixed
        # after everything the archive has folded (see archive.py).
        with directory_lock(path):
            if self.checked != path:
                absorb_foreign(path, self.pid, self.token)
                self.checked = path
            if needs_key:
                self.started, self.keyed = next_start_key(path), path
                doc["started"] = self.started
                self.last_bytes = encode(doc)
            self._write_files(path, target, monitors)
        return target

    def _write_files(self, path: str, target: str, monitors: list[Monitor]) -> None:
        assert self.last_bytes is not None
        self._write_profiles(path, monitors)
        atomic_write(target, self.last_bytes)

    def _write_profiles(self, path: str, monitors: list[Monitor]) -> None:
        """Reference profiles once per process, so a process lacking the monitor can merge."""
        for monitor in monitors:
            drift = monitor.aggregates.get("drift")
            profile = getattr(drift, "profile", None)
            if profile is None:
                continue
            fingerprint = profile.fingerprint
            if (path, fingerprint) in self.profiles_written or not FINGERPRINT.match(fingerprint):
                continue
            target = profile_path(path, fingerprint)
            if not os.path.exists(target):
                atomic_write(target, profile.dumps().encode("utf-8"))
            self.profiles_written.add((path, fingerprint))


def one_per_key(monitors: list[Monitor]) -> list[Monitor]:
    """One monitor per (namespace, model, version): an exported one, else the newest.

    As in one registry, where a new monitor for a model version replaces the old one.
    """
    ranked = sorted(monitors, key=lambda m: (m.registry is not None, m.loaded_at))
    return list({monitor_key(m): m for m in ranked}.values())


def monitor_key(monitor: Monitor) -> Key:
    return (monitor.namespace, monitor.model, monitor.version)


WRITER = _Writer()


def health_of(monitors: list[Monitor]) -> Health:
    return monitors[0].health if monitors else HEALTH


def flush() -> str | None:
    """Fold every monitor of this process and write its state file now (None if disabled)."""
    return WRITER.write(fold=True)


def on_fold(monitor: Monitor) -> None:
    if directory() is not None:
        WRITER.notify()


def worker_exit(server: Any = None, worker: Any = None) -> None:
    """gunicorn's ``worker_exit`` hook (runs in the exiting worker): write its last calls.

    An ``atexit`` handler does the same at any normal exit; this hook also covers
    workers that leave through ``os._exit``. In ``gunicorn.conf.py``::

        from modelmon.multiprocess import mark_process_dead, worker_exit

        def child_exit(server, worker):
            mark_process_dead(worker.pid)
    """
    flush_at_exit()


def flush_at_exit() -> None:
    """At a normal exit (gunicorn's ``max_requests`` recycling, SIGTERM): write the last calls."""
    if directory() is None or not monitor_registry.monitors():
        return
    with contextlib.suppress(Exception):  # counted and logged by write()
        WRITER.write(fold=True)
