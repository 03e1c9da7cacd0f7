"""modelmon: production monitoring for machine-learning models.

>>> import modelmon
>>> @modelmon.monitored(model="credit", version="1.3.0", registry=False)
... def predict(X):
...     return [0.5 for _ in X]
>>> predict([[1.0, 2.0], [3.0, 4.0]])
[0.5, 0.5]
"""

from __future__ import annotations

from .context import last_prediction_id, last_prediction_ids, prediction_scope
from .decorator import instrument, monitored, uninstrument
from .errors import ConfigurationError, MissingExtraError
from .exporters import prometheus as _prometheus
from .exporters.prometheus import make_asgi_app, make_wsgi_app, start_http_server
from .monitor import Monitor
from .profile import ReferenceProfile

_prometheus.install()

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "MissingExtraError",
    "Monitor",
    "ReferenceProfile",
    "__version__",
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
