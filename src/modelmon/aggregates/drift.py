"""Per-feature and per-output drift: reference-binned counters, windowed sketches, scores.

For every feature and output of the reference profile (features capped at
``max_features``, in profile order):

* cumulative bin counts (``feature_bin_total`` / ``prediction_bin_total``, bins
  labelled by index) and the reference shares (``*_reference_ratio``), so Prometheus
  can compute fleet-wide PSI/JS from plain counters;
* over a sliding window (default 15 minutes in 15 slots): bin counts, a
  :class:`~modelmon.sketches.columns.LogSketchColumns` of ``x - c`` with ``c`` the
  reference median for a feature far from 0 with a narrow spread (KS and Wasserstein stay
  sharp) and 0 otherwise (quantiles within 1% of the value); see
  :func:`modelmon.profile.sketch_center` and
  :class:`~modelmon.sketches.extremes.Extremes` (count, min, max); from them
  ``*_drift{method}`` (psi, js, ks, wasserstein for numeric; psi, js, chi2 for
  categorical) and ``*_quantile``.
  No score or quantile is rendered until the window holds ``min_samples`` values.

Missing and invalid values (NaN in ``FeatureFrame.numeric``, ``None`` in categorical
columns) never enter bins or sketches; counting them is the input-health aggregate's
job. Everything merges exactly: counts add, sketches and windows merge slot-wise.

Warm-up (``profile=None, warmup=N``): the first ``N`` rows are kept, then frozen into a
profile with :meth:`ReferenceProfile.from_frame`; only later rows are measured.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .. import drift_decision as decision
from .. import names
from ..batch import Batch, FeatureFrame, FloatArray, IntArray, OutputFrame, RenderContext
from ..errors import ConfigurationError
from ..points import NO_COLUMNS, ColumnFamily, Family, Point, ScalarColumns, ScalarPoint
from ..profile import PREDICTION, ReferenceProfile
from ..sketches.columns import chunk_rows
from ..sketches.scratch import borrowed
from ..sketches.window import SlidingWindow

# private: the aggregate's parts, split by job into sibling modules (one owner each)
from .drift_labels import _DECISION_SPECS, _FEATURE_SPECS, _OUTPUT_SPECS, _GroupLabels
from .drift_layout import (
    CATEGORICAL_METHODS,
    NUMERIC_METHODS,
    _add_categorical,
    _count_missing,
    _Group,
    _GroupSlot,
    _new_slot,
    _numeric_bins,
    _numeric_output,
    _select,
    _sizes,
    _Slot,
)
from .drift_shared import shared_groups, shared_labels
from .drift_slot_layout import SlotLayouts

# private: the window reading (benchmarks import _compute_view from here)
from .drift_window import Decision, MissingDecision, _compute_view, _WindowView
from .stats_cache import StatsCache

_Views = tuple[_WindowView, _WindowView]  # features, outputs

__all__ = [
    "CATEGORICAL_METHODS",
    "NUMERIC_METHODS",
    "Decision",
    "DriftAggregate",
    "MissingDecision",
]


class DriftAggregate:
    """Reference-binned counts, windowed sketches and drift scores (see the module doc).

    >>> import numpy as np
    >>> from modelmon.batch import FeatureFrame
    >>> rng = np.random.default_rng(0)
    >>> ref = ReferenceProfile.from_data(rng.normal(size=(2000, 1)), feature_names=["x"])
    >>> agg = DriftAggregate(ref, min_samples=10)
    >>> x = rng.normal(1.0, 1.0, size=(500, 1))
    >>> frame = FeatureFrame(("x",), x, np.isnan(x), np.isnan(x), {})
    >>> agg.fold(_batch(frame, now=100.0))
    >>> agg.drift_scores(now=100.0)["features"]["x"]["psi"] > 0.25
    True
    """

    def __init__(
        self,
        profile: ReferenceProfile | None,
        *,
        warmup: int | None = None,
        window_seconds: float = 900.0,
        slots: int = 15,
        min_samples: int = 100,
        quantiles: Sequence[float] = (0.05, 0.5, 0.95),
        max_features: int = 100,
        export_bin_edges: bool = False,
        relative_accuracy: float = 0.01,
        decisions: decision.DecisionConfig | None = None,
    ) -> None:
        if profile is None and not warmup:
            raise ConfigurationError("DriftAggregate needs a reference profile or warmup=N rows")
        if warmup is not None and warmup < 1:
            raise ConfigurationError(f"warmup must be >= 1 rows, got {warmup!r}")
        if min_samples < 1 or max_features < 1:
            raise ConfigurationError("min_samples and max_features must be >= 1")
        if any(not 0.0 <= q <= 1.0 for q in quantiles):
            raise ConfigurationError(f"quantiles must lie in [0, 1], got {tuple(quantiles)!r}")
        self.warmup = warmup
        self.window_seconds = float(window_seconds)
        self.n_slots = int(slots)
        self.min_samples = int(min_samples)
        self.quantiles = tuple(float(q) for q in quantiles)
        self.max_features = int(max_features)
        self.export_bin_edges = export_bin_edges
        self.relative_accuracy = float(relative_accuracy)
        self.decision_config = decisions if decisions is not None else decision.DecisionConfig()
        self._warm: list[tuple[FeatureFrame | None, OutputFrame | None]] = []
        self._warm_rows = 0
        self._built_from_warmup = False
        self.profile: ReferenceProfile | None = None
        self._column_cache: tuple[tuple[str, ...], list[int]] | None = None
        self.generation = 0  # bumped whenever the window's data changes (see stats_cache)
        self.rows_folded = 0  # rows that reached the window, ever
        self.folded_at: float | None = None  # the ``now`` of the last fold
        self._stats: StatsCache[_Views | None] = StatsCache()
        if self.window_seconds <= 0 or self.n_slots < 1:
            raise ConfigurationError(
                f"window_seconds must be > 0 and slots >= 1, got {window_seconds!r}, {slots!r}"
            )
        if profile is not None:
            self._adopt(profile)

    # --- setup ---------------------------------------------------------------------
    def _adopt(self, profile: ReferenceProfile) -> None:
        self.profile = profile
        self.features, self.outputs = shared_groups(profile, self.max_features)
        self.cum_features: IntArray = np.zeros(self.features.total_bins, dtype=np.int64)
        self.cum_outputs: IntArray = np.zeros(self.outputs.total_bins, dtype=np.int64)
        # A factory that does not hold ``self``: no reference cycle, so a dropped monitor's
        # aggregate is freed at once instead of waiting for the cycle collector.
        self.window: SlidingWindow[_Slot] = SlidingWindow(
            functools.partial(
                _new_slot, _sizes(self.features), _sizes(self.outputs), self.relative_accuracy
            ),
            _Slot.from_state,
            self.window_seconds,
            self.n_slots,
        )
        self._column_cache = None
        self._slot_layouts = SlotLayouts(self.features, self.outputs, self.relative_accuracy)
        self.generation += 1
        self._stats.clear()

    def _new_slot(self) -> _Slot:
        return _new_slot(_sizes(self.features), _sizes(self.outputs), self.relative_accuracy)

    # --- folding -------------------------------------------------------------------
    def fold(self, batch: Batch) -> None:
        features, outputs = batch.features, batch.outputs
        if self.profile is None:
            features, outputs = self._collect_warmup(features, outputs)
            if self.profile is None:
                return
        slot = self.window.current(batch.now)
        self._slot_layouts.lay_out(self.window.slots, slot)  # a new slot: laid out once
        if features is not None and features.n_rows:
            counts = self._fold_features(features, slot.features)
            self.cum_features += counts
            slot.features.counts += counts
        if outputs is not None and outputs.n_rows and self.outputs.members:
            counts = self._fold_outputs(outputs, slot.outputs)
            self.cum_outputs += counts
            slot.outputs.counts += counts
        self.window.touch(batch.now)
        self.generation += 1
        self.folded_at = batch.now
        self.rows_folded += max(
            features.n_rows if features is not None else 0,
            outputs.n_rows if outputs is not None else 0,
        )

    def _columns(self, frame_names: tuple[str, ...]) -> list[int]:
        """Frame column of each feature member (-1 when the frame lacks it)."""
        if self._column_cache is None or self._column_cache[0] != frame_names:
            index = {n: j for j, n in enumerate(frame_names)}
            cols = [index.get(m.name, -1) for m in self.features.members]
            self._column_cache = (frame_names, cols)
        return self._column_cache[1]

    def _fold_features(self, frame: FeatureFrame, slot: _GroupSlot) -> IntArray:
        group = self.features
        cols = self._columns(frame.names)
        counts = np.zeros(group.total_bins, dtype=np.int64)
        if group.numeric:
            num_cols = [cols[i] for i in group.numeric]
            matrix = _select(frame.numeric, num_cols)
            self._fold_numeric(group, matrix, slot, counts)
        if group.categorical:
            self._fold_categorical(frame, cols, slot, counts)
        _count_missing(frame, cols, slot)
        return counts

    def _fold_categorical(
        self, frame: FeatureFrame, cols: list[int], slot: _GroupSlot, counts: IntArray
    ) -> None:
        group = self.features
        codes = group.category_codes
        tests = slot.test_counts
        if codes is not None and tests.size in (0, group.test_total):
            member_cols = [cols[i] for i in group.categorical]  # frame column per member
            codes.count_frame(frame, member_cols, counts, tests if tests.size else None)
            return
        columns = {  # categorical member -> its values: str or None (see FeatureFrame)
            c: frame.categorical[cols[i]]
            for c, i in enumerate(group.categorical)
            if cols[i] in frame.categorical
        }
        for c, values in columns.items():  # a table too large to build, or an old state
            _add_categorical(group, group.categorical[c], values, counts, slot, text=True)

    def _fold_outputs(self, out: OutputFrame, slot: _GroupSlot) -> IntArray:
        group = self.outputs
        counts = np.zeros(group.total_bins, dtype=np.int64)
        if group.numeric:
            matrix = np.empty((out.n_rows, len(group.numeric)))
            for c, i in enumerate(group.numeric):
                matrix[:, c] = _numeric_output(group.members[i].name, out)
            self._fold_numeric(group, matrix, slot, counts)
        for i in group.categorical:
            if group.members[i].name == PREDICTION and out.labels is not None:
                _add_categorical(group, i, out.labels, counts, slot)
        return counts

    def _fold_numeric(
        self, group: _Group, matrix: FloatArray, slot: _GroupSlot, counts: IntArray
    ) -> None:
        # In chunks transposed once (a column per row), which the three read in turn.
        # The temporaries are reused arrays (see modelmon.sketches.scratch).
        rows = chunk_rows(matrix.shape[1])
        with borrowed() as ws:
            for start in range(0, matrix.shape[0], rows):
                part = matrix[start : start + rows]
                columns = ws.get("columns", part.shape[::-1], np.float64)
                np.copyto(columns, part.T)
                valid = slot.extremes.add_columns(columns)
                slot.sketches.add_columns(columns, group.centers, ws)
                binned = _numeric_bins(columns, group.edges, valid, ws)
                counts[group.numeric_cells] += binned[group.numeric_bins]

    # --- warm-up -------------------------------------------------------------------
    def _collect_warmup(
        self, features: FeatureFrame | None, outputs: OutputFrame | None
    ) -> tuple[FeatureFrame | None, OutputFrame | None]:
        assert self.warmup is not None
        n = features.n_rows if features is not None else (outputs.n_rows if outputs else 0)
        need = self.warmup - self._warm_rows
        take = min(n, need)
        if take:
            self._warm.append(
                (_slice_features(features, 0, take), _slice_outputs(outputs, 0, take))
            )
            self._warm_rows += take
        if self._warm_rows < self.warmup:
            return None, None
        frames = [f for f, _ in self._warm if f is not None]
        outs = [o for _, o in self._warm if o is not None]
        feature_frame = _concat_features(frames)
        output_frame = _concat_outputs(outs) if len(outs) == len(self._warm) else None
        if feature_frame is None:
            feature_frame = FeatureFrame(
                (), np.zeros((0, 0)), np.zeros((0, 0), bool), np.zeros((0, 0), bool), {}
            )
        self._adopt(ReferenceProfile.from_frame(feature_frame, output_frame))
        self._built_from_warmup = True
        self._warm = []
        return _slice_features(features, take, n), _slice_outputs(outputs, take, n)

    # --- reading -------------------------------------------------------------------
    def drift_scores(self, now: float) -> dict[str, dict[str, dict[str, float]]]:
        """``{"features"|"outputs": {name: {method: score}}}`` over the window at ``now``.

        Members with fewer than ``min_samples`` values in the window are absent.
        """
        out: dict[str, dict[str, dict[str, float]]] = {"features": {}, "outputs": {}}
        for key, group, view in self._group_views(now):
            for i, member in enumerate(group.members):
                if view.scores[i] is not None:
                    out[key][member.name] = dict(view.scores[i] or {})
        return out

    def decisions(self, now: float) -> dict[str, dict[str, Any]]:
        """The window's decisions at ``now``, as exported.

        ``{"features"|"outputs": {name: Decision}, "missing": {name: MissingDecision}}``;
        members below ``min_samples`` values in the window are absent.
        """
        out: dict[str, dict[str, Any]] = {"features": {}, "outputs": {}, "missing": {}}
        for key, group, view in self._group_views(now):
            for i, member in enumerate(group.members):
                if view.decisions and view.decisions[i] is not None:
                    out[key][member.name] = view.decisions[i]
                if key == "features" and view.missing and view.missing[i] is not None:
                    out["missing"][member.name] = view.missing[i]
        return out

    def _group_views(self, now: float) -> list[tuple[str, _Group, _WindowView]]:
        """``("features"|"outputs", group, its window view)`` at ``now``; none without data."""
        views = self._views_at(now)
        if views is None:
            return []
        return [("features", self.features, views[0]), ("outputs", self.outputs, views[1])]

    def _views_at(self, now: float) -> _Views | None:
        """The window views at ``now``: computed once per change (see stats_cache)."""
        if self.profile is None:
            return None
        return self._stats.get(
            self.generation, self.window.index(now), self.rows_folded,
            lambda: self._compute_views(now),
        )  # fmt: skip

    def _compute_views(self, now: float) -> tuple[_Views | None, int]:
        """The views, and the rows they cover: the fewest values of any member (0 while
        one is below ``min_samples``: its score must appear at the next read)."""
        merged = self.window.snapshot(now)
        if merged is None:
            return None, 0
        views = (
            self._window_view(self.features, merged.features),
            self._window_view(self.outputs, merged.outputs),
        )
        cover = min((v.rows for v in views if v.scores), default=0)
        return views, cover if cover >= self.min_samples else 0

    def _window_view(self, group: _Group, slot: _GroupSlot) -> _WindowView:
        """Scores and live quantiles of every member of ``group`` over ``slot`` (uncached)."""
        return _compute_view(group, slot, self.min_samples, self.quantiles, self.decision_config)

    # --- the statistics cache (driven by the background folder) ----------------------
    def statistics_pending(self, refresh_s: float) -> None:
        """A background fold changed the data: serve the last statistics till a refresh."""
        self._stats.mark_pending(refresh_s)

    def require_fresh_statistics(self) -> None:
        """An explicit fold: the next read shows every row folded so far."""
        self._stats.require_fresh(self.generation)

    def refresh_statistics(self) -> None:
        """Compute the statistics now if the data changed since (the folder's refresh).

        At the time of the last fold, not the wall clock: a refresh never slides the
        window (a batch job folds at its own ``now``; reading at another time would drop
        its slots)."""
        now = self.folded_at
        if self.profile is not None and now is not None:
            self._stats.refresh(
                self.generation, self.window.index(now), self.rows_folded,
                lambda: self._compute_views(now),
            )  # fmt: skip

    def families(self, ctx: RenderContext) -> Iterable[Family]:
        if self.profile is None:
            return
        views = self._views_at(ctx.now)
        yield from self._group_families(
            ctx, self.features, self.cum_features, names.FEATURE, _FEATURE_SPECS,
            views[0] if views is not None else None,
        )  # fmt: skip
        yield from self._group_families(
            ctx, self.outputs, self.cum_outputs, names.OUTPUT, _OUTPUT_SPECS,
            views[1] if views is not None else None,
        )  # fmt: skip
        if self.export_bin_edges and self.features.members:
            yield Family(names.FEATURE_BIN_EDGES, ctx.namespace, self._edge_points(ctx))

    def _group_families(
        self,
        ctx: RenderContext,
        group: _Group,
        cum: IntArray,
        key: str,
        specs: tuple[names.MetricSpec, ...],
        view: _WindowView | None,
    ) -> Iterable[Family]:
        if not group.members:
            return
        bin_s, ratio_s, drift_s, quant_s = specs
        ns = ctx.namespace
        labels = self._labels(ctx, group, key)
        # Values that change between scrapes go out as columns (ColumnFamily): the
        # renderer formats them without building a point per series.
        yield ColumnFamily(bin_s, ns, labels.bin_points(cum))
        yield Family(ratio_s, ns, labels.ratio_points)
        drift_points = quant_points = NO_COLUMNS
        decided: tuple[ScalarColumns, ...] = (NO_COLUMNS,) * 4
        if view is not None:
            drift_points, quant_points = labels.window_points(view)
            decided = labels.decision_points(view)
        yield ColumnFamily(drift_s, ns, drift_points)
        yield ColumnFamily(quant_s, ns, quant_points)
        detected_s, pvalue_s, rows_s = _DECISION_SPECS[key]
        yield Family(rows_s, ns, labels.rows_points)
        yield ColumnFamily(detected_s, ns, decided[0])
        yield ColumnFamily(pvalue_s, ns, decided[1])
        if key == names.FEATURE:
            yield Family(names.FEATURE_REFERENCE_MISSING_RATIO, ns, labels.missing_ratio_points)
            yield ColumnFamily(names.FEATURE_MISSING_DRIFT_DETECTED, ns, decided[2])
            yield ColumnFamily(names.FEATURE_MISSING_DRIFT_PVALUE, ns, decided[3])

    def _labels(self, ctx: RenderContext, group: _Group, key: str) -> _GroupLabels:
        """Label sets of a group's points, built once per ``ctx.labels``."""
        return shared_labels(ctx.labels, group, key, self.quantiles)

    def _edge_points(self, ctx: RenderContext) -> tuple[Point, ...]:
        points: list[Point] = []
        for member in self.features.members:
            if member.kind != "numeric":
                continue
            uppers = [*(repr(e) for e in member.edges), "+Inf"]
            for b, le in enumerate(uppers):
                labels = {
                    **ctx.labels,
                    names.FEATURE: member.name,
                    names.BIN: str(b),
                    names.UPPER_EDGE: le,
                }
                points.append(ScalarPoint(labels, 1.0))
        return tuple(points)

    # --- merging and state ---------------------------------------------------------
    def merge(self, other: DriftAggregate) -> None:
        """Add ``other`` (same reference profile) into this aggregate, exactly."""
        if other.profile is None:
            return
        if self.profile is None:
            self._adopt(other.profile)
            self._built_from_warmup = other._built_from_warmup
        elif self.profile.fingerprint != other.profile.fingerprint:
            raise ValueError("cannot merge drift aggregates built on different reference profiles")
        self.cum_features += other.cum_features
        self.cum_outputs += other.cum_outputs
        self.window.merge(other.window)
        self.generation += 1
        self._stats.clear()  # never served stale: the merged data is not a background fold

    def state(self) -> dict[str, Any]:
        if self.profile is None:
            return {"profile": None}
        return {
            "profile": self.profile.dumps() if self._built_from_warmup else None,
            "fingerprint": self.profile.fingerprint,
            "cum_features": self.cum_features.copy(),
            "cum_outputs": self.cum_outputs.copy(),
            "window": self.window.state(),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        if "fingerprint" not in state:
            return
        if state.get("profile") is not None and self.profile is None:
            self._adopt(ReferenceProfile.loads(state["profile"]))
            self._built_from_warmup = True
        if self.profile is None or self.profile.fingerprint != state["fingerprint"]:
            raise ValueError("drift state was saved with a different reference profile")
        self.cum_features = np.asarray(state["cum_features"], dtype=np.int64).copy()
        self.cum_outputs = np.asarray(state["cum_outputs"], dtype=np.int64).copy()
        self.window.load_state(state["window"])
        self.generation += 1
        self._stats.clear()


def _slice_features(frame: FeatureFrame | None, a: int, b: int) -> FeatureFrame | None:
    if frame is None:
        return None
    return FeatureFrame(
        frame.names,
        frame.numeric[a:b],
        frame.missing[a:b],
        frame.invalid[a:b],
        {j: v[a:b] for j, v in frame.categorical.items()},
    )


def _slice_outputs(out: OutputFrame | None, a: int, b: int) -> OutputFrame | None:
    if out is None:
        return None

    def cut(x: Any) -> Any:
        return None if x is None else x[a:b]

    n = max(0, min(b, out.n_rows) - a)
    return OutputFrame(
        n,
        cut(out.values),
        cut(out.labels),
        cut(out.probabilities),
        out.classes,
        cut(out.confidence),
    )


def _concat_features(frames: list[FeatureFrame]) -> FeatureFrame | None:
    if not frames:
        return None
    names_ = frames[0].names
    frames = [f for f in frames if f.names == names_]
    cats = {
        j: np.concatenate(
            [f.categorical.get(j, np.full(f.n_rows, None, dtype=object)) for f in frames]
        )
        for j in frames[0].categorical
    }
    return FeatureFrame(
        names_,
        np.concatenate([f.numeric for f in frames]),
        np.concatenate([f.missing for f in frames]),
        np.concatenate([f.invalid for f in frames]),
        cats,
    )


def _concat_outputs(outs: list[OutputFrame]) -> OutputFrame | None:
    if not outs:
        return None

    def join(attr: str) -> Any:
        parts = [getattr(o, attr) for o in outs]
        if any(p is None for p in parts):
            return None
        return np.concatenate(parts)

    classes = outs[0].classes if all(o.classes == outs[0].classes for o in outs) else None
    proba = join("probabilities") if classes is not None else None
    return OutputFrame(
        sum(o.n_rows for o in outs),
        join("values"),
        join("labels"),
        proba,
        classes,
        join("confidence"),
    )


def _batch(frame: FeatureFrame | None, now: float, outputs: OutputFrame | None = None) -> Batch:
    """A batch holding only rows (for examples and tests)."""
    empty = np.zeros(0)
    return Batch(now, empty, np.zeros(0, dtype=np.int64), (), empty, (), frame, outputs)
