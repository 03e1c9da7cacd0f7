"""Per-segment traffic, confidence, drift and label scores (``segment=`` on a monitor).

The fold computes each row's segment code once (:class:`~modelmon.segments.Segmenter`)
and splits the batch by code: requests and predictions are counted per segment, the
confidence histogram is kept per segment, and each segment has its own
:class:`~modelmon.aggregates.drift.DriftAggregate` over the same reference, of which
only the drift scores, the decisions and the output quantiles are exported (not the
per-bin series). Labels are scored per segment from the segment code their prediction
id carries. Rows of segments the series budget leaves out are counted in
``dropped_observations_total{reason="series_budget"}``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from .. import names
from .._internal.health import Health
from .._internal.ids import MARK
from ..batch import Batch, FeatureFrame, IntArray, ObjArray, OutputFrame, RenderContext
from ..category_vocabulary import CodedColumns
from ..drift_decision import DecisionConfig
from ..extract import FeatureSchema, features_frame, input_chunk
from ..id_scheme import IdScheme
from ..points import Family, Point, ScalarPoint, SummaryPoint
from ..profile import ReferenceProfile
from ..segments import NONE_CODE, Segmenter, SegmentPlan, segment_values
from .drift import DriftAggregate
from .outcome_store import class_label
from .series_memo import SeriesMemo
from .traffic import Histogram

#: Families of a segment's drift aggregate that are exported, and their segment names.
_DRIFT_EXPORTS: dict[str, names.MetricSpec] = {
    names.FEATURE_DRIFT.name: names.SEGMENT_FEATURE_DRIFT,
    names.FEATURE_DRIFT_DETECTED.name: names.SEGMENT_FEATURE_DRIFT_DETECTED,
    names.PREDICTION_DRIFT.name: names.SEGMENT_PREDICTION_DRIFT,
    names.PREDICTION_DRIFT_DETECTED.name: names.SEGMENT_PREDICTION_DRIFT_DETECTED,
    names.PREDICTION_QUANTILE.name: names.SEGMENT_PREDICTION_QUANTILE,
}
_CORRECT, _WRONG = "correct", "wrong"
_REBUILT = "__segment__"  # the feature name of a rebuilt aggregate whose segment was a callable


class SegmentAggregate:
    """Everything exported per segment (see the module doc)."""

    def __init__(
        self,
        plan: SegmentPlan,
        health: Health,
        *,
        ids: IdScheme | None = None,
        profile: ReferenceProfile | None = None,
        drift_options: Mapping[str, Any] | None = None,
        decisions: DecisionConfig | None = None,
    ) -> None:
        self.plan = plan
        self.health = health
        self.ids = ids
        self.profile = profile
        n = plan.segmenter.n_codes
        self._admitted = np.zeros(n, dtype=bool)
        self._admitted[list(plan.admitted)] = True
        self.requests: IntArray = np.zeros(n, dtype=np.int64)
        self.predictions: IntArray = np.zeros(n, dtype=np.int64)
        self.confidence: dict[int, Histogram] = {}
        self.drift: dict[int, DriftAggregate] = {}
        # (code, family) -> (the segment's drift points, them with the segment label):
        # unchanged drift points keep their labelled copies (see series_memo).
        self._labelled: dict[tuple[int, str], tuple[tuple[Point, ...], list[Point]]] = {}
        self._memo = SeriesMemo()
        self.correct: IntArray = np.zeros(n, dtype=np.int64)
        self.wrong: IntArray = np.zeros(n, dtype=np.int64)
        self.sq_sum = np.zeros(n, dtype=np.float64)
        self.abs_sum = np.zeros(n, dtype=np.float64)
        self.reg_count: IntArray = np.zeros(n, dtype=np.int64)
        self._drift_options = dict(drift_options or {})
        base = self._base_decisions = decisions if decisions is not None else DecisionConfig()
        # Bonferroni over the segments too: every segment tests every feature.
        self._decisions = DecisionConfig(
            base.alpha / max(len(plan.admitted), 1), base.psi_floor, base.missing_floor
        )
        self._lock = threading.Lock()

    # --- folding ---------------------------------------------------------------------
    def fold(self, batch: Batch) -> None:
        features, outputs = batch.features, batch.outputs
        n_rows = outputs.n_rows if outputs is not None else 0
        if outputs is None and features is not None:
            n_rows = features.n_rows
        if n_rows == 0:
            return
        if features is not None and features.n_rows != n_rows:
            # Not row-aligned with the outputs (rows kept while the feature names were
            # learned, or a model returning fewer rows): every row is __missing__.
            features = None
        codes = self.plan.segmenter.codes(features, n_rows)
        exc = self.plan.segmenter.take_error()
        if exc is not None:
            self.health.error("segment", exc)
        kept = self._admitted[codes]
        dropped = n_rows - int(kept.sum())
        if dropped:
            self.health.drop("series_budget", dropped)
        n = len(self.requests)
        self.predictions += np.bincount(codes[kept], minlength=n)
        row_call = batch.row_call
        if row_call is not None and len(row_call) == n_rows:
            _, first = np.unique(row_call, return_index=True)
            self.requests += np.bincount(codes[first][kept[first]], minlength=n)
        for code in np.unique(codes[kept]).tolist():
            rows = np.flatnonzero(codes == code)
            self._fold_segment(int(code), rows, batch.now, features, outputs)

    def _fold_segment(
        self,
        code: int,
        rows: IntArray,
        now: float,
        features: FeatureFrame | None,
        outputs: OutputFrame | None,
    ) -> None:
        if outputs is not None and outputs.confidence is not None:
            hist = self.confidence.get(code)
            if hist is None:
                hist = self.confidence[code] = Histogram(names.CONFIDENCE_BUCKETS)
            hist.add(np.clip(outputs.confidence[rows], 0.0, 1.0))
        if self.profile is None:
            return
        drift = self.drift.get(code)
        if drift is None:
            drift = self.drift[code] = self._new_drift()
        empty = np.zeros(0)
        drift.fold(
            Batch(
                now,
                empty,
                np.zeros(0, dtype=np.int64),
                (),
                empty,
                (),
                take_features(features, rows),
                take_outputs(outputs, rows),
            )
        )

    def _new_drift(self) -> DriftAggregate:
        return DriftAggregate(self.profile, decisions=self._decisions, **self._drift_options)

    def id_codes(self, inp: Any, schema: FeatureSchema) -> list[int]:
        """The segment code of each row of one call's input, for its prediction ids."""
        segmenter = self.plan.segmenter
        fast = segmenter.codes_of_input(inp)
        if fast is not None:
            return fast
        frame = features_frame([input_chunk(inp)], schema)
        return [int(c) for c in segmenter.codes(frame, frame.n_rows).tolist()]

    # --- labels ----------------------------------------------------------------------
    def score(
        self, ids: Sequence[str], actuals: Sequence[Any], statuses: Sequence[str], now: float
    ) -> None:
        """Score the matched labels per segment (their ids carry the segment code)."""
        if self.ids is None:
            return
        dropped = 0
        with self._lock:
            for token, actual, status in zip(ids, actuals, statuses, strict=False):
                if status != "matched" or not isinstance(token, str) or not token.startswith(MARK):
                    continue  # caller-supplied ids carry no segment: scored overall only
                resolved = self.ids.decode(token, now, math.inf)
                code = resolved.segment
                if code == NONE_CODE or resolved.prediction is None:
                    continue
                if not 0 < code < len(self._admitted) or not self._admitted[code]:
                    dropped += 1
                    continue
                self._score_one(code, resolved.prediction, actual)
        if dropped:
            self.health.drop("series_budget", dropped)

    def _score_one(self, code: int, prediction: Any, actual: Any) -> None:
        if prediction.label is not None:
            hit = class_label(actual) == str(prediction.label)
            (self.correct if hit else self.wrong)[code] += 1
        elif prediction.value is not None:
            error = float(prediction.value) - float(actual)
            if math.isfinite(error * error):
                self.sq_sum[code] += error * error
                self.abs_sum[code] += abs(error)
                self.reg_count[code] += 1

    # --- reading ---------------------------------------------------------------------
    def segment_label(self, code: int) -> str:
        return self.plan.segmenter.label(code)

    def families(self, ctx: RenderContext) -> Iterable[Family]:
        ns = ctx.namespace
        yield Family(names.SEGMENT_REQUESTS, ns, self._counter_points(ctx, self.requests))
        yield Family(names.SEGMENT_PREDICTIONS, ns, self._counter_points(ctx, self.predictions))
        yield Family(
            names.SEGMENT_CONFIDENCE,
            ns,
            tuple(h.point(self._labels(ctx, c)) for c, h in sorted(self.confidence.items())),
        )
        yield from self._drift_families(ctx)
        yield Family(names.SEGMENT_OUTCOMES, ns, tuple(self._outcome_points(ctx)))
        counted = np.flatnonzero(self.reg_count).tolist()
        for spec, sums in (
            (names.SEGMENT_SQUARED_ERROR, self.sq_sum),
            (names.SEGMENT_ABSOLUTE_ERROR, self.abs_sum),
        ):
            points = tuple(
                SummaryPoint(self._labels(ctx, c), int(self.reg_count[c]), float(sums[c]))
                for c in counted
            )
            yield Family(spec, ns, points)

    def _labels(self, ctx: RenderContext, code: int, **extra: str) -> dict[str, str]:
        return {**ctx.labels, names.SEGMENT: self.segment_label(code), **extra}

    def _counter_points(self, ctx: RenderContext, counts: IntArray) -> tuple[Point, ...]:
        return tuple(
            ScalarPoint(self._labels(ctx, c), int(counts[c]))
            for c in np.flatnonzero(counts).tolist()
        )

    def _outcome_points(self, ctx: RenderContext) -> Iterator[Point]:
        for code in np.flatnonzero(self.correct + self.wrong).tolist():
            for result, counts in ((_CORRECT, self.correct), (_WRONG, self.wrong)):
                labels = self._labels(ctx, code, **{names.RESULT: result})
                yield ScalarPoint(labels, int(counts[code]))

    def _drift_families(self, ctx: RenderContext) -> Iterator[Family]:
        points: dict[str, list[Point]] = {spec.name: [] for spec in _DRIFT_EXPORTS.values()}
        # Within a segment of a feature, that feature is constant: its drift says nothing.
        skip = self.plan.segmenter.feature
        for code, drift in sorted(self.drift.items()):
            segment = self.segment_label(code)
            for family in drift.families(ctx):
                target = _DRIFT_EXPORTS.get(family.spec.name)
                if target is None:
                    continue
                key = (code, family.spec.name)
                kept = self._labelled.get(key)
                if kept is None or kept[0] is not family.points:
                    kept = (
                        family.points,
                        [
                            ScalarPoint({**p.labels, names.SEGMENT: segment}, p.value)
                            for p in family.points
                            if isinstance(p, ScalarPoint) and p.labels.get(names.FEATURE) != skip
                        ],
                    )
                    self._labelled[key] = kept
                points[target.name].extend(kept[1])
        for spec in _DRIFT_EXPORTS.values():
            merged = self._memo.settle(spec.name, tuple(points[spec.name]))
            yield Family(spec, ctx.namespace, merged)

    # --- the per-segment drift statistics cache (see aggregates.stats_cache) ----------
    def statistics_pending(self, refresh_s: float) -> None:
        for drift in list(self.drift.values()):
            drift.statistics_pending(refresh_s)

    def require_fresh_statistics(self) -> None:
        for drift in list(self.drift.values()):
            drift.require_fresh_statistics()

    def refresh_statistics(self) -> None:
        for drift in list(self.drift.values()):
            drift.refresh_statistics()

    # --- merging and state -----------------------------------------------------------
    _ARRAYS = (
        "requests",
        "predictions",
        "correct",
        "wrong",
        "sq_sum",
        "abs_sum",
        "reg_count",
    )

    def merge(self, other: SegmentAggregate) -> None:
        if other.plan.segmenter.labels != self.plan.segmenter.labels:
            raise ValueError("cannot merge segment aggregates with different segment values")
        for attr in self._ARRAYS:
            setattr(self, attr, getattr(self, attr) + getattr(other, attr))
        for code, hist in other.confidence.items():
            mine = self.confidence.setdefault(code, Histogram(names.CONFIDENCE_BUCKETS))
            mine.merge(hist)
        for code, drift in other.drift.items():
            mine_drift = self.drift.get(code)
            if mine_drift is None:
                mine_drift = self.drift[code] = self._new_drift()
            mine_drift.merge(drift)

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = {a: getattr(self, a).copy() for a in self._ARRAYS}
        state["confidence"] = {str(c): h.state() for c, h in self.confidence.items()}
        state["drift"] = {str(c): d.state() for c, d in self.drift.items()}
        return state

    def load_state(self, state: Mapping[str, Any]) -> None:
        for attr in self._ARRAYS:
            current = getattr(self, attr)
            setattr(self, attr, np.asarray(state[attr], dtype=current.dtype).copy())
        self.confidence = {}
        for code, hist_state in state["confidence"].items():
            hist = self.confidence[int(code)] = Histogram(names.CONFIDENCE_BUCKETS)
            hist.load_state(hist_state)
        self.drift = {}
        for code, drift_state in state["drift"].items():
            drift = self.drift[int(code)] = self._new_drift()
            drift.load_state(drift_state)

    def config(self) -> dict[str, Any]:
        """What rebuilds this aggregate elsewhere (multi-process merging; no callable)."""
        plan, base = self.plan, self._base_decisions
        return {
            "values": list(plan.segmenter.values),
            "feature": plan.segmenter.feature,
            "admitted": sorted(plan.admitted),
            "series_per_segment": plan.series_per_segment,
            "max_series": plan.max_series,
            "fingerprint": None if self.profile is None else self.profile.fingerprint,
            "drift_options": dict(
                self._drift_options, quantiles=list(self._drift_options.get("quantiles", ()))
            ),
            "decisions": [base.alpha, base.psi_floor, base.missing_floor],
        }

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], profile: ReferenceProfile | None
    ) -> SegmentAggregate:
        """An empty aggregate that merges and renders like the one ``config`` describes."""
        segmenter = Segmenter(config["feature"] or _REBUILT, config["values"])
        plan = SegmentPlan(
            segmenter,
            frozenset(int(c) for c in config["admitted"]),
            int(config["series_per_segment"]),
            int(config["max_series"]),
        )
        options = dict(config["drift_options"])
        if "quantiles" in options:
            options["quantiles"] = tuple(options["quantiles"])
        return cls(
            plan,
            Health(),
            profile=profile,
            drift_options=options,
            decisions=DecisionConfig(*config["decisions"]),
        )

    def fresh(self) -> SegmentAggregate:
        """An empty aggregate of the same configuration (a forked worker's)."""
        return SegmentAggregate(
            self.plan,
            self.health,
            ids=self.ids,
            profile=self.profile,
            drift_options=self._drift_options,
            decisions=self._base_decisions,
        )


def take_features(frame: FeatureFrame | None, rows: IntArray) -> FeatureFrame | None:
    """The rows ``rows`` of a feature frame."""
    if frame is None:
        return None
    return FeatureFrame(
        frame.names,
        frame.numeric[rows],
        frame.missing[rows],
        frame.invalid[rows],
        _take_categorical(frame.categorical, rows),
    )


def _take_categorical(columns: Mapping[int, ObjArray], rows: IntArray) -> Mapping[int, ObjArray]:
    if isinstance(columns, CodedColumns):  # still coded: the segment's drift counts codes
        return columns.take(rows)
    return {j: v[rows] for j, v in columns.items()}


def take_outputs(out: OutputFrame | None, rows: IntArray) -> OutputFrame | None:
    """The rows ``rows`` of an output frame."""
    if out is None:
        return None

    def cut(x: Any) -> Any:
        return None if x is None else x[rows]

    return OutputFrame(
        len(rows),
        cut(out.values),
        cut(out.labels),
        cut(out.probabilities),
        out.classes,
        cut(out.confidence),
    )


def build_segments(
    segment: Any,
    values: Sequence[Any] | None,
    top_k: int,
    max_series: int,
    drift: DriftAggregate | None,
    health: Health,
    ids: IdScheme,
) -> SegmentAggregate:
    """The segment aggregate of a monitor's ``segment=`` options (errors raise here).

    Each segment's drift is configured like the model's ``drift`` (none without a
    profile at start-up, e.g. ``reference="warmup"``).
    """
    profile = drift.profile if drift is not None else None
    options: dict[str, Any] = {}
    decisions = None
    if drift is not None:
        options = {
            "window_seconds": drift.window_seconds,
            "slots": drift.n_slots,
            "min_samples": drift.min_samples,
            "quantiles": drift.quantiles,
            "max_features": drift.max_features,
        }
        decisions = drift.decision_config
    segmenter = Segmenter(segment, segment_values(segment, values, profile, top_k))
    n_features = min(len(profile.features), drift.max_features) if profile and drift else 0
    if profile is not None and segmenter.feature in profile.features:
        n_features -= 1  # constant within a segment: not exported (see _drift_families)
    n_outputs = len(profile.outputs) if profile else 0
    n_quantiles = len(drift.quantiles) if drift is not None else 0
    plan = SegmentPlan.of(segmenter, max_series, n_features, n_outputs, n_quantiles)
    return SegmentAggregate(
        plan, health, ids=ids, profile=profile, drift_options=options, decisions=decisions
    )
