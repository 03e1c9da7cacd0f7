"""modelmon: production monitoring for machine-learning models.

>>> import modelmon
>>> @modelmon.monitored(model="credit", version="1.3.0", registry=False)
... def predict(X):
...     return [0.5 for _ in X]
>>> predict([[1.0, 2.0], [3.0, 4.0]])
[0.5, 0.5]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _extensions
from ._signatures import MonitorDecorator, Monitored, MonitorExtraOptions, MonitorOptions
from ._version import __version__
from .context import last_prediction_id, last_prediction_ids, prediction_scope
from .decorator import instrument, monitored, uninstrument
from .errors import ConfigurationError, MissingExtraError
from .exporters import multiprocess as _multiprocess
from .exporters import prometheus as _prometheus
from .exporters.prometheus import make_asgi_app, make_wsgi_app, start_http_server
from .monitor import Monitor
from .profile import ReferenceProfile

_extensions.install()  # Monitor.report(), MLflow: provided, loaded when first used
_prometheus.install()
_multiprocess.install()  # dormant until MODELMON_MULTIPROC_DIR / PROMETHEUS_MULTIPROC_DIR is set

if TYPE_CHECKING:
    from .otel import export_otel


def __getattr__(name: str) -> Any:
    # OpenTelemetry's SDK metrics modules load only when OTel export is asked for.
    if name == "export_otel":
        from .otel import export_otel

        return export_otel
    raise AttributeError(f"module 'modelmon' has no attribute {name!r}")


__all__ = [
    "ConfigurationError",
    "MissingExtraError",
    "Monitor",
    "MonitorDecorator",
    "MonitorExtraOptions",
    "MonitorOptions",
    "Monitored",
    "ReferenceProfile",
    "__version__",
    "export_otel",
    "instrument",
    "last_prediction_id",
    "last_prediction_ids",
    "make_asgi_app",
    "make_wsgi_app",
    "monitored",
    "prediction_scope",
    "start_http_server",
    "uninstrument",
]
