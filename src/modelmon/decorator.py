"""``@monitored`` and the hot path.

The wrapper is chosen once, at decoration time (sync or coroutine). Per call it takes
two timestamps, bumps the in-flight counters, extends the monitor's buffer with the
call's record (see ``context.Record``) and remembers the record as the context's last
prediction. Nothing else: extraction, aggregation and formatting happen in the fold.

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
from collections.abc import Callable, Mapping, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

import wrapt

from ._signatures import MonitorDecorator, Monitored, MonitorExtraOptions, MonitorOptions
from .context import Record, get_scope, set_last
from .errors import ConfigurationError
from .monitor import ConfidenceArg, Monitor, Task, live_monitor

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


def _is_coroutine_function(fn: Any) -> bool:
    target = getattr(fn, "__func__", fn)  # classmethod / staticmethod objects
    return inspect.iscoroutinefunction(target)


def _sync_wrapper(monitor: Monitor) -> Callable[..., Any]:
    buffer = monitor._buffer
    extend = buffer.extend
    soft_limit = monitor._soft_items
    started = monitor._started_n
    full = monitor._buffer_full
    direct = monitor.features_fn is None  # buffer the input itself (see context.Record)
    in_call, enter, leave = monitor._active.get, monitor._active.set, monitor._active.reset
    guarded = monitor._guarded  # [True] once the monitor wraps two or more functions

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        token = None
        if guarded[0]:
            if in_call():  # nested in a call of the same monitor: the outer call counts
                return wrapped(*args, **kwargs)
            token = enter(True)
        t0 = perf_counter()
        seq = started()
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            if token is not None:
                leave(token)
            extend((args, kwargs, None, perf_counter() - t0, type(exc).__name__, seq, monitor))
            raise
        if token is not None:
            leave(token)
        record: Record = (
            (args[0], None, result, perf_counter() - t0, None, seq, monitor)
            if direct and args
            else (args, kwargs, result, perf_counter() - t0, None, seq, monitor)
        )
        extend(record)
        set_last(record)
        scope = get_scope()
        if scope is not None:
            scope.append(record)
        if len(buffer) >= soft_limit:
            full()
        return result

    return wrapper


def _async_wrapper(monitor: Monitor) -> Callable[..., Any]:
    buffer = monitor._buffer
    extend = buffer.extend
    soft_limit = monitor._soft_items
    started = monitor._started_n
    full = monitor._buffer_full
    direct = monitor.features_fn is None  # buffer the input itself (see context.Record)
    in_call, enter, leave = monitor._active.get, monitor._active.set, monitor._active.reset
    guarded = monitor._guarded  # [True] once the monitor wraps two or more functions

    async def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        # Runs when the coroutine is awaited: the timer covers the awaited execution.
        token = None
        if guarded[0]:
            if in_call():  # nested in a call of the same monitor: the outer call counts
                return await wrapped(*args, **kwargs)
            token = enter(True)
        t0 = perf_counter()
        seq = started()
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            if token is not None:
                leave(token)
            extend((args, kwargs, None, perf_counter() - t0, type(exc).__name__, seq, monitor))
            raise
        if token is not None:
            leave(token)
        record: Record = (
            (args[0], None, result, perf_counter() - t0, None, seq, monitor)
            if direct and args
            else (args, kwargs, result, perf_counter() - t0, None, seq, monitor)
        )
        extend(record)
        set_last(record)
        scope = get_scope()
        if scope is not None:
            scope.append(record)
        if len(buffer) >= soft_limit:
            full()
        return result

    return wrapper


class _BoundMonitoredFunction(wrapt.BoundFunctionWrapper):  # type: ignore[type-arg]
    @property
    def monitor(self) -> Monitor:
        return self._self_parent._self_monitor  # type: ignore[no-any-return]


class MonitoredFunction(wrapt.FunctionWrapper):  # type: ignore[type-arg]
    """A wrapt proxy of the user's function that also carries its :class:`Monitor`."""

    _self_monitor: Monitor

    __bound_function_wrapper__ = _BoundMonitoredFunction

    @property
    def monitor(self) -> Monitor:
        return self._self_monitor


def wrap(monitor: Monitor, fn: Callable[P, R]) -> Monitored[P, R]:
    """Wrap ``fn`` for ``monitor``; signature, docstring and ``__wrapped__`` are kept."""
    target = getattr(fn, "__func__", fn)
    if not callable(target):
        raise ConfigurationError(f"can only monitor callables, got {type(fn).__name__}")
    if inspect.isgeneratorfunction(target) or inspect.isasyncgenfunction(target):
        raise ConfigurationError(
            f"{getattr(target, '__qualname__', target)!r} is a generator: monitor the function "
            "that produces the whole prediction instead"
        )
    is_coro = _is_coroutine_function(fn)
    monitor._wrapped_functions += 1
    if monitor._wrapped_functions >= 2:
        # Only a monitor wrapping several functions can see one call nested in another
        # (predict calling predict_proba, an endpoint calling another): from now on every
        # wrapper of it checks; a single-function monitor pays nothing for the guard.
        monitor._guarded[0] = True
    make: Callable[[Monitor], Callable[..., Any]]
    if monitor.trace is None:
        make = _async_wrapper if is_coro else _sync_wrapper
    else:
        from ._tracing import wrapper_factory

        make = wrapper_factory(monitor.trace, is_coro)
    if _is_plain_function(fn):
        if monitor.trace is None and not is_coro and monitor.features_fn is None:
            return cast("Monitored[P, R]", _plain_sync(monitor, fn))
        return cast("Monitored[P, R]", _plain(fn, make(monitor), is_coro, monitor))
    wrapper = make(monitor)
    wrapped = MonitoredFunction(fn, wrapper)
    wrapped._self_monitor = monitor
    return cast("Monitored[P, R]", wrapped)


def _is_plain_function(fn: Any) -> bool:
    """A module-level or nested function, not one written in a class body.

    Functions in a class body become methods later (``self`` would be taken for the
    input), so they, classmethods, staticmethods, bound methods and other callables go
    through wrapt's descriptor-aware proxy. ``A.predict`` is a class body function,
    ``f.<locals>.predict`` and ``predict`` are not.
    """
    if not inspect.isfunction(fn):
        return False
    parts = fn.__qualname__.split(".")
    return len(parts) == 1 or parts[-2] == "<locals>"


def _plain_sync(monitor: Monitor, fn: Callable[..., Any]) -> Callable[..., Any]:
    """The hot path of a plain sync function, inlined (the most common case).

    The same steps as :func:`_sync_wrapper`, without its extra call frame (about
    0.08 µs a call); keep the two in step.
    """
    buffer = monitor._buffer
    extend = buffer.extend
    soft_limit = monitor._soft_items
    started = monitor._started_n
    full = monitor._buffer_full
    in_call, enter, leave = monitor._active.get, monitor._active.set, monitor._active.reset
    guarded = monitor._guarded  # [True] once the monitor wraps two or more functions

    @functools.wraps(fn)
    def monitored_function(*args: Any, **kwargs: Any) -> Any:
        token = None
        if guarded[0]:
            if in_call():  # nested in a call of the same monitor: the outer call counts
                return fn(*args, **kwargs)
            token = enter(True)
        t0 = perf_counter()
        seq = started()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            if token is not None:
                leave(token)
            extend((args, kwargs, None, perf_counter() - t0, type(exc).__name__, seq, monitor))
            raise
        if token is not None:
            leave(token)
        record: Record = (
            (args[0], None, result, perf_counter() - t0, None, seq, monitor)
            if args
            else (args, kwargs, result, perf_counter() - t0, None, seq, monitor)
        )
        extend(record)
        set_last(record)
        scope = get_scope()
        if scope is not None:
            scope.append(record)
        if len(buffer) >= soft_limit:
            full()
        return result

    out: Any = monitored_function
    out.monitor = monitor
    return cast(Callable[..., Any], out)


def _plain(
    fn: Callable[..., Any], wrapper: Callable[..., Any], is_coro: bool, monitor: Monitor
) -> Callable[..., Any]:
    """A plain function calling ``wrapper``: for plain functions, the proxy's dispatch
    (about 0.6 µs a call, a third of the hot path) buys nothing. ``functools.wraps``
    keeps the name, docstring, annotations, ``__wrapped__`` and so ``inspect.signature``;
    a coroutine function stays one.
    """
    if is_coro:

        async def monitored_coroutine(*args: Any, **kwargs: Any) -> Any:
            return await wrapper(fn, None, args, kwargs)

        out: Any = functools.wraps(fn)(monitored_coroutine)
    else:

        def monitored_function(*args: Any, **kwargs: Any) -> Any:
            return wrapper(fn, None, args, kwargs)

        out = functools.wraps(fn)(monitored_function)
    out.monitor = monitor
    return cast(Callable[..., Any], out)


def monitored(
    model: str,
    version: str,
    reference: Any = None,
    feature_names: Sequence[str] | None = None,
    features: Callable[..., Any] | None = None,
    prediction: Callable[[Any], Any] | None = None,
    confidence: ConfidenceArg = "auto",
    task: Task | None = None,
    registry: Any = None,
    namespace: str = "modelmon",
    **options: Unpack[MonitorExtraOptions],
) -> MonitorDecorator:
    """Decorator factory: monitor every call of the decorated predict function.

    The wrapped function is typed :class:`~modelmon.Monitored`: the same parameters
    and return type, plus ``.monitor`` (its :class:`Monitor`). Further keyword options
    go to :class:`Monitor` (``strict=True``, ``buffer_size=...``; typed by
    :class:`~modelmon.MonitorExtraOptions`, so a misspelt one is a type error).

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
    config = dict(
        reference=reference,
        feature_names=feature_names,
        features=features,
        prediction=prediction,
        confidence=confidence,
        task=task,
        registry=registry,
        namespace=namespace,
        **options,
    )
    return _shared_monitor(model, version, config).wrap


def _shared_monitor(model: str, version: str, config: Mapping[str, Any]) -> Monitor:
    """The live monitor of this model version when made with the same arguments, else a new one."""
    existing = live_monitor(config.get("registry"), config["namespace"], model, version)
    if existing is not None:
        if _same_config(getattr(existing, "_decorator_config", None), config):
            return existing
        raise ConfigurationError(
            f"model={model!r} version={version!r} is already monitored in this registry with "
            "other arguments; decorate both functions with the same arguments (they then share "
            "one monitor and add up), or wrap the second with the first's monitor: "
            "first_function.monitor.wrap(second_function)"
        )
    monitor = Monitor(model, version, **config)
    monitor._decorator_config = config  # type: ignore[attr-defined]
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
