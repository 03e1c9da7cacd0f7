"""modelmon.otel.register: observable instruments read through a real InMemoryMetricReader."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import Gauge, InMemoryMetricReader, Metric, Sum

import modelmon
import modelmon.otel
from modelmon import names


def read(reader: InMemoryMetricReader) -> dict[str, Metric]:
    data = reader.get_metrics_data()
    assert data is not None
    out: dict[str, Metric] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                out[metric.name] = metric
    return out


def value(metrics: dict[str, Metric], name: str, **labels: str) -> Any:
    matches = [
        dp.value
        for dp in metrics[name].data.data_points
        if all(dp.attributes.get(k) == v for k, v in labels.items())
    ]
    assert len(matches) == 1, (name, labels, matches)
    return matches[0]


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def provider(reader: InMemoryMetricReader) -> MeterProvider:
    return MeterProvider(metric_readers=[reader])


def test_counters_gauges_and_histogram_count_sum(
    provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    mon = modelmon.Monitor("reg", "1", registry=False, strict=True)
    modelmon.otel.register(provider)
    latencies = np.array([0.01, 0.02, 0.5, 1.5])
    for i, latency in enumerate(latencies):
        rows = [[1.0, 2.0]] * (i + 1)
        mon.observe(rows, [[0.3, 0.7]] * len(rows), latency_s=float(latency))
    mon.observe([[1.0, 2.0]], None, latency_s=0.1, error=KeyError("k"))
    metrics = read(reader)
    me = {"model": "reg", "version": "1"}

    requests = metrics["modelmon.requests"]
    assert isinstance(requests.data, Sum) and requests.data.is_monotonic
    assert value(metrics, "modelmon.requests", **me) == 5
    assert value(metrics, "modelmon.predictions", **me) == 1 + 2 + 3 + 4
    assert value(metrics, "modelmon.request.errors", **me, error_type="KeyError") == 1

    in_flight = metrics["modelmon.requests.in_flight"]
    assert isinstance(in_flight.data, Sum) and not in_flight.data.is_monotonic
    assert value(metrics, "modelmon.requests.in_flight", **me) == 0

    assert isinstance(metrics["modelmon.model.info"].data, Gauge)
    assert value(metrics, "modelmon.model.info", **me) == 1
    assert value(metrics, "modelmon.model.loaded.timestamp", **me) == mon.loaded_at

    assert value(metrics, "modelmon.request.duration.count", **me) == 5
    assert value(metrics, "modelmon.request.duration.sum", **me) == pytest.approx(
        latencies.sum() + 0.1, rel=1e-12
    )
    assert metrics["modelmon.request.duration.sum"].unit == "s"
    assert value(metrics, "modelmon.prediction.confidence.count", **me) == 10
    assert value(metrics, "modelmon.prediction.confidence.sum", **me) == pytest.approx(7.0)
    assert "modelmon.request.duration" not in metrics  # no observable histogram in the API
    mon.close()


def test_each_collection_folds_first(provider: MeterProvider, reader: InMemoryMetricReader) -> None:
    mon = modelmon.Monitor("fold", "1", registry=False, strict=True, buffer_size=10_000)
    modelmon.otel.register(provider)
    mon.observe([1.0], 0.5)
    assert value(read(reader), "modelmon.requests", model="fold") == 1
    for _ in range(3):
        mon.observe([1.0], 0.5)
    assert value(read(reader), "modelmon.requests", model="fold") == 4
    mon.close()


def test_register_twice_returns_the_same_bridge_and_close_stops_reporting(
    provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    mon = modelmon.Monitor("close", "1", registry=False)
    bridge = modelmon.otel.register(provider)
    assert modelmon.otel.register(provider) is bridge
    mon.observe([1.0], 0.5)
    assert value(read(reader), "modelmon.requests", model="close") == 1
    bridge.close()
    data = reader.get_metrics_data()
    points = (
        []
        if data is None
        else [
            dp
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            for dp in m.data.data_points
        ]
    )
    assert not [p for p in points if p.attributes.get("model") == "close"]
    assert modelmon.otel.register(provider) is bridge and not bridge.closed
    mon.observe([1.0], 0.5)
    assert value(read(reader), "modelmon.requests", model="close") == 2
    mon.close()


def test_monitor_in_a_new_namespace_gets_its_instruments(
    provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    modelmon.otel.register(provider)
    mon = modelmon.Monitor("ns", "1", registry=False, namespace="acme")
    mon.observe([1.0], 0.5)
    metrics = read(reader)
    assert value(metrics, "acme.requests", model="ns") == 1
    mon.close()


def test_global_provider_is_the_default() -> None:
    from opentelemetry import metrics

    bridge = modelmon.otel.register()
    assert bridge is modelmon.otel.register(metrics.get_meter_provider())
    bridge.close()


def test_every_catalogue_metric_has_an_instrument(
    provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    modelmon.otel.register(provider)
    meter_names = set()
    for spec in names.CATALOGUE:
        if spec.kind in ("histogram", "summary"):
            meter_names |= {spec.otel_name + ".count", spec.otel_name + ".sum"}
        else:
            meter_names.add(spec.otel_name)
    # Instruments without observations are not exported: observe through every path once.
    mon = modelmon.Monitor("cat", "1", registry=False)
    mon.observe([1.0], 0.5, latency_s=0.01)
    # Monitors of other tests may still be alive, in other namespaces: look at ours only.
    exported = {name for name in read(reader) if name.startswith("modelmon.")}
    assert exported <= meter_names
    assert {"modelmon.requests", "modelmon.request.duration.count"} <= exported
    mon.close()
