"""Live monitors of this process, and the hooks exporters attach to them.

The core never imports an exporter: exporters register a hook here (called for every
monitor, past and future) and enumerate monitors when they collect.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..monitor import Monitor

_lock = threading.Lock()
_monitors: weakref.WeakSet[Monitor] = weakref.WeakSet()
_hooks: list[Callable[[Monitor], None]] = []


def _reinit_lock_after_fork() -> None:
    global _lock
    _lock = threading.Lock()  # a parent thread may have held it at the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_lock_after_fork)


def register(monitor: Monitor) -> None:
    """Record a new monitor and run every exporter hook on it."""
    with _lock:
        _monitors.add(monitor)
        hooks = list(_hooks)
    for hook in hooks:
        hook(monitor)


def unregister(monitor: Monitor) -> None:
    with _lock:
        _monitors.discard(monitor)


def monitors() -> list[Monitor]:
    """The live monitors of this process."""
    with _lock:
        return list(_monitors)


def add_hook(hook: Callable[[Monitor], None]) -> None:
    """Run ``hook`` on every existing and future monitor."""
    with _lock:
        _hooks.append(hook)
        existing = list(_monitors)
    for monitor in existing:
        hook(monitor)


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
