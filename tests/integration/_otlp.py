"""A real OTLP/HTTP metrics receiver (decoding real protobuf) and readers of what it got.

Shared by the OTLP integration tests: the :class:`Receiver` (the ``receiver`` fixture of
``conftest.py`` runs one), the exporter pointed at it, and the data point readers.
"""

from __future__ import annotations

import contextlib
import gzip
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.conftest import REQUIRE_INTEGRATION, free_port

try:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
except ImportError as exc:  # pragma: no cover - the dev extra installs both
    if REQUIRE_INTEGRATION:
        raise
    pytest.skip(
        f"OTLP packages missing ({exc}): pip install 'modelmon[otel-exporters]' "
        "opentelemetry-proto",
        allow_module_level=True,
    )

Request = Any  # metrics_service_pb2.ExportMetricsServiceRequest


class Receiver:
    """A minimal OTLP/HTTP metrics endpoint on 127.0.0.1 that keeps decoded requests."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/metrics"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                request = metrics_service_pb2.ExportMetricsServiceRequest()
                request.ParseFromString(body)
                with receiver._lock:
                    receiver.requests.append(request)
                reply = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server = self._server
        threading.Thread(target=lambda: server.serve_forever(0.05), daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def last(self) -> Request:
        with self._lock:
            assert self.requests, "the receiver got nothing"
            return self.requests[-1]


@contextlib.contextmanager
def running_receiver() -> Iterator[Receiver]:
    """A started :class:`Receiver` on a free port, stopped on exit (the ``receiver`` fixture)."""
    rec = Receiver(free_port())
    rec.start()
    try:
        yield rec
    finally:
        rec.stop()


def exporter_for(receiver: Receiver, timeout_s: float = 2.0) -> Any:
    # Below the exporter's first 1 s retry backoff, a refused connection fails at once.
    return OTLPMetricExporter(endpoint=receiver.endpoint, timeout=timeout_s)


def attrs(kvs: Any) -> dict[str, str]:
    return {kv.key: kv.value.string_value for kv in kvs}


def number(dp: Any) -> float:
    return float(dp.as_int) if dp.WhichOneof("value") == "as_int" else dp.as_double


def metrics_of(request: Request) -> Iterator[Any]:
    """Every metric of every resource and scope in ``request``."""
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            yield from sm.metrics


def points_of(request: Request, model: str, key: str = "model") -> dict[str, tuple[str, list[Any]]]:
    """OTel name -> (data kind, data points whose attribute ``key`` is ``model``)."""
    out: dict[str, tuple[str, list[Any]]] = {}
    for metric in metrics_of(request):
        kind = metric.WhichOneof("data")
        dps = [
            dp for dp in getattr(metric, kind).data_points if attrs(dp.attributes).get(key) == model
        ]
        if dps:
            out[metric.name] = (kind, dps)
    return out
