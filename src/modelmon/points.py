"""Exporter-neutral metric points: what the aggregation core hands to every exporter.

Aggregates render themselves into :class:`Family` objects at collection time; the
Prometheus collector, the OpenTelemetry bridge and the multi-process merger translate
these, and never touch the aggregates themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import NamedTuple

from .names import MetricSpec


@dataclass(frozen=True, slots=True)
class Exemplar:
    """A sample that landed in a bucket, linking it to a prediction or a trace."""

    labels: Mapping[str, str]
    value: float
    timestamp: float


class ScalarPoint(NamedTuple):
    """A counter or gauge value.

    A named tuple rather than a dataclass: a scrape builds hundreds of these, and
    :func:`scalar_points` builds them from two columns without a Python call each.
    """

    labels: Mapping[str, str]
    value: float


_new_scalar = partial(tuple.__new__, ScalarPoint)


def scalar_points(
    labels: Iterable[Mapping[str, str]], values: Iterable[float]
) -> tuple[ScalarPoint, ...]:
    """``tuple(map(ScalarPoint, labels, values))``, several times faster."""
    return tuple(map(_new_scalar, zip(labels, values, strict=True)))


@dataclass(frozen=True, slots=True)
class HistogramPoint:
    """Explicit-bucket histogram; ``counts`` are per bucket (not cumulative).

    ``len(counts) == len(bounds) + 1``: the last bucket is ``(bounds[-1], +Inf)``.
    ``exemplars`` is empty or has one optional exemplar per bucket.
    """

    labels: Mapping[str, str]
    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    sum: float
    exemplars: tuple[Exemplar | None, ...] = ()

    @property
    def count(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True, slots=True)
class SummaryPoint:
    """A count and a sum (both monotonic), without quantiles."""

    labels: Mapping[str, str]
    count: float
    sum: float


@dataclass(frozen=True, slots=True)
class ExponentialHistogramPoint:
    """A base-2 exponential histogram (OpenTelemetry's, Prometheus's native histogram).

    Bucket ``i`` of a side holds ``base**i < |x| <= base**(i + 1)``, ``base =
    2 ** (2 ** -scale)``; ``positive_counts[j]`` is bucket ``positive_offset + j`` of the
    positive values, ``negative_counts`` the same for the magnitudes of negative values;
    ``zero_count`` counts exact zeros. Counts and sum are cumulative.
    """

    labels: Mapping[str, str]
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


class ScalarColumns:
    """Counter or gauge values held as two columns: label mappings and values, in order.

    What an aggregate hands out for a run of series whose values change between scrapes
    (drift bins, scores, p-values): modelmon's text renderer formats the columns without
    a point per series (a scrape then builds no ScalarPoint, and no garbage for the
    collector to trace); :attr:`points` builds the points once for any other reader.
    Never mutated: an aggregate hands out the same object while nothing changed.

    >>> cols = ScalarColumns(({"f": "a"}, {"f": "b"}), (1, 2.5))
    >>> cols.points[1]
    ScalarPoint(labels={'f': 'b'}, value=2.5)
    """

    __slots__ = ("_points", "labels", "values")

    def __init__(self, labels: tuple[Mapping[str, str], ...], values: tuple[float, ...]) -> None:
        if len(labels) != len(values):
            raise ValueError(f"{len(labels)} label sets for {len(values)} values")
        self.labels = labels
        self.values = values
        self._points: tuple[ScalarPoint, ...] | None = None

    @property
    def points(self) -> tuple[ScalarPoint, ...]:
        """The same values as points (built on first read, then kept)."""
        points = self._points
        if points is None:
            points = self._points = scalar_points(self.labels, self.values)
        return points

    def __len__(self) -> int:
        return len(self.values)


class ColumnFamily(Family):
    """A counter or gauge :class:`Family` whose points are held as :class:`ScalarColumns`.

    ``points`` is the columns' points (built on first read, the same tuple while the
    columns are the same object); renderers that know columns read ``columns``.
    """

    __slots__ = ("columns",)
    columns: ScalarColumns

    def __init__(self, spec: MetricSpec, namespace: str, columns: ScalarColumns) -> None:
        object.__setattr__(self, "spec", spec)
        object.__setattr__(self, "namespace", namespace)
        object.__setattr__(self, "columns", columns)

    @property
    def points(self) -> tuple[Point, ...]:
        return self.columns.points


NO_COLUMNS = ScalarColumns((), ())
