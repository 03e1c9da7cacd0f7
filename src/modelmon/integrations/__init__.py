"""Serving integrations: ASGI (FastAPI, Starlette) and WSGI (Flask) middleware.

``modelmon.integrations.asgi`` and ``.wsgi`` need no framework; ``.fastapi`` and
``.flask`` raise :class:`~modelmon.errors.MissingExtraError` naming the extra to
install when their framework is missing.
"""

from __future__ import annotations

from ._http import HttpCollector, HttpMetrics, http_metrics_for, live_http_metrics

__all__ = ["HttpCollector", "HttpMetrics", "http_metrics_for", "live_http_metrics"]
