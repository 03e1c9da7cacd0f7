"""Endpoints: loopback by default, /metrics off the public port or guarded, floods coalesced."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.metrics_core import GaugeMetricFamily

import modelmon
from modelmon.integrations.fastapi import instrument
from tests.conftest import free_port


def test_start_http_server_binds_loopback_by_default() -> None:
    server, thread = modelmon.start_http_server(free_port(), registry=CollectorRegistry())
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_metrics_behind_a_guard() -> None:
    reg = CollectorRegistry()
    Counter("probe", "Probe.", registry=reg).inc()
    app = instrument(
        FastAPI(),
        registry=reg,
        metrics_guard=lambda r: r.headers.get("authorization") == "Bearer s3cret",
    )
    client = TestClient(app)
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"authorization": "Bearer nope"}).status_code == 404
    ok = client.get("/metrics", headers={"authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and "probe_total 1.0" in ok.text


def test_metrics_on_a_separate_loopback_port() -> None:
    reg = CollectorRegistry()
    Counter("probe", "Probe.", registry=reg).inc()
    port = free_port()
    app = instrument(FastAPI(), registry=reg, metrics_port=port)
    server = app.state.modelmon_metrics_server
    try:
        assert server.server_address[0] == "127.0.0.1"
        assert TestClient(app).get("/metrics").status_code == 404  # not on the public port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            assert b"probe_total 1.0" in r.read()
    finally:
        server.shutdown()
        server.server_close()


class BlockingCollector:
    """Counts collections; the first one waits until released."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = threading.Event()
        self.value = 0.0

    def collect(self) -> Iterator[Any]:
        self.calls += 1
        value = self.value  # what the collection saw when it started
        if self.calls == 1:
            self.release.wait(30)
        yield GaugeMetricFamily("probe_value", "Probe.", value=value)


def test_a_scrape_flood_shares_collections_and_stays_fresh() -> None:
    reg = CollectorRegistry()
    probe = BlockingCollector()
    reg.register(probe)
    app = instrument(FastAPI(), registry=reg, min_scrape_interval=0.0)
    client = TestClient(app)
    gate = None
    results: list[str] = []

    def scrape() -> None:
        results.append(client.get("/metrics").text)

    first = threading.Thread(target=scrape)
    first.start()
    while probe.calls == 0:  # the first collection is running (and blocked)
        time.sleep(0.01)
    probe.value = 1.0  # a "call" completed after the first scrape began
    flood = [threading.Thread(target=scrape) for _ in range(20)]
    for t in flood:
        t.start()
    endpoint = next(r for r in app.routes if getattr(r, "path", "") == "/metrics")
    gate = endpoint.endpoint.__closure__  # type: ignore[attr-defined]
    source = next(c.cell_contents for c in gate if hasattr(c.cell_contents, "gate"))
    while len(source.gate._cond._waiters) < 20:  # type: ignore[attr-defined]
        time.sleep(0.01)
    probe.release.set()
    for t in [first, *flood]:
        t.join(30)
    assert probe.calls == 2  # 21 scrapes, 2 collections
    assert len(results) == 21
    assert sum("probe_value 1.0" in r for r in results) == 20  # each saw what preceded it
