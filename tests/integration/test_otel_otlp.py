"""The real OTLP/HTTP exporter against an in-test receiver decoding real protobuf.

The receiver is a loopback ``http.server`` that decodes every
``ExportMetricsServiceRequest`` and answers with an ``ExportMetricsServiceResponse``.
What it receives must equal the Prometheus exposition of the same run.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.utils import floatToGoString

import modelmon
import modelmon.otel
from modelmon import names

from ._otlp import Receiver, Request, attrs, exporter_for, metrics_of, number, points_of

pytestmark = pytest.mark.integration


def prom(registry: CollectorRegistry, name: str, labels: dict[str, str]) -> float:
    got = registry.get_sample_value(name, labels)
    assert got is not None, (name, labels)
    return got


def assert_equal_to_prometheus(
    request: Request, model: str, registry: CollectorRegistry
) -> set[str]:
    """Every received point of ``model`` equals its Prometheus sample; returns the names."""
    by_otel = {spec.otel_name: spec for spec in names.CATALOGUE}
    received = points_of(request, model)
    for name, (kind, dps) in received.items():
        spec = by_otel[name]
        base = spec.family_name()
        for dp in dps:
            labels = attrs(dp.attributes)
            if kind == "histogram":
                assert not dp.HasField("min") and not dp.HasField("max")
                if spec.kind == "histogram":
                    les = [floatToGoString(b) for b in dp.explicit_bounds] + ["+Inf"]
                    for le, cum in zip(les, np.cumsum(dp.bucket_counts), strict=True):
                        assert prom(registry, base + "_bucket", {**labels, "le": le}) == cum
                assert prom(registry, base + "_count", labels) == dp.count
                assert prom(registry, base + "_sum", labels) == pytest.approx(dp.sum, rel=1e-12)
            elif spec is names.HEARTBEAT:  # the time of each collection: the scrape is later
                assert prom(registry, spec.prometheus_name(), labels) >= number(dp)
            else:
                assert kind in ("sum", "gauge")
                expected = prom(registry, spec.prometheus_name(), labels)
                assert number(dp) == pytest.approx(expected, rel=1e-12), (name, labels)
    return set(received)


def run_predictions(predict: Any, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    latencies = rng.exponential(0.02, size=n)
    for i, latency in enumerate(latencies):
        predict([[float(v) for v in rng.normal(size=4)] for _ in range(1 + i % 3)], latency)
    return latencies


def observer(mon: modelmon.Monitor) -> Any:
    def predict(rows: list[list[float]], latency: float) -> None:
        mon.observe(rows, [[0.25, 0.75] for _ in rows], latency_s=latency)

    return predict


def test_otlp_payload_equals_prometheus_exposition(receiver: Receiver) -> None:
    registry = CollectorRegistry()
    mon = modelmon.Monitor("otlp", "1", registry=registry, strict=True)
    handle = modelmon.otel.export_otel(
        exporter_for(receiver), interval_s=3600, resource=None, timeout_s=2
    )
    try:
        latencies = run_predictions(observer(mon), 250, seed=3)
        assert handle.force_flush()
        request = receiver.last()
        seen = assert_equal_to_prometheus(request, "otlp", registry)
        assert {
            "modelmon.requests",
            "modelmon.predictions",
            "modelmon.request.duration",
            "modelmon.batch.size",
            "modelmon.prediction.confidence",
            "modelmon.requests.in_flight",
            "modelmon.model.info",
        } <= seen
        kinds = {name: kind for name, (kind, _) in points_of(request, "otlp").items()}
        assert kinds["modelmon.requests"] == "sum"
        assert kinds["modelmon.request.duration"] == "histogram"
        (requests,) = points_of(request, "otlp")["modelmon.requests"][1]
        assert requests.as_int == 250
        (duration,) = points_of(request, "otlp")["modelmon.request.duration"][1]
        expected = np.bincount(
            np.searchsorted(names.DURATION_BUCKETS, latencies, side="left"),
            minlength=len(names.DURATION_BUCKETS) + 1,
        )
        assert list(duration.bucket_counts) == expected.tolist()
        assert duration.sum == pytest.approx(latencies.sum(), rel=1e-12)
        assert any(ex.filtered_attributes for ex in duration.exemplars)
        resource = attrs(request.resource_metrics[0].resource.attributes)
        assert resource["service.instance.id"] == modelmon.otel.instance_id()
        assert resource["service.name"]
    finally:
        handle.shutdown()
        mon.close()


def test_drift_gauges_equal_prometheus_exposition(receiver: Receiver) -> None:
    profile = pytest.importorskip("modelmon.profile", reason="reference profiles not built yet")
    pytest.importorskip("modelmon.aggregates.drift", reason="drift aggregate not built yet")
    rng = np.random.default_rng(5)
    feature_names = ["a", "b", "c", "d"]
    reference_rows = [
        dict(zip(feature_names, rng.normal(size=4), strict=True)) for _ in range(2000)
    ]
    reference = profile.ReferenceProfile.from_data(reference_rows, feature_names=feature_names)
    registry = CollectorRegistry()
    mon = modelmon.Monitor("drift", "1", registry=registry, reference=reference, strict=True)
    handle = modelmon.otel.export_otel(exporter_for(receiver), interval_s=3600, timeout_s=2)
    try:
        for _ in range(400):
            mon.observe(dict(zip(feature_names, rng.normal(0.5, 1.0, size=4), strict=True)), 0.5)
        assert handle.force_flush()
        seen = assert_equal_to_prometheus(receiver.last(), "drift", registry)
        assert "modelmon.feature.drift" in seen
    finally:
        handle.shutdown()
        mon.close()


def test_collector_down_then_back_loses_nothing(receiver: Receiver) -> None:
    registry = CollectorRegistry()
    mon = modelmon.Monitor("down", "1", registry=registry)
    handle = modelmon.otel.export_otel(exporter_for(receiver, 0.5), interval_s=0.1, timeout_s=2)
    stage = {"model": "down", "version": "1", "stage": "otel_export"}
    try:
        run_predictions(observer(mon), 50, seed=1)
        assert handle.force_flush()
        receiver.stop()

        # Predictions go on (same results, no exception) while every export fails.
        predict = mon.wrap(lambda rows: [0.5] * len(rows))
        failures_seen = threading.Event()
        for _ in range(400):  # bounded: the background thread fails every 0.1 s
            for _ in range(5):
                assert predict([[1.0, 2.0]] * 2) == [0.5, 0.5]
            if (registry.get_sample_value("modelmon_internal_errors_total", stage) or 0) >= 2:
                failures_seen.set()
                break
            failures_seen.wait(0.05)
        assert failures_seen.is_set()
        assert not handle.force_flush()
        requests_so_far = prom(
            registry, "modelmon_requests_total", {"model": "down", "version": "1"}
        )

        receiver.start()  # same port
        run_predictions(observer(mon), 7, seed=4)
        assert handle.force_flush()
        (dp,) = points_of(receiver.last(), "down")["modelmon.requests"][1]
        assert dp.as_int == requests_so_far + 7
        (errors,) = [
            e
            for e in points_of(receiver.last(), "down")["modelmon.internal.errors"][1]
            if attrs(e.attributes)["stage"] == "otel_export"
        ]
        assert errors.as_int >= 3
        assert_equal_to_prometheus(receiver.last(), "down", registry)
    finally:
        handle.shutdown()
        mon.close()


def test_missing_exporter_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.metric_exporter", None)
    with pytest.raises(modelmon.MissingExtraError, match=r"modelmon\[otel-exporters\]"):
        modelmon.otel.export_otel()


def test_default_exporter_reads_the_environment(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{receiver.port}")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "env-service")
    mon = modelmon.Monitor("env", "1", registry=False)
    handle = modelmon.otel.export_otel(interval_s=3600)
    try:
        mon.observe([1.0], 0.5)
        assert handle.force_flush()
        request = receiver.last()
        assert attrs(request.resource_metrics[0].resource.attributes)["service.name"] == (
            "env-service"
        )
        (dp,) = points_of(request, "env")["modelmon.requests"][1]
        assert dp.as_int == 1
    finally:
        handle.shutdown()
        mon.close()


def test_http_middleware_metrics_arrive_equal_to_prometheus(receiver: Receiver) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from modelmon.integrations.asgi import MetricsMiddleware

    registry = CollectorRegistry()
    app = FastAPI()
    app.add_middleware(MetricsMiddleware, registry=registry)

    @app.get("/otlp-items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        if item_id == 13:
            raise ValueError("unlucky")
        return {"item": item_id}

    client = TestClient(app, raise_server_exceptions=False)
    statuses = [client.get(f"/otlp-items/{i}").status_code for i in range(20)]
    assert statuses.count(500) == 1
    handle = modelmon.otel.export_otel(exporter_for(receiver), interval_s=3600, timeout_s=2)
    try:
        assert handle.force_flush()
        request = receiver.last()
    finally:
        handle.shutdown()
    route = "/otlp-items/{item_id}"
    got = points_of(request, route, key="route")
    units = {names.HTTP_REQUESTS.otel_name: "{request}", names.HTTP_DURATION.otel_name: "s"}
    assert {m.name: m.unit for m in metrics_of(request) if m.name in got} == units
    kind, requests_dps = got[names.HTTP_REQUESTS.otel_name]
    assert kind == "sum"
    by_status = {attrs(dp.attributes)["status"]: dp.as_int for dp in requests_dps}
    assert by_status == {"200": 19, "500": 1}
    for dp in requests_dps:
        expected = prom(registry, "modelmon_http_requests_total", attrs(dp.attributes))
        assert dp.as_int == expected
    kind, duration_dps = got[names.HTTP_DURATION.otel_name]
    assert kind == "histogram"
    (dp,) = duration_dps
    labels = attrs(dp.attributes)
    base = "modelmon_http_request_duration_seconds"
    les = [floatToGoString(b) for b in dp.explicit_bounds] + ["+Inf"]
    for le, cum in zip(les, np.cumsum(dp.bucket_counts), strict=True):
        assert prom(registry, base + "_bucket", {**labels, "le": le}) == cum
    assert prom(registry, base + "_count", labels) == dp.count == 20
    assert prom(registry, base + "_sum", labels) == pytest.approx(dp.sum, rel=1e-12)
