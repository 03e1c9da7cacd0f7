"""Feature and prediction distributions as exponential histograms (opt-in, for OTLP).

The quantile gauges of :mod:`~modelmon.aggregates.drift` describe a sliding window inside
one process; a backend cannot merge them across replicas. This aggregate keeps, per
numeric feature and for the prediction value, an all-time
:class:`~modelmon.sketches.ddsketch.LogSketch` of the raw values, whose buckets are
OpenTelemetry exponential-histogram buckets (:mod:`~modelmon.sketches.mapping`). They
export bucket for bucket as cumulative OTLP exponential-histogram points, which any
backend with exponential (Prometheus: native) histograms merges exactly across
replicas and re-aggregates over time (``histogram_quantile`` over ``rate``).

Opt-in (``Monitor(distributions=True)`` or a list of feature names) because it adds up
to a few hundred buckets per feature to every export. The Prometheus text exposition
has no such type: these families appear only in OTLP exports.

>>> import numpy as np
>>> from modelmon.batch import Batch, FeatureFrame, RenderContext
>>> agg = DistributionAggregate(features=["x"])
>>> x = np.array([[1.0], [2.0], [0.0], [-3.0]])
>>> frame = FeatureFrame(("x",), x, np.zeros_like(x, bool), np.zeros_like(x, bool), {})
>>> e = np.zeros(0)
>>> agg.fold(Batch(0.0, e, e.astype(np.int64), (), e, (), features=frame))
>>> (point,) = list(agg.families(RenderContext("modelmon", {}, 0.0)))[0].points
>>> point.scale, point.count, point.zero_count, point.sum
(6, 4, 1, 0.0)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .. import names
from ..batch import Batch, FeatureFrame, RenderContext
from ..errors import ConfigurationError
from ..points import ExponentialHistogramPoint, Family
from ..sketches import mapping
from ..sketches.ddsketch import FloatArray, LogSketch, add_columns

PREDICTION_OUTPUT = "prediction"  # the ``output`` label of the prediction value


class DistributionAggregate:
    """All-time exponential histograms of numeric features and of the prediction value.

    Args:
        features: names of the features to keep (None: every feature seen, up to
            ``max_features``, categorical ones rendering nothing).
        outputs: also keep the prediction value (regression output or positive-class
            probability).
        relative_accuracy: of the bucket representatives (1%: scale 6, 0.54%).
        max_features: cap on the features kept when ``features`` is None.
        max_buckets: per sign and feature; beyond it the buckets nearest zero collapse.
    """

    def __init__(
        self,
        features: Sequence[str] | None = None,
        outputs: bool = True,
        relative_accuracy: float = 0.01,
        max_features: int = 100,
        max_buckets: int = mapping.DEFAULT_MAX_BUCKETS,
    ) -> None:
        if features is not None and (
            isinstance(features, str) or not all(isinstance(f, str) for f in features)
        ):
            raise ConfigurationError(f"distributions must name features, got {features!r}")
        if max_features < 1:
            raise ConfigurationError(f"max_features must be >= 1, got {max_features!r}")
        try:
            LogSketch(relative_accuracy, max_buckets)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc
        self.selected = None if features is None else tuple(features)
        self.outputs = bool(outputs)
        self.relative_accuracy = float(relative_accuracy)
        self.max_features = int(max_features)
        self.max_buckets = int(max_buckets)
        self.sketches: dict[str, LogSketch] = {}
        self.sums: dict[str, float] = {}
        self.output_sketch = self._new()
        self.output_sum = 0.0
        self._cols: tuple[tuple[str, ...], list[str], list[int]] | None = None

    def _new(self) -> LogSketch:
        return LogSketch(self.relative_accuracy, self.max_buckets)

    # --- folding -------------------------------------------------------------------
    def fold(self, batch: Batch) -> None:
        frame = batch.features
        if frame is not None and frame.n_rows:
            kept, cols = self._columns(frame)
            if kept:
                self._add(kept, frame.numeric[:, cols])
        out = batch.outputs
        if self.outputs and out is not None and out.values is not None and out.n_rows:
            values = np.asarray(out.values, dtype=np.float64).reshape(-1, 1)
            add_columns([self.output_sketch], values)
            self.output_sum += _finite_sums(values)[0]

    def _columns(self, frame: FeatureFrame) -> tuple[list[str], list[int]]:
        """The kept features of ``frame`` and their columns (cached per column names)."""
        if self._cols is None or self._cols[0] != frame.names:
            wanted = frame.names if self.selected is None else self.selected
            index = {n: j for j, n in enumerate(frame.names)}
            kept: list[str] = []
            for name in wanted:
                if name not in index:
                    continue
                if name not in self.sketches:
                    if len(self.sketches) >= self.max_features:
                        continue
                    self.sketches[name] = self._new()
                    self.sums[name] = 0.0
                kept.append(name)
            self._cols = (frame.names, kept, [index[n] for n in kept])
        return self._cols[1], self._cols[2]

    def _add(self, kept: list[str], matrix: FloatArray) -> None:
        add_columns([self.sketches[n] for n in kept], matrix)
        for name, total in zip(kept, _finite_sums(matrix), strict=True):
            self.sums[name] += total

    # --- rendering -----------------------------------------------------------------
    def families(self, ctx: RenderContext) -> Iterable[Family]:
        features = tuple(
            _point({**ctx.labels, names.FEATURE: name}, sketch, self.sums[name])
            for name, sketch in self.sketches.items()
            if sketch.count
        )
        if features:
            yield Family(names.FEATURE_DISTRIBUTION, ctx.namespace, features)
        if self.output_sketch.count:
            labels = {**ctx.labels, names.OUTPUT: PREDICTION_OUTPUT}
            point = _point(labels, self.output_sketch, self.output_sum)
            yield Family(names.PREDICTION_DISTRIBUTION, ctx.namespace, (point,))

    # --- merging and state ---------------------------------------------------------
    def merge(self, other: DistributionAggregate) -> None:
        """Add ``other`` into this aggregate, exactly (sketches merge bucket for bucket)."""
        for name, sketch in other.sketches.items():
            mine = self.sketches.get(name)
            if mine is None:
                self.sketches[name] = sketch.copy()
                self.sums[name] = other.sums[name]
            else:
                mine.merge(sketch)
                self.sums[name] += other.sums[name]
        self.output_sketch.merge(other.output_sketch)
        self.output_sum += other.output_sum
        self._cols = None

    def state(self) -> dict[str, Any]:
        return {
            "selected": None if self.selected is None else list(self.selected),
            "outputs": self.outputs,
            "relative_accuracy": self.relative_accuracy,
            "max_features": self.max_features,
            "max_buckets": self.max_buckets,
            "features": {n: s.state() for n, s in self.sketches.items()},
            "sums": dict(self.sums),
            "output": self.output_sketch.state(),
            "output_sum": self.output_sum,
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        selected = state["selected"]
        self.selected = None if selected is None else tuple(str(s) for s in selected)
        self.outputs = bool(state["outputs"])
        self.relative_accuracy = float(state["relative_accuracy"])
        self.max_features = int(state["max_features"])
        self.max_buckets = int(state["max_buckets"])
        self.sketches = {str(n): LogSketch.from_state(s) for n, s in state["features"].items()}
        self.sums = {str(n): float(v) for n, v in state["sums"].items()}
        self.output_sketch = LogSketch.from_state(state["output"])
        self.output_sum = float(state["output_sum"])
        self._cols = None


def _finite_sums(matrix: FloatArray) -> list[float]:
    """Column sums over the values a sketch accepts (NaN and +-inf left out)."""
    finite = np.where(np.isfinite(matrix), matrix, 0.0)
    with np.errstate(over="ignore", invalid="ignore"):
        sums = finite.sum(axis=0)
        wild = ~np.isfinite(sums)
        if wild.any():  # values near 1e308: summed 2**64 times smaller (exact scaling), so
            # the sum is finite when it fits in a double and +-inf when it does not
            sums[wild] = (finite[:, wild] * 2.0**-64).sum(axis=0) * 2.0**64
    return [float(v) for v in sums]


def _point(labels: Mapping[str, str], sketch: LogSketch, total: float) -> ExponentialHistogramPoint:
    """The sketch as an exponential-histogram point: key ``k`` is OTel bucket ``k - 1``."""
    st = sketch.state()
    pos_offset, pos = _trimmed(st["pos"])
    neg_offset, neg = _trimmed(st["neg"])
    return ExponentialHistogramPoint(
        labels=dict(labels),
        scale=sketch.scale,
        zero_count=int(st["zero_count"]),
        positive_offset=mapping.otel_index(pos_offset),
        positive_counts=pos,
        negative_offset=mapping.otel_index(neg_offset),
        negative_counts=neg,
        sum=total,
    )


def _trimmed(store: Mapping[str, Any]) -> tuple[int, tuple[int, ...]]:
    counts = np.asarray(store["counts"], dtype=np.int64)
    nz = np.flatnonzero(counts)
    if nz.size == 0:
        return 0, ()
    return int(store["offset"]) + int(nz[0]), tuple(int(c) for c in counts[nz[0] : nz[-1] + 1])
