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

from collections.abc import Iterator
from typing import Any

from ..errors import MissingExtraError

try:
    from fastapi import APIRouter, Body, FastAPI
    from pydantic import BaseModel
    from starlette.requests import Request
    from starlette.responses import Response
except ImportError as exc:  # pragma: no cover - exercised with the package hidden
    raise MissingExtraError("fastapi", "fastapi") from exc

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric

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


def feedback_router(monitor: Any, path: str = "/feedback") -> APIRouter:
    """An ``APIRouter`` accepting ground truth: ``POST {prediction_id, actual}`` or a list.

    ``monitor`` is a :class:`~modelmon.Monitor` (or a monitored function). Answers
    202 Accepted with the number of outcomes taken; unmatched ids are counted by the
    monitor (``modelmon_outcomes_unmatched_total``), not rejected.
    """
    target = getattr(monitor, "monitor", monitor)
    router = APIRouter()

    def feedback(body: Feedback | list[Feedback] = Body(...)) -> dict[str, int]:  # noqa: B008
        items = body if isinstance(body, list) else [body]
        if isinstance(body, list):
            target.record_outcomes([i.prediction_id for i in items], [i.actual for i in items])
        else:
            target.record_outcome(body.prediction_id, body.actual)
        return {"accepted": len(items)}

    router.add_api_route(path, feedback, methods=["POST"], status_code=202)
    return router
