"""FastAPI (and Starlette) in two lines: HTTP metrics, ``/metrics``, and a feedback route.

>>> from fastapi import FastAPI
>>> from prometheus_client import CollectorRegistry
>>> import modelmon
>>> from modelmon.integrations.fastapi import feedback_router, instrument
>>> registry = CollectorRegistry()
>>> app = instrument(FastAPI(), registry=registry)
>>> monitor = modelmon.Monitor("doc", "1", registry=registry)
>>> app.include_router(feedback_router(monitor))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import MissingExtraError

try:
    from fastapi import APIRouter, Body, FastAPI, Header
    from pydantic import BaseModel
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
except ImportError as exc:  # pragma: no cover - exercised with the package hidden
    raise MissingExtraError("fastapi", "fastapi") from exc

from prometheus_client import REGISTRY, CollectorRegistry

from ._http import (
    InstrumentOptions,
    check_feedback_token,
    check_instrument_options,
    check_token,
    exposed_registry,
    handle_feedback,
    side_server,
)
from .asgi import MetricsMiddleware

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing's own from Python 3.11

__all__ = ["Feedback", "MetricsMiddleware", "feedback_router", "instrument", "metrics_endpoint"]


Guard = Callable[[Request], bool]


def instrument(
    app: FastAPI,
    metrics_path: str | None = "/metrics",
    registry: CollectorRegistry | None = REGISTRY,
    *,
    metrics_port: int | None = None,
    metrics_addr: str = "127.0.0.1",
    metrics_guard: Guard | None = None,
    min_scrape_interval: float = 0.25,
    **middleware_options: Unpack[InstrumentOptions],
) -> FastAPI:
    """Add :class:`~modelmon.integrations.asgi.MetricsMiddleware` and serve the exposition.

    Args:
        app: a FastAPI (or Starlette) app, before it starts.
        metrics_path: path of the exposition route (OpenMetrics negotiated from
            ``Accept``); None to add no route (an existing endpoint of the app shows
            modelmon's metrics anyway).
        registry: prometheus-client registry the HTTP metrics are registered in and
            the exposition serves (default: the global ``REGISTRY``). None: the HTTP
            metrics are registered nowhere; the exposition then serves the global one.
        metrics_port: serve the exposition on this port of ``metrics_addr`` (its own
            server thread, in ``app.state.modelmon_metrics_server``) instead of on the
            app's public port.
        metrics_addr: the interface for ``metrics_port`` (loopback by default).
        metrics_guard: called with each ``/metrics`` request on the app's port; a false
            answer gets 404 (e.g. check a bearer token or the client address).
        min_scrape_interval: concurrent scrapes share one collection, at most one
            every this many seconds (a scrape flood cannot starve predictions).
        middleware_options: ``namespace``, ``excluded_routes``, ``buckets``.

    Returns the app, for chaining.

    Raises:
        ConfigurationError: an unknown keyword option (checked now, not when the app
            starts and builds its middleware).
    """
    check_instrument_options(middleware_options)
    app.add_middleware(
        MetricsMiddleware,
        registry=registry,
        metrics_path=metrics_path or "/metrics",
        **middleware_options,
    )
    if metrics_port is not None:
        # Kept on the app, so its owner can stop it: server.shutdown(); server.server_close()
        app.state.modelmon_metrics_server = side_server(
            metrics_port, metrics_addr, registry, min_scrape_interval
        )
    elif metrics_path is not None:
        endpoint = metrics_endpoint(registry, guard=metrics_guard, min_interval=min_scrape_interval)
        app.add_route(metrics_path, endpoint, include_in_schema=False)
    return app


def metrics_endpoint(
    registry: CollectorRegistry | None = None,
    *,
    guard: Guard | None = None,
    min_interval: float = 0.25,
) -> Any:
    """A Starlette endpoint serving ``registry``'s exposition (``name[]`` filters names).

    ``guard(request)`` false: 404. Concurrent scrapes share one collection, at most one
    every ``min_interval`` seconds (see :mod:`modelmon.exporters.gate`).
    """
    from ..exporters.gate import GatedRegistry
    from ..exporters.serve import bake

    target = GatedRegistry(exposed_registry(registry), min_interval)

    # A sync endpoint: Starlette runs it in the thread pool, so folds never block the loop.
    def metrics(request: Request) -> Response:
        if guard is not None and not guard(request):
            return Response("Not Found", status_code=404, media_type="text/plain")
        wanted = request.query_params.getlist("name[]")
        params = {"name[]": wanted} if wanted else {}
        _, headers, body = bake(target, request.headers.get("accept"), None, params)
        return Response(body, media_type=headers[0][1])

    return metrics


class Feedback(BaseModel):
    """The true outcome of one prediction, joined to it by id."""

    prediction_id: str
    actual: Any


def feedback_router(
    monitor: Any,
    path: str = "/feedback",
    *,
    token: str | None = None,
    dependencies: Sequence[Any] | None = None,
) -> APIRouter:
    """An ``APIRouter`` accepting ground truth: ``POST {prediction_id, actual}`` or a list.

    ``monitor`` is a :class:`~modelmon.Monitor` (or a monitored function). One label is
    answered 202 when scored, else 4xx with ``{"error": reason, "detail": ...}`` (422
    ``invalid_id``/``batch_id``/``other_model``/``invalid``, 404 ``unknown``, 410
    ``expired``, 409 ``duplicate``); a list gets per-item results (202 all scored, 207
    some, 422 none). Every refusal is also counted in
    ``modelmon_outcomes_unmatched_total``.

    Guard the route when it is reachable by clients: ``token=`` requires
    ``Authorization: Bearer <token>`` (401 otherwise), and ``dependencies=`` adds your
    own FastAPI dependencies (``[Depends(check_api_key)]``). See docs/ground-truth.md.
    """
    target = getattr(monitor, "monitor", monitor)
    expected = check_feedback_token(token)
    router = APIRouter()

    def feedback(
        body: Any = Body(...),  # noqa: B008
        authorization: str | None = Header(None),
    ) -> Response:
        if not check_token(expected, authorization):
            return JSONResponse(
                {"error": "unauthorized", "detail": "missing or wrong feedback token"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        status, content = handle_feedback(target, body)
        return JSONResponse(content, status_code=status)

    router.add_api_route(
        path,
        feedback,
        methods=["POST"],
        status_code=202,
        dependencies=list(dependencies or ()),
        response_class=JSONResponse,
    )
    return router
