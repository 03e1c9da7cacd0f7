"""Ground truth, rendered: the performance gauges and metric families of an outcome aggregate.

Split by job from :mod:`modelmon.aggregates.outcomes` (which joins labels to predictions
and keeps the counts): this module only reads the aggregate's public counts, under the
aggregate's lock (:meth:`OutcomeAggregate.families` holds it).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from .. import names
from ..batch import RenderContext
from ..points import Family, Point, ScalarPoint, SummaryPoint
from .outcome_metrics import classification_metrics
from .series_memo import child_labels

if TYPE_CHECKING:
    from .outcomes import OutcomeAggregate

REASONS: tuple[str, ...] = ("expired", "unknown", "duplicate", "invalid", "invalid_id")


def performance(agg: OutcomeAggregate, now: float) -> dict[str, float]:
    """The windowed performance gauges by metric name (empty until one outcome)."""
    w = agg.windowed(now)
    if w.n == 0:
        return {}
    if agg.task == "regression":
        return {"rmse": math.sqrt(w.sq / w.n), "mae": w.abs / w.n, "bias": w.err / w.n}
    out = classification_metrics(w.confusion, positive(agg))
    if w.proba_n:
        out["log_loss"] = w.log_loss / w.proba_n
        out["brier"] = w.brier / w.proba_n
    return out


def positive(agg: OutcomeAggregate) -> str | None:
    """The positive class, for binary tasks only (given, or "1" when it is a class)."""
    if len(agg.classes) > 2:
        return None
    if agg.positive_class is not None:
        return agg.positive_class
    return "1" if "1" in agg.classes else None


def outcome_families(agg: OutcomeAggregate, ctx: RenderContext) -> Iterator[Family]:
    """The aggregate's metric families at ``ctx.now`` (call with its lock held)."""
    ns, labels = ctx.namespace, ctx.labels
    if agg.task == "classification":
        yield Family(names.OUTCOMES, ns, _confusion_points(agg, labels))
    if agg.task == "regression":
        yield from _regression_families(agg, ns, labels)
    yield Family(
        names.OUTCOMES_UNMATCHED,
        ns,
        tuple(
            ScalarPoint(child_labels(labels, names.REASON, r), agg.unmatched[r]) for r in REASONS
        ),
    )
    perf = performance(agg, ctx.now)
    if perf:
        yield Family(
            names.PERFORMANCE,
            ns,
            tuple(ScalarPoint(child_labels(labels, names.METRIC, k), v) for k, v in perf.items()),
        )
    yield Family(names.OUTCOME_DELAY, ns, (agg.delay.point(labels),))
    if agg.detector is not None:
        detector = child_labels(labels, names.DETECTOR, agg.detector.name)
        yield Family(names.CONCEPT_DRIFT_DETECTED, ns, (ScalarPoint(detector, agg.detections),))
        yield Family(names.CONCEPT_DRIFT, ns, (ScalarPoint(detector, float(agg.in_drift)),))


def _confusion_points(agg: OutcomeAggregate, labels: Mapping[str, str]) -> tuple[Point, ...]:
    return tuple(
        ScalarPoint({**labels, names.ACTUAL: a, names.PREDICTED: p}, c)
        for (a, p), c in sorted(agg.confusion.items())
    )


def _regression_families(
    agg: OutcomeAggregate, ns: str, labels: Mapping[str, str]
) -> Iterator[Family]:
    n = agg.regression_count
    yield Family(
        names.REGRESSION_SQUARED_ERROR, ns, (SummaryPoint(labels, n, agg.regression_squared),)
    )
    yield Family(
        names.REGRESSION_ABSOLUTE_ERROR, ns, (SummaryPoint(labels, n, agg.regression_absolute),)
    )
    yield Family(names.REGRESSION_OUTCOMES, ns, (ScalarPoint(labels, n),))
