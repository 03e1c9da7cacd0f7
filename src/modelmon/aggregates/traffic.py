"""The core aggregates: traffic, latency, errors, confidence and input health.

Each is fed by folds (vectorised over a batch) and renders exporter-neutral
:class:`~modelmon.points.Family` objects; each merges exactly, so worker processes and
replicas add up.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .. import names
from .._internal.failures import abort_reason
from .._tracing import exemplar_labels
from ..batch import Batch, FloatArray, IntArray, RenderContext
from ..names import MetricSpec
from ..points import Exemplar, Family, HistogramPoint, ScalarPoint
from .series_memo import SeriesMemo, child_labels


class Histogram:
    """Explicit-bucket histogram over fixed upper bounds (``le`` semantics)."""

    __slots__ = ("bounds", "counts", "exemplars", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = np.asarray(sorted(float(b) for b in bounds), dtype=np.float64)
        self.counts: IntArray = np.zeros(len(self.bounds) + 1, dtype=np.int64)
        self.sum = 0.0
        self.exemplars: dict[int, Exemplar] = {}

    def add(
        self, values: FloatArray, exemplar_ids: Sequence[str] | None = None, ts: float = 0.0
    ) -> None:
        """Count ``values`` (NaN ignored); keep the latest id per bucket as exemplar."""
        values = values[~np.isnan(values)] if exemplar_ids is None else values
        if values.size == 0:
            return
        idx = np.searchsorted(self.bounds, values, side="left")
        self.counts += np.bincount(idx, minlength=len(self.counts))
        self.sum += float(values.sum())
        if exemplar_ids is not None:
            last = np.full(len(self.counts), -1)
            last[idx] = np.arange(len(values))  # later assignments win: the latest call
            for b in np.flatnonzero(last >= 0):
                i = int(last[b])
                self.exemplars[int(b)] = Exemplar(
                    exemplar_labels(exemplar_ids, i), float(values[i]), ts
                )

    def merge(self, other: Histogram) -> None:
        if not np.array_equal(self.bounds, other.bounds):
            raise ValueError("cannot merge histograms with different buckets")
        self.counts += other.counts
        self.sum += other.sum
        for b, ex in other.exemplars.items():
            mine = self.exemplars.get(b)
            if mine is None or ex.timestamp > mine.timestamp:
                self.exemplars[b] = ex

    def point(self, labels: Mapping[str, str]) -> HistogramPoint:
        exemplars: tuple[Exemplar | None, ...] = ()
        if self.exemplars:
            exemplars = tuple(self.exemplars.get(b) for b in range(len(self.counts)))
        return HistogramPoint(
            labels,
            tuple(self.bounds.astype(np.float64, copy=False).tolist()),
            tuple(self.counts.astype(np.int64, copy=False).tolist()),
            float(self.sum),
            exemplars,
        )

    def state(self) -> dict[str, Any]:
        return {"bounds": self.bounds.copy(), "counts": self.counts.copy(), "sum": self.sum}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.bounds = np.asarray(state["bounds"], dtype=np.float64)
        self.counts = np.asarray(state["counts"], dtype=np.int64).copy()
        self.sum = float(state["sum"])


def _call_rows(batch: Batch) -> IntArray:
    """Rows per call: the whole call's for the first part of a split call."""
    if batch.call_rows is None:
        return batch.rows
    return np.full(batch.n_calls, batch.call_rows, dtype=np.int64)


def cap_label(counter: Counter[str], value: str, limit: int, other: str) -> str:
    """``value`` if it is known or there is room for it, else ``other``."""
    if value in counter or len(counter) < limit:
        return value
    return other


class TrafficAggregate:
    """Requests, predictions, errors by type, latency, batch size, confidence."""

    def __init__(
        self,
        duration_buckets: Sequence[float] = names.DURATION_BUCKETS,
        batch_buckets: Sequence[float] = names.BATCH_SIZE_BUCKETS,
        confidence_buckets: Sequence[float] = names.CONFIDENCE_BUCKETS,
        max_error_types: int = names.MAX_ERROR_TYPES,
    ) -> None:
        self.requests = 0
        self.predictions = 0
        self.errors: Counter[str] = Counter()
        self.aborted: Counter[str] = Counter()  # client errors and cancellations, by reason
        self.max_error_types = max_error_types
        self.duration = Histogram(duration_buckets)
        self.batch_size = Histogram(batch_buckets)
        self.confidence = Histogram(confidence_buckets)
        self.last_prediction = 0.0

    def fold(self, batch: Batch) -> None:
        n = batch.n_calls
        if n == 0:
            return
        self.predictions += int(batch.rows.sum())
        if batch.continued:  # a later part of a split call: its rows only
            self._add_confidence(batch)
            return
        self.requests += n
        self.duration.add(batch.latencies, batch.call_ids, batch.now)
        if any(batch.errors):  # rare: count by type, and only successful calls have rows
            for err in batch.errors:
                if err is not None:
                    reason = abort_reason(err)
                    if reason is not None:
                        self.aborted[reason] += 1
                        continue
                    key = cap_label(self.errors, err, self.max_error_types, names.OTHER)
                    self.errors[key] += 1
            ok = np.fromiter((e is None for e in batch.errors), dtype=bool, count=n)
            self.batch_size.add(_call_rows(batch)[ok].astype(np.float64))
            if ok.any():
                self.last_prediction = max(self.last_prediction, float(batch.ended_at[ok].max()))
        else:
            self.batch_size.add(_call_rows(batch).astype(np.float64))
            self.last_prediction = max(self.last_prediction, float(batch.ended_at.max()))
        self._add_confidence(batch)

    def _add_confidence(self, batch: Batch) -> None:
        if batch.outputs is not None and batch.outputs.confidence is not None:
            self.confidence.add(np.clip(batch.outputs.confidence, 0.0, 1.0))

    def families(self, ctx: RenderContext) -> Iterable[Family]:
        ns, labels = ctx.namespace, ctx.labels
        yield Family(names.REQUESTS, ns, (ScalarPoint(labels, self.requests),))
        yield Family(names.PREDICTIONS, ns, (ScalarPoint(labels, self.predictions),))
        yield _by_label(names.REQUEST_ERRORS, ctx, names.ERROR_TYPE, self.errors)
        if self.aborted:
            yield _by_label(names.REQUESTS_ABORTED, ctx, names.REASON, self.aborted)
        yield Family(names.REQUEST_DURATION, ns, (self.duration.point(labels),))
        yield Family(names.BATCH_SIZE, ns, (self.batch_size.point(labels),))
        yield Family(names.CONFIDENCE, ns, (self.confidence.point(labels),))
        if self.last_prediction:
            yield Family(names.LAST_PREDICTION, ns, (ScalarPoint(labels, self.last_prediction),))

    def merge(self, other: TrafficAggregate) -> None:
        self.requests += other.requests
        self.predictions += other.predictions
        for k, v in other.errors.items():
            self.errors[cap_label(self.errors, k, self.max_error_types, names.OTHER)] += v
        self.aborted.update(other.aborted)
        self.duration.merge(other.duration)
        self.batch_size.merge(other.batch_size)
        self.confidence.merge(other.confidence)
        self.last_prediction = max(self.last_prediction, other.last_prediction)

    def state(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "predictions": self.predictions,
            "errors": dict(self.errors),
            "aborted": dict(self.aborted),
            "duration": self.duration.state(),
            "batch_size": self.batch_size.state(),
            "confidence": self.confidence.state(),
            "last_prediction": self.last_prediction,
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.requests = int(state["requests"])
        self.predictions = int(state["predictions"])
        self.errors = Counter({str(k): int(v) for k, v in state["errors"].items()})
        aborted = state.get("aborted", {})  # absent from states of older versions
        self.aborted = Counter({str(k): int(v) for k, v in aborted.items() if int(v) > 0})
        self.duration.load_state(state["duration"])
        self.batch_size.load_state(state["batch_size"])
        self.confidence.load_state(state["confidence"])
        self.last_prediction = float(state["last_prediction"])


def _by_label(spec: MetricSpec, ctx: RenderContext, key: str, counts: Counter[str]) -> Family:
    """One point per counted value, labelled ``key=value``, in the order of the values."""
    labels = ctx.labels
    points = tuple(ScalarPoint(child_labels(labels, key, k), v) for k, v in sorted(counts.items()))
    return Family(spec, ctx.namespace, points)


class InputHealthAggregate:
    """Per-feature observations, missing and invalid counts (bounded by the schema)."""

    _COUNTS = ("observations", "missing", "invalid")  # the per-feature count arrays

    def __init__(self) -> None:
        self.names: tuple[str, ...] = ()
        self.observations: IntArray = np.zeros(0, dtype=np.int64)
        self.missing: IntArray = np.zeros(0, dtype=np.int64)
        self.invalid: IntArray = np.zeros(0, dtype=np.int64)
        self.not_exported = 0
        self._memo = SeriesMemo()  # unchanged counts: the same points (see series_memo)

    def seed(self, feature_names: tuple[str, ...]) -> None:
        """Export zero-valued series for features known up front (rates need a baseline)."""
        self._ensure(feature_names)

    def _ensure(self, feature_names: tuple[str, ...]) -> None:
        if feature_names == self.names:
            return
        grown = len(feature_names) - len(self.names)
        if self.names and feature_names[: len(self.names)] != self.names:
            raise ValueError("feature names changed")
        pad = np.zeros(max(grown, 0), dtype=np.int64)
        for key in self._COUNTS:
            setattr(self, key, np.concatenate([getattr(self, key), pad]))
        self.names = feature_names

    def fold(self, batch: Batch) -> None:
        frame = batch.features
        if frame is None:
            return
        self._ensure(frame.names)
        self.observations += frame.n_rows
        # A column sum of a bool matrix costs about 70x its any(): sum only what is set.
        if frame.missing.any():
            self.missing += frame.missing.sum(axis=0, dtype=np.int64)
        if frame.invalid.any():
            self.invalid += frame.invalid.sum(axis=0, dtype=np.int64)
        self.not_exported += frame.not_exported

    def families(self, ctx: RenderContext) -> Iterable[Family]:
        if not self.names:
            return
        ns, labels = ctx.namespace, ctx.labels
        for spec, counts in (
            (names.FEATURE_OBSERVATIONS, self.observations),
            (names.FEATURE_MISSING, self.missing),
            (names.FEATURE_INVALID, self.invalid),
        ):
            points = self._memo.points(spec.name, labels, self._feature_labels, counts)
            yield Family(spec, ns, points)
        yield Family(names.FEATURES_NOT_EXPORTED, ns, (ScalarPoint(labels, self.not_exported),))

    def _feature_labels(self, base: Mapping[str, str]) -> list[dict[str, str]]:
        return [{**base, names.FEATURE: f} for f in self.names]

    def merge(self, other: InputHealthAggregate) -> None:
        if not other.names:
            return
        self._ensure(other.names if len(other.names) > len(self.names) else self.names)
        k = len(other.names)
        for key in self._COUNTS:
            getattr(self, key)[:k] += getattr(other, key)
        self.not_exported += other.not_exported

    def state(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            **{key: getattr(self, key).copy() for key in self._COUNTS},
            "not_exported": self.not_exported,
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.names = tuple(state["names"])
        self._memo.clear()
        for key in self._COUNTS:
            setattr(self, key, np.asarray(state[key], dtype=np.int64).copy())
        self.not_exported = int(state["not_exported"])
