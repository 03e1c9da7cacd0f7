"""WSGI middleware and Flask integration, on tiny real apps (Flask's test client)."""

from __future__ import annotations

import contextvars
import importlib
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pytest
from flask import Flask, Response, jsonify
from prometheus_client import CollectorRegistry
from werkzeug.test import create_environ

import modelmon
from modelmon import names
from modelmon.errors import ConfigurationError, MissingExtraError
from modelmon.integrations.flask import (
    FlaskInstrumentation,
    instrument,
    mark_complete_body,
    remember_url_rule,
    url_rule_resolver,
)
from modelmon.integrations.wsgi import BODY_COMPLETE, MetricsMiddleware

from ..conftest import scrape
from ._http_samples import DURATION, requests_of, routes_of

OUTER: contextvars.ContextVar[str] = contextvars.ContextVar("outer", default="")


def fetch(client: Any, path: str, method: str = "GET", **kwargs: Any) -> Any:
    """A request read to its end and closed, as a WSGI server does."""
    response = client.open(path, method=method, **kwargs)
    response.get_data()
    response.close()
    return response


def build_app(registry: CollectorRegistry) -> Flask:
    @modelmon.monitored(model="f", version="1", registry=registry)
    def predict(x: Any) -> Any:
        return np.ones(len(x)) if isinstance(x, np.ndarray) else 0.5

    app = Flask("modelmon-test")

    @app.get("/predict/<model_id>")
    def predict_route(model_id: str) -> Any:
        predict({"a": 1.0})
        first = modelmon.last_prediction_id()
        predict({"a": 2.0})
        return jsonify(ids=[first, modelmon.last_prediction_id()])

    @app.get("/batch")
    def batch() -> Any:
        predict(np.zeros((4, 2)))
        return jsonify(id=modelmon.last_prediction_id())

    @app.get("/plain")
    def plain() -> Any:
        return jsonify(outer=OUTER.get())

    @app.get("/boom")
    def boom() -> Any:
        raise RuntimeError("model exploded")

    @app.get("/stream")
    def stream() -> Response:
        def chunks() -> Iterator[bytes]:
            for i in range(3):
                yield f"chunk{i}\n".encode()
                time.sleep(0.05)

        return Response(chunks(), mimetype="text/plain")

    return app


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def instrumented(registry: CollectorRegistry) -> FlaskInstrumentation:
    return instrument(build_app(registry), registry=registry)


def test_route_templates_from_the_url_map(
    instrumented: FlaskInstrumentation, registry: CollectorRegistry
) -> None:
    client = instrumented.app.test_client()
    for model_id in ("a", "b", "c"):
        assert fetch(client, f"/predict/{model_id}").status_code == 200
    assert fetch(client, "/nowhere").status_code == 404
    assert fetch(client, "/predict/a", "POST").status_code == 405
    s = scrape(registry)
    assert requests_of(s, method="GET", route="/predict/<model_id>", status="200") == 3
    assert requests_of(s, route=names.UNMATCHED_ROUTE, status="404") == 1
    assert requests_of(s, method="POST", route=names.UNMATCHED_ROUTE, status="405") == 1
    labels = (("method", "GET"), ("route", "/predict/<model_id>"))
    assert s[(DURATION + "_count", labels)] == 3


def test_random_unmatched_paths_add_no_series(
    instrumented: FlaskInstrumentation, registry: CollectorRegistry
) -> None:
    rng = np.random.default_rng(11)
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyz0123456789-_."))
    wsgi = instrumented.app.wsgi_app
    statuses = set()

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        statuses.add(status)
        return lambda data: None

    for _ in range(10_000):
        depth = int(rng.integers(1, 5))
        path = "/zz" + "/".join(
            "".join(rng.choice(alphabet, int(rng.integers(1, 12)))) for _ in range(depth)
        )
        body = wsgi(create_environ(path), start_response)
        b"".join(body)
        body.close()  # type: ignore[attr-defined]
    assert statuses == {"404 NOT FOUND"}
    s = scrape(registry)
    assert routes_of(s) == {names.UNMATCHED_ROUTE}
    assert requests_of(s) == 10_000


def test_exceptions_count_as_500(registry: CollectorRegistry) -> None:
    app = build_app(registry)
    instrument(app, registry=registry)
    assert fetch(app.test_client(), "/boom").status_code == 500  # Flask's own 500 page
    app.testing = True  # now Flask propagates the exception through the middleware
    with pytest.raises(RuntimeError, match="exploded"):
        fetch(app.test_client(), "/boom")
    assert requests_of(scrape(registry), route="/boom", status="500") == 2


def test_exceptions_while_iterating_count_as_500(registry: CollectorRegistry) -> None:
    def app(environ: Any, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first"
        raise ValueError("broken stream")

    wrapped = MetricsMiddleware(app, registry=registry)
    body = wrapped(create_environ("/x"), lambda *a: None)
    with pytest.raises(ValueError, match="broken stream"):
        list(body)
    body.close()  # type: ignore[attr-defined]
    assert requests_of(scrape(registry), status="500") == 1


def test_streaming_is_timed_to_the_last_byte(
    instrumented: FlaskInstrumentation, registry: CollectorRegistry
) -> None:
    response = fetch(instrumented.app.test_client(), "/stream")
    assert response.data == b"chunk0\nchunk1\nchunk2\n"
    labels = (("method", "GET"), ("route", "/stream"))
    s = scrape(registry)
    assert s[(DURATION + "_count", labels)] == 1
    assert s[(DURATION + "_sum", labels)] >= 0.1
    assert s[(DURATION + "_bucket", (("le", "0.1"), *labels))] == 0


class ClosingBody:
    def __init__(self) -> None:
        self.closed = 0

    def __iter__(self) -> Iterator[bytes]:
        yield b"a"
        yield b"b"

    def close(self) -> None:
        self.closed += 1


def test_close_is_forwarded_and_each_request_recorded_once(registry: CollectorRegistry) -> None:
    inner = ClosingBody()

    def app(environ: Any, start_response: Any) -> Iterable[bytes]:
        start_response("201 Created", [])
        return inner

    wrapped = MetricsMiddleware(app, registry=registry)
    body = wrapped(create_environ("/"), lambda *a: None)
    assert list(body) == [b"a", b"b"]
    body.close()  # type: ignore[attr-defined]
    assert inner.closed == 1
    early = wrapped(create_environ("/"), lambda *a: None)
    early.close()  # the client went away before reading: still recorded, once
    s = scrape(registry)
    assert requests_of(s, route=names.UNMATCHED_ROUTE, status="201") == 2


def test_prediction_ids_header(instrumented: FlaskInstrumentation) -> None:
    client = instrumented.app.test_client()
    response = fetch(client, "/predict/x")
    first, second = response.get_json()["ids"]
    assert response.headers["X-Prediction-Id"] == f"{first},{second}"
    batch = fetch(client, "/batch")
    assert batch.headers["X-Prediction-Id"] == batch.get_json()["id"]
    assert "X-Prediction-Id" not in fetch(client, "/plain").headers


def test_context_variables_reach_the_view(instrumented: FlaskInstrumentation) -> None:
    inner = instrumented.app.wsgi_app

    def outer(environ: Any, start_response: Any) -> Iterable[bytes]:
        token = OUTER.set("outer-value")
        try:
            return inner(environ, start_response)
        finally:
            OUTER.reset(token)

    instrumented.app.wsgi_app = outer  # type: ignore[method-assign]
    assert fetch(instrumented.app.test_client(), "/plain").get_json() == {"outer": "outer-value"}


def test_methods_outside_the_standard_set_are_other(
    instrumented: FlaskInstrumentation, registry: CollectorRegistry
) -> None:
    client = instrumented.app.test_client()
    fetch(client, "/plain", "BREW")
    fetch(client, "/plain")
    s = scrape(registry)
    assert requests_of(s, method="other") == 1
    assert requests_of(s, method="GET", route="/plain", status="200") == 1


def test_metrics_served_excluded_and_negotiated(
    instrumented: FlaskInstrumentation, registry: CollectorRegistry
) -> None:
    client = instrumented.app.test_client()
    fetch(client, "/plain")
    text = fetch(client, "/metrics").get_data(as_text=True)
    assert 'route="/plain"' in text
    om = fetch(client, "/metrics", headers={"Accept": "application/openmetrics-text"})
    assert om.headers["Content-Type"].startswith("application/openmetrics-text")
    assert om.get_data(as_text=True).endswith("# EOF\n")
    assert routes_of(scrape(registry)) == {"/plain"}


def test_uninstrument_restores_the_app(registry: CollectorRegistry) -> None:
    app = build_app(registry)
    assert "wsgi_app" not in app.__dict__
    handle = instrument(app, registry=registry)
    assert app.wsgi_app is handle.middleware
    fetch(app.test_client(), "/plain")
    handle.uninstrument()
    handle.uninstrument()  # idempotent
    assert "wsgi_app" not in app.__dict__
    assert remember_url_rule not in app.before_request_funcs.get(None, [])
    assert mark_complete_body not in app.after_request_funcs.get(None, [])
    assert app.wsgi_app.__func__ is Flask.wsgi_app  # type: ignore[attr-defined]
    client = app.test_client()
    assert "X-Prediction-Id" not in fetch(client, "/predict/y").headers
    assert fetch(client, "/metrics").status_code == 404
    assert requests_of(scrape(registry)) == 1  # only the request made while instrumented


def test_instrument_passes_the_guard_on_and_refuses_a_misspelt_option(
    registry: CollectorRegistry,
) -> None:
    app = build_app(registry)
    with pytest.raises(ConfigurationError, match=r"'exclude_routes'.*excluded_routes"):
        instrument(app, registry=registry, exclude_routes=["/plain"])  # type: ignore[call-arg]
    assert "wsgi_app" not in app.__dict__  # nothing half-installed
    handle = instrument(app, registry=registry, metrics_guard=lambda environ: False)
    client = app.test_client()
    assert fetch(client, "/metrics").status_code == 404  # the guard said no
    handle.uninstrument()


def test_missing_flask_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "flask", None)
    monkeypatch.delitem(sys.modules, "modelmon.integrations.flask")
    with pytest.raises(MissingExtraError, match=r"modelmon\[flask\]") as info:
        importlib.import_module("modelmon.integrations.flask")
    assert info.value.extra == "flask"


def test_resolver_matches_the_url_map_when_the_hook_did_not_run(
    registry: CollectorRegistry,
) -> None:
    resolve = url_rule_resolver(build_app(registry))
    assert resolve(create_environ("/predict/abc")) == "/predict/<model_id>"
    assert resolve(create_environ("/nowhere")) == names.UNMATCHED_ROUTE
    assert resolve(create_environ("/predict/abc", method="DELETE")) == names.UNMATCHED_ROUTE


# --- when a request is counted (the rule in modelmon.integrations.wsgi) -----------------


def test_a_test_client_request_whose_body_is_never_read_is_counted(
    instrumented: FlaskInstrumentation, registry: CollectorRegistry
) -> None:
    client = instrumented.app.test_client()
    unread = [client.get("/plain"), client.get("/predict/a"), client.get("/nowhere")]
    s = scrape(registry)  # no body read, no response closed
    assert requests_of(s, route="/plain", status="200") == 1
    assert requests_of(s, route="/predict/<model_id>", status="200") == 1
    assert requests_of(s, route=names.UNMATCHED_ROUTE, status="404") == 1
    assert s[(DURATION + "_count", (("method", "GET"), ("route", "/plain")))] == 1
    for response in unread:  # reading or closing later does not count them again
        response.get_data()
        response.close()
    assert requests_of(scrape(registry)) == 3


def test_a_streamed_body_is_counted_at_its_last_byte_or_close(
    instrumented: FlaskInstrumentation, registry: CollectorRegistry
) -> None:
    client = instrumented.app.test_client()
    unread = client.get("/stream")
    assert requests_of(scrape(registry), route="/stream") == 0  # still streaming
    unread.close()  # a WSGI server closes every response; the test-client recipe
    assert requests_of(scrape(registry), route="/stream") == 1
    with client.get("/stream") as response:  # the same recipe as a context manager
        pass
    assert response.status_code == 200
    assert requests_of(scrape(registry), route="/stream") == 2
    assert client.get("/stream").data == b"chunk0\nchunk1\nchunk2\n"  # read to the end
    assert requests_of(scrape(registry), route="/stream") == 3


def test_plain_wsgi_list_bodies_count_on_return_generators_at_the_end(
    registry: CollectorRegistry,
) -> None:
    def listed(environ: Any, start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [])
        return [b"done"]

    def generated(environ: Any, start_response: Any) -> Iterator[bytes]:
        start_response("202 Accepted", [])
        yield b"part"

    def marked(environ: Any, start_response: Any) -> Iterable[bytes]:
        start_response("203 Non-Authoritative Information", [])
        environ[BODY_COMPLETE] = True
        return iter([b"done"])

    for app in (listed, generated, marked):
        MetricsMiddleware(app, registry=registry)(create_environ("/"), lambda *a: None)
    s = scrape(registry)
    assert requests_of(s, status="200") == 1  # a list: complete when returned
    assert requests_of(s, status="202") == 0  # a generator: not run to its end yet
    assert requests_of(s, status="203") == 1  # marked complete by the app
    body = MetricsMiddleware(listed, registry=registry)(create_environ("/"), lambda *a: None)
    assert list(body) == [b"done"]  # handed back as is: iterating does not count again
    assert requests_of(scrape(registry), status="200") == 2


def test_the_shared_middleware_options_reach_the_wsgi_middleware(
    registry: CollectorRegistry,
) -> None:
    """``namespace``, ``excluded_routes``, ``metrics_path`` and ``buckets`` are the
    keywords the ASGI middleware takes too; a misspelt keyword is refused."""

    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    wrapped = MetricsMiddleware(
        app,
        registry=registry,
        namespace="shop",
        excluded_routes=["/skip"],
        metrics_path="/m",
        buckets=(0.5, 2.0),
        route_resolver=lambda environ: environ["PATH_INFO"],
    )
    for path in ("/counted", "/skip", "/counted"):
        wrapped(create_environ(path), lambda *a: None)
    samples = scrape(registry)
    counted = {
        dict(labels)["route"]: v
        for (name, labels), v in samples.items()
        if name == "shop_http_requests_total"
    }
    assert counted == {"/counted": 2.0}
    bounds = {dict(labels).get("le") for (name, labels), _ in samples.items()}
    assert {"0.5", "2.0", "+Inf"} <= bounds and "0.25" not in bounds
    assert wrapped.metrics_path == "/m"
    with pytest.raises(TypeError, match="excluded_route"):
        MetricsMiddleware(app, registry=registry, excluded_route=["/skip"])  # type: ignore[call-arg]
