"""Opt-in tracing: the OTel span side of the traced wrappers in :mod:`modelmon._hotpath`.

The traced wrappers are chosen only when a monitor is configured with
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
from typing import TYPE_CHECKING, Any, Literal

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


def span_factory(
    monitor: Monitor, mode: TraceMode, provider: TracerProvider | None = None
) -> Callable[[], AbstractContextManager[Span]]:
    """What a traced call opens: the current span, or a new ``modelmon.predict`` span."""
    check_mode(mode)
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


def traced_seq(seq: int, span: Span) -> int:
    """``seq`` carrying ``span``'s ids (when the span is valid)."""
    ctx = span.get_span_context()
    return TracedSeq.of(seq, ctx.trace_id, ctx.span_id) if ctx.is_valid else seq


def annotate(span: Span, monitor: Monitor, seq: int, result: Any, ok: bool) -> None:
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
