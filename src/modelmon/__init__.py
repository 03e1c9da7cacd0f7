"""modelmon: production monitoring for machine-learning models.

>>> import modelmon
>>> @modelmon.monitored(model="credit", version="1.3.0", registry=False)
... def predict(X):
...     return [0.5 for _ in X]
>>> predict([[1.0, 2.0], [3.0, 4.0]])
[0.5, 0.5]

``import modelmon`` loads only the errors and the typing helpers: the monitor (numpy,
the aggregates), the exporters (prometheus-client) and OpenTelemetry load when a name
below is first used (PEP 562 ``__getattr__``), so ``modelmon profile`` and
``modelmon --help`` start fast. The exporters and extensions are installed before the
first monitor reads a plug point (:func:`modelmon._internal.registry.install_on_first_use`),
however the monitor was imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._internal import registry as _registry
from ._signatures import MonitorDecorator, Monitored, MonitorExtraOptions, MonitorOptions
from ._version import __version__
from .errors import ConfigurationError, MissingExtraError

if TYPE_CHECKING:
    from .context import last_prediction_id, last_prediction_ids, prediction_scope
    from .decorator import instrument, monitored, uninstrument
    from .exporters.prometheus import make_asgi_app, make_wsgi_app, start_http_server
    from .monitor import Monitor
    from .otel import export_otel
    from .profile import ReferenceProfile

#: Public name -> the module that defines it (imported on first access).
_LAZY: dict[str, str] = {
    "last_prediction_id": ".context",
    "last_prediction_ids": ".context",
    "prediction_scope": ".context",
    "instrument": ".decorator",
    "monitored": ".decorator",
    "uninstrument": ".decorator",
    "make_asgi_app": ".exporters.prometheus",
    "make_wsgi_app": ".exporters.prometheus",
    "start_http_server": ".exporters.prometheus",
    "Monitor": ".monitor",
    "export_otel": ".otel",  # OpenTelemetry's SDK loads only when OTel export is asked for
    "ReferenceProfile": ".profile",
}


def _install() -> None:
    from . import _extensions
    from .exporters import multiprocess, prometheus

    _extensions.install()  # Monitor.report(), MLflow: provided, loaded when first used
    prometheus.install()
    multiprocess.install()  # dormant until MODELMON_MULTIPROC_DIR / PROMETHEUS_MULTIPROC_DIR


_registry.install_on_first_use(_install)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'modelmon' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


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
