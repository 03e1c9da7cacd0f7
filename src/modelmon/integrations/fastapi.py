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

from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import MissingExtraError

try:
    from fastapi import APIRouter, Body, FastAPI, Header
    from pydantic import BaseModel
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
except ImportError as exc:  # pragma: no cover - exercised with the package hidden
    raise MissingExtraError("fastapi", "fastapi") from exc

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric

from ._http import check_feedback_token, check_token, handle_feedback
from .asgi import MetricsMiddleware

__all__ = ["Feedback", "MetricsMiddleware", "feedback_router", "instrument", "metrics_endpoint"]


def instrument(
    app: FastAPI,
    metrics_path: str | None = "/metrics",
    registry: CollectorRegistry | None = None,
    **middleware_options: Any,
) -> FastAPI:
    """Add :class:`~modelmon.integrations.asgi.MetricsMiddleware` and serve the exposition.

    Args:
        app: a FastAPI (or Starlette) app, before it starts.
        metrics_path: path of the exposition route (OpenMetrics negotiated from
            ``Accept``); None to add no route (an existing endpoint of the app shows
            modelmon's metrics anyway).
        registry: prometheus-client registry (default: the global one).
        middleware_options: ``namespace``, ``excluded_routes``, ``buckets``.

    Returns the app, for chaining.
    """
    app.add_middleware(
        MetricsMiddleware,
        registry=registry,
        metrics_path=metrics_path or "/metrics",
        **middleware_options,
    )
    if metrics_path is not None:
        app.add_route(metrics_path, metrics_endpoint(registry), include_in_schema=False)
    return app


def metrics_endpoint(registry: CollectorRegistry | None = None) -> Any:
    """A Starlette endpoint serving ``registry``'s exposition (``name[]`` filters names)."""
    target = REGISTRY if registry is None else registry

    # A sync endpoint: Starlette runs it in the thread pool, so folds never block the loop.
    def metrics(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        wanted = request.query_params.getlist("name[]")
        source: Any = _OnlySamples(target, frozenset(wanted)) if wanted else target
        return Response(encoder(source), media_type=content_type)

    return metrics


class _OnlySamples:
    """The samples of ``registry`` with the given names (the ``name[]`` filter).

    prometheus-client's ``restricted_registry`` only sees collectors that describe
    their names up front, which modelmon's collectors do not (their names depend on
    the monitors attached later).
    """

    def __init__(self, registry: CollectorRegistry, names: frozenset[str]) -> None:
        self.registry = registry
        self.names = names

    def collect(self) -> Iterator[Metric]:
        for metric in self.registry.collect():
            samples = [s for s in metric.samples if s.name in self.names]
            if samples:
                kept = Metric(metric.name, metric.documentation, metric.type, metric.unit)
                kept.samples = samples
                yield kept


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
