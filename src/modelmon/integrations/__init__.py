"""Serving integrations: ASGI (FastAPI, Starlette) and WSGI (Flask) middleware.

``modelmon.integrations.asgi`` and ``.wsgi`` need no framework; ``.fastapi`` and
``.flask`` raise :class:`~modelmon.errors.MissingExtraError` naming the extra to
install when their framework is missing.
"""

from __future__ import annotations

from ..aggregates.http import HttpMetrics, live_http_metrics
from ._http import HttpCollector, http_metrics_for

__all__ = ["HttpCollector", "HttpMetrics", "http_metrics_for", "live_http_metrics"]
