"""Flask in one line: HTTP metrics by URL rule, ``X-Prediction-Id`` and ``/metrics``.

``instrument`` wraps ``app.wsgi_app`` and adds one ``before_request`` hook, both undone
by ``uninstrument()``: nothing is added to the URL map (the middleware answers
``metrics_path`` itself).

>>> from flask import Flask
>>> from prometheus_client import CollectorRegistry
>>> from modelmon.integrations.flask import instrument
>>> app = Flask("doc")
>>> handle = instrument(app, registry=CollectorRegistry())
>>> handle.uninstrument()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import MissingExtraError

try:
    from flask import Flask, request
    from werkzeug.exceptions import HTTPException
    from werkzeug.routing import RequestRedirect
except ImportError as exc:  # pragma: no cover - exercised with the package hidden
    raise MissingExtraError("flask", "flask") from exc

from prometheus_client import REGISTRY, CollectorRegistry

from .. import names
from .wsgi import Environ, MetricsMiddleware, RouteResolver

__all__ = [
    "FlaskInstrumentation",
    "MetricsMiddleware",
    "instrument",
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


def instrument(
    app: Flask,
    metrics_path: str | None = "/metrics",
    registry: CollectorRegistry | None = None,
    *,
    metrics_port: int | None = None,
    metrics_addr: str = "127.0.0.1",
    **middleware_options: Any,
) -> FlaskInstrumentation:
    """Wrap ``app.wsgi_app`` with the WSGI metrics middleware and serve the exposition.

    Args:
        app: the Flask app.
        metrics_path: where the exposition is served (OpenMetrics negotiated from
            ``Accept``); None to serve none.
        registry: prometheus-client registry (default: the global one).
        metrics_port: serve the exposition on this port of ``metrics_addr`` (its own
            server thread) instead of on the app's public port.
        metrics_addr: the interface for ``metrics_port`` (loopback by default).
        middleware_options: ``namespace``, ``excluded_routes``, ``buckets``,
            ``metrics_guard`` (environ -> bool; false: 404), ``min_scrape_interval``.

    Returns a handle whose ``uninstrument()`` restores the app.
    """
    if metrics_port is not None:
        from ..exporters.prometheus import start_http_server

        interval = float(middleware_options.get("min_scrape_interval", 0.25))
        server = start_http_server(metrics_port, metrics_addr, registry or REGISTRY, interval)[0]
        metrics_path = None
    else:
        server = None
    had_own = "wsgi_app" in app.__dict__
    original = app.wsgi_app
    middleware = MetricsMiddleware(
        original,
        registry=registry,
        metrics_path=metrics_path or "/metrics",
        route_resolver=url_rule_resolver(app),
        serve_metrics=metrics_path is not None,
        **middleware_options,
    )
    # First of the app-level hooks: an earlier one may answer and skip the rest.
    app.before_request_funcs.setdefault(None, []).insert(0, remember_url_rule)
    app.wsgi_app = middleware  # type: ignore[method-assign]
    return FlaskInstrumentation(app, middleware, original, had_own, server)
