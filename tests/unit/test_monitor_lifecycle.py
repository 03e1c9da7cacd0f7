"""A monitor lives as long as the app references it: replaced versions stop being exported.

The rolling-deployment pattern (docs/quickstart-notes.md): each loaded model version
gets its own monitor and the previous one is simply no longer referenced.
"""

from __future__ import annotations

import gc
import tracemalloc
import weakref
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, generate_latest

import modelmon
from modelmon._internal import registry as monitor_registry

from ..conftest import scrape


def _series(registry: CollectorRegistry) -> list[str]:
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def _versions(registry: CollectorRegistry) -> set[str]:
    return {
        dict(labels)["version"]
        for (_, labels) in scrape(registry)
        if labels and "version" in dict(labels)
    }


def _monitors_gauge(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("modelmon_monitors")


def test_monitors_gauge_counts_live_monitors() -> None:
    registry = CollectorRegistry()
    a = modelmon.Monitor("m", "1", registry=registry)
    b = modelmon.Monitor("m", "2", registry=registry)
    assert _monitors_gauge(registry) == 2
    a.close()
    assert _monitors_gauge(registry) == 1
    del b  # no longer referenced: freed at once (no garbage collection needed)
    assert _monitors_gauge(registry) == 0  # the gauge stays, at 0
    assert _versions(registry) == set()


def test_an_unreferenced_monitor_with_pending_calls_is_freed_when_the_next_version_loads() -> None:
    registry = CollectorRegistry()

    def model_v1(rows: list[float]) -> list[float]:
        return rows

    predict = modelmon.monitored(model="m", version="1", registry=registry)(model_v1)
    predict([1.0, 2.0])  # buffered, not folded: the buffer names its monitor (a cycle)
    old = weakref.ref(predict.monitor)
    gc.disable()  # prove it: the cycle collector is not what frees it
    try:
        predict = modelmon.monitored(model="m", version="2", registry=registry)(model_v1)
        predict([3.0])
        assert old() is None
        assert _versions(registry) == {"2"}
        assert (
            registry.get_sample_value("modelmon_requests_total", {"model": "m", "version": "2"})
            == 1
        )
    finally:
        gc.enable()


def _load_model(version: int) -> Any:
    """A stand-in for loading a trained model: a fresh callable per version."""
    weights = np.linspace(0.0, 1.0, 20) * (1 + version % 7)

    def predict_proba(X: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        p = 1.0 / (1.0 + np.exp(-(X @ weights) / 20.0))
        return np.column_stack([1.0 - p, p])

    return predict_proba


def test_1000_versions_in_the_documented_pattern_keep_series_and_memory_bounded() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 20))
    first = _load_model(0)
    profile = modelmon.ReferenceProfile.from_data(X, predictions=first(X))
    registry = CollectorRegistry()
    tracemalloc.start()
    try:
        memory: dict[int, int] = {}
        series: dict[int, int] = {}
        predict = None
        for version in range(1000):
            model = _load_model(version)
            # the documented pattern: rebinding the name releases the previous version
            predict = modelmon.monitored(
                model="credit", version=str(version), reference=profile, registry=registry
            )(model)
            for start in range(0, 100, 20):  # a little traffic per version
                predict(X[start + version % 50 : start + version % 50 + 20])
            if version in (0, 99, 999):
                series[version] = len(_series(registry))
                memory[version] = tracemalloc.get_traced_memory()[0]
        # and what 10 monitors kept alive cost, to compare with
        kept = []
        before = tracemalloc.get_traced_memory()[0]
        for version in range(10):
            mon = modelmon.monitored(
                model="kept", version=str(version), reference=profile, registry=False
            )(first)
            mon(X[:20])
            mon.monitor.fold()
            kept.append(mon)
        per_monitor = (tracemalloc.get_traced_memory()[0] - before) / 10
    finally:
        tracemalloc.stop()
    assert predict is not None
    live = [m for m in monitor_registry.monitors() if m.model == "credit"]
    assert len(live) <= 2  # the current version, and the one the last prediction id names
    assert _versions(registry) <= {"998", "999"}
    assert _monitors_gauge(registry) == len(live)
    # one monitor's series (plus at most the previous version's: the folder thread may be
    # folding it at the moment of the scrape), never 100 or 1,000 versions'
    assert series[99] <= 2 * series[0]
    assert series[999] <= 2 * series[0]
    # memory: 900 more versions cost less than 2% of what keeping them would
    growth = memory[999] - memory[99]
    print(f"series {series}, growth v99->v999 {growth} B, one monitor {per_monitor:.0f} B")
    assert per_monitor > 50_000  # the comparison means something: a monitor is heavy
    assert growth < 0.02 * 900 * per_monitor, (growth, per_monitor)
