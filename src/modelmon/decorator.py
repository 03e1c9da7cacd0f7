"""``@monitored``, ``instrument`` and ``uninstrument``: the ways to wrap a predict function.

The wrappers themselves (what runs inside each call) live in :mod:`modelmon._hotpath`.

>>> import modelmon
>>> @modelmon.monitored(model="credit", version="1.3.0", registry=False)
... def predict(X):
...     return [0.1 for _ in X]
>>> predict([[1.0, 2.0]])
[0.1]
>>> predict.monitor.collect() and predict.monitor.traffic.requests
1
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from ._hotpath import wrap
from ._signatures import MonitorDecorator, Monitored, MonitorExtraOptions, MonitorOptions
from .errors import ConfigurationError
from .monitor import DEFAULT_REGISTRY, Monitor, live_monitor

if TYPE_CHECKING:
    from typing_extensions import Unpack

P = ParamSpec("P")
R = TypeVar("R")

__all__ = [
    "PREDICT_METHODS",
    "MonitorDecorator",
    "MonitorExtraOptions",
    "MonitorOptions",
    "Monitored",
    "instrument",
    "monitored",
    "uninstrument",
    "wrap",
]

PREDICT_METHODS: tuple[str, ...] = ("predict", "predict_proba")


def monitored(
    model: str,
    version: str,
    reference: Any = None,
    **options: Unpack[MonitorExtraOptions],
) -> MonitorDecorator:
    """Decorator factory: monitor every call of the decorated predict function.

    The wrapped function is typed :class:`~modelmon.Monitored`: the same parameters
    and return type, plus ``.monitor`` (its :class:`Monitor`). The keyword options go
    to :class:`Monitor` (``feature_names=...``, ``strict=True``, ``buffer_size=...``;
    typed by :class:`~modelmon.MonitorExtraOptions`, so a misspelt one is a type error).

    >>> import modelmon
    >>> @modelmon.monitored(model="m", version="1", registry=False)
    ... async def predict(x):
    ...     return 1.0
    >>> predict.monitor.model
    'm'

    Two functions decorated with the same model, version and arguments (two endpoints
    of one model) share one :class:`Monitor`: their calls add up. The same model and
    version with other arguments raise :class:`~modelmon.errors.ConfigurationError`.
    """
    config = {**_monitored_defaults(), "reference": reference, **options}
    return _shared_monitor(model, version, config).wrap


# The options a monitored() call always compares (given or not) when it looks for the
# live monitor of its model version: the ones that were its explicit parameters.
_COMPARED = ("feature_names", "features", "prediction", "confidence", "task", "registry")


@functools.cache
def _monitored_defaults() -> dict[str, Any]:
    """Monitor's defaults of the always-compared options (its signature is the source)."""
    params = inspect.signature(Monitor.__init__).parameters
    return {"namespace": "modelmon", **{name: params[name].default for name in _COMPARED}}


def _shared_monitor(model: str, version: str, config: Mapping[str, Any]) -> Monitor:
    """The live monitor of this model version when made with the same arguments, else a new one."""
    existing = live_monitor(
        config.get("registry", DEFAULT_REGISTRY), config["namespace"], model, version
    )
    if existing is not None:
        if _same_config(existing.shared_config, config):
            return existing
        raise ConfigurationError(
            f"model={model!r} version={version!r} is already monitored in this registry with "
            "other arguments; decorate both functions with the same arguments (they then share "
            "one monitor and add up), or wrap the second with the first's monitor: "
            "first_function.monitor.wrap(second_function)"
        )
    monitor = Monitor(model, version, **config)
    monitor.shared_config = config
    return monitor


def _same_config(a: Mapping[str, Any] | None, b: Mapping[str, Any]) -> bool:
    """Equal arguments: plain values by ``==``, objects (profiles, callables) by identity."""
    if a is None or a.keys() != b.keys():
        return False
    for key, x in a.items():
        y = b[key]
        if x is y:
            continue
        try:
            if not isinstance(x, (str, int, float, bool, list, tuple)) or not bool(x == y):
                return False
        except Exception:  # e.g. arrays compared element-wise
            return False
    return True


def instrument(
    estimator: Any,
    model: str,
    version: str,
    methods: Sequence[str] = PREDICT_METHODS,
    **options: Unpack[MonitorOptions],
) -> Monitor:
    """Wrap an estimator's predict methods in place (scikit-learn style); returns the monitor.

    Every call of an instrumented method counts as a request. Class names for probability
    outputs come from ``estimator.classes_`` when present. Undo with :func:`uninstrument`.
    """
    present = [m for m in methods if callable(getattr(estimator, m, None))]
    if not present:
        raise ConfigurationError(
            f"{type(estimator).__name__} has none of the methods {list(methods)}"
        )
    if "classes" not in options and getattr(estimator, "classes_", None) is not None:
        options["classes"] = list(estimator.classes_)
    options.setdefault("namespace", "modelmon")
    monitor = _shared_monitor(model, version, options)
    for name in present:
        setattr(estimator, name, monitor.wrap(getattr(estimator, name)))
    estimator.__dict__.setdefault("_modelmon_methods", present)
    return monitor


def uninstrument(estimator: Any) -> None:
    """Remove what :func:`instrument` added."""
    for name in estimator.__dict__.pop("_modelmon_methods", []):
        estimator.__dict__.pop(name, None)
