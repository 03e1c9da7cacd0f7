"""WSGI middleware: HTTP metrics by route template, and ``X-Prediction-Id``.

When a request is counted (the rule, tested in ``tests/unit/test_wsgi_flask.py``):

- a **complete** body (a list or tuple, or a response the app marked complete with
  ``environ[BODY_COMPLETE] = True``, as the Flask integration does for every
  non-streamed response) is counted when the app returns it, whether or not anyone
  reads it: a test client that never reads the body still sees the request counted;
- a **streamed** body (a generator, a file) is timed to its last byte: counted when it
  is exhausted, or when it is closed (``close()`` is forwarded), whichever comes
  first. A WSGI server always does one of the two; in tests read the body
  (``response.data``) or close the response (``with client.get(...) as response``).

>>> from prometheus_client import CollectorRegistry
>>> from modelmon.integrations.wsgi import MetricsMiddleware
>>> def app(environ, start_response):
...     start_response("200 OK", [("Content-Type", "text/plain")])
...     return [b"ok"]
>>> wrapped = MetricsMiddleware(app, registry=CollectorRegistry())
>>> wrapped.metrics.namespace
'modelmon'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from time import perf_counter
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .. import names
from .._internal.failures import deferred_failures, settle
from ..context import Record, prediction_scope, record_id
from ._http import (
    HttpMiddleware,
    HttpMiddlewareOptions,
    exposed_registry,
    prediction_id_headers,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing's own from Python 3.11

Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
RouteResolver = Callable[[Environ], str]

BODY_COMPLETE = "modelmon.body_complete"
"""Environ key an app sets to True when its response body is complete in memory."""


def unmatched(environ: Environ) -> str:
    """The route resolver of a plain WSGI app (no router): every path is unmatched."""
    return names.UNMATCHED_ROUTE


class MetricsMiddleware(HttpMiddleware[WSGIApp]):
    """Counts WSGI requests and times them to the last byte, labelled by route template.

    Args:
        app: the WSGI app to wrap.
        registry: prometheus-client registry (default: the global ``REGISTRY``; None:
            none). ``serve_metrics`` serves it (the global one when None).
        namespace: metric name prefix.
        excluded_routes: paths or route templates not counted (default: ``metrics_path``).
        metrics_path: the exposition's path, excluded by default.
        route_resolver: maps the environ (after the app ran) to a route template;
            must return a bounded value (the default labels everything ``<unmatched>``).
        serve_metrics: answer ``metrics_path`` with the exposition itself.
        buckets: duration histogram buckets in seconds.
        metrics_guard: called with the environ of each exposition request; a false
            answer gets 404 (e.g. check a token or ``REMOTE_ADDR``).
        min_scrape_interval: concurrent scrapes share one collection, at most one
            every this many seconds (see :mod:`modelmon.exporters.gate`).
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        route_resolver: RouteResolver = unmatched,
        serve_metrics: bool = False,
        metrics_guard: Callable[[Environ], bool] | None = None,
        min_scrape_interval: float = 0.25,
        **options: Unpack[HttpMiddlewareOptions],
    ) -> None:
        super().__init__(app, **options)
        self.metrics_guard = metrics_guard
        self.resolve_route = route_resolver
        self._metrics_app: WSGIApp | None = None
        if serve_metrics:
            from ..exporters.gate import GatedRegistry
            from ..exporters.prometheus import make_wsgi_app

            target = exposed_registry(self.registry)
            self._metrics_app = make_wsgi_app(GatedRegistry(target, min_scrape_interval))  # type: ignore[arg-type]

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if self._metrics_app is not None and path == self.metrics_path:
            if self.metrics_guard is not None and not self.metrics_guard(environ):
                start_response("404 Not Found", [("Content-Type", "text/plain")])
                return [b"Not Found"]
            return self._metrics_app(environ, start_response)
        if path in self.excluded:
            return self.app(environ, start_response)
        exchange = _Exchange(self, environ, start_response, perf_counter())
        with prediction_scope() as records, deferred_failures() as failures:
            exchange.records = records
            try:
                body = self.app(environ, exchange.start_response)
            except Exception:
                settle(failures, 500)
                exchange.finish(500)
                raise
            except BaseException:
                settle(failures, 0)
                raise
            settle(failures, exchange.status)  # 4xx: the calls that raised were the client's
        if exchange.status and _is_complete(body, environ):
            exchange.finish()  # nothing left to produce: count now, even if never read
            return body
        return _TimedBody(body, exchange)

    def record(self, environ: Environ, status: int, seconds: float) -> None:
        """Count one finished request (never raises)."""
        method = environ.get("REQUEST_METHOD", "")
        self.count(lambda: self.resolve_route(environ), method, status, seconds)


class _Exchange:
    """One request's status, predictions and start time; records itself once."""

    __slots__ = ("done", "downstream", "environ", "middleware", "records", "start", "status")

    def __init__(
        self,
        middleware: MetricsMiddleware,
        environ: Environ,
        downstream: StartResponse,
        start: float,
    ) -> None:
        self.middleware = middleware
        self.environ = environ
        self.downstream = downstream
        self.start = start
        self.status = 0
        self.done = False
        self.records: list[Record] = []

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], object]:
        self.status = _status_code(status)
        if self.records:
            headers = [*headers, *prediction_id_headers([record_id(r) for r in self.records])]
        return self.downstream(status, headers, exc_info)

    def finish(self, status: int | None = None) -> None:
        if self.done:
            return
        self.done = True
        code = self.status if status is None else status
        self.middleware.record(self.environ, code, perf_counter() - self.start)


def _is_complete(body: Iterable[bytes], environ: Environ) -> bool:
    """Whether the whole body already exists (no byte is left for the app to produce)."""
    return isinstance(body, (list, tuple)) or environ.get(BODY_COMPLETE) is True


def _status_code(status: str) -> int:
    try:
        return int(status.split(" ", 1)[0])
    except ValueError:
        return 0


class _TimedBody:
    """The app's response iterable, recording the request at its last byte or close."""

    __slots__ = ("_body", "_exchange")

    def __init__(self, body: Iterable[bytes], exchange: _Exchange) -> None:
        self._body = body
        self._exchange = exchange

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._body
        except Exception:
            self._exchange.finish(500)
            raise
        self._exchange.finish()

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._exchange.finish()
