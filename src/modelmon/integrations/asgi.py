"""Pure ASGI middleware: HTTP metrics by route template, and ``X-Prediction-Id``.

Not Starlette's ``BaseHTTPMiddleware`` (it runs the app in another task, which breaks
context variables and streaming): a plain ASGI class that wraps ``send``.

>>> from prometheus_client import CollectorRegistry
>>> from starlette.applications import Starlette
>>> from modelmon.integrations.asgi import MetricsMiddleware
>>> app = MetricsMiddleware(Starlette(), registry=CollectorRegistry())
>>> app.metrics.namespace
'modelmon'
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from time import perf_counter
from typing import Any

from .. import names
from .._internal.failures import deferred_failures, settle
from ..context import Record, prediction_scope, record_id
from ._http import HttpMiddleware, prediction_id_headers

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# A request cancelled before any response was sent (the client went away): nginx's code.
CLIENT_CLOSED = 499


class MetricsMiddleware(HttpMiddleware[ASGIApp]):
    """Counts HTTP requests and times them to the last byte, labelled by route template.

    Args:
        app: the ASGI app to wrap (a Starlette or FastAPI app, or any ASGI app).
        registry: prometheus-client registry to expose in (default: the global
            ``REGISTRY``; None: none, read :attr:`metrics` yourself).
        namespace: metric name prefix.
        excluded_routes: paths or route templates not counted (default: ``metrics_path``).
        metrics_path: the exposition's path, excluded by default.
        buckets: duration histogram buckets in seconds.

    Routes come from Starlette's router (``scope["route"]`` after the app ran), mounted
    apps included; any path no route matched is labelled ``<unmatched>``. Unhandled
    exceptions count as status 500 and are re-raised. Responses carry ``X-Prediction-Id``
    with the ids of the predictions made while handling the request (comma-separated).
    Non-HTTP scopes (websocket, lifespan) pass through untouched.

    >>> from fastapi import FastAPI
    >>> app = FastAPI()
    >>> app.add_middleware(MetricsMiddleware, registry=None)
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.excluded:
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        root_path = scope.get("root_path", "")
        status = 0
        end = 0.0

        with prediction_scope() as records, deferred_failures() as failures:

            async def send_wrapper(message: Message) -> None:
                nonlocal status, end
                kind = message["type"]
                if kind == "http.response.start":
                    status = message["status"]
                    if records:
                        message = _with_prediction_ids(message, records)
                elif kind == "http.response.body" and not message.get("more_body", False):
                    await send(message)
                    end = perf_counter()
                    return
                await send(message)

            try:
                await self.app(scope, receive, send_wrapper)
            except Exception:
                status = 500
                raise
            except BaseException:
                status = status or CLIENT_CLOSED
                raise
            finally:
                settle(failures, status)  # a 4xx answer: the calls that raised were the client's
                self.count(
                    lambda: route_template(scope, root_path),
                    scope.get("method", ""),
                    status,
                    (end or perf_counter()) - start,
                )


def _with_prediction_ids(message: Message, records: list[Record]) -> Message:
    # A new message and header list: a response object may reuse its own list.
    extra = [
        (k.lower().encode("ascii"), v.encode("ascii"))
        for k, v in prediction_id_headers([record_id(r) for r in records])
    ]
    return {**message, "headers": [*message.get("headers", ()), *extra]}


def route_template(scope: Scope, root_path: str = "") -> str:
    """The template of the route that handled ``scope`` (after the app ran).

    Fast path: the route Starlette (or FastAPI, for its API routes) left in
    ``scope["route"]``. When there is none, or a ``Mount`` was traversed (the root path
    changed from ``root_path``, its value before the app ran), the router's routes are
    matched again and mount prefixes prepended. Nothing matched: ``<unmatched>``.
    """
    leaf = scope.get("route")
    if scope.get("root_path", "") == root_path:
        path = getattr(leaf, "path", None)
        if isinstance(path, str) and path:
            return path
    routes = getattr(scope.get("router"), "routes", None)
    if not routes:
        return names.UNMATCHED_ROUTE
    original = {**scope, "root_path": root_path, "path_params": {}}
    original.pop("route", None)
    return _walk(routes, original, leaf) or names.UNMATCHED_ROUTE


def _walk(routes: Iterable[Any], scope: Scope, leaf: Any) -> str | None:
    """The template among ``routes`` matching ``scope`` like Starlette's router would."""
    try:
        from starlette.routing import Match
    except ImportError:  # pragma: no cover - only Starlette sets scope["router"]
        return None
    partial: tuple[Any, Scope] | None = None
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.FULL:
            return _template_of(route, {**scope, **child}, leaf)
        if match is Match.PARTIAL and partial is None:
            partial = (route, child)
    if partial is not None:
        return _template_of(partial[0], {**scope, **partial[1]}, leaf)
    return None


def _template_of(route: Any, scope: Scope, leaf: Any) -> str | None:
    from starlette.routing import Mount

    if isinstance(route, Mount):
        inner = _walk(route.routes, scope, leaf)
        return str(route.path) + (inner if inner is not None else "/{path}")
    # FastAPI's API routes name themselves in the child scope.
    for candidate in (scope.get("route"), route, leaf):
        path = getattr(candidate, "path", None)
        if isinstance(path, str) and path and not isinstance(candidate, Mount):
            return path
    return None
