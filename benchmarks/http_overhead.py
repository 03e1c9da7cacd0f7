"""Added cost per HTTP request of modelmon's ASGI middleware, side by side with its peers.

    benchmarks/.venv-peers/bin/python benchmarks/http_overhead.py [--requests 20000] [--repeats 5]

Set-up (the peers live only in the benchmark's own venv, never in the project's)::

    /work/main/.venv/bin/python -m venv benchmarks/.venv-peers
    benchmarks/.venv-peers/bin/pip install -e . fastapi prometheus-fastapi-instrumentator \\
        opentelemetry-instrumentation-fastapi opentelemetry-sdk

The same FastAPI app (``GET /predict/{model_id}`` returning a small JSON body) is built
four times: bare, with ``modelmon.integrations.fastapi.instrument``, with
prometheus-fastapi-instrumentator (its default metrics), and with
opentelemetry-instrumentation-fastapi (SDK tracer and meter providers, in-memory metric
reader, no exporter). Each is called in-process through a minimal ASGI driver (a
prepared scope, ``receive`` and ``send``; no network), all in one event loop, with a
scrape (or metric read) every 10,000 requests. CPU time of the process per request,
best of ``--repeats`` interleaved runs; the added cost is the difference to the bare app.
Targets: modelmon's added cost <= 1/3 of the instrumentator's and <= 1/10 of OTel's.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, generate_latest

SCRAPE_EVERY = 10_000
PATH = "/predict/churn"


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/predict/{model_id}")
    async def predict(model_id: str) -> dict[str, Any]:
        return {"model": model_id, "score": 0.5}

    return app


def bare() -> tuple[Any, Callable[[], Any] | None]:
    return make_app(), None


def modelmon_app() -> tuple[Any, Callable[[], Any] | None]:
    from modelmon.integrations.fastapi import instrument

    registry = CollectorRegistry()
    app = instrument(make_app(), registry=registry)
    return app, lambda: generate_latest(registry)


def instrumentator_app() -> tuple[Any, Callable[[], Any] | None]:
    from prometheus_fastapi_instrumentator import Instrumentator

    registry = CollectorRegistry()
    app = make_app()
    Instrumentator(registry=registry).instrument(app)
    return app, lambda: generate_latest(registry)


def otel_app() -> tuple[Any, Callable[[], Any] | None]:
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    reader = InMemoryMetricReader()
    app = make_app()
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=TracerProvider(), meter_provider=MeterProvider([reader])
    )
    return app, reader.get_metrics_data


VARIANTS: dict[str, Callable[[], tuple[Any, Callable[[], Any] | None]]] = {
    "bare": bare,
    "modelmon": modelmon_app,
    "instrumentator": instrumentator_app,
    "otel": otel_app,
}

SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.3"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": PATH,
    "raw_path": PATH.encode(),
    "query_string": b"",
    "root_path": "",
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
}
HEADERS = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench"), (b"accept", b"*/*")]
REQUEST = {"type": "http.request", "body": b"", "more_body": False}


async def drive(app: Any, n: int, scrape: Callable[[], Any] | None) -> int:
    """Call ``app`` ``n`` times; returns the number of 200 responses."""
    ok = 0

    async def receive() -> dict[str, Any]:
        return REQUEST

    async def send(message: dict[str, Any]) -> None:
        nonlocal ok
        if message["type"] == "http.response.start" and message["status"] == 200:
            ok += 1

    for i in range(1, n + 1):
        scope = dict(SCOPE)
        scope["headers"] = list(HEADERS)
        await app(scope, receive, send)
        if scrape is not None and i % SCRAPE_EVERY == 0:
            scrape()
    return ok


def run(app: Any, scrape: Callable[[], Any] | None, n: int) -> float:
    """CPU seconds per request of ``n`` requests (one event loop)."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(drive(app, 200, None))  # warm-up: caches, lazy imports
        gc.collect()
        start = time.process_time()
        ok = loop.run_until_complete(drive(app, n, scrape))
        elapsed = time.process_time() - start
    finally:
        loop.close()
    if ok != n:
        raise RuntimeError(f"only {ok} of {n} requests answered 200")
    return elapsed / n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    apps = {}
    for name, factory in VARIANTS.items():
        try:
            apps[name] = factory()
        except ImportError as exc:
            print(f"skipping {name}: {exc} (install the peers: see the docstring)")
    best = {name: float("inf") for name in apps}
    for _ in range(args.repeats):  # interleaved: drift of the machine hits every side
        for name, (app, scrape) in apps.items():
            best[name] = min(best[name], run(app, scrape, args.requests))

    print(f"python {sys.version.split()[0]}, {args.requests} requests x best of {args.repeats}")
    print(f"{'variant':<16}{'us/request':>12}{'added us':>12}")
    for name, per_request in best.items():
        added = per_request - best["bare"]
        print(f"{name:<16}{per_request * 1e6:>12.2f}{added * 1e6:>12.2f}")
    ours = best["modelmon"] - best["bare"]
    for peer, target in (("instrumentator", 1 / 3), ("otel", 1 / 10)):
        if peer in best:
            theirs = best[peer] - best["bare"]
            ratio = ours / theirs
            verdict = "ok" if ratio <= target else "MISSED"
            print(f"modelmon / {peer} added cost: {ratio:.3f} (target <= {target:.3f}) {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
