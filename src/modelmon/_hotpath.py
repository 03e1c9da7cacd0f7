"""Every wrapper of the hot path: what runs inside each monitored call.

The wrapper is chosen once, at decoration time (:func:`wrap`). Per call it takes two
timestamps and a sequence number, extends the monitor's buffer with the call's record
(see :mod:`modelmon.buffer`) and remembers the record as the context's last prediction.
Nothing else: extraction, aggregation and formatting happen in the fold.

Two bodies:

* :func:`_plain_sync` and :func:`_plain_async`: a plain sync function (the most common
  case) and a plain ``async def`` (an ASGI endpoint's model call), each inlined in one
  frame (the extra call of a shared helper costs about 0.08 µs a call, an extra
  coroutine layer about 0.35 µs).
* :func:`_recorder`: the body every other wrapper shares (``begin``, ``finish``,
  ``fail``); :func:`_traced_recorder` runs it inside a span. The wrapt wrappers
  :func:`_sync_wrapper` and :func:`_async_wrapper` only call the function between them.

The inlined bodies and ``_recorder`` are the one documented duplicate (Python has no
one body for ``def`` and ``async def``, and a shared helper costs a call): keep the
three in step (``tests/unit/test_hotpath.py`` records one call through each and
compares the records).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any, NamedTuple, ParamSpec, TypeVar, cast

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
        parts = _recorder(monitor)
    else:
        parts = _traced_recorder(monitor, monitor.trace)
    wrapper = (_async_wrapper if is_coro else _sync_wrapper)(parts)
    if _is_plain_function(fn):
        if monitor.trace is None and monitor.features_fn is None:
            inlined = _plain_async(monitor, fn) if is_coro else _plain_sync(monitor, fn)
            return cast("Monitored[P, R]", inlined)
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


# --- the inlined bodies -------------------------------------------------------------------


class _Bound(NamedTuple):
    """What every body reads per call, bound once (closure cells beat attribute reads)."""

    items: list[Any]  # the buffer's flat records
    extend: Callable[[RawRecord], None]
    limit: list[int]  # [the length at which a call calls ``full``]: soft, or hard once woken
    started: Callable[[], int]  # the next sequence number
    full: Callable[[], None]
    ndarray: Any
    in_call: Callable[[], bool]  # nested in a call of the same monitor
    enter: Callable[[bool], Any]
    leave: Callable[[Any], None]
    guarded: list[bool]  # [True] once the monitor wraps two or more functions


def _bind(monitor: Monitor) -> _Bound:
    buffer, active = monitor.buffer, monitor.nesting.active
    full = functools.partial(fold.buffer_full, monitor)
    return _Bound(
        buffer.items,
        buffer.extend,
        buffer.limit,
        buffer.next_seq,
        full,
        _NDARRAY,
        active.get,
        active.set,
        active.reset,
        monitor.nesting.on,
    )


def _plain_sync(monitor: Monitor, fn: Callable[..., Any]) -> Callable[..., Any]:
    """The hot path of a plain sync function, inlined (the most common case).

    The same steps as :func:`_recorder`'s ``begin`` and ``finish``, in one frame; keep
    the two in step.
    """
    items, extend, limit, started, full, ndarray, in_call, enter, leave, guarded = _bind(monitor)

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
        if len(items) >= limit[0]:  # the soft limit, or the hard one once woken
            full()
        return result

    out: Any = monitored_function
    out.monitor = monitor
    return cast(Callable[..., Any], out)


def _plain_async(monitor: Monitor, fn: Callable[..., Any]) -> Callable[..., Any]:
    """:func:`_plain_sync` for a plain ``async def``: one coroutine, timing the await.

    The same steps, awaiting the call; keep the two in step.
    """
    items, extend, limit, started, full, ndarray, in_call, enter, leave, guarded = _bind(monitor)

    @functools.wraps(fn)
    async def monitored_coroutine(*args: Any, **kwargs: Any) -> Any:
        token = None
        if guarded[0]:
            if in_call():  # nested in a call of the same monitor: the outer call counts
                return await fn(*args, **kwargs)
            token = enter(True)
        t0 = perf_counter()
        seq = started()
        try:
            result = await fn(*args, **kwargs)
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
        if len(items) >= limit[0]:  # the soft limit, or the hard one once woken
            full()
        return result

    out: Any = monitored_coroutine
    out.monitor = monitor
    return cast(Callable[..., Any], out)


# --- the shared body ----------------------------------------------------------------------

# A started call: (nesting token, sequence number, start time, span context, span); the
# last two are None when untraced. ``begin()`` returns None for a nested call.
Call = tuple[Any, Any, float, Any, Any]
Begin = Callable[[], "Call | None"]
Finish = Callable[[Call, tuple[Any, ...], dict[str, Any], Any], None]
Fail = Callable[[Call, tuple[Any, ...], dict[str, Any], BaseException], None]


def _recorder(monitor: Monitor) -> tuple[Begin, Finish, Fail]:
    """The body every wrapt wrapper shares: start a call, record it returned or raised."""
    items, extend, limit, started, full, ndarray, in_call, enter, leave, guarded = _bind(monitor)
    direct = monitor.features_fn is None  # buffer the input itself (see buffer.Record)

    def begin() -> Call | None:
        if guarded[0]:
            if in_call():  # nested in a call of the same monitor: the outer call counts
                return None
            return (enter(True), started(), perf_counter(), None, None)
        return (None, started(), perf_counter(), None, None)

    def finish(call: Call, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
        token, seq, t0 = call[0], call[1], call[2]
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
        if len(items) >= limit[0]:  # the soft limit, or the hard one once woken
            full()

    def fail(call: Call, args: tuple[Any, ...], kwargs: dict[str, Any], exc: BaseException) -> None:
        token, seq, t0 = call[0], call[1], call[2]
        if token is not None:
            leave(token)
        record_failure((args, kwargs, None, perf_counter() - t0, error_name(exc), seq, monitor))

    return begin, finish, fail


def _traced_recorder(
    monitor: Monitor, mode: TraceMode, tracer_provider: TracerProvider | None = None
) -> tuple[Begin, Finish, Fail]:
    """:func:`_recorder` inside a span (see :mod:`modelmon._tracing`)."""
    _, finish_call, fail_call = _recorder(monitor)
    open_span = span_factory(monitor, mode, tracer_provider)
    started = monitor.buffer.next_seq
    active = monitor.nesting.active
    in_call, enter = active.get, active.set
    guarded = monitor.nesting.on

    def begin() -> Call | None:
        if guarded[0] and in_call():  # nested in a call of the same monitor: outer counts
            return None
        context = open_span()
        span = context.__enter__()
        seq = traced_seq(started(), span)
        token = enter(True) if guarded[0] else None
        return (token, seq, perf_counter(), context, span)

    def finish(call: Call, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
        try:
            finish_call(call, args, kwargs, result)
            annotate(call[4], monitor, call[1], result, True)
        finally:
            call[3].__exit__(None, None, None)

    def fail(call: Call, args: tuple[Any, ...], kwargs: dict[str, Any], exc: BaseException) -> None:
        try:
            fail_call(call, args, kwargs, exc)
            annotate(call[4], monitor, call[1], None, False)
        finally:  # the span records the exception, as a ``with`` block would
            call[3].__exit__(type(exc), exc, exc.__traceback__)

    return begin, finish, fail


def _sync_wrapper(parts: tuple[Begin, Finish, Fail]) -> Wrapper:
    """The wrapt wrapper of a sync callable (methods, ``features=``, class bodies)."""
    begin, finish, fail = parts

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = begin()
        if call is None:
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            fail(call, args, kwargs, exc)
            raise
        finish(call, args, kwargs, result)
        return result

    return wrapper


def _async_wrapper(parts: tuple[Begin, Finish, Fail]) -> Wrapper:
    """The wrapt wrapper of an ``async def`` callable: times the awaited execution.

    The same steps as :func:`_sync_wrapper`, awaiting the call (Python has no one body
    for both).
    """
    begin, finish, fail = parts

    async def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = begin()
        if call is None:
            return await wrapped(*args, **kwargs)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            fail(call, args, kwargs, exc)
            raise
        finish(call, args, kwargs, result)
        return result

    return wrapper


def traced_wrapper(
    monitor: Monitor,
    mode: TraceMode,
    is_coroutine: bool = False,
    tracer_provider: TracerProvider | None = None,
) -> Wrapper:
    """The traced wrapt wrapper of ``monitor`` (explicit tracer provider: tests)."""
    parts = _traced_recorder(monitor, mode, tracer_provider)
    return _async_wrapper(parts) if is_coroutine else _sync_wrapper(parts)
