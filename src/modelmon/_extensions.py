"""Wires the upper layers' features into the plug points of :class:`~modelmon.Monitor`.

The core never imports an integration or a view: ``Monitor.report()``,
``Monitor.log_to_mlflow()``, ``log_every_s=`` and ``reference="runs:/..."`` call what
is provided here through :func:`modelmon._internal.registry.provided`. The package's
``__init__`` installs this module before the first plug point is read
(:func:`modelmon._internal.registry.install_on_first_use`), so every process that imports
modelmon has them; the modules behind them load only when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _setup, monitor
from ._internal import registry

if TYPE_CHECKING:
    from .monitor import Monitor


def _resolve_mlflow_reference(uri: str) -> Any:
    from .integrations.mlflow import resolve_reference

    return resolve_reference(uri)


def _start_periodic(mon: Monitor, every_s: float, run_id: str | None) -> Any:
    from .integrations.mlflow import start_periodic

    return start_periodic(mon, every_s, run_id)


def _log_snapshot(mon: Monitor, run_id: str | None, step: int | None) -> dict[str, float]:
    from .integrations.mlflow import log_snapshot

    return log_snapshot(mon, run_id, step)


def _html_report(mon: Monitor) -> str:
    from .report import monitor_report

    return monitor_report(mon)


def install() -> None:
    """Provide every plug point (idempotent)."""
    registry.provide(_setup.RESOLVE_MLFLOW_REFERENCE, _resolve_mlflow_reference)
    registry.provide(monitor.MLFLOW_START_PERIODIC, _start_periodic)
    registry.provide(monitor.MLFLOW_LOG_SNAPSHOT, _log_snapshot)
    registry.provide(monitor.HTML_REPORT, _html_report)
