"""``registry=`` as in prometheus-client: default the global REGISTRY, None registers nowhere."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client import REGISTRY, CollectorRegistry

import modelmon
from modelmon.errors import ConfigurationError
from modelmon.integrations.asgi import MetricsMiddleware
from modelmon.monitor import DEFAULT_REGISTRY


def _model() -> str:
    return f"reg_{uuid.uuid4().hex[:8]}"  # the global registry outlives a test


def _requests(registry: CollectorRegistry, model: str) -> float | None:
    return registry.get_sample_value("modelmon_requests_total", {"model": model, "version": "1"})


def test_the_default_is_the_global_registry() -> None:
    model = _model()
    mon = modelmon.Monitor(model, "1")
    try:
        assert mon.registry is DEFAULT_REGISTRY
        mon.observe({"a": 1.0}, 0.5)
        assert _requests(REGISTRY, model) == 1
    finally:
        mon.close()
    assert _requests(REGISTRY, model) is None  # closed: detached


@pytest.mark.parametrize("value", [None, False])
def test_none_and_the_deprecated_false_register_nowhere(value: object) -> None:
    model = _model()
    mon = modelmon.Monitor(model, "1", registry=value)
    twin = modelmon.Monitor(model, "1", registry=value)  # nothing to hide: no conflict
    mon.observe({"a": 1.0}, 0.5)
    assert mon.registry is None
    assert _requests(REGISTRY, model) is None
    mon.fold()
    assert mon.traffic.requests == 1  # still recorded, read it (or push it) yourself
    mon.close()
    twin.close()


def test_two_monitors_of_one_model_in_the_default_registry_conflict() -> None:
    model = _model()
    mon = modelmon.Monitor(model, "1")
    try:
        with pytest.raises(ConfigurationError, match="already monitored"):
            modelmon.Monitor(model, "1", registry=REGISTRY)
    finally:
        mon.close()


def test_monitored_shares_the_monitor_of_the_default_registry() -> None:
    model = _model()
    first = modelmon.monitored(model=model, version="1")(lambda x: 0.5)
    second = modelmon.monitored(model=model, version="1")(lambda x: 0.25)
    assert first.monitor is second.monitor
    first.monitor.close()


def test_a_private_registry_exposes_only_there() -> None:
    model, reg = _model(), CollectorRegistry()
    mon = modelmon.Monitor(model, "1", registry=reg)
    mon.observe({"a": 1.0}, 0.5)
    assert _requests(reg, model) == 1 and _requests(REGISTRY, model) is None
    mon.close()


def test_middleware_registry_none_registers_the_http_metrics_nowhere() -> None:
    ns = f"ns_{uuid.uuid4().hex[:8]}"

    async def app(scope: object, receive: object, send: object) -> None:
        return None

    unregistered = MetricsMiddleware(app, registry=None, namespace=ns)
    reg = CollectorRegistry()
    registered = MetricsMiddleware(app, registry=reg, namespace=ns)
    unregistered.metrics.record("GET", "/", "200", 0.01)
    registered.metrics.record("GET", "/", "200", 0.01)
    name = f"{ns}_http_requests_total"
    labels = {"method": "GET", "route": "/", "status": "200"}
    assert REGISTRY.get_sample_value(name, labels) is None
    assert reg.get_sample_value(name, labels) == 1
