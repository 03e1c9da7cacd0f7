"""An OTLP collector that never answers: exports and shutdown end within the timeout."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

import modelmon
from modelmon.otel import export_otel


class _Hanging(BaseHTTPRequestHandler):
    release = threading.Event()
    seen = threading.Event()

    def do_POST(self) -> None:
        self.seen.set()
        self.release.wait(120)  # a stuck collector: answers only when the test is over
        self.send_response(503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hanging_collector() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hanging)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/metrics"
    finally:
        _Hanging.release.set()
        server.shutdown()
        server.server_close()


@pytest.mark.timeout(45)  # the exporter's own timeout is 60 s: without the bound, this hangs
def test_export_and_shutdown_are_bounded_by_the_configured_timeout(
    hanging_collector: str,
) -> None:
    mon = modelmon.Monitor("otlp", "1", registry=False)
    mon.observe({"a": 1.0}, 0.5)
    exporter = OTLPMetricExporter(endpoint=hanging_collector, timeout=60)
    handle = export_otel(exporter, interval_s=3600, timeout_s=1.0)
    try:
        assert handle.force_flush() is False  # gave up at the timeout
        assert _Hanging.seen.is_set() and not _Hanging.release.is_set()  # still stuck
        assert mon.health.internal_errors["otel_export"] == 1
    finally:
        handle.shutdown()  # bounded too, though the collector still hangs
    assert not _Hanging.release.is_set()
    mon.close()
