"""The benchmark's web apps: one predict endpoint, instrumented the way each peer's user would.

Every variant does the same user-level work: ``POST /predict/<model>`` with a JSON row of
20 numeric features, a predict function run on it, a small JSON answer. What differs is
the monitoring a user of each library adds:

- ``bare``: none;
- ``modelmon``: the framework integration (``instrument``) plus ``@modelmon.monitored``
  on the predict function;
- ``instrumentator`` (FastAPI) / ``flask-exporter`` (Flask): the peer's middleware plus
  prometheus-client ``Histogram.time()`` and a ``Counter`` on the predict function;
- ``otel`` (FastAPI): opentelemetry-instrumentation-fastapi plus an OTel SDK histogram
  and counter on the predict function.

Servers load these with a factory: ``BENCH_VARIANT`` selects the variant, e.g.
``BENCH_VARIANT=modelmon uvicorn _apps:fastapi_app --factory``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

FEATURES = [f"x{i}" for i in range(20)]
FASTAPI_VARIANTS = ("bare", "modelmon", "instrumentator", "otel")
FLASK_VARIANTS = ("bare", "modelmon", "flask-exporter")


def _score(row: dict[str, float]) -> float:
    return 0.5


def _prom_predict(registry: Any) -> Callable[[dict[str, float]], float]:
    from prometheus_client import Counter, Histogram

    hist = Histogram("predict_seconds", "latency", ["model", "version"], registry=registry)
    count = Counter("predictions", "requests", ["model", "version"], registry=registry)
    timed = hist.labels("churn", "1").time()(_score)
    inc = count.labels("churn", "1").inc

    def predict(row: dict[str, float]) -> float:
        result: float = timed(row)
        inc()
        return result

    return predict


def _otel_predict(meter_provider: Any) -> Callable[[dict[str, float]], float]:
    meter = meter_provider.get_meter("bench")
    hist = meter.create_histogram("predict.duration", unit="s")
    counter = meter.create_counter("predictions")
    attrs = {"model": "churn", "version": "1"}

    def predict(row: dict[str, float]) -> float:
        t0 = time.perf_counter()
        try:
            return _score(row)
        finally:
            hist.record(time.perf_counter() - t0, attrs)
            counter.add(1, attrs)

    return predict


def _modelmon_predict(registry: Any) -> Callable[[dict[str, float]], float]:
    import modelmon

    fn: Callable[[dict[str, float]], float] = modelmon.monitored(
        model="churn", version="1", registry=registry, feature_names=FEATURES
    )(_score)
    return fn


def fastapi_app(variant: str | None = None) -> Any:
    """The FastAPI app of ``variant`` (default: ``$BENCH_VARIANT``)."""
    from fastapi import FastAPI
    from prometheus_client import CollectorRegistry

    variant = variant or os.environ.get("BENCH_VARIANT", "bare")
    app = FastAPI()
    registry = CollectorRegistry()
    predict: Callable[[dict[str, float]], float] = _score
    if variant == "modelmon":
        from modelmon.integrations.fastapi import instrument

        instrument(app, registry=registry)
        predict = _modelmon_predict(registry)
    elif variant == "instrumentator":
        from prometheus_fastapi_instrumentator import Instrumentator

        Instrumentator(registry=registry).instrument(app).expose(app)
        predict = _prom_predict(registry)
    elif variant == "otel":
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider

        provider = MeterProvider([InMemoryMetricReader()])
        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=TracerProvider(), meter_provider=provider
        )
        predict = _otel_predict(provider)
    elif variant != "bare":
        raise ValueError(f"unknown FastAPI variant {variant!r}")

    @app.post("/predict/{model_id}")
    async def endpoint(model_id: str, row: dict[str, float]) -> dict[str, Any]:
        return {"model": model_id, "score": predict(row)}

    app.state.registry = registry
    return app


def flask_app(variant: str | None = None) -> Any:
    """The Flask app of ``variant`` (default: ``$BENCH_VARIANT``)."""
    from flask import Flask, jsonify, request
    from prometheus_client import CollectorRegistry

    variant = variant or os.environ.get("BENCH_VARIANT", "bare")
    app = Flask("bench")
    registry = CollectorRegistry()
    predict: Callable[[dict[str, float]], float] = _score
    if variant == "modelmon":
        from modelmon.integrations.flask import instrument

        instrument(app, registry=registry)
        predict = _modelmon_predict(registry)
    elif variant == "flask-exporter":
        from prometheus_flask_exporter import PrometheusMetrics

        PrometheusMetrics(app, registry=registry)
        predict = _prom_predict(registry)
    elif variant != "bare":
        raise ValueError(f"unknown Flask variant {variant!r}")

    @app.post("/predict/<model_id>")
    def endpoint(model_id: str) -> Any:
        return jsonify(model=model_id, score=predict(request.get_json()))

    app.config["BENCH_REGISTRY"] = registry
    return app
