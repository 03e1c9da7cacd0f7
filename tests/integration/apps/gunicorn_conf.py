"""gunicorn settings for the multi-worker tests: archive dead workers' counters."""

from __future__ import annotations

from typing import Any

from modelmon.multiprocess import mark_process_dead


def child_exit(server: Any, worker: Any) -> None:
    mark_process_dead(worker.pid)
