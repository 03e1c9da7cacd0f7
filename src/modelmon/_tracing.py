"""Opt-in tracing wrappers: the hot path of :mod:`modelmon.decorator`, plus OTel spans.

Same contract as ``decorator._sync_wrapper`` / ``_async_wrapper`` (a wrapt wrapper
factory taking the monitor), chosen only when a monitor is configured with
``trace="attributes"`` or ``trace="span"``, so untraced monitors pay nothing:

* ``"attributes"``: ``modelmon.model``, ``modelmon.version``, ``modelmon.prediction_id``
  and ``modelmon.batch_size`` are set on the current span (when it is recording);
* ``"span"``: each call runs inside a new ``modelmon.predict`` span carrying them (an
  exception is recorded on the span and re-raised unchanged).

The call's sequence number is then a :class:`TracedSeq`, an ``int`` that also carries
the span's trace and span ids; :func:`exemplar_labels` turns it into the latency
exemplar's ``trace_id``/``span_id`` labels (OpenMetrics; OTLP carries them as the
exemplar's ids), so a slow bucket links to its trace.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any, Literal

from .context import Record, get_scope, set_last
from .errors import ConfigurationError
from .extract import output_rows

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from opentelemetry.trace import Span, TracerProvider

    from .monitor import Monitor

TraceMode = Literal["attributes", "span"]
TRACE_MODES: tuple[str, ...] = ("attributes", "span")
SPAN_NAME = "modelmon.predict"
MODEL_ATTR = "modelmon.model"
VERSION_ATTR = "modelmon.version"
PREDICTION_ID_ATTR = "modelmon.prediction_id"
BATCH_SIZE_ATTR = "modelmon.batch_size"
STAGE = "trace"

Wrapper = Callable[..., Any]


class TracedSeq(int):
    """A call's sequence number that also carries its span's ids (lower-case hex).

    Behaves as the ``int`` everywhere (formatting, hashing, comparison), so prediction
    ids do not change when tracing is on.

    >>> seq = TracedSeq.of(26, 0x0AF7651916CD43DD8448EB211C80319C, 0x00F067AA0BA902B7)
    >>> f"{seq:x}", seq.trace_id, seq.span_id
    ('1a', '0af7651916cd43dd8448eb211c80319c', '00f067aa0ba902b7')
    """

    trace_id: str
    span_id: str

    @classmethod
    def of(cls, seq: int, trace_id: int, span_id: int) -> TracedSeq:
        traced = cls(seq)
        traced.trace_id = format(trace_id, "032x")
        traced.span_id = format(span_id, "016x")
        return traced


def exemplar_labels(call_ids: Sequence[str], i: int) -> dict[str, str]:
    """Exemplar labels of call ``i``: its prediction id, and its trace when it had one.

    ``call_ids`` is a batch's ``call_ids``; the trace is read from ``call_ids.seq(i)``
    (the raw sequence number) when that method exists.
    """
    labels = {"prediction_id": call_ids[i]}
    seq_of = getattr(call_ids, "seq", None)
    seq = seq_of(i) if seq_of is not None else None
    if isinstance(seq, TracedSeq):
        labels["trace_id"] = seq.trace_id
        labels["span_id"] = seq.span_id
    return labels


def check_mode(mode: object) -> TraceMode:
    """``mode`` if it is a trace mode, else a :class:`ConfigurationError`."""
    if mode not in TRACE_MODES:
        raise ConfigurationError(f"trace must be one of {TRACE_MODES} or None, got {mode!r}")
    return mode  # type: ignore[return-value]


class _CurrentSpan:
    """A context manager yielding the current span (mode ``"attributes"``)."""

    __slots__ = ("_get",)

    def __init__(self, get: Callable[[], Span]) -> None:
        self._get = get

    def __enter__(self) -> Span:
        return self._get()

    def __exit__(self, *exc_info: object) -> None:
        return None


def _span_factory(
    monitor: Monitor, mode: TraceMode, provider: TracerProvider | None
) -> Callable[[], AbstractContextManager[Span]]:
    # Imported here, at decoration time: the core (aggregates import this module for
    # exemplar_labels) never loads OpenTelemetry unless tracing is asked for.
    from opentelemetry import trace

    if mode == "attributes":
        current = _CurrentSpan(trace.get_current_span)
        return lambda: current
    # Without a provider, a ProxyTracer: spans go to the global provider, even if set later.
    tracer = trace.get_tracer("modelmon", tracer_provider=provider)
    base = {MODEL_ATTR: monitor.model, VERSION_ATTR: monitor.version}
    return lambda: tracer.start_as_current_span(SPAN_NAME, attributes=base)


def _traced_seq(seq: int, span: Span) -> int:
    ctx = span.get_span_context()
    return TracedSeq.of(seq, ctx.trace_id, ctx.span_id) if ctx.is_valid else seq


def _annotate(span: Span, monitor: Monitor, seq: int, result: Any, ok: bool) -> None:
    """Set the call's attributes on ``span``; count (never raise) a failure."""
    try:
        if not span.is_recording():
            return
        span.set_attributes(
            {
                MODEL_ATTR: monitor.model,
                VERSION_ATTR: monitor.version,
                PREDICTION_ID_ATTR: monitor.format_id(seq),
                BATCH_SIZE_ATTR: output_rows(result) if ok else 0,
            }
        )
    except Exception as exc:
        monitor.health.error(STAGE, exc)


def sync_wrapper(
    monitor: Monitor, mode: TraceMode = "attributes", tracer_provider: TracerProvider | None = None
) -> Wrapper:
    """The traced wrapt wrapper of a plain function."""
    buffer = monitor._buffer
    extend = buffer.extend
    soft_limit = monitor._soft_items
    started = monitor._started_n
    full = monitor._buffer_full
    open_span = _span_factory(monitor, check_mode(mode), tracer_provider)
    in_call, enter, leave = monitor._active.get, monitor._active.set, monitor._active.reset
    guarded = monitor._guarded  # [True] once the monitor wraps two or more functions

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if guarded[0] and in_call():  # nested in a call of the same monitor: outer counts
            return wrapped(*args, **kwargs)
        with open_span() as span:
            seq = _traced_seq(started(), span)
            token = enter(True) if guarded[0] else None
            t0 = perf_counter()
            try:
                result = wrapped(*args, **kwargs)
            except BaseException as exc:
                if token is not None:
                    leave(token)
                extend((args, kwargs, None, perf_counter() - t0, type(exc).__name__, seq, monitor))
                _annotate(span, monitor, seq, None, False)
                raise
            if token is not None:
                leave(token)
            record: Record = (args, kwargs, result, perf_counter() - t0, None, seq, monitor)
            extend(record)
            set_last(record)
            scope = get_scope()
            if scope is not None:
                scope.append(record)
            _annotate(span, monitor, seq, result, True)
        if len(buffer) >= soft_limit:
            full()
        return result

    return wrapper


def async_wrapper(
    monitor: Monitor, mode: TraceMode = "attributes", tracer_provider: TracerProvider | None = None
) -> Wrapper:
    """The traced wrapt wrapper of an ``async def`` function (times the awaited execution)."""
    buffer = monitor._buffer
    extend = buffer.extend
    soft_limit = monitor._soft_items
    started = monitor._started_n
    full = monitor._buffer_full
    open_span = _span_factory(monitor, check_mode(mode), tracer_provider)
    in_call, enter, leave = monitor._active.get, monitor._active.set, monitor._active.reset
    guarded = monitor._guarded  # [True] once the monitor wraps two or more functions

    async def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if guarded[0] and in_call():  # nested in a call of the same monitor: outer counts
            return await wrapped(*args, **kwargs)
        with open_span() as span:
            seq = _traced_seq(started(), span)
            token = enter(True) if guarded[0] else None
            t0 = perf_counter()
            try:
                result = await wrapped(*args, **kwargs)
            except BaseException as exc:
                if token is not None:
                    leave(token)
                extend((args, kwargs, None, perf_counter() - t0, type(exc).__name__, seq, monitor))
                _annotate(span, monitor, seq, None, False)
                raise
            if token is not None:
                leave(token)
            record: Record = (args, kwargs, result, perf_counter() - t0, None, seq, monitor)
            extend(record)
            set_last(record)
            scope = get_scope()
            if scope is not None:
                scope.append(record)
            _annotate(span, monitor, seq, result, True)
        if len(buffer) >= soft_limit:
            full()
        return result

    return wrapper


def wrapper_factory(
    mode: TraceMode, is_coroutine: bool, tracer_provider: TracerProvider | None = None
) -> Callable[[Monitor], Wrapper]:
    """The factory ``decorator.wrap`` uses for a traced monitor."""
    check_mode(mode)
    make = async_wrapper if is_coroutine else sync_wrapper
    return lambda monitor: make(monitor, mode, tracer_provider)
