"""Families -> OTel MetricsData, the resource, and the push handle (in-process exporter)."""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry
from prometheus_client.utils import floatToGoString

import modelmon
from modelmon import names
from modelmon.errors import ConfigurationError
from modelmon.exporters import otel
from modelmon.points import (
    Exemplar,
    ExponentialHistogramPoint,
    Family,
    HistogramPoint,
    ScalarPoint,
    SummaryPoint,
)

LABELS = {"model": "m", "version": "1"}


class MemoryExporter(MetricExporter):
    """A real exporter that keeps what it receives, or refuses it while ``down``."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[MetricsData] = []
        self.down = False
        self.raises: Exception | None = None
        self.shutdowns = 0

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        if self.raises is not None:
            raise self.raises
        if self.down:
            return MetricExportResult.FAILURE
        self.received.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.shutdowns += 1


def metrics_of(data: MetricsData) -> dict[str, Metric]:
    (rm,) = data.resource_metrics
    (sm,) = rm.scope_metrics
    assert sm.scope.name == "modelmon"
    return {m.name: m for m in sm.metrics}


def translate(families: Sequence[Family]) -> dict[str, Metric]:
    return metrics_of(otel.families_to_metrics_data(families, Resource({}), 10, 20))


# --- translation of hand-built families --------------------------------------------------


def test_counter_is_cumulative_monotonic_sum_with_int_values() -> None:
    fam = Family(names.REQUESTS, "modelmon", (ScalarPoint(LABELS, np.int64(7)),))
    metric = translate([fam])["modelmon.requests"]
    assert isinstance(metric.data, Sum)
    assert metric.data.is_monotonic
    assert metric.data.aggregation_temporality is AggregationTemporality.CUMULATIVE
    (point,) = metric.data.data_points
    assert (point.value, type(point.value)) == (7, int)
    assert (point.start_time_unix_nano, point.time_unix_nano) == (10, 20)
    assert point.attributes == LABELS
    assert metric.description == names.REQUESTS.help


def test_in_flight_is_non_monotonic_sum_and_other_gauges_are_gauges() -> None:
    metrics = translate(
        [
            Family(names.IN_FLIGHT, "modelmon", (ScalarPoint(LABELS, 2),)),
            Family(
                names.FEATURE_DRIFT,
                "modelmon",
                (ScalarPoint({**LABELS, "feature": "a", "method": "psi"}, 0.25),),
            ),
        ]
    )
    in_flight = metrics["modelmon.requests.in_flight"].data
    assert isinstance(in_flight, Sum) and not in_flight.is_monotonic
    drift = metrics["modelmon.feature.drift"].data
    assert isinstance(drift, Gauge)
    assert drift.data_points[0].value == 0.25
    assert drift.data_points[0].attributes == {**LABELS, "feature": "a", "method": "psi"}


def test_histogram_keeps_buckets_sum_count_and_unit() -> None:
    point = HistogramPoint(LABELS, (0.1, 1.0), (3, 4, 1), 4.5)
    metric = translate([Family(names.REQUEST_DURATION, "modelmon", (point,))])[
        "modelmon.request.duration"
    ]
    assert metric.unit == "s"
    assert isinstance(metric.data, Histogram)
    assert metric.data.aggregation_temporality is AggregationTemporality.CUMULATIVE
    (dp,) = metric.data.data_points
    assert list(dp.bucket_counts) == [3, 4, 1]
    assert list(dp.explicit_bounds) == [0.1, 1.0]
    assert (dp.count, dp.sum) == (8, 4.5)
    assert dp.min is None and dp.max is None  # unknown: left unset on the wire


def test_summary_is_a_histogram_with_one_unbounded_bucket() -> None:
    point = SummaryPoint(LABELS, 5, 12.5)
    metric = translate([Family(names.REGRESSION_SQUARED_ERROR, "modelmon", (point,))])[
        "modelmon.regression.squared_error"
    ]
    assert isinstance(metric.data, Histogram)
    (dp,) = metric.data.data_points
    assert (list(dp.bucket_counts), list(dp.explicit_bounds), dp.count, dp.sum) == (
        [5],
        [],
        5,
        12.5,
    )


def test_exemplars_carry_prediction_id_and_trace_ids() -> None:
    trace_hex, span_hex = "0af7651916cd43dd8448eb211c80319c", "00f067aa0ba902b7"
    exemplars = (
        Exemplar({"prediction_id": "ab12"}, 0.05, 1700000000.5),
        None,
        Exemplar(
            {"prediction_id": "ab13", "trace_id": trace_hex, "span_id": span_hex}, 2.0, 1700000001.0
        ),
    )
    point = HistogramPoint(LABELS, (0.1, 1.0), (1, 0, 1), 2.05, exemplars)
    (dp,) = translate([Family(names.REQUEST_DURATION, "modelmon", (point,))])[
        "modelmon.request.duration"
    ].data.data_points
    first, second = dp.exemplars
    assert first.filtered_attributes == {"prediction_id": "ab12"}
    assert (first.value, first.trace_id, first.span_id) == (0.05, None, None)
    assert first.time_unix_nano == 1700000000500000000
    assert second.filtered_attributes == {"prediction_id": "ab13"}
    assert second.trace_id == int(trace_hex, 16)
    assert second.span_id == int(span_hex, 16)


def test_monitors_merge_into_one_metric_and_empty_families_are_left_out() -> None:
    other = {"model": "n", "version": "2"}
    metrics = translate(
        [
            Family(names.REQUESTS, "modelmon", (ScalarPoint(LABELS, 1),)),
            Family(names.REQUESTS, "modelmon", (ScalarPoint(other, 2),)),
            Family(names.REQUEST_ERRORS, "modelmon", ()),
        ]
    )
    assert set(metrics) == {"modelmon.requests"}
    values = {
        dp.attributes["model"]: dp.value for dp in metrics["modelmon.requests"].data.data_points
    }
    assert values == {"m": 1, "n": 2}


def test_namespace_replaces_the_modelmon_prefix() -> None:
    metrics = translate([Family(names.REQUESTS, "acme", (ScalarPoint(LABELS, 1),))])
    assert set(metrics) == {"acme.requests"}
    assert otel.otel_name(names.FEATURE_DRIFT, "acme") == "acme.feature.drift"


def test_mismatched_point_type_raises() -> None:
    with pytest.raises(TypeError, match="request_duration_seconds"):
        translate([Family(names.REQUEST_DURATION, "modelmon", (ScalarPoint(LABELS, 1),))])


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(0.001, 100.0), min_size=1, max_size=8, unique=True),
    st.data(),
)
def test_histogram_translation_preserves_every_count(bounds: list[float], data: Any) -> None:
    bounds = sorted(bounds)
    counts = data.draw(
        st.lists(st.integers(0, 10**9), min_size=len(bounds) + 1, max_size=len(bounds) + 1)
    )
    total = data.draw(st.floats(0, 1e12))
    point = HistogramPoint(LABELS, tuple(bounds), tuple(counts), total)
    (dp,) = translate([Family(names.BATCH_SIZE, "modelmon", (point,))])[
        "modelmon.batch.size"
    ].data.data_points
    assert list(dp.bucket_counts) == counts
    assert list(dp.explicit_bounds) == bounds
    assert dp.count == sum(counts)
    assert dp.sum == total


def test_every_catalogue_spec_translates() -> None:
    families = []
    for spec in names.CATALOGUE:
        if spec.kind == "histogram":
            point: Any = HistogramPoint(LABELS, (1.0,), (1, 1), 3.0)
        elif spec.kind == "summary":
            point = SummaryPoint(LABELS, 2, 3.0)
        elif spec.kind == "exponential_histogram":
            point = ExponentialHistogramPoint(LABELS, 6, 1, -3, (2, 0, 1), 4, (1,), 0.5)
        else:
            point = ScalarPoint(LABELS, 1.5)
        families.append(Family(spec, "modelmon", (point,)))
    metrics = translate(families)
    assert set(metrics) == {spec.otel_name for spec in names.CATALOGUE}
    assert otel.name_mapping()["modelmon_requests_total"] == "modelmon.requests"
    (dp,) = metrics["modelmon.feature.distribution"].data.data_points
    assert (dp.scale, dp.zero_count, dp.count) == (6, 1, 5)
    assert (dp.positive.offset, list(dp.positive.bucket_counts)) == (-3, [2, 0, 1])
    assert (dp.negative.offset, list(dp.negative.bucket_counts)) == (4, [1])


# --- a real monitor against its Prometheus exposition ------------------------------------


def prometheus_value(registry: CollectorRegistry, name: str, labels: dict[str, str]) -> float:
    value = registry.get_sample_value(name, labels)
    assert value is not None, (name, labels)
    return value


def assert_same_as_prometheus(metrics: dict[str, Metric], registry: CollectorRegistry) -> int:
    """Every OTel data point equals the Prometheus sample(s) of the same run; returns #points."""
    by_otel = {spec.otel_name: spec for spec in names.CATALOGUE}
    checked = 0
    for name, metric in metrics.items():
        spec = by_otel[name]
        for dp in metric.data.data_points:
            labels = dict(dp.attributes)
            base = spec.family_name()
            if isinstance(metric.data, Histogram):
                if spec.kind == "histogram":
                    cumulative = np.cumsum(dp.bucket_counts)
                    les = [floatToGoString(b) for b in dp.explicit_bounds] + ["+Inf"]
                    for le, expected in zip(les, cumulative, strict=True):
                        got = prometheus_value(registry, base + "_bucket", {**labels, "le": le})
                        assert got == expected
                assert prometheus_value(registry, base + "_count", labels) == dp.count
                assert prometheus_value(registry, base + "_sum", labels) == pytest.approx(
                    dp.sum, rel=1e-12
                )
            elif spec is names.HEARTBEAT:  # the time of each collection: the scrape is later
                assert prometheus_value(registry, spec.prometheus_name(), labels) >= dp.value
            else:
                expected = prometheus_value(registry, spec.prometheus_name(), labels)
                assert dp.value == pytest.approx(expected, rel=1e-12), (name, labels)
            checked += 1
    return checked


def test_monitor_families_equal_prometheus_exposition() -> None:
    registry = CollectorRegistry()
    mon = modelmon.Monitor("translate", "1", registry=registry, strict=True)
    rng = np.random.default_rng(1)
    latencies = rng.exponential(0.05, size=300)
    for i, latency in enumerate(latencies):
        rows = [[float(x) for x in rng.normal(size=3)] for _ in range(1 + i % 4)]
        probs = [[0.2, 0.8] for _ in rows]
        error = "ValueError" if i % 50 == 0 else None
        mon.observe(rows, None if error else probs, latency_s=float(latency), error=error)
    metrics = metrics_of(otel.families_to_metrics_data(mon.collect(), Resource({}), 1, 2))
    assert assert_same_as_prometheus(metrics, registry) >= 10
    (dp,) = metrics["modelmon.requests"].data.data_points
    assert dp.value == 300
    (duration,) = metrics["modelmon.request.duration"].data.data_points
    expected = np.bincount(
        np.searchsorted(names.DURATION_BUCKETS, latencies, side="left"),
        minlength=len(names.DURATION_BUCKETS) + 1,
    )
    assert list(duration.bucket_counts) == expected.tolist()
    assert duration.sum == pytest.approx(latencies.sum(), rel=1e-12)
    mon.close()


# --- the resource ------------------------------------------------------------------------


def test_resource_reads_environment_and_adds_instance_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "scoring")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod")
    attrs = otel.make_resource().attributes
    assert attrs["service.name"] == "scoring"
    assert attrs["deployment.environment"] == "prod"
    assert attrs["service.instance.id"] == otel.instance_id()
    user = otel.make_resource(Resource({"service.name": "mine", "team": "ml"})).attributes
    assert (user["service.name"], user["team"]) == ("mine", "ml")


def test_user_instance_id_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=pod-1")
    assert otel.make_resource().attributes["service.instance.id"] == "pod-1"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_instance_id_changes_in_forked_child() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.write(write, otel.instance_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 100).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert child and child != otel.instance_id()


# --- the push handle ---------------------------------------------------------------------


def make_handle(mon: modelmon.Monitor, exporter: MemoryExporter) -> otel.OtelExport:
    return otel.OtelExport(exporter, interval_s=3600, source=lambda: [mon])


def test_force_flush_exports_cumulative_values_and_shutdown_is_idempotent() -> None:
    mon = modelmon.Monitor("push", "1", registry=False, strict=True)
    exporter = MemoryExporter()
    handle = make_handle(mon, exporter)
    mon.observe([1.0], 0.5, latency_s=0.01)
    assert handle.force_flush()
    mon.observe([1.0], 0.5, latency_s=0.02)
    assert handle.force_flush()
    values = [
        metrics_of(d)["modelmon.requests"].data.data_points[0].value for d in exporter.received
    ]
    assert values == [1, 2]
    attrs = exporter.received[0].resource_metrics[0].resource.attributes
    assert attrs["service.instance.id"] == otel.instance_id()
    handle.shutdown()
    handle.shutdown()
    assert exporter.shutdowns == 1
    assert len(exporter.received) == 3  # one last export at shutdown
    assert not handle.force_flush()
    assert handle.is_shutdown
    mon.close()


@pytest.mark.parametrize("strict", [False, True])
def test_failures_are_counted_and_the_next_export_carries_everything(strict: bool) -> None:
    mon = modelmon.Monitor("fail", "1", registry=False, strict=strict)
    exporter = MemoryExporter()
    handle = make_handle(mon, exporter)
    exporter.down = True
    mon.observe([1.0], 0.5)
    assert not handle.force_flush()
    exporter.down, exporter.raises = False, ConnectionError("collector down")
    mon.observe([1.0], 0.5)
    assert not handle.force_flush()
    assert mon.health.internal_errors["otel_export"] == 2
    exporter.raises = None
    mon.observe([1.0], 0.5)
    assert handle.force_flush()
    metrics = metrics_of(exporter.received[-1])
    assert metrics["modelmon.requests"].data.data_points[0].value == 3
    errors = {
        dp.attributes["stage"]: dp.value
        for dp in metrics["modelmon.internal.errors"].data.data_points
    }
    assert errors["otel_export"] == 2
    assert all(v == 0 for stage, v in errors.items() if stage != "otel_export")
    handle.shutdown()
    mon.close()


def test_background_thread_exports_without_being_asked() -> None:
    mon = modelmon.Monitor("thread", "1", registry=False)
    exporter = MemoryExporter()
    handle = otel.OtelExport(exporter, interval_s=0.05, source=lambda: [mon])
    mon.observe([1.0], 0.5)
    done = threading.Event()
    for _ in range(200):  # bounded wait, no timing asserted
        if exporter.received:
            done.set()
            break
        threading.Event().wait(0.05)
    handle.shutdown()
    assert done.is_set()
    mon.close()


def test_no_monitor_means_no_export() -> None:
    exporter = MemoryExporter()
    handle = otel.OtelExport(exporter, interval_s=3600, source=list, extra_sources=list)
    assert handle.force_flush()
    assert exporter.received == []
    handle.shutdown()


@pytest.mark.parametrize("bad", [0, -1.0, math.nan])
def test_bad_interval_raises(bad: float) -> None:
    with pytest.raises(ConfigurationError, match="interval_s"):
        otel.OtelExport(MemoryExporter(), interval_s=bad)


def test_non_exporter_raises() -> None:
    with pytest.raises(ConfigurationError, match="MetricExporter"):
        otel.OtelExport(object())  # type: ignore[arg-type]


def test_mapping_table_lists_every_catalogue_metric() -> None:
    import modelmon.otel

    table = modelmon.otel.mapping_table().splitlines()
    pushed = (*names.CATALOGUE, *names.HTTP_CATALOGUE)  # the HTTP metrics go over OTLP too
    assert len(table) == 2 + len(pushed)
    for spec, line in zip(pushed, table[2:], strict=True):
        assert f"`{spec.prometheus_name()}`" in line and f"`{spec.otel_name}`" in line
    assert "| `modelmon_requests_in_flight` | `modelmon.requests.in_flight` | Sum (non-mono" in (
        "\n".join(table)
    )
