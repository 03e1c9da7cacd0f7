"""The visual drift report: one self-contained HTML page per monitor.

Sources: a live :class:`~modelmon.Monitor` (:func:`monitor_report`, also
``Monitor.report()``), a ``/metrics`` URL, a multi-process state directory, or a
CSV/Parquet file of live rows (:mod:`modelmon.report.sources`, used by
``modelmon report``). Every source is read as exported samples, so the page shows
the numbers a Prometheus scrape would.

>>> import numpy as np, modelmon
>>> rng = np.random.default_rng(1)
>>> ref = modelmon.ReferenceProfile.from_data(rng.normal(size=(300, 2)), feature_names=["a", "b"])
>>> mon = modelmon.Monitor("doc", "1", reference=ref, registry=False)
>>> page = monitor_report(mon)
>>> page.startswith("<!doctype html>"), "<script" in page
(True, False)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .html import render
from .snapshot import Snapshot, monitor_snapshot

if TYPE_CHECKING:
    from ..monitor import Monitor


def monitor_report(monitor: Monitor, now: float | None = None) -> str:
    """The HTML report of a live monitor (it folds first, as a scrape does)."""
    return render(monitor_snapshot(monitor, now))


__all__ = ["Snapshot", "monitor_report", "monitor_snapshot", "render"]
