"""`export_otel()` configured the standard way: each OTel SDK variable changes what it names.

Real OTLP receivers decode real protobuf: the HTTP one of ``test_otel_otlp``, and a real
gRPC server (``grpcio``) for ``OTEL_EXPORTER_OTLP_PROTOCOL=grpc``. Scripts that must
export at interpreter exit, or print to the console, run in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from concurrent import futures
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData

import modelmon
import modelmon.otel
from modelmon.exporters.otel import DisabledExport

from ..conftest import REQUIRE_INTEGRATION
from ._otlp import Receiver, attrs, points_of

pytestmark = pytest.mark.integration

OTEL_VARS = (
    "OTEL_SDK_DISABLED",
    "OTEL_METRICS_EXPORTER",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    "OTEL_METRIC_EXPORT_INTERVAL",
    "OTEL_METRIC_EXPORT_TIMEOUT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in OTEL_VARS:
        monkeypatch.delenv(var, raising=False)


def _export_threads() -> int:
    return sum(t.name == "modelmon-otel-export" and t.is_alive() for t in threading.enumerate())


def _requests_of(request: Any, model: str) -> int:
    (dp,) = points_of(request, model)["modelmon.requests"][1]
    return int(dp.as_int)


class Recording(MetricExporter):
    """Keeps the ``timeout_millis`` of every export."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float] = []

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        self.timeouts.append(timeout_millis)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None


def test_export_interval_sets_the_period(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{receiver.port}")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "50")
    mon = modelmon.Monitor("interval", "1", registry=False)
    handle = modelmon.otel.export_otel()
    try:
        assert handle.interval_s == 0.05
        mon.observe([1.0], 0.5)
        arrived = threading.Event()
        for _ in range(600):  # bounded; no force_flush: only the thread exports
            with receiver._lock:
                if len(receiver.requests) >= 3:
                    arrived.set()
                    break
            arrived.wait(0.05)
        assert arrived.is_set(), "three periodic exports never arrived"
        assert _requests_of(receiver.last(), "interval") == 1
    finally:
        handle.shutdown()
        mon.close()


def test_argument_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "50")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_TIMEOUT", "1234")
    handle = modelmon.otel.export_otel(Recording(), interval_s=3600, timeout_s=2)
    try:
        assert handle.interval_s == 3600 and handle.timeout_millis == 2000
    finally:
        handle.shutdown()


def test_export_timeout_reaches_the_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_METRIC_EXPORT_TIMEOUT", "1234")
    exporter = Recording()
    mon = modelmon.Monitor("timeout", "1", registry=False)
    handle = modelmon.otel.export_otel(exporter, interval_s=3600)
    try:
        mon.observe([1.0], 0.5)
        assert handle.force_flush()
        assert exporter.timeouts == [1234.0]
    finally:
        handle.shutdown()
        mon.close()


@pytest.mark.parametrize(
    ("var", "value"), [("OTEL_SDK_DISABLED", "TRUE"), ("OTEL_METRICS_EXPORTER", "none")]
)
def test_disabled_exports_nothing_and_starts_no_thread(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{receiver.port}")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "10")
    monkeypatch.setenv(var, value)
    threads_before = _export_threads()
    mon = modelmon.Monitor("disabled", "1", registry=False)
    handle = modelmon.otel.export_otel()
    try:
        assert isinstance(handle, DisabledExport)
        assert var in repr(handle)
        mon.observe([1.0], 0.5)
        assert handle.force_flush()
        assert _export_threads() == threads_before
    finally:
        handle.shutdown()
        mon.close()
    assert receiver.requests == []


def test_sdk_disabled_also_disables_a_given_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    exporter = Recording()
    handle = modelmon.otel.export_otel(exporter, interval_s=3600)
    handle.force_flush()
    handle.shutdown()
    assert exporter.timeouts == []


@pytest.mark.parametrize(
    ("var", "value", "match"),
    [
        ("OTEL_METRICS_EXPORTER", "zipkin", "OTEL_METRICS_EXPORTER"),
        ("OTEL_METRICS_EXPORTER", "prometheus", "serves Prometheus itself"),
        ("OTEL_METRICS_EXPORTER", "otlp,console", "one exporter"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "http/json"),
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "thrift", "METRICS_PROTOCOL"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "soon", "milliseconds"),
        ("OTEL_METRIC_EXPORT_TIMEOUT", "-5", "milliseconds"),
    ],
)
def test_values_the_sdk_would_not_understand_raise(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, match: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(modelmon.ConfigurationError, match=match):
        modelmon.otel.export_otel()


def _run_script(body: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = textwrap.dedent(body)
    full_env = {k: v for k, v in os.environ.items() if k not in OTEL_VARS}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", script],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


SHORT_SCRIPT = """
    import modelmon, modelmon.otel
    monitor = modelmon.Monitor("script", "1", registry=False)
    modelmon.otel.export_otel()
    for i in range(7):
        monitor.observe([float(i)], 0.5)
"""


def test_a_short_script_exports_at_exit(receiver: Receiver) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
        "OTEL_SERVICE_NAME": "short-script",
    }
    done = _run_script(SHORT_SCRIPT, env)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    request = receiver.last()
    assert _requests_of(request, "script") == 7
    assert attrs(request.resource_metrics[0].resource.attributes)["service.name"] == (
        "short-script"
    )


def test_console_exporter_prints_the_metrics() -> None:
    done = _run_script(SHORT_SCRIPT, {"OTEL_METRICS_EXPORTER": "console"})
    assert done.returncode == 0, done.stderr
    assert '"name": "modelmon.requests"' in done.stdout
    assert '"model": "script"' in done.stdout


# --- gRPC ---------------------------------------------------------------------------------


def _grpc_modules() -> tuple[Any, Any, Any]:
    try:
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (  # noqa: F401
            OTLPMetricExporter,
        )
        from opentelemetry.proto.collector.metrics.v1 import (
            metrics_service_pb2,
            metrics_service_pb2_grpc,
        )
    except ImportError as exc:
        if REQUIRE_INTEGRATION:
            raise
        pytest.skip(f"gRPC exporter missing ({exc}): pip install 'modelmon[otel-grpc]'")
    return grpc, metrics_service_pb2, metrics_service_pb2_grpc


class GrpcReceiver:
    """A real gRPC OTLP metrics service on 127.0.0.1 keeping the decoded requests."""

    def __init__(self) -> None:
        grpc, pb2, pb2_grpc = _grpc_modules()
        self.requests: list[Any] = []
        receiver = self

        class Service(pb2_grpc.MetricsServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:
                receiver.requests.append(request)
                return pb2.ExportMetricsServiceResponse()

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        pb2_grpc.add_MetricsServiceServicer_to_server(Service(), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def stop(self) -> None:
        self.server.stop(grace=None).wait()


def test_grpc_protocol_sends_over_grpc(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    grpc_receiver = GrpcReceiver()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{grpc_receiver.port}")
        mon = modelmon.Monitor("grpc", "1", registry=False)
        handle = modelmon.otel.export_otel(interval_s=3600)
        try:
            for _ in range(4):
                mon.observe([1.0], 0.5)
            assert handle.force_flush()
        finally:
            handle.shutdown()
            mon.close()
        assert grpc_receiver.requests, "the gRPC service got nothing"
        assert _requests_of(grpc_receiver.requests[-1], "grpc") == 4
        # The metrics-only variable wins over the general one.
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{receiver.port}")
        mon = modelmon.Monitor("grpc", "2", registry=False)
        handle = modelmon.otel.export_otel(interval_s=3600)
        try:
            mon.observe([1.0], 0.5)
            assert handle.force_flush()
        finally:
            handle.shutdown()
            mon.close()
        assert receiver.requests, "http/protobuf from the metrics variable did not arrive"
    finally:
        grpc_receiver.stop()
