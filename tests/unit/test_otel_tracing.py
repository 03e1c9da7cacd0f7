"""Opt-in tracing wrappers (modelmon._tracing) with a real TracerProvider."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
import wrapt
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import modelmon
from modelmon import _hotpath, _tracing
from modelmon.errors import ConfigurationError
from modelmon.fold import CallIds


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(spans: InMemorySpanExporter) -> TracerProvider:
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(spans))
    return tp


def traced(mon: modelmon.Monitor, fn: Any, mode: str, provider: TracerProvider) -> Any:
    is_coro = asyncio.iscoroutinefunction(fn)
    wrapper = _hotpath.traced_wrapper(mon, mode, is_coro, provider)  # type: ignore[arg-type]
    return wrapt.FunctionWrapper(fn, wrapper)


def predict(rows: list[list[float]]) -> list[float]:
    return [0.5] * len(rows)


def test_span_mode_opens_a_predict_span_with_attributes(
    provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    mon = modelmon.Monitor("traced", "2", registry=False, strict=True)
    fn = traced(mon, predict, "span", provider)
    assert fn([[1.0], [2.0], [3.0]]) == [0.5, 0.5, 0.5]
    (span,) = spans.get_finished_spans()
    assert span.name == "modelmon.predict"
    assert dict(span.attributes or {}) == {
        "modelmon.model": "traced",
        "modelmon.version": "2",
        "modelmon.prediction_id": mon.format_id(mon.buffer.pending()[-1][5]),
        "modelmon.batch_size": 3,
    }
    record = mon.buffer.pending()[-1]
    seq = record[5]
    assert isinstance(seq, _tracing.TracedSeq)
    assert seq.trace_id == format(span.context.trace_id, "032x")
    assert seq.span_id == format(span.context.span_id, "016x")
    assert mon.format_id(seq) == mon.format_id(int(seq))  # ids do not change
    mon.fold()
    assert mon.traffic.requests == 1 and mon.traffic.predictions == 3
    mon.close()


def test_span_mode_records_the_exception_and_reraises_it_unchanged(
    provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    mon = modelmon.Monitor("boom", "1", registry=False, strict=True)
    error = ValueError("bad input")

    def fail(rows: list[list[float]]) -> None:
        raise error

    fn = traced(mon, fail, "span", provider)
    with pytest.raises(ValueError) as caught:
        fn([[1.0]])
    assert caught.value is error
    (span,) = spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None and span.attributes["modelmon.batch_size"] == 0
    mon.fold()
    assert mon.traffic.errors == {"ValueError": 1}
    mon.close()


def test_attributes_mode_annotates_the_current_span(
    provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    mon = modelmon.Monitor("attr", "1", registry=False, strict=True)
    fn = traced(mon, predict, "attributes", provider)
    with provider.get_tracer("app").start_as_current_span("POST /predict"):
        fn([[1.0], [2.0]])
    (span,) = spans.get_finished_spans()
    assert span.name == "POST /predict"
    assert span.attributes is not None
    assert span.attributes["modelmon.model"] == "attr"
    assert span.attributes["modelmon.batch_size"] == 2
    # The span carries the call's short reference, not a labelable id (traces leave the
    # service); it names the same call as the exemplars.
    assert span.attributes["modelmon.prediction_id"] == mon.format_id(mon.buffer.pending()[-1][5])
    assert mon.buffer.pending()[-1][5].trace_id == format(span.context.trace_id, "032x")
    mon.close()


def test_attributes_mode_without_a_span_records_a_plain_call(provider: TracerProvider) -> None:
    mon = modelmon.Monitor("nospan", "1", registry=False, strict=True)
    fn = traced(mon, predict, "attributes", provider)
    assert fn([[1.0]]) == [0.5]
    seq = mon.buffer.pending()[-1][5]
    assert type(seq) is int
    mon.close()


def test_async_span_mode(provider: TracerProvider, spans: InMemorySpanExporter) -> None:
    mon = modelmon.Monitor("async", "1", registry=False, strict=True)

    async def apredict(rows: list[list[float]]) -> list[float]:
        await asyncio.sleep(0)
        return [0.25] * len(rows)

    fn = traced(mon, apredict, "span", provider)
    assert asyncio.run(fn([[1.0], [2.0]])) == [0.25, 0.25]
    (span,) = spans.get_finished_spans()
    assert span.name == "modelmon.predict"
    assert span.attributes is not None and span.attributes["modelmon.batch_size"] == 2
    mon.fold()
    assert mon.traffic.requests == 1
    mon.close()


def test_bad_mode_raises() -> None:
    with pytest.raises(ConfigurationError, match="trace must be one of"):
        _hotpath.traced_wrapper(modelmon.Monitor("bad", "1", registry=None), "spans")  # type: ignore[arg-type]


class _Ids(Sequence[str]):
    """Call ids exposing the raw sequence numbers, as ``CallIds.seq`` is proposed to."""

    def __init__(self, seqs: list[int]) -> None:
        self._seqs = seqs

    def __len__(self) -> int:
        return len(self._seqs)

    def __getitem__(self, i: Any) -> Any:
        return f"p{self._seqs[i]:x}"

    def seq(self, i: int) -> int:
        return self._seqs[i]


def test_exemplar_labels_carry_the_trace_of_traced_calls() -> None:
    traced_seq = _tracing.TracedSeq.of(31, 0xABC, 0x12)
    ids = _Ids([30, traced_seq])
    assert _tracing.exemplar_labels(ids, 0) == {"prediction_id": "p1e"}
    assert _tracing.exemplar_labels(ids, 1) == {
        "prediction_id": "p1f",
        "trace_id": "00000000000000000000000000000abc",
        "span_id": "0000000000000012",
    }


@pytest.mark.skipif(not hasattr(CallIds, "seq"), reason="CallIds.seq (lead's change) not in yet")
def test_latency_exemplar_links_to_the_trace(provider: TracerProvider) -> None:
    from prometheus_client import CollectorRegistry
    from prometheus_client.openmetrics.exposition import generate_latest

    registry = CollectorRegistry()
    mon = modelmon.Monitor("exemplar", "1", registry=registry, strict=True)
    fn = traced(mon, predict, "span", provider)
    fn([[1.0]])
    seq = mon.buffer.pending()[-1][5]
    text = generate_latest(registry).decode()
    assert f'trace_id="{seq.trace_id}"' in text, text
    assert f'span_id="{seq.span_id}"' in text
    mon.close()
