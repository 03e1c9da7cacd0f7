"""Exporter-neutral metric points: what the aggregation core hands to every exporter.

Aggregates render themselves into :class:`Family` objects at collection time; the
Prometheus collector, the OpenTelemetry bridge and the multi-process merger translate
these, and never touch the aggregates themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .names import MetricSpec


@dataclass(frozen=True, slots=True)
class Exemplar:
    """A sample that landed in a bucket, linking it to a prediction or a trace."""

    labels: Mapping[str, str]
    value: float
    timestamp: float


@dataclass(frozen=True, slots=True)
class LabelledPoint:
    """What every point has: its labels (beyond the monitor's model and version)."""

    labels: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class ScalarPoint(LabelledPoint):
    """A counter or gauge value."""

    value: float


@dataclass(frozen=True, slots=True)
class HistogramPoint(LabelledPoint):
    """Explicit-bucket histogram; ``counts`` are per bucket (not cumulative).

    ``len(counts) == len(bounds) + 1``: the last bucket is ``(bounds[-1], +Inf)``.
    ``exemplars`` is empty or has one optional exemplar per bucket.
    """

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    sum: float
    exemplars: tuple[Exemplar | None, ...] = ()

    @property
    def count(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True, slots=True)
class SummaryPoint(LabelledPoint):
    """A count and a sum (both monotonic), without quantiles."""

    count: float
    sum: float


@dataclass(frozen=True, slots=True)
class ExponentialHistogramPoint(LabelledPoint):
    """A base-2 exponential histogram (OpenTelemetry's, Prometheus's native histogram).

    Bucket ``i`` of a side holds ``base**i < |x| <= base**(i + 1)``, ``base =
    2 ** (2 ** -scale)``; ``positive_counts[j]`` is bucket ``positive_offset + j`` of the
    positive values, ``negative_counts`` the same for the magnitudes of negative values;
    ``zero_count`` counts exact zeros. Counts and sum are cumulative.
    """

    scale: int
    zero_count: int
    positive_offset: int
    positive_counts: tuple[int, ...]
    negative_offset: int
    negative_counts: tuple[int, ...]
    sum: float

    @property
    def count(self) -> int:
        return self.zero_count + sum(self.positive_counts) + sum(self.negative_counts)


Point = ScalarPoint | HistogramPoint | SummaryPoint | ExponentialHistogramPoint


@dataclass(frozen=True, slots=True)
class Family:
    """All points of one metric of one namespace."""

    spec: MetricSpec
    namespace: str
    points: tuple[Point, ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        return self.spec.family_name(self.namespace)
