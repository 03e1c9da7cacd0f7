"""A tiny monitored model served as WSGI (``wsgi``) and ASGI (``asgi``) for multi-worker tests."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

import modelmon
from modelmon.exporters import multiprocess
from modelmon.integrations.asgi import MetricsMiddleware

multiprocess.install()  # idempotent; modelmon's __init__ installs it too once wired


@modelmon.monitored(model="workers", version="1", feature_names=["x", "y"])
def predict(row: dict[str, float]) -> float:
    return 0.5 * row["x"] + 0.25 * row["y"]


if os.environ.get("WORKERS_APP_WARMUP"):  # gunicorn --preload: calls made in the master
    for i in range(int(os.environ["WORKERS_APP_WARMUP"])):
        predict({"x": float(i), "y": 1.0})


def _respond(path: str, body: bytes) -> tuple[str, str, bytes]:
    if path == "/metrics":
        return "200 OK", CONTENT_TYPE_LATEST, generate_latest(REGISTRY)
    if path == "/pid":
        return "200 OK", "text/plain", str(os.getpid()).encode()
    row = json.loads(body or b"{}")
    out = json.dumps({"y": predict(row), "id": modelmon.last_prediction_id()}).encode()
    return "200 OK", "application/json", out


def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    size = int(environ.get("CONTENT_LENGTH") or 0)
    status, ctype, out = _respond(environ["PATH_INFO"], environ["wsgi.input"].read(size))
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(out)))])
    return [out]


async def _asgi(
    scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    status, ctype, out = _respond(scope["path"], body)
    headers = [(b"content-type", ctype.encode()), (b"content-length", str(len(out)).encode())]
    await send({"type": "http.response.start", "status": int(status[:3]), "headers": headers})
    await send({"type": "http.response.body", "body": out})


# HTTP metrics too, so the multi-worker tests check that they merge across workers.
asgi = MetricsMiddleware(_asgi)
