"""OTLP push of HTTP middleware metrics alone (no monitor): exported, failures counted."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData

from modelmon.exporters import otel
from modelmon.integrations import HttpMetrics


class Answer(MetricExporter):
    def __init__(self, result: MetricExportResult) -> None:
        super().__init__()
        self.result = result
        self.received: list[MetricsData] = []

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        self.received.append(metrics_data)
        return self.result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None


def test_http_metrics_alone_are_exported_and_failures_counted() -> None:
    http = HttpMetrics()
    http.record("GET", "/only-http", "200", 0.01)
    ok = Answer(MetricExportResult.SUCCESS)
    handle = otel.OtelExport(ok, interval_s=3600, source=list, extra_sources=lambda: [http])
    assert handle.force_flush()
    handle.shutdown()
    (metrics_data,) = ok.received[:1]
    names = {m.name for m in metrics_data.resource_metrics[0].scope_metrics[0].metrics}
    assert names == {"modelmon.http.requests", "modelmon.http.request.duration"}

    failing = Answer(MetricExportResult.FAILURE)
    handle = otel.OtelExport(failing, interval_s=3600, source=list, extra_sources=lambda: [http])
    assert not handle.force_flush()
    handle.shutdown()
    assert http.health.internal_errors.get(otel.STAGE, 0) >= 1
