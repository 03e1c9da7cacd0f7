"""Flask in one line: HTTP metrics by URL rule, ``X-Prediction-Id`` and ``/metrics``.

``instrument`` wraps ``app.wsgi_app`` and adds a ``before_request`` and an
``after_request`` hook, all undone by ``uninstrument()``: nothing is added to the URL
map (the middleware answers ``metrics_path`` itself). A non-streamed response is
counted when the view returns it, so ``app.test_client().get(...)`` is counted even if
the test never reads the body; a streamed one at its last byte or ``close()``.

>>> from flask import Flask
>>> from prometheus_client import CollectorRegistry
>>> from modelmon.integrations.flask import instrument
>>> app = Flask("doc")
>>> handle = instrument(app, registry=CollectorRegistry())
>>> handle.uninstrument()
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import MissingExtraError

try:
    from flask import Blueprint, Flask, Response, jsonify, request
    from werkzeug.exceptions import HTTPException
    from werkzeug.routing import RequestRedirect
except ImportError as exc:  # pragma: no cover - exercised with the package hidden
    raise MissingExtraError("flask", "flask") from exc

from prometheus_client import REGISTRY, CollectorRegistry

from .. import names
from ._http import (
    InstrumentOptions,
    check_feedback_token,
    check_instrument_options,
    check_token,
    handle_feedback,
    side_server,
)
from .wsgi import BODY_COMPLETE, Environ, MetricsMiddleware, RouteResolver

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing's own from Python 3.11

__all__ = [
    "FlaskInstrumentation",
    "MetricsMiddleware",
    "feedback_blueprint",
    "instrument",
    "mark_complete_body",
    "remember_url_rule",
    "url_rule_resolver",
]


ROUTE_KEY = "modelmon.route"


def remember_url_rule() -> None:
    """A ``before_request`` hook: note the URL rule Flask matched in the environ.

    Flask drops its request object from the environ when the request ends, before the
    middleware labels it; the hook leaves the rule where the middleware finds it, so
    routing is never done twice.
    """
    rule = request.url_rule
    request.environ[ROUTE_KEY] = names.UNMATCHED_ROUTE if rule is None else str(rule.rule)


def mark_complete_body(response: Response) -> Response:
    """An ``after_request`` hook: tell the middleware a non-streamed body is complete.

    Such a response is counted when the app returns it rather than at its last byte
    (see :mod:`modelmon.integrations.wsgi`), as request-hook exporters count. Error
    responses (4xx/5xx) are made sequences first: Flask renders ``abort(404)`` and
    unmatched URLs as a small page behind an iterator.
    """
    try:
        if not response.is_sequence and response.status_code >= 400:
            response.make_sequence()
        if response.is_sequence:
            request.environ[BODY_COMPLETE] = True
    except Exception:  # never break a response over metrics: the last-byte rule applies
        request.environ.pop(BODY_COMPLETE, None)
    return response


def url_rule_resolver(app: Flask) -> RouteResolver:
    """Maps an environ to the URL rule that served it (``"/predict/<model_id>"``).

    Reads what :func:`remember_url_rule` noted; when it did not run (a failure before
    Flask's ``before_request`` hooks), matches ``app.url_map``. Unmatched paths give
    ``<unmatched>``.
    """
    url_map = app.url_map

    def resolve(environ: Environ) -> str:
        route = environ.get(ROUTE_KEY)
        return route if isinstance(route, str) else _match(url_map, environ)

    return resolve


def _match(url_map: Any, environ: Environ) -> str:
    try:
        rule, _ = url_map.bind_to_environ(environ).match(return_rule=True)
    except (HTTPException, RequestRedirect):
        return names.UNMATCHED_ROUTE
    return str(rule.rule)


@dataclass
class FlaskInstrumentation:
    """What :func:`instrument` did to an app; :meth:`uninstrument` undoes it."""

    app: Flask
    middleware: MetricsMiddleware
    original_wsgi_app: Any
    had_own_wsgi_app: bool
    metrics_server: Any = None  # the ``metrics_port`` server, if any

    def uninstrument(self) -> None:
        """Restore the app's original ``wsgi_app`` and stop the metrics server (idempotent)."""
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
            self.metrics_server.server_close()
            self.metrics_server = None
        if self.app.__dict__.get("wsgi_app") is not self.middleware:
            return
        if self.had_own_wsgi_app:
            self.app.wsgi_app = self.original_wsgi_app  # type: ignore[method-assign]
        else:
            del self.app.__dict__["wsgi_app"]  # the class's method shows through again
        hooks = self.app.before_request_funcs.get(None, [])
        if remember_url_rule in hooks:
            hooks.remove(remember_url_rule)
        after = self.app.after_request_funcs.get(None, [])
        if mark_complete_body in after:
            after.remove(mark_complete_body)


def instrument(
    app: Flask,
    metrics_path: str | None = "/metrics",
    registry: CollectorRegistry | None = REGISTRY,
    *,
    metrics_port: int | None = None,
    metrics_addr: str = "127.0.0.1",
    metrics_guard: Callable[[Environ], bool] | None = None,
    min_scrape_interval: float = 0.25,
    **middleware_options: Unpack[InstrumentOptions],
) -> FlaskInstrumentation:
    """Wrap ``app.wsgi_app`` with the WSGI metrics middleware and serve the exposition.

    Args:
        app: the Flask app.
        metrics_path: where the exposition is served (OpenMetrics negotiated from
            ``Accept``); None to serve none.
        registry: prometheus-client registry the HTTP metrics are registered in and
            the exposition serves (default: the global ``REGISTRY``). None: the HTTP
            metrics are registered nowhere; the exposition then serves the global one.
        metrics_port: serve the exposition on this port of ``metrics_addr`` (its own
            server thread) instead of on the app's public port.
        metrics_addr: the interface for ``metrics_port`` (loopback by default).
        metrics_guard: called with each ``/metrics`` request's WSGI environ on the
            app's port; a false answer gets 404.
        min_scrape_interval: concurrent scrapes share one collection, at most one
            every this many seconds.
        middleware_options: ``namespace``, ``excluded_routes``, ``buckets``.

    Returns a handle whose ``uninstrument()`` restores the app.

    Raises:
        ConfigurationError: an unknown keyword option.
    """
    check_instrument_options(middleware_options)
    server = None
    if metrics_port is not None:
        server = side_server(metrics_port, metrics_addr, registry, min_scrape_interval)
        metrics_path = None
    had_own = "wsgi_app" in app.__dict__
    original = app.wsgi_app
    middleware = MetricsMiddleware(
        original,
        registry=registry,
        metrics_path=metrics_path or "/metrics",
        route_resolver=url_rule_resolver(app),
        serve_metrics=metrics_path is not None,
        metrics_guard=metrics_guard,
        min_scrape_interval=min_scrape_interval,
        **middleware_options,
    )
    # First of the app-level hooks: an earlier one may answer and skip the rest.
    app.before_request_funcs.setdefault(None, []).insert(0, remember_url_rule)
    # after_request hooks run last-registered first: inserted first, this one sees the
    # response the app really returns.
    app.after_request_funcs.setdefault(None, []).insert(0, mark_complete_body)
    app.wsgi_app = middleware  # type: ignore[method-assign]
    return FlaskInstrumentation(app, middleware, original, had_own, server)


def feedback_blueprint(
    monitor: Any,
    path: str = "/feedback",
    *,
    token: str | None = None,
    guard: Callable[[], Any] | None = None,
    name: str = "modelmon_feedback",
) -> Blueprint:
    """A Blueprint accepting ground truth: ``POST {prediction_id, actual}`` or a list.

    Answers like :func:`modelmon.integrations.fastapi.feedback_router` (202, per-reason
    4xx, per-item results for a list). ``token=`` requires ``Authorization: Bearer
    <token>`` (401 otherwise); ``guard=`` is called first on every request and may
    return a response (e.g. ``abort(403)`` or a ``(body, status)`` tuple) to refuse it.

    >>> from flask import Flask
    >>> import modelmon
    >>> app = Flask("doc")
    >>> app.register_blueprint(feedback_blueprint(modelmon.Monitor("fb", "1", registry=False)))
    """
    target = getattr(monitor, "monitor", monitor)
    expected = check_feedback_token(token)
    blueprint = Blueprint(name, __name__)

    @blueprint.post(path)
    def feedback() -> Any:
        if guard is not None:
            refused = guard()
            if refused is not None:
                return refused
        if not check_token(expected, request.headers.get("Authorization")):
            body = {"error": "unauthorized", "detail": "missing or wrong feedback token"}
            return jsonify(body), 401, {"WWW-Authenticate": "Bearer"}
        payload = request.get_json(silent=True)
        if payload is None:
            return jsonify({"error": "malformed", "detail": "expected a JSON body"}), 422
        status, content = handle_feedback(target, payload)
        return jsonify(content), status

    return blueprint
