"""The Prometheus exposition: text and OpenMetrics formats, parsed back."""

from __future__ import annotations

import urllib.request

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families

import modelmon
from modelmon import names

from ..conftest import free_port


def _traffic(registry: CollectorRegistry) -> None:
    predict = modelmon.monitored(model="m", version="1", registry=registry)(
        lambda X: np.tile([0.3, 0.7], (len(X), 1))
    )
    for i in range(20):
        predict(np.full((i % 4 + 1, 3), float(i)))


def test_text_exposition_parses_and_has_the_catalogue(registry: CollectorRegistry) -> None:
    _traffic(registry)
    text = generate_latest(registry).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for spec in (
        names.REQUESTS,
        names.PREDICTIONS,
        names.REQUEST_DURATION,
        names.IN_FLIGHT,
        names.BATCH_SIZE,
        names.CONFIDENCE,
        names.MODEL_INFO,
        names.LAST_PREDICTION,
        names.FEATURE_OBSERVATIONS,
    ):
        assert spec.family_name() in families, spec.name
        assert families[spec.family_name()].type == spec.kind
    conf = families["modelmon_prediction_confidence"]
    buckets = {s.labels["le"]: s.value for s in conf.samples if s.name.endswith("_bucket")}
    assert buckets["0.6"] == 0 and buckets["0.7"] == 50 and buckets["+Inf"] == 50


def test_openmetrics_has_prediction_id_exemplars(registry: CollectorRegistry) -> None:
    _traffic(registry)
    text = generate_openmetrics(registry).decode()
    families = {f.name: f for f in parse_om(text)}
    hist = families["modelmon_request_duration_seconds"]
    exemplars = [s.exemplar for s in hist.samples if s.exemplar is not None]
    assert exemplars, "the latency histogram carries exemplars"
    assert all("prediction_id" in e.labels for e in exemplars)
    assert families["modelmon_requests"].type == "counter"


def test_http_server_serves_both_formats() -> None:
    registry = CollectorRegistry()
    _traffic(registry)
    port = free_port()
    server, thread = modelmon.start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(url) as resp:
            assert b"modelmon_requests_total" in resp.read()
        req = urllib.request.Request(url, headers={"Accept": "application/openmetrics-text"})
        with urllib.request.urlopen(req) as resp:
            body = resp.read()
            assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
            assert b"# EOF" in body and b"prediction_id" in body
    finally:
        server.shutdown()
        server.server_close()  # shutdown() stops serving; this closes the listening socket
        thread.join()


def test_wsgi_and_asgi_apps(registry: CollectorRegistry) -> None:
    import asyncio

    _traffic(registry)
    wsgi = modelmon.make_wsgi_app(registry)
    status: list[str] = []
    body = b"".join(
        wsgi(
            {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": ""},
            lambda s, h: status.append(s),
        )
    )
    assert status[0].startswith("200") and b"modelmon_requests_total" in body

    asgi = modelmon.make_asgi_app(registry)
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/metrics",
        "query_string": b"",
        "headers": [],
    }
    asyncio.run(asgi(scope, receive, send))
    assert b"modelmon_requests_total" in b"".join(m.get("body", b"") for m in sent)  # type: ignore[misc]
