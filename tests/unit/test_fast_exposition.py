"""modelmon's own text renderer gives prometheus-client's exposition, sample for sample."""

from __future__ import annotations

import asyncio
import gzip
import math
import urllib.request
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generic_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

import modelmon
from modelmon import names
from modelmon.exporters.exposition import generate_openmetrics, generate_text, go_float
from modelmon.exporters.prometheus import make_asgi_app, make_wsgi_app, start_http_server
from modelmon.profile import ReferenceProfile

HEARTBEAT = names.HEARTBEAT.family_name()
ODD = ['a"quote', "b\\slash", "c\nnewline", "plain"]


def _setup(seed: int = 1) -> tuple[CollectorRegistry, list[modelmon.Monitor], Any]:
    """Two monitors with a reference (odd feature names), outcomes, a user's metrics."""
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame({n: rng.normal(size=800) for n in ODD})
    ref["cat"] = rng.choice(["x", 'y"', "z\\"], size=800)
    profile = ReferenceProfile.from_data(ref, categorical=["cat"], created_at=0.0)
    registry = CollectorRegistry()
    user = Counter(
        "user_hits", "User's counter\nwith a \\ in its help.", ["path"], registry=registry
    )
    user.labels(path='/a"b\\c\nd').inc(3)
    Histogram("user_seconds", "User's histogram.", registry=registry).observe(0.3)
    monitors = [
        modelmon.Monitor(f'm"{i}', "1\\0", registry=registry, reference=profile, min_samples=20)
        for i in range(2)
    ]

    def feed(calls: int) -> None:
        for monitor in monitors:
            for _ in range(calls):
                row: dict[str, Any] = {n: float(rng.normal(0.3, 1.5)) for n in ODD}
                row["cat"] = str(rng.choice(["x", 'y"', "w"]))
                pid = monitor.observe(
                    row, float(rng.integers(0, 2)), latency_s=float(rng.exponential(0.05))
                )
                if rng.random() < 0.3:
                    monitor.record_outcome(pid, float(rng.integers(0, 2)))

    feed(200)
    return registry, monitors, feed


def _without_heartbeat(text: bytes) -> tuple[bytes, int]:
    """The exposition minus heartbeat samples (their value is the time of the scrape)."""
    lines = text.split(b"\n")
    kept = [line for line in lines if not line.startswith(HEARTBEAT.encode() + b"{")]
    return b"\n".join(kept), len(lines) - len(kept)


def _samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in out, key
            out[key] = s.value
    return out


def _assert_same(fast: bytes, generic: bytes) -> int:
    fast_rest, fast_beats = _without_heartbeat(fast)
    generic_rest, generic_beats = _without_heartbeat(generic)
    assert fast_beats == generic_beats == 2
    a, b = _samples(fast_rest), _samples(generic_rest)
    assert a.keys() == b.keys()
    for key, value in b.items():
        assert a[key] == value or (math.isnan(a[key]) and math.isnan(value)), key
    assert fast_rest == generic_rest  # and byte for byte, headers and order included
    return len(a)


def test_generate_text_equals_generate_latest_sample_for_sample() -> None:
    registry, monitors, _ = _setup()
    n = _assert_same(generate_text(registry), generate_latest(registry))
    assert n > 300  # drift bins, ratios, quantiles, p-values, histograms, the user's metrics
    text = generate_text(registry).decode()
    assert 'feature="a\\"quote"' in text and 'feature="c\\nnewline"' in text
    assert 'user_hits_total{path="/a\\"b\\\\c\\nd"} 3.0' in text
    for monitor in monitors:
        monitor.close()


def test_cached_series_follow_new_data_scrape_after_scrape() -> None:
    registry, monitors, feed = _setup(seed=2)
    before = generate_text(registry)
    for _ in range(3):
        feed(60)
        fast = generate_text(registry)
        _assert_same(fast, generate_latest(registry))
        assert _without_heartbeat(fast)[0] != _without_heartbeat(before)[0]
        before = fast
    for monitor in monitors:
        monitor.close()


def _om_samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], Any]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}
    for family in parse_om(text.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = (s.value, s.exemplar)
    return out


def _assert_same_openmetrics(fast: bytes, generic: bytes) -> int:
    fast_rest, fast_beats = _without_heartbeat(fast)
    generic_rest, generic_beats = _without_heartbeat(generic)
    assert fast_beats == generic_beats == 2
    assert fast_rest == generic_rest  # byte for byte, exemplars and "# EOF" included
    a, b = _om_samples(fast_rest), _om_samples(generic_rest)
    assert a.keys() == b.keys()
    return sum(1 for value, exemplar in a.values() if exemplar is not None)


def test_generate_openmetrics_equals_prometheus_clients_scrape_after_scrape() -> None:
    registry, monitors, feed = _setup(seed=5)
    exemplars = _assert_same_openmetrics(
        generate_openmetrics(registry), generic_openmetrics(registry)
    )
    assert exemplars > 0  # latency buckets carry prediction ids
    for _ in range(2):
        feed(40)
        _assert_same_openmetrics(generate_openmetrics(registry), generic_openmetrics(registry))
    assert generate_openmetrics(registry).endswith(b"# EOF\n")
    for monitor in monitors:
        monitor.close()


def test_go_float_is_float_to_go_string() -> None:
    rng = np.random.default_rng(0)
    values = [
        0.0, -0.0, 1.0, -1.0, 0.5, 1e-9, 123456.0, 999999.0, 1234567.0, -1234567.0,
        2592000.0, 1.7959993e9, 1e16, 1e22, -1e22, 5e-324, math.inf, -math.inf, math.nan,
    ]  # fmt: skip
    values += (rng.standard_normal(2000) * 10.0 ** rng.integers(-12, 18, 2000)).tolist()
    values += rng.integers(0, 10**9, 200).tolist()
    for v in values:
        assert go_float(v) == floatToGoString(v), v


def test_wsgi_and_asgi_apps_render_text_fast_and_negotiate_the_rest() -> None:
    registry, monitors, _ = _setup(seed=3)
    wsgi = make_wsgi_app(registry)
    asgi = make_asgi_app(registry)

    def via_wsgi(headers: dict[str, str], query: str) -> tuple[dict[str, str], bytes]:
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": query}
        environ.update({"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()})
        seen: dict[str, str] = {}
        body = b"".join(wsgi(environ, lambda status, hs: seen.update(hs)))
        return seen, body

    def via_asgi(headers: dict[str, str], query: str) -> tuple[dict[str, str], bytes]:
        sent: list[dict[str, Any]] = []
        scope = {
            "type": "http", "method": "GET", "path": "/metrics",
            "query_string": query.encode(),
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        }  # fmt: skip

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        asyncio.run(asgi(scope, receive, send))
        hs = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
        return hs, sent[1]["body"]

    for call in (via_wsgi, via_asgi):
        hs, body = call({}, "")
        assert hs["Content-Type"].startswith("text/plain; version=0.0.4")
        _assert_same(body, generate_latest(registry))
        hs, body = call({"Accept-Encoding": "gzip"}, "")
        assert hs["Content-Encoding"] == "gzip"
        _assert_same(gzip.decompress(body), generate_latest(registry))
        prometheus_accept = (
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
            "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        )  # what Prometheus 2.x sends
        hs, body = call({"Accept": prometheus_accept}, "")
        assert hs["Content-Type"].startswith("application/openmetrics-text")
        _assert_same_openmetrics(body, generic_openmetrics(registry))
        hs, body = call({}, "name[]=modelmon_requests_total")
        lines = [x for x in body.decode().splitlines() if not x.startswith("#")]
        assert len(lines) == 2 and all(x.startswith("modelmon_requests_total{") for x in lines)
    for monitor in monitors:
        monitor.close()


def test_start_http_server_serves_the_fast_text() -> None:
    registry, monitors, _ = _setup(seed=4)
    server, thread = start_http_server(0, "127.0.0.1", registry, min_interval=0.0)
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=30) as response:
            body = response.read()
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        _assert_same(body, generate_latest(registry))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)
        for monitor in monitors:
            monitor.close()


@pytest.mark.parametrize("models", [1, 3])
def test_generic_collect_still_works_inside_a_gate(models: int) -> None:
    """A gated registry read by prometheus-client's encoder gets plain metric families."""
    from modelmon.exporters.gate import GatedRegistry

    registry = CollectorRegistry()
    monitors = [modelmon.Monitor(f"g{i}", "1", registry=registry) for i in range(models)]
    for monitor in monitors:
        monitor.observe({"x": 1.0}, 0.5, latency_s=0.01)
    gated = GatedRegistry(registry, min_interval=0.0)
    generic = generate_latest(gated)  # type: ignore[arg-type]
    assert generic.count(b"modelmon_requests_total{") == models
    assert generate_text(gated).count(b"modelmon_requests_total{") == models
    only = gated.restricted_registry(["modelmon_requests_total"])
    assert generate_text(only).count(b"modelmon_requests_total{") == models
    for monitor in monitors:
        monitor.close()
