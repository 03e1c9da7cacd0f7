"""OpenTelemetry translation: modelmon's families as OTel metrics data (cumulative).

Split by job from :mod:`modelmon.exporters.otel` (which re-exports the public names and
describes the mapping), with the names the three parts share.
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

from opentelemetry.sdk.metrics import Exemplar as OtelExemplar
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Buckets,
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from .. import names
from .._version import __version__ as _SDK_VERSION
from ..names import MetricSpec
from ..points import (
    Exemplar,
    ExponentialHistogramPoint,
    Family,
    HistogramPoint,
    Point,
    ScalarPoint,
    SummaryPoint,
)

if TYPE_CHECKING:
    from ..monitor import Monitor


STAGE = "otel_export"
OBSERVE_STAGE = "otel_observe"
SERVICE_INSTANCE_ID = "service.instance.id"
SCOPE_NAME = "modelmon"
SCOPE = InstrumentationScope(SCOPE_NAME, _SDK_VERSION)
CUMULATIVE = AggregationTemporality.CUMULATIVE

# Gauges whose values add up across processes: exported as non-monotonic sums
# (OTel's UpDownCounter), so a collector may sum them over replicas and workers.
ADDITIVE_GAUGES: frozenset[str] = frozenset({names.IN_FLIGHT.name})

# Exemplar labels that OTel carries as the exemplar's own trace and span ids.
TRACE_ID_LABEL = "trace_id"
SPAN_ID_LABEL = "span_id"

MonitorSource = Callable[[], list["Monitor"]]
# Other objects rendering families (the HTTP middleware's metrics): ``collect()`` and
# ``health`` like a monitor, no model labels, no load time.
FamilySource = Callable[[], list[Any]]


# --- translation ------------------------------------------------------------------------


def otel_name(spec: MetricSpec, namespace: str = names.DEFAULT_NAMESPACE) -> str:
    """The OTel name of ``spec`` for ``namespace`` (``modelmon.`` replaced by ``ns.``)."""
    prefix = names.DEFAULT_NAMESPACE + "."
    if namespace == names.DEFAULT_NAMESPACE or not spec.otel_name.startswith(prefix):
        return spec.otel_name
    return namespace + "." + spec.otel_name[len(prefix) :]


def families_to_metrics_data(
    families: Iterable[Family], resource: Resource, start_time_ns: int, now_ns: int
) -> MetricsData:
    """Translate families into one OTel ``MetricsData`` (cumulative, one scope)."""
    metrics = to_otel_metrics(families, start_time_ns, now_ns)
    scope = ScopeMetrics(scope=SCOPE, metrics=metrics, schema_url="")
    return MetricsData([ResourceMetrics(resource=resource, scope_metrics=[scope], schema_url="")])


def to_otel_metrics(families: Iterable[Family], start_time_ns: int, now_ns: int) -> list[Metric]:
    """One OTel metric per name (monitors merged); metrics without points are left out."""
    merged: dict[str, tuple[MetricSpec, list[Any]]] = {}
    for family in families:
        if not family.points:
            continue
        name = otel_name(family.spec, family.namespace)
        entry = merged.setdefault(name, (family.spec, []))
        entry[1].extend(_data_point(p, start_time_ns, now_ns) for p in family.points)
    return [
        Metric(name=name, description=spec.help, unit=spec.unit, data=_metric_data(spec, points))
        for name, (spec, points) in merged.items()
    ]


def _metric_data(
    spec: MetricSpec, points: list[Any]
) -> Sum | Gauge | Histogram | ExponentialHistogram:
    expected: type = NumberDataPoint
    if spec.kind in ("histogram", "summary"):
        expected = HistogramDataPoint
    elif spec.kind == "exponential_histogram":
        expected = ExponentialHistogramDataPoint
    if not all(isinstance(p, expected) for p in points):
        raise TypeError(f"{spec.name}: {spec.kind} points must all be {expected.__name__}")
    if spec.kind == "counter":
        return Sum(data_points=points, aggregation_temporality=CUMULATIVE, is_monotonic=True)
    if spec.name in ADDITIVE_GAUGES:
        return Sum(data_points=points, aggregation_temporality=CUMULATIVE, is_monotonic=False)
    if spec.kind == "gauge":
        return Gauge(data_points=points)
    if spec.kind == "exponential_histogram":
        return ExponentialHistogram(data_points=points, aggregation_temporality=CUMULATIVE)
    return Histogram(data_points=points, aggregation_temporality=CUMULATIVE)


def _data_point(
    point: Point, start_ns: int, now_ns: int
) -> NumberDataPoint | HistogramDataPoint | ExponentialHistogramDataPoint:
    if isinstance(point, ScalarPoint):
        return NumberDataPoint(dict(point.labels), start_ns, now_ns, _number(point.value))
    if isinstance(point, HistogramPoint):
        return _histogram_point(point, start_ns, now_ns)
    if isinstance(point, ExponentialHistogramPoint):
        return _exponential_point(point, start_ns, now_ns)
    return _summary_point(point, start_ns, now_ns)


def _number(value: object) -> int | float:
    """Integral values stay ints (OTLP ``as_int``); everything else is a double."""
    if isinstance(value, numbers.Integral):
        return int(value)
    return float(cast(float, value))


# min/max are unknown: None leaves the optional OTLP fields unset (see module docstring).
_UNKNOWN = cast(float, None)


def _shared_fields(
    point: HistogramPoint | SummaryPoint | ExponentialHistogramPoint, start_ns: int, now_ns: int
) -> dict[str, Any]:
    """The fields every histogram-like OTLP point has (min/max unknown: left unset)."""
    return {
        "attributes": dict(point.labels),
        "start_time_unix_nano": start_ns,
        "time_unix_nano": now_ns,
        "count": int(point.count),
        "sum": float(point.sum),
        "min": _UNKNOWN,
        "max": _UNKNOWN,
    }


def _histogram_point(point: HistogramPoint, start_ns: int, now_ns: int) -> HistogramDataPoint:
    return HistogramDataPoint(
        **_shared_fields(point, start_ns, now_ns),
        bucket_counts=[int(c) for c in point.counts],
        explicit_bounds=[float(b) for b in point.bounds],
        exemplars=[_exemplar(ex) for ex in point.exemplars if ex is not None],
    )


def _summary_point(point: SummaryPoint, start_ns: int, now_ns: int) -> HistogramDataPoint:
    """A count and a sum: one bucket holding every observation, no bounds."""
    return HistogramDataPoint(
        **_shared_fields(point, start_ns, now_ns),
        bucket_counts=[int(point.count)],
        explicit_bounds=[],
    )


def _exponential_point(
    point: ExponentialHistogramPoint, start_ns: int, now_ns: int
) -> ExponentialHistogramDataPoint:
    """Bucket for bucket: the sketch's buckets are the exponential histogram's."""
    return ExponentialHistogramDataPoint(
        **_shared_fields(point, start_ns, now_ns),
        scale=int(point.scale),
        zero_count=int(point.zero_count),
        positive=Buckets(int(point.positive_offset), [int(c) for c in point.positive_counts]),
        negative=Buckets(int(point.negative_offset), [int(c) for c in point.negative_counts]),
        flags=0,
    )


def _exemplar(exemplar: Exemplar) -> OtelExemplar:
    """Trace and span ids (hex labels) become the exemplar's own ids; the rest attributes."""
    labels = dict(exemplar.labels)
    trace_hex, span_hex = labels.pop(TRACE_ID_LABEL, None), labels.pop(SPAN_ID_LABEL, None)
    both = trace_hex is not None and span_hex is not None
    return OtelExemplar(
        filtered_attributes=labels,
        value=float(exemplar.value),
        time_unix_nano=int(exemplar.timestamp * 1e9),
        span_id=int(span_hex, 16) if both and span_hex else None,
        trace_id=int(trace_hex, 16) if both and trace_hex else None,
    )


def _count_error(monitor: Monitor, stage: str, exc: BaseException) -> None:
    """Count (and rate-limit the log of) an export failure; never raise, even when strict."""
    # Strict monitors re-raise: the export thread must survive anyway.
    with contextlib.suppress(Exception):
        monitor.health.error(stage, exc)
