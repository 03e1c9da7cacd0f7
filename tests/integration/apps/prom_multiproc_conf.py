"""gunicorn settings of prometheus-client's multiprocess recipe, with modelmon's archive hook."""

from __future__ import annotations

from typing import Any

from prometheus_client import multiprocess

from modelmon.multiprocess import mark_process_dead


def child_exit(server: Any, worker: Any) -> None:
    multiprocess.mark_process_dead(worker.pid)  # prometheus-client's own
    mark_process_dead(worker.pid)  # modelmon's
