"""``/metrics`` endpoints (WSGI, ASGI, a background HTTP server) on the fast renderer.

They answer as prometheus-client's ``make_wsgi_app``/``make_asgi_app`` do (content
negotiation, gzip, the ``name[]`` filter, ``OPTIONS``, the favicon), but render text
0.0.4 with :func:`~modelmon.exporters.exposition.generate_text`. OpenMetrics and
filtered scrapes go through prometheus-client's encoders.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import exposition as _prom
from prometheus_client.exposition import ThreadingWSGIServer, gzip_accepted

from .exposition import choose_encoder
from .gate import GatedRegistry

Output = tuple[str, list[tuple[str, str]], bytes]


def bake(
    registry: Any, accept: str | None, accept_encoding: str | None, params: dict[str, list[str]]
) -> Output:
    """Status, headers and body of one scrape of ``registry``."""
    if "name[]" in params:  # filtered by sample name (modelmon's collector declares none)
        encoder, content_type = _prom.choose_encoder(accept or "")
        if not isinstance(registry, GatedRegistry):
            registry = GatedRegistry(registry, min_interval=0.0)
        registry = registry.restricted_registry(params["name[]"])
    else:
        encoder, content_type = choose_encoder(accept)
    output = encoder(registry)
    headers = [("Content-Type", content_type)]
    if gzip_accepted(accept_encoding or ""):
        output = gzip.compress(output)
        headers.append(("Content-Encoding", "gzip"))
    return "200 OK", headers, output


def _answer(registry: Any, method: str, path: str, query: str, accept: str | None,
            accept_encoding: str | None) -> Output:  # fmt: skip
    if method == "OPTIONS":
        return "200 OK", [("Allow", "OPTIONS,GET")], b""
    if method != "GET":
        status = "405 Method Not Allowed"
        body = f"# HTTP {status}: {method}; use OPTIONS or GET\n".encode()
        return status, [("Allow", "OPTIONS,GET")], body
    if path == "/favicon.ico":
        return "200 OK", [], b""
    return bake(registry, accept, accept_encoding, parse_qs(query))


def make_wsgi_app(registry: Any) -> Callable[..., Any]:
    """A WSGI app serving ``registry`` (every path, as prometheus-client's does)."""

    def metrics_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        status, headers, output = _answer(
            registry,
            environ["REQUEST_METHOD"],
            environ.get("PATH_INFO", ""),
            environ.get("QUERY_STRING", ""),
            environ.get("HTTP_ACCEPT"),
            environ.get("HTTP_ACCEPT_ENCODING"),
        )
        start_response(status, headers)
        return [output]

    return metrics_app


def _header(scope: dict[str, Any], name: bytes) -> str:
    return ",".join(v.decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == name)


def make_asgi_app(registry: Any) -> Callable[..., Any]:
    """An ASGI app serving ``registry``; collection runs in a worker thread, off the loop."""

    async def metrics_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            return
        status, headers, output = await asyncio.to_thread(
            _answer,
            registry,
            scope.get("method", "GET"),
            scope.get("path", ""),
            scope.get("query_string", b"").decode("latin-1"),
            _header(scope, b"accept"),
            _header(scope, b"accept-encoding"),
        )
        if (await receive()).get("type") != "http.request":
            return  # the client went away
        await send(
            {
                "type": "http.response.start",
                "status": int(status.split(" ")[0]),
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
            }
        )
        await send({"type": "http.response.body", "body": output})

    return metrics_app


class _Silent(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing (a scrape every few seconds)."""


def start_http_server(port: int, addr: str, registry: Any) -> tuple[Any, threading.Thread]:
    """Serve ``registry`` on ``addr:port`` from a daemon thread; returns (server, thread)."""
    family, _, _, _, sockaddr = socket.getaddrinfo(
        addr, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]

    class Server(ThreadingWSGIServer):
        address_family = family

    httpd = make_server(str(sockaddr[0]), port, make_wsgi_app(registry), Server, _Silent)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    return httpd, thread
