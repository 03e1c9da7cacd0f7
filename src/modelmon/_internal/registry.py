"""Live monitors of this process, and the event API every plug point goes through.

The core never imports an exporter or an integration: those subscribe here with
:func:`on` and the core :func:`emit`\\ s. The events, in the order a monitor sees them:

* :data:`MONITOR_ADDED` ``(monitor)``: a monitor was created; subscribing also calls
  the callback on every live monitor (exporters attach them to their registries).
* :data:`FOLDER_STARTED` ``()``: the background folder was ensured or ticked (each
  callback must be cheap and idempotent; the multi-process flush listener starts here).
* :data:`AFTER_FOLD` ``(monitor)``: a fold of ``monitor`` finished (the multi-process
  exporter writes its state file).
* :data:`MONITOR_CLOSED` ``(monitor)``: ``monitor.close()``.
* :data:`AFTER_FORK` ``()``: in a forked child, before anything else runs there. This
  module owns the process's only ``os.register_at_fork`` hook: callbacks run in the
  order they subscribed (the folder first, then exporters), each failure suppressed.

Single-valued plug points (a function the upper layers supply, e.g. the HTML report
behind ``Monitor.report()``) go through :func:`provide` / :func:`provided`.

``import modelmon`` stays light (the ``modelmon profile`` CLI, ``modelmon --help``):
the package hands its installers (exporters, extensions) to :func:`install_on_first_use`
and they run once, before the first :func:`provided` lookup or :func:`emit` (other than
:data:`AFTER_FORK`), i.e. before the core reads any plug point or a monitor exists.

>>> seen = []
>>> on("doc_event", seen.append)
>>> emit("doc_event", 1)
>>> off("doc_event", seen.append); emit("doc_event", 2); seen
[1]
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..monitor import Monitor

MONITOR_ADDED = "monitor_added"
MONITOR_CLOSED = "monitor_closed"
AFTER_FOLD = "after_fold"
FOLDER_STARTED = "folder_started"
AFTER_FORK = "after_fork"

_lock = threading.Lock()
_monitors: weakref.WeakSet[Monitor] = weakref.WeakSet()
_callbacks: dict[str, list[Callable[..., Any]]] = {}
_provided: dict[str, Any] = {}


class _Pending:
    """Installers not run yet (see :func:`install_on_first_use`)."""

    installers: list[Callable[[], None]] = []
    done = True  # nothing pending
    running = False
    lock = threading.RLock()


def install_on_first_use(installer: Callable[[], None]) -> None:
    """Run ``installer`` once, before the core first reads a plug point or emits an event."""
    with _Pending.lock:
        _Pending.installers.append(installer)
        _Pending.done = False


def _install_pending() -> None:
    if _Pending.done:
        return
    with _Pending.lock:
        if _Pending.done or _Pending.running:  # running: an installer's own lookups
            return
        _Pending.running = True
        try:
            while _Pending.installers:
                _Pending.installers.pop(0)()
        finally:
            _Pending.running = False
            _Pending.done = True  # one attempt, as an import-time install would be


def on(event: str, callback: Callable[..., Any]) -> None:
    """Call ``callback`` on every ``event`` from now on (once, however often subscribed).

    For :data:`MONITOR_ADDED` it is also called now on every live monitor.
    """
    with _lock:
        callbacks = _callbacks.setdefault(event, [])
        if callback in callbacks:
            return
        # Copy on write: emit iterates a snapshot without taking the lock.
        _callbacks[event] = [*callbacks, callback]
        existing = list(_monitors) if event == MONITOR_ADDED else []
    for monitor in existing:
        callback(monitor)


def off(event: str, callback: Callable[..., Any]) -> None:
    """Stop calling ``callback`` on ``event`` (no error if it was not subscribed)."""
    with _lock:
        callbacks = _callbacks.get(event, [])
        _callbacks[event] = [c for c in callbacks if c != callback]


def emit(event: str, *args: Any, on_error: Callable[[Exception], object] | None = None) -> None:
    """Call the subscribers of ``event`` in subscription order.

    With ``on_error`` a failing subscriber is reported to it and the next one runs;
    without, the failure propagates (configuration-time events).
    """
    _install_pending()
    for callback in _callbacks.get(event, ()):
        if on_error is None:
            callback(*args)
            continue
        try:
            callback(*args)
        except Exception as exc:
            on_error(exc)


def provide(name: str, value: Any) -> None:
    """Supply the single-valued plug point ``name`` (the last call wins)."""
    _provided[name] = value


_MISSING: Any = object()


def provided(name: str, default: Any = _MISSING) -> Any:
    """The value supplied for ``name``, else ``default``, else a ``LookupError``."""
    _install_pending()
    value = _provided.get(name, default)
    if value is _MISSING:
        raise LookupError(f"modelmon: nothing provides {name!r} in this process")
    return value


# --- monitors ----------------------------------------------------------------------------


def register(monitor: Monitor) -> None:
    """Record a new monitor and emit :data:`MONITOR_ADDED` for it."""
    with _lock:
        _monitors.add(monitor)
    emit(MONITOR_ADDED, monitor)


def unregister(monitor: Monitor) -> None:
    """Emit :data:`MONITOR_CLOSED` for ``monitor`` and forget it."""
    emit(MONITOR_CLOSED, monitor)
    with _lock:
        _monitors.discard(monitor)


def monitors() -> list[Monitor]:
    """The live monitors of this process."""
    with _lock:
        return list(_monitors)


def monitor_refs() -> list[weakref.ref[Monitor]]:
    """Weak references to the live monitors: for loops that must not keep one alive."""
    with _lock:
        return [weakref.ref(monitor) for monitor in _monitors]


# --- other family sources -------------------------------------------------------------
# Objects outside a monitor that render families (the HTTP middleware's metrics): push
# exporters collect them with the monitors. Anything with ``collect() -> list[Family]``.
_sources: weakref.WeakSet[Any] = weakref.WeakSet()


def add_source(source: Any) -> None:
    """Record an object whose ``collect()`` push exporters call with the monitors'."""
    with _lock:
        _sources.add(source)


def sources() -> list[Any]:
    """The live family sources of this process (see :func:`add_source`)."""
    with _lock:
        return list(_sources)


# --- fork: the one owner ----------------------------------------------------------------


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # a parent thread may have held it at the fork
    _Pending.lock = threading.RLock()
    for callback in _callbacks.get(AFTER_FORK, ()):
        with contextlib.suppress(Exception):  # one failing subscriber must not stop the rest
            callback()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
