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
  :class:`~modelmon.sketches.moments.Moments`; from them ``*_drift{method}`` (psi, js,
  ks, wasserstein for numeric; psi, js, chi2 for categorical) and ``*_quantile``.
  No score or quantile is rendered until the window holds ``min_samples`` values.

Missing and invalid values (NaN in ``FeatureFrame.numeric``, ``None`` in categorical
columns) never enter bins or sketches; counting them is the input-health aggregate's
job. Everything merges exactly: counts add, sketches and windows merge slot-wise.

Warm-up (``profile=None, warmup=N``): the first ``N`` rows are kept, then frozen into a
profile with :meth:`ReferenceProfile.from_frame`; only later rows are measured.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import drift, names
from .. import drift_decision as decision
from ..batch import Batch, FeatureFrame, FloatArray, IntArray, ObjArray, OutputFrame, RenderContext
from ..errors import ConfigurationError
from ..points import Family, Point, ScalarPoint
from ..profile import CONFIDENCE, PREDICTION, FeatureProfile, ReferenceProfile
from ..sketches.columns import LogSketchColumns
from ..sketches.ddsketch import LogSketch
from ..sketches.moments import Moments
from ..sketches.occupied import Occupied
from ..sketches.window import SlidingWindow
from .stats_cache import StatsCache

NUMERIC_METHODS = ("psi", "js", "ks", "wasserstein")
_CHUNK = 1 << 15  # values per vectorised chunk of the bin count
CATEGORICAL_METHODS = ("psi", "js", "chi2")


@dataclass(frozen=True)
class _Group:
    """The layout of one group (features or outputs): members, bins, numeric columns."""

    members: tuple[FeatureProfile, ...]
    numeric: tuple[int, ...]  # member indices of numeric members
    categorical: tuple[int, ...]
    offsets: tuple[int, ...]  # start of each member's bins in the flat count array
    total_bins: int
    edges: FloatArray  # (max_edges, n_numeric), padded with +inf
    centers: FloatArray  # reference median of each numeric member
    binned: drift.BinnedReference  # reference shares of every member, padded
    cells: IntArray  # (members, bins) index into the flat counts (padding: total_bins)
    reference: drift.QuantileReference  # of the numeric members, shifted by centers
    column_of: tuple[int, ...]  # sketch column of each member (-1: categorical)
    numeric_bins: npt.NDArray[np.bool_]  # (n_numeric, max_edges + 1): real bins
    numeric_cells: IntArray  # flat count index of each real bin, in that order
    test_offsets: tuple[int, ...]  # start of each categorical member's test cells (-1: none)
    test_total: int
    ref_rows: FloatArray  # non-missing reference rows of each member
    # Per numeric column: the profile's reference sketch (values clipped to the reference
    # min/max, weights summing to 1), None for profiles written without one.
    ref_sketches: tuple[tuple[FloatArray, FloatArray] | None, ...]
    ref_points: tuple[FloatArray, FloatArray, IntArray]  # the same, flat: value, weight, column

    @classmethod
    def of(cls, members: Sequence[FeatureProfile]) -> _Group:
        numeric = tuple(i for i, m in enumerate(members) if m.kind == "numeric")
        categorical = tuple(i for i, m in enumerate(members) if m.kind == "categorical")
        sizes = [m.n_bins for m in members]
        offsets = (
            tuple(int(x) for x in np.concatenate(([0], np.cumsum(sizes)[:-1]))) if sizes else ()
        )
        width = max((len(members[i].edges) for i in numeric), default=0)
        edges = np.full((width, len(numeric)), np.inf)
        for c, i in enumerate(numeric):
            e = members[i].edges_array
            edges[: e.size, c] = e
        centers = np.array([members[i].sketch_center for i in numeric], dtype=np.float64)
        total = int(sum(sizes))
        binned = drift.BinnedReference.of([m.shares_array for m in members])
        cells = np.full(binned.shares.shape, total, dtype=np.int64)
        for i, m in enumerate(members):
            cells[i, : m.n_bins] = offsets[i] + np.arange(m.n_bins)
        n_q = len(drift.REFERENCE_QUANTILE_PROBS)
        quantiles = np.array(
            [members[i].quantiles or (0.0,) * n_q for i in numeric], dtype=np.float64
        ).reshape(len(numeric), n_q)
        stds = np.array([members[i].std or 0.0 for i in numeric], dtype=np.float64)
        reference = drift.QuantileReference.of(quantiles, stds, centers)
        column_of = [-1] * len(members)
        real = np.zeros((len(numeric), width + 1), dtype=bool)
        for c, i in enumerate(numeric):
            column_of[i] = c
            real[c, : members[i].n_bins] = True
        numeric_cells = np.concatenate(
            [cells[i, : members[i].n_bins] for i in numeric] or [np.zeros(0, dtype=np.int64)]
        )
        test_offsets = [-1] * len(members)
        test_total = 0
        for i in categorical:
            test_offsets[i] = test_total
            test_total += len(members[i].test_categories)
        ref_rows = np.array([m.reference_rows for m in members], dtype=np.float64)
        ref_sketches = tuple(_reference_sketch(members[i]) for i in numeric)
        return cls(
            tuple(members), numeric, categorical, offsets, total, edges, centers,
            binned, cells, reference, tuple(column_of), real, numeric_cells,
            tuple(test_offsets), test_total, ref_rows, ref_sketches, _flat(ref_sketches),
        )  # fmt: skip

    def test_cells(self, slot: _GroupSlot, i: int) -> tuple[IntArray, tuple[float, ...]]:
        """Window counts and reference shares over member ``i``'s test cells."""
        member = self.members[i]
        start = self.test_offsets[i]
        if start < 0 or slot.test_counts.size == 0:
            return self.bins(slot.counts, i), member.shares
        return slot.test_counts[start : start + len(member.test_categories)], member.test_shares

    def bins(self, flat: IntArray, i: int) -> IntArray:
        return flat[self.offsets[i] : self.offsets[i] + self.members[i].n_bins]


class _GroupSlot:
    """Windowed state of one group: bin counts, a sketch and moments per numeric member,
    the categorical members' full test-cell counts, and per member the values seen and
    missing (for the missing-share test)."""

    __slots__ = ("counts", "missing", "moments", "seen", "sketches", "test_counts")

    def __init__(
        self,
        total_bins: int,
        n_numeric: int,
        accuracy: float,
        test_total: int = 0,
        n_members: int = 0,
    ) -> None:
        self.counts: IntArray = np.zeros(total_bins, dtype=np.int64)
        self.sketches = LogSketchColumns(n_numeric, accuracy)
        self.moments = Moments(n_numeric)
        self.test_counts: IntArray = np.zeros(test_total, dtype=np.int64)
        self.missing: IntArray = np.zeros(n_members, dtype=np.int64)
        self.seen: IntArray = np.zeros(n_members, dtype=np.int64)

    def merge(self, other: _GroupSlot) -> None:
        self.counts += other.counts
        self.sketches.merge(other.sketches)
        self.moments.merge(other.moments)
        self.test_counts = _add(self.test_counts, other.test_counts)
        self.missing = _add(self.missing, other.missing)
        self.seen = _add(self.seen, other.seen)

    def state(self) -> dict[str, Any]:
        return {
            "counts": self.counts.copy(),
            "sketches": self.sketches.state(),
            "moments": self.moments.state(),
            "test_counts": self.test_counts.copy(),
            "missing": self.missing.copy(),
            "seen": self.seen.copy(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> _GroupSlot:
        slot = cls(0, 0, 0.01)
        slot.counts = np.asarray(state["counts"], dtype=np.int64).copy()
        for key in ("test_counts", "missing", "seen"):  # absent in states before 0.2
            if key in state:
                setattr(slot, key, np.asarray(state[key], dtype=np.int64).copy())
        sketches = state["sketches"]
        if isinstance(sketches, Mapping):
            slot.sketches = LogSketchColumns.from_state(sketches)
        else:  # a list of LogSketch states (written before the sketches were columns)
            slot.sketches = LogSketchColumns.from_sketches(
                [LogSketch.from_state(x) for x in sketches]
            )
        slot.moments = Moments.from_state(state["moments"])
        return slot


class _Slot:
    """One sub-window: a :class:`_GroupSlot` for features and one for outputs."""

    __slots__ = ("features", "outputs")

    def __init__(self, features: _GroupSlot, outputs: _GroupSlot) -> None:
        self.features = features
        self.outputs = outputs

    def merge(self, other: _Slot) -> None:
        self.features.merge(other.features)
        self.outputs.merge(other.outputs)

    def state(self) -> dict[str, Any]:
        return {"features": self.features.state(), "outputs": self.outputs.state()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> _Slot:
        return cls(
            _GroupSlot.from_state(state["features"]), _GroupSlot.from_state(state["outputs"])
        )


_Sizes = tuple[int, int, int, int]


def _sizes(group: _Group) -> _Sizes:
    """What an empty slot of ``group`` needs: bins, numeric members, test cells, members."""
    return (group.total_bins, len(group.numeric), group.test_total, len(group.members))


def _new_slot(features: _Sizes, outputs: _Sizes, a: float) -> _Slot:
    """An empty window slot for groups of these sizes."""
    f_bins, f_numeric, f_cells, f_members = features
    o_bins, o_numeric, o_cells, o_members = outputs
    return _Slot(
        _GroupSlot(f_bins, f_numeric, a, f_cells, f_members),
        _GroupSlot(o_bins, o_numeric, a, o_cells, o_members),
    )


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
        self._label_cache: dict[tuple[Any, ...], tuple[_Group, _GroupLabels]] = {}
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
        feats = list(profile.features.values())[: self.max_features]
        self.features = _Group.of(feats)
        self.outputs = _Group.of(list(profile.outputs.values()))
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
        self._label_cache = {}
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
        for i in group.categorical:
            values = frame.categorical.get(cols[i]) if cols[i] >= 0 else None
            if values is not None:
                _add_categorical(group, i, values, counts, slot)
        _count_missing(frame, cols, slot)
        return counts

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
        moments = Moments(matrix.shape[1])
        moments.add(matrix)
        slot.moments.merge(moments)
        slot.sketches.add(matrix, group.centers)
        binned = _numeric_bins(matrix, group.edges, moments.count)
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
        args = (self.min_samples, self.quantiles, self.decision_config)
        views = (
            _compute_view(self.features, merged.features, *args),
            _compute_view(self.outputs, merged.outputs, *args),
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
        labels = self._labels(ctx, group, key)
        yield Family(bin_s, ctx.namespace, labels.bin_points(cum))
        yield Family(ratio_s, ctx.namespace, labels.ratio_points)
        drift_points: tuple[Point, ...] = ()
        quant_points: tuple[Point, ...] = ()
        decided: tuple[tuple[Point, ...], ...] = ((), (), (), ())
        if view is not None:
            drift_points, quant_points = labels.window_points(view)
            decided = labels.decision_points(view)
        yield Family(drift_s, ctx.namespace, drift_points)
        yield Family(quant_s, ctx.namespace, quant_points)
        detected_s, pvalue_s, rows_s = _DECISION_SPECS[key]
        yield Family(rows_s, ctx.namespace, labels.rows_points)
        yield Family(detected_s, ctx.namespace, decided[0])
        yield Family(pvalue_s, ctx.namespace, decided[1])
        if key == names.FEATURE:
            yield Family(
                names.FEATURE_REFERENCE_MISSING_RATIO, ctx.namespace, labels.missing_ratio_points
            )
            yield Family(names.FEATURE_MISSING_DRIFT_DETECTED, ctx.namespace, decided[2])
            yield Family(names.FEATURE_MISSING_DRIFT_PVALUE, ctx.namespace, decided[3])

    def _labels(self, ctx: RenderContext, group: _Group, key: str) -> _GroupLabels:
        """Label sets of a group's points, built once per ``ctx.labels``."""
        ident = (id(group), key, tuple(ctx.labels.items()))
        found = self._label_cache.get(ident)
        if found is None or found[0] is not group:
            found = (group, _GroupLabels(ctx.labels, group, key, self.quantiles))
            if len(self._label_cache) > 16:
                self._label_cache.clear()
            self._label_cache[ident] = found
        return found[1]

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


# --- scores and points -------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """The drift decision of one member over the window (see :mod:`modelmon.drift_decision`)."""

    detected: bool
    test: decision.BinnedTest
    pvalues: dict[str, float]  # method -> p-value before the correction
    z_critical: float


@dataclass(frozen=True)
class MissingDecision:
    """The missing-share decision of one feature over the window."""

    detected: bool
    test: decision.MissingTest
    z_critical: float


@dataclass(frozen=True)
class _WindowView:
    """Per member: drift scores (``None`` below ``min_samples``) and live quantiles."""

    scores: tuple[dict[str, float] | None, ...]
    quantiles: dict[int, FloatArray]  # member index -> live quantiles
    decisions: tuple[Decision | None, ...] = ()
    missing: tuple[MissingDecision | None, ...] = ()
    rows: int = 0  # the fewest window values of any member


_Views = tuple[_WindowView, _WindowView]  # features, outputs


def _reference_sketch(member: FeatureProfile) -> tuple[FloatArray, FloatArray] | None:
    if not member.sketch_values or not member.count:
        return None
    values = np.asarray(member.sketch_values, dtype=np.float64)
    lo = member.min if member.min is not None else -math.inf
    hi = member.max if member.max is not None else math.inf
    weights = np.asarray(member.sketch_counts, dtype=np.float64) / member.count
    return np.clip(values, lo, hi), weights


def _flat(
    sketches: Sequence[tuple[FloatArray, FloatArray] | None],
) -> tuple[FloatArray, FloatArray, IntArray]:
    """Reference sketches laid end to end: values, weights and the column of each point."""
    present = [(c, s) for c, s in enumerate(sketches) if s is not None]
    if not present:
        return np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64)
    return (
        np.concatenate([s[0] for _, s in present]),
        np.concatenate([s[1] for _, s in present]),
        np.repeat([c for c, _ in present], [s[0].size for _, s in present]).astype(np.int64),
    )


def _sketch_wasserstein(
    group: _Group,
    sketches: LogSketchColumns,
    occ: Occupied,
    lo: FloatArray,
    hi: FloatArray,
    out: FloatArray,
) -> None:
    """Wasserstein of each row against the profile's reference sketch, where it has one.

    Overwrites ``out`` (from the quantile summary) for those rows: sketch against sketch
    keeps the 1% relative accuracy in heavy tails, where the summary interpolates.
    """
    ref_values, ref_weights, ref_column = group.ref_points
    has_sketch = np.zeros(len(group.ref_sketches) + 1, dtype=bool)
    has_sketch[ref_column] = True
    use = has_sketch[occ.rows] & (occ.n > 0)
    if not use.any():
        return
    picked = np.flatnonzero(use)
    rank = np.full(has_sketch.size, -1, dtype=np.int64)  # column -> row of the result
    rank[occ.rows[picked]] = np.arange(picked.size)
    ref_rows = rank[ref_column]
    on = ref_rows >= 0
    keep = use[occ.row_of]
    row_of = occ.row_of[keep]
    cols = occ.rows[row_of]
    live = sketches.values_at(cols, occ.cells[keep]) + group.centers[cols]
    live = np.clip(live, lo[row_of], hi[row_of])
    w = drift.wasserstein_rows(
        (ref_values[on], ref_weights[on], ref_rows[on]),
        (live, occ.counts[keep] / occ.n[row_of], rank[cols]),
    )
    std = np.maximum(group.reference.std[occ.rows[picked]], drift.STD_FLOOR)
    out[picked] = w / std


def _decide(
    group: _Group,
    slot: _GroupSlot,
    ready: list[int],
    scores: list[dict[str, float] | None],
    min_samples: int,
    cfg: decision.DecisionConfig,
) -> tuple[tuple[Decision | None, ...], tuple[MissingDecision | None, ...]]:
    m = len(group.members)
    z_crit = cfg.z_critical(m)
    out: list[Decision | None] = [None] * m
    cells_shares = [group.test_cells(slot, i) for i in ready]
    tests = decision.binned_tests(
        [c for c, _ in cells_shares], [s for _, s in cells_shares], group.ref_rows[ready]
    )
    for i, test in zip(ready, tests, strict=True):
        pvalues = {"chi2": test.pvalue}
        ks = (scores[i] or {}).get("ks", math.nan)
        if not math.isnan(ks):
            n = float(group.bins(slot.counts, i).sum())
            pvalues["ks"] = decision.ks_pvalue(ks, n, group.ref_rows[i])
        out[i] = Decision(decision.flagged(test, z_crit, cfg.psi_floor), test, pvalues, z_crit)
    z_two = cfg.z_critical(m, two_sided=True)
    missing: list[MissingDecision | None] = [None] * m
    if slot.seen.size == m:
        for i in np.flatnonzero(slot.seen >= min_samples).tolist():
            member = group.members[i]
            t = decision.missing_test(
                float(slot.missing[i]), float(slot.seen[i]), member.missing_share,
                member.reference_total,
            )  # fmt: skip
            missing[i] = MissingDecision(
                decision.missing_flagged(t, z_two, cfg.missing_floor), t, z_two
            )
    return tuple(out), tuple(missing)


def _compute_view(
    group: _Group,
    slot: _GroupSlot,
    min_samples: int,
    qs: tuple[float, ...],
    cfg: decision.DecisionConfig | None = None,
) -> _WindowView:
    counts = np.append(slot.counts, 0)[group.cells]
    n = counts.sum(axis=1)
    psi, js, chi = drift.binned_scores(group.binned, counts)
    ready = [i for i in range(len(group.members)) if n[i] >= min_samples]
    rows = np.array([group.column_of[i] for i in ready if group.column_of[i] >= 0], dtype=np.int64)
    ks = wass = live = np.zeros(0)
    if rows.size:
        sketches, moments = slot.sketches, slot.moments
        centers = group.centers[rows]
        lo, hi = moments.min[rows], moments.max[rows]
        occ = Occupied.of(sketches, rows)
        ks = drift.ks_columns(group.reference, sketches, rows, occ)
        has_sketch = np.array([group.ref_sketches[c] is not None for c in rows.tolist()])
        wass = np.full(rows.size, np.nan)
        if not has_sketch.all():  # profiles written without a reference sketch
            old = ~has_sketch
            wass[old] = drift.wasserstein_columns(
                group.reference,
                sketches,
                rows[old],
                (lo[old] - centers[old], hi[old] - centers[old]),
            )
        _sketch_wasserstein(group, sketches, occ, lo, hi, wass)
        live = sketches.quantiles(qs, rows, occ) + centers[:, None]
        live = np.clip(live, lo[:, None], hi[:, None])
    scores: list[dict[str, float] | None] = [None] * len(group.members)
    quantiles: dict[int, FloatArray] = {}
    r = 0
    for i in ready:
        member = group.members[i]
        one = {"psi": float(psi[i]), "js": float(js[i])}
        if group.column_of[i] < 0:
            one["chi2"] = float(chi[i])
        else:
            has_reference = bool(member.quantiles)
            one["ks"] = float(ks[r]) if has_reference else math.nan
            one["wasserstein"] = float(wass[r]) if has_reference else math.nan
            quantiles[i] = live[r]
            r += 1
        scores[i] = one
    decisions, missing = _decide(
        group, slot, ready, scores, min_samples, cfg or decision.DecisionConfig()
    )
    fewest = int(n.min()) if n.size else 0
    return _WindowView(tuple(scores), quantiles, decisions, missing, fewest)


class _GroupLabels:
    """The label sets of one group's points, built once and shared by every scrape."""

    def __init__(
        self, base: Mapping[str, str], group: _Group, key: str, qs: tuple[float, ...]
    ) -> None:
        self.bin_labels: list[dict[str, str]] = []
        ratio: list[Point] = []
        self.method_labels: list[dict[str, dict[str, str]]] = []
        self.quantile_labels: list[list[dict[str, str]]] = []
        methods = (*NUMERIC_METHODS, *CATEGORICAL_METHODS)
        self.member_labels: list[dict[str, str]] = []
        for member in group.members:
            for b, share in enumerate(member.shares):
                labels = {**base, key: member.name, names.BIN: str(b)}
                self.bin_labels.append(labels)
                ratio.append(ScalarPoint(labels, share))
            one = {**base, key: member.name}
            self.member_labels.append(one)
            self.method_labels.append({m: {**one, names.METHOD: m} for m in methods})
            self.quantile_labels.append([{**one, names.QUANTILE: _fmt(q)} for q in qs])
        self.ratio_points = tuple(ratio)
        self.members = group.members
        self.rows_points: tuple[Point, ...] = tuple(
            ScalarPoint(lb, float(m.reference_rows))
            for lb, m in zip(self.member_labels, group.members, strict=True)
        )
        self.missing_ratio_points: tuple[Point, ...] = tuple(
            ScalarPoint(lb, float(m.missing_share))
            for lb, m in zip(self.member_labels, group.members, strict=True)
        )

    def decision_points(self, view: _WindowView) -> tuple[tuple[Point, ...], ...]:
        """Detected flags, p-values, missing-share flags and p-values of a window."""
        detected: list[Point] = []
        pvalues: list[Point] = []
        for i, d in enumerate(view.decisions):
            if d is None:
                continue
            detected.append(ScalarPoint(self.member_labels[i], 1.0 if d.detected else 0.0))
            for method, p in d.pvalues.items():
                if not math.isnan(p):
                    pvalues.append(ScalarPoint(self.method_labels[i][method], p))
        m_detected: list[Point] = []
        m_pvalues: list[Point] = []
        for i, md in enumerate(view.missing):
            if md is None:
                continue
            m_detected.append(ScalarPoint(self.member_labels[i], 1.0 if md.detected else 0.0))
            m_pvalues.append(ScalarPoint(self.member_labels[i], md.test.pvalue))
        return tuple(detected), tuple(pvalues), tuple(m_detected), tuple(m_pvalues)

    def bin_points(self, cum: IntArray) -> tuple[Point, ...]:
        return tuple(map(ScalarPoint, self.bin_labels, cum.tolist()))

    def window_points(self, view: _WindowView) -> tuple[tuple[Point, ...], tuple[Point, ...]]:
        drift_points: list[Point] = []
        quant_points: list[Point] = []
        for i, scores in enumerate(view.scores):
            if scores is None:
                continue
            labels = self.method_labels[i]
            for method, value in scores.items():
                if not math.isnan(value):
                    drift_points.append(ScalarPoint(labels[method], value))
            live = view.quantiles.get(i)
            if live is not None:
                quant_points += map(ScalarPoint, self.quantile_labels[i], live.tolist())
        return tuple(drift_points), tuple(quant_points)


_FEATURE_SPECS = (
    names.FEATURE_BIN,
    names.FEATURE_REFERENCE_RATIO,
    names.FEATURE_DRIFT,
    names.FEATURE_QUANTILE,
)
_OUTPUT_SPECS = (
    names.PREDICTION_BIN,
    names.PREDICTION_REFERENCE_RATIO,
    names.PREDICTION_DRIFT,
    names.PREDICTION_QUANTILE,
)

_DECISION_SPECS = {
    names.FEATURE: (
        names.FEATURE_DRIFT_DETECTED,
        names.FEATURE_DRIFT_PVALUE,
        names.FEATURE_REFERENCE_ROWS,
    ),
    names.OUTPUT: (
        names.PREDICTION_DRIFT_DETECTED,
        names.PREDICTION_DRIFT_PVALUE,
        names.PREDICTION_REFERENCE_ROWS,
    ),
}


def _fmt(q: float) -> str:
    """Quantile label: ``0.05``, ``0.5``, ``0.95`` (shortest repr)."""
    return repr(float(q))


# --- vectorised helpers ----------------------------------------------------------------


def _select(numeric: FloatArray, cols: list[int]) -> FloatArray:
    """The numeric columns ``cols`` (-1: all NaN), without a copy when already in order."""
    if cols == list(range(numeric.shape[1])):
        return np.ascontiguousarray(numeric, dtype=np.float64)
    out = np.full((numeric.shape[0], len(cols)), np.nan)
    present = [c for c, j in enumerate(cols) if j >= 0]
    if present:
        out[:, present] = numeric[:, [cols[c] for c in present]]
    return out


def _numeric_bins(matrix: FloatArray, edges: FloatArray, valid: IntArray) -> IntArray:
    """Per column, counts in bins ``(-inf, e0], (e0, e1], ..., (e_last, inf)``.

    The bin of ``x`` is the number of edges below it: ``x > e_k`` is accumulated into a
    small integer per value (NaN compares False, so it lands in bin 0 and is taken out
    with ``valid``, the finite count), then one ``bincount`` over all columns. Columns
    with fewer edges are padded with +inf (their extra bins stay empty).
    """
    n_edges, d = edges.shape
    width = n_edges + 1
    out = np.zeros(d * width, dtype=np.int64)
    small = np.uint8 if n_edges < 255 else np.uint16
    rows = max(1, _CHUNK // max(d, 1))
    base = np.arange(d, dtype=np.intp) * width
    for start in range(0, matrix.shape[0], rows):
        chunk = matrix[start : start + rows]
        acc = np.zeros(chunk.shape, dtype=small)
        gt = np.empty(chunk.shape, dtype=bool)
        for k in range(n_edges):
            np.greater(chunk, edges[k], out=gt)
            np.add(acc, gt, out=acc, casting="unsafe")
        idx = acc.astype(np.intp)
        idx += base
        out += np.bincount(idx.ravel(), minlength=d * width)
    binned = out.reshape(d, width)
    binned[:, 0] -= matrix.shape[0] - np.asarray(valid, dtype=np.int64)
    return binned


def _add_categorical(
    group: _Group, i: int, values: ObjArray, counts: IntArray, slot: _GroupSlot
) -> None:
    member = group.members[i]
    cells = member.test_index(values)
    cells = cells[cells >= 0]
    n_cells = len(member.test_categories)
    start = group.test_offsets[i]
    if start >= 0 and slot.test_counts.size >= start + n_cells:
        slot.test_counts[start : start + n_cells] += np.bincount(cells, minlength=n_cells)
    idx = member.bins_of_test_cells(cells)
    counts[group.offsets[i] : group.offsets[i] + member.n_bins] += np.bincount(
        idx, minlength=member.n_bins
    )


def _count_missing(frame: FeatureFrame, cols: list[int], slot: _GroupSlot) -> None:
    """Per feature member: values seen (missing or valid) and missing values."""
    if slot.seen.size != len(cols) or frame.n_rows == 0:
        return
    idx = np.asarray(cols, dtype=np.intp)
    present = idx >= 0
    if not present.any():
        return
    use = idx[present]
    missing = frame.missing[:, use].sum(axis=0)
    slot.missing[present] += missing.astype(np.int64)
    # As modelmon_feature_observations_total: every value seen, missing, valid or invalid.
    slot.seen[present] += frame.n_rows


def _add(a: IntArray, b: IntArray) -> IntArray:
    """``a + b`` where one side may be empty (a state written before the field existed)."""
    if b.size == 0:
        return a
    if a.size == 0:
        return b.copy()
    return a + b


def _numeric_output(name: str, out: OutputFrame) -> FloatArray:
    nan = np.full(out.n_rows, np.nan)
    if name == PREDICTION:
        return out.values if out.values is not None else nan
    if name == CONFIDENCE:
        return out.confidence if out.confidence is not None else nan
    if out.probabilities is not None and out.classes is not None and name in out.classes:
        return np.asarray(out.probabilities[:, out.classes.index(name)], dtype=np.float64)
    return nan


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
