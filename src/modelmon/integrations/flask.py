"""Flask in one line: HTTP metrics by URL rule, ``X-Prediction-Id`` and ``/metrics``.

``instrument`` wraps ``app.wsgi_app`` (so it is undoable: nothing is added to the URL
map; the middleware answers ``metrics_path`` itself).

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
    from flask import Flask
    from werkzeug.exceptions import HTTPException
    from werkzeug.routing import RequestRedirect
except ImportError as exc:  # pragma: no cover - exercised with the package hidden
    raise MissingExtraError("flask", "flask") from exc

from prometheus_client import CollectorRegistry

from .. import names
from .wsgi import Environ, MetricsMiddleware, RouteResolver

__all__ = ["FlaskInstrumentation", "MetricsMiddleware", "instrument", "url_rule_resolver"]


def url_rule_resolver(app: Flask) -> RouteResolver:
    """Maps an environ to the URL rule that served it (``"/predict/<model_id>"``).

    Reads the rule Flask already matched (the request object Werkzeug leaves in the
    environ); otherwise matches ``app.url_map``. Unmatched paths give ``<unmatched>``.
    """
    url_map = app.url_map

    def resolve(environ: Environ) -> str:
        request = environ.get("werkzeug.request")
        if request is not None and hasattr(request, "url_rule"):
            rule = request.url_rule
            if rule is None or rule.map is not url_map:
                return names.UNMATCHED_ROUTE if rule is None else _match(url_map, environ)
            return str(rule.rule)
        return _match(url_map, environ)

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

    def uninstrument(self) -> None:
        """Restore the app's original ``wsgi_app``."""
        if self.app.wsgi_app is self.middleware:
            self.app.wsgi_app = self.original_wsgi_app  # type: ignore[method-assign]


def instrument(
    app: Flask,
    metrics_path: str | None = "/metrics",
    registry: CollectorRegistry | None = None,
    **middleware_options: Any,
) -> FlaskInstrumentation:
    """Wrap ``app.wsgi_app`` with the WSGI metrics middleware and serve the exposition.

    Args:
        app: the Flask app.
        metrics_path: where the exposition is served (OpenMetrics negotiated from
            ``Accept``); None to serve none.
        registry: prometheus-client registry (default: the global one).
        middleware_options: ``namespace``, ``excluded_routes``, ``buckets``.

    Returns a handle whose ``uninstrument()`` restores the app.
    """
    original = app.wsgi_app
    middleware = MetricsMiddleware(
        original,
        registry=registry,
        metrics_path=metrics_path or "/metrics",
        route_resolver=url_rule_resolver(app),
        serve_metrics=metrics_path is not None,
        **middleware_options,
    )
    app.wsgi_app = middleware  # type: ignore[method-assign]
    return FlaskInstrumentation(app, middleware, original)
