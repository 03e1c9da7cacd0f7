"""Every wrapper of the hot path: what runs inside each monitored call.

The wrapper is chosen once, at decoration time (:func:`wrap`). Per call it takes two
timestamps and a sequence number, extends the monitor's buffer with the call's record
(see :mod:`modelmon.buffer`) and remembers the record as the context's last prediction.
Nothing else: extraction, aggregation and formatting happen in the fold.

Two bodies:

* :func:`_plain_sync`: a plain sync function (the most common case), inlined in one
  frame (the extra call of a shared helper costs about 0.08 µs a call).
* :func:`_recorder`: the record-building code every other wrapper shares (sync and
  async wrapt wrappers, traced or not); :func:`_sync_wrapper`, :func:`_async_wrapper`,
  :func:`_traced_sync_wrapper` and :func:`_traced_async_wrapper` only time the call.

``_plain_sync`` and ``_recorder`` are the one documented duplicate pair: keep them in step.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

import numpy as np
import wrapt

from . import fold
from ._internal.failures import error_name, record_failure
from ._tracing import TraceMode, annotate, span_factory, traced_seq
from .buffer import RawRecord
from .context import get_scope, set_last
from .errors import ConfigurationError

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

    from ._signatures import Monitored
    from .monitor import Monitor

P = ParamSpec("P")
R = TypeVar("R")
Wrapper = Callable[..., Any]

# A numpy array input is a buffer the caller may reuse for its next call, and the fold
# reads inputs later: the hot path copies it at call time (one type check otherwise).
_NDARRAY: Any = np.ndarray


class _BoundMonitoredFunction(wrapt.BoundFunctionWrapper):  # type: ignore[type-arg]
    @property
    def monitor(self) -> Monitor:
        # wrapt keeps the unbound proxy as ``_self_parent``; it carries the monitor.
        return self._self_parent.monitor  # type: ignore[no-any-return]


class MonitoredFunction(wrapt.FunctionWrapper):  # type: ignore[type-arg]
    """A wrapt proxy of the user's function that also carries its :class:`Monitor`."""

    # wrapt stores proxy attributes named ``_self_*`` on the proxy, not on the function.
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
    is_coro = inspect.iscoroutinefunction(target)  # target: classmethod/staticmethod unwrapped
    monitor.nesting.add_function()
    if monitor.trace is None:
        wrapper = (_async_wrapper if is_coro else _sync_wrapper)(monitor)
    else:
        make = _traced_async_wrapper if is_coro else _traced_sync_wrapper
        wrapper = make(monitor, monitor.trace)
    if _is_plain_function(fn):
        if monitor.trace is None and not is_coro and monitor.features_fn is None:
            return cast("Monitored[P, R]", _plain_sync(monitor, fn))
        return cast("Monitored[P, R]", _plain(fn, wrapper, is_coro, monitor))
    wrapped = MonitoredFunction(fn, wrapper)
    wrapped._self_monitor = monitor  # wrapt's convention for proxy attributes (see above)
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


def _plain(
    fn: Callable[..., Any], wrapper: Wrapper, is_coro: bool, monitor: Monitor
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


# --- the inlined body ---------------------------------------------------------------------


def _plain_sync(monitor: Monitor, fn: Callable[..., Any]) -> Callable[..., Any]:
    """The hot path of a plain sync function, inlined (the most common case).

    The same steps as :func:`_sync_wrapper` with :func:`_recorder`, in one frame; keep
    the two in step.
    """
    buffer = monitor.buffer
    items, extend, soft_limit = buffer.items, buffer.extend, buffer.soft_items
    started = buffer.next_seq
    full = functools.partial(fold.buffer_full, monitor)
    ndarray = _NDARRAY
    active = monitor.nesting.active
    in_call, enter, leave = active.get, active.set, active.reset
    guarded = monitor.nesting.on  # [True] once the monitor wraps two or more functions

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
            record_failure((args, kwargs, None, perf_counter() - t0, error_name(exc), seq, monitor))
            raise
        if token is not None:
            leave(token)
        record: RawRecord = (
            (
                args[0] if type(args[0]) is not ndarray else args[0].copy(),
                None,
                result,
                perf_counter() - t0,
                None,
                seq,
                monitor,
            )
            if args
            else (args, kwargs, result, perf_counter() - t0, None, seq, monitor)
        )
        extend(record)
        set_last(record)
        scope = get_scope()
        if scope is not None:
            scope.append(record)
        if len(items) >= soft_limit:
            full()
        return result

    out: Any = monitored_function
    out.monitor = monitor
    return cast(Callable[..., Any], out)


# --- the shared body ----------------------------------------------------------------------

# ``finish(args, kwargs, result, t0, seq, token)`` records a returned call;
# ``fail(args, kwargs, exc, t0, seq, token)`` a raised one.
Finish = Callable[[tuple[Any, ...], dict[str, Any], Any, float, Any, Any], None]
Fail = Callable[[tuple[Any, ...], dict[str, Any], BaseException, float, Any, Any], None]


def _recorder(monitor: Monitor) -> tuple[Finish, Fail]:
    """The record-building code of every wrapt wrapper (sync, async, traced or not)."""
    buffer = monitor.buffer
    items, extend, soft_limit = buffer.items, buffer.extend, buffer.soft_items
    full = functools.partial(fold.buffer_full, monitor)
    ndarray = _NDARRAY
    direct = monitor.features_fn is None  # buffer the input itself (see buffer.Record)
    leave = monitor.nesting.active.reset

    def finish(
        args: tuple[Any, ...], kwargs: dict[str, Any], result: Any, t0: float, seq: Any, token: Any
    ) -> None:
        if token is not None:
            leave(token)
        record: RawRecord = (
            (
                args[0] if type(args[0]) is not ndarray else args[0].copy(),
                None,
                result,
                perf_counter() - t0,
                None,
                seq,
                monitor,
            )
            if direct and args
            else (args, kwargs, result, perf_counter() - t0, None, seq, monitor)
        )
        extend(record)
        set_last(record)
        scope = get_scope()
        if scope is not None:
            scope.append(record)
        if len(items) >= soft_limit:
            full()

    def fail(
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        exc: BaseException,
        t0: float,
        seq: Any,
        token: Any,
    ) -> None:
        if token is not None:
            leave(token)
        record_failure((args, kwargs, None, perf_counter() - t0, error_name(exc), seq, monitor))

    return finish, fail


def _sync_wrapper(monitor: Monitor) -> Wrapper:
    """The wrapt wrapper of a sync callable (methods, ``features=``, class bodies)."""
    finish, fail = _recorder(monitor)
    started = monitor.buffer.next_seq
    in_call, enter = monitor.nesting.active.get, monitor.nesting.active.set
    guarded = monitor.nesting.on

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
            fail(args, kwargs, exc, t0, seq, token)
            raise
        finish(args, kwargs, result, t0, seq, token)
        return result

    return wrapper


def _async_wrapper(monitor: Monitor) -> Wrapper:
    """The wrapt wrapper of an ``async def`` callable: times the awaited execution."""
    finish, fail = _recorder(monitor)
    started = monitor.buffer.next_seq
    in_call, enter = monitor.nesting.active.get, monitor.nesting.active.set
    guarded = monitor.nesting.on

    async def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        token = None
        if guarded[0]:
            if in_call():
                return await wrapped(*args, **kwargs)
            token = enter(True)
        t0 = perf_counter()
        seq = started()
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            fail(args, kwargs, exc, t0, seq, token)
            raise
        finish(args, kwargs, result, t0, seq, token)
        return result

    return wrapper


def _traced_sync_wrapper(
    monitor: Monitor, mode: TraceMode, tracer_provider: TracerProvider | None = None
) -> Wrapper:
    """The sync wrapper of a traced monitor (see :mod:`modelmon._tracing`)."""
    finish, fail = _recorder(monitor)
    started = monitor.buffer.next_seq
    in_call, enter = monitor.nesting.active.get, monitor.nesting.active.set
    guarded = monitor.nesting.on
    open_span = span_factory(monitor, mode, tracer_provider)

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if guarded[0] and in_call():  # nested in a call of the same monitor: outer counts
            return wrapped(*args, **kwargs)
        with open_span() as span:
            seq = traced_seq(started(), span)
            token = enter(True) if guarded[0] else None
            t0 = perf_counter()
            try:
                result = wrapped(*args, **kwargs)
            except BaseException as exc:
                fail(args, kwargs, exc, t0, seq, token)
                annotate(span, monitor, seq, None, False)
                raise
            finish(args, kwargs, result, t0, seq, token)
            annotate(span, monitor, seq, result, True)
        return result

    return wrapper


def _traced_async_wrapper(
    monitor: Monitor, mode: TraceMode, tracer_provider: TracerProvider | None = None
) -> Wrapper:
    """The ``async def`` wrapper of a traced monitor (times the awaited execution)."""
    finish, fail = _recorder(monitor)
    started = monitor.buffer.next_seq
    in_call, enter = monitor.nesting.active.get, monitor.nesting.active.set
    guarded = monitor.nesting.on
    open_span = span_factory(monitor, mode, tracer_provider)

    async def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if guarded[0] and in_call():
            return await wrapped(*args, **kwargs)
        with open_span() as span:
            seq = traced_seq(started(), span)
            token = enter(True) if guarded[0] else None
            t0 = perf_counter()
            try:
                result = await wrapped(*args, **kwargs)
            except BaseException as exc:
                fail(args, kwargs, exc, t0, seq, token)
                annotate(span, monitor, seq, None, False)
                raise
            finish(args, kwargs, result, t0, seq, token)
            annotate(span, monitor, seq, result, True)
        return result

    return wrapper


def traced_wrapper(
    monitor: Monitor,
    mode: TraceMode,
    is_coroutine: bool = False,
    tracer_provider: TracerProvider | None = None,
) -> Wrapper:
    """The traced wrapt wrapper of ``monitor`` (explicit tracer provider: tests)."""
    make = _traced_async_wrapper if is_coroutine else _traced_sync_wrapper
    return make(monitor, mode, tracer_provider)
