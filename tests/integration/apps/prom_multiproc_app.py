"""prometheus-client's multiprocess recipe, as its documentation gives it, plus modelmon's line.

``/metrics`` builds a fresh ``CollectorRegistry`` per scrape holding prometheus-client's
``MultiProcessCollector``; ``/metrics?plain`` stops there (what a user had before),
``/metrics`` adds ``modelmon.multiprocess.MultiprocessCollector(registry)``.
``PROMETHEUS_MULTIPROC_DIR`` is the only variable set.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    generate_latest,
    multiprocess,
)

import modelmon
import modelmon.multiprocess
from modelmon.integrations.wsgi import MetricsMiddleware

APP_PREDICTIONS = Counter("app_predictions", "Predictions served (the app's own metric).")


@modelmon.monitored(model="recipe", version="1", feature_names=["x"])
def predict(row: dict[str, float]) -> float:
    return 2.0 * row["x"]


def metrics(with_modelmon: bool) -> bytes:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    if with_modelmon:
        modelmon.multiprocess.MultiprocessCollector(registry)  # the one line
    return generate_latest(registry)


def _app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    ctype = "application/json"
    if path == "/metrics":
        out = metrics(with_modelmon=environ.get("QUERY_STRING") != "plain")
        ctype = CONTENT_TYPE_LATEST
    elif path == "/pid":
        out = str(os.getpid()).encode()
    else:
        size = int(environ.get("CONTENT_LENGTH") or 0)
        out = json.dumps({"y": predict(json.loads(environ["wsgi.input"].read(size)))}).encode()
        APP_PREDICTIONS.inc()
    start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(out)))])
    return [out]


wsgi = MetricsMiddleware(_app, registry=False)  # HTTP metrics: state files, merged by the line
