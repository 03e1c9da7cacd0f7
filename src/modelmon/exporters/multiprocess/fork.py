"""After ``fork`` and at start: the hooks that turn multi-process mode on.

:func:`install` plugs the writer, the flush listener and the merged family source into
the core; :func:`after_fork_in_child` makes a forked child count only its own calls.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from typing import TYPE_CHECKING

from ..._internal import registry as monitor_registry
from ...aggregates.http import live_http_metrics
from .flushes import LISTENER
from .kinds import fresh_like
from .merge import family_source
from .writer import WRITER, flush_at_exit, on_fold

if TYPE_CHECKING:
    from ...monitor import Monitor


def reset_monitor(monitor: Monitor) -> None:
    """Make ``monitor`` count only what this process does from now on (after ``fork``).

    Calls pending in the parent's buffer and the parent's folded counts stay the
    parent's: the parent reports them itself, so nothing is counted twice.
    """
    monitor.restart_in_child(fresh_like)


class _State:
    installed = False


def after_fork_in_child() -> None:
    """The one after-fork hook of multi-process mode: the child starts from empty state.

    Subscribed to the core's one after-fork owner (``AFTER_FORK`` of
    :mod:`modelmon._internal.registry`) when this module is imported.
    """
    WRITER.after_fork()
    LISTENER.after_fork()
    for metrics in live_http_metrics():
        with contextlib.suppress(Exception):
            metrics.reset()
    monitors = monitor_registry.monitors()
    for monitor in monitors:
        with contextlib.suppress(Exception):
            reset_monitor(monitor)
    LISTENER.ready_pid = os.getpid()
    if monitors and _State.installed:
        LISTENER.ensure()


def install() -> None:
    """Turn multi-process support on (idempotent); it stays dormant until the variable is set.

    Plugs into the core only: a fold hook (write soon), a folder start hook (listen for
    flush requests), the merged family source and an exit flush. Creates no directory,
    registers no collector and starts no thread.
    """
    if _State.installed:
        return
    from ..prometheus import FAMILY_SOURCE

    monitor_registry.on(monitor_registry.AFTER_FOLD, on_fold)
    monitor_registry.on(monitor_registry.FOLDER_STARTED, LISTENER.ensure)
    monitor_registry.provide(FAMILY_SOURCE, family_source)
    atexit.register(flush_at_exit)
    _State.installed = True


# At import, not in install(): a process forked from one that merely imported this
# module (a gunicorn master reading its config) must still write under its own pid.
monitor_registry.on(monitor_registry.AFTER_FORK, after_fork_in_child)
