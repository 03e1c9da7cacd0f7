"""Out-of-range values, outliers per column and joint outlier rows, against a profile.

One vectorised pass per fold over the batch's feature matrix (see
:mod:`modelmon.outliers` for the definitions and the expected rates):

* ``modelmon_feature_out_of_range_total{feature,side}``: below the reference minimum
  (``low``) or above its maximum (``high``);
* ``modelmon_feature_outliers_total{feature}`` and
  ``modelmon_prediction_outliers_total{output}``: beyond the reference fences, with the
  reference share beyond them as ``..._reference_outlier_ratio`` gauges;
* ``modelmon_outlier_rows_total{method="mahalanobis"}`` out of
  ``modelmon_outlier_rows_checked_total``: rows whose squared Mahalanobis distance to the
  reference exceeds the chi-square cut-off (rows with a missing or invalid value among
  the tested features are not checked).

Missing and invalid values (NaN in the batch's numeric matrix) are in no count: they
have their own counters. Every label value comes from the profile.

>>> import numpy as np
>>> from modelmon.batch import Batch, FeatureFrame, RenderContext
>>> from modelmon.profile import ReferenceProfile
>>> rng = np.random.default_rng(0)
>>> profile = ReferenceProfile.from_data(rng.normal(size=(10_000, 2)), feature_names=["a", "b"])
>>> agg = OutlierAggregate.of(profile)
>>> x = np.array([[0.0, 0.0], [9.0, 0.0], [-9.0, 0.5]])
>>> no = np.zeros_like(x, bool)
>>> e = np.zeros(0)
>>> agg.fold(Batch(0.0, e, e.astype(np.int64), (), e, (), FeatureFrame(("a", "b"), x, no, no, {})))
>>> agg.out_of_range.tolist(), agg.feature_outliers.tolist(), agg.rows, agg.rows_checked
([[1, 1], [0, 0]], [2, 0], 2, 3)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import names
from ..batch import Batch, FeatureFrame, FloatArray, IntArray, OutputFrame, RenderContext
from ..outliers import FENCE_RULE, MAHALANOBIS, JointReference, read_outliers
from ..points import Family
from ..sketches.extremes import all_finite
from ..sketches.moments import column_reduce

# Private on purpose: the drift aggregate's mapping of output names to the batch's
# columns, so both aggregates read the same values.
from .drift_layout import _numeric_output
from .series_memo import SeriesMemo

_SIDES = ("low", "high")
FeatureSpec = tuple[str, float, float, float, float, float | None]
OutputSpec = tuple[str, float, float, float | None]
Cols = list[int] | slice  # columns of the frame: a slice views, a list copies
_BLOCK_ROWS = 4096


class OutlierAggregate:
    """Outlier counters of one monitor (built from its reference profile with :meth:`of`).

    Args:
        features: ``(name, minimum, maximum, fence low, fence high, reference ratio)``
            per numeric feature (ratio None: the profile did not count it).
        outputs: ``(name, fence low, fence high, reference ratio)`` per numeric output.
        joint: the Mahalanobis reference, or None.
    """

    def __init__(
        self,
        features: Iterable[FeatureSpec] = (),
        outputs: Iterable[OutputSpec] = (),
        joint: JointReference | None = None,
    ) -> None:
        self._configure(list(features), list(outputs), joint)

    def _configure(
        self,
        features: list[FeatureSpec],
        outputs: list[OutputSpec],
        joint: JointReference | None,
    ) -> None:
        self.feature_spec = features
        self.output_spec = outputs
        self.joint = joint
        self.names = tuple(f[0] for f in features)
        self._bounds = np.asarray([f[1:5] for f in features], dtype=np.float64).reshape(-1, 4)
        self._bounds_t = np.ascontiguousarray(self._bounds.T)  # (4, features): row per bound
        self.out_of_range: IntArray = np.zeros((len(features), 2), dtype=np.int64)
        self.feature_outliers: IntArray = np.zeros(len(features), dtype=np.int64)
        self.output_outliers: IntArray = np.zeros(len(outputs), dtype=np.int64)
        self.rows = 0
        self.rows_checked = 0
        self._cols: tuple[tuple[str, ...], list[int], Cols, Cols | None] | None = None
        self._memo = SeriesMemo()  # unchanged counts: the same points (see series_memo)

    @classmethod
    def of(cls, profile: Any, max_features: int | None = None) -> OutlierAggregate:
        """The aggregate of a :class:`~modelmon.profile.ReferenceProfile`."""
        features: list[FeatureSpec] = []
        for name, f in profile.features.items():
            fence = f.outlier_fence
            if f.kind != "numeric" or fence is None or f.min is None or f.max is None:
                continue
            if max_features is not None and len(features) >= max_features:
                break
            features.append((name, f.min, f.max, fence.low, fence.high, fence.ratio))
        outputs = [
            (name, o.outlier_fence.low, o.outlier_fence.high, o.outlier_fence.ratio)
            for name, o in profile.outputs.items()
            if o.kind == "numeric" and o.outlier_fence is not None
        ]
        section = getattr(profile, "outliers", None)
        return cls(features, outputs, section.joint if section is not None else None)

    # --- folding -------------------------------------------------------------------
    def fold(self, batch: Batch) -> None:
        frame = batch.features
        if frame is not None and frame.n_rows:
            self._fold_features(frame)
        out = batch.outputs
        if out is not None and out.n_rows and self.output_spec:
            self._fold_outputs(out)

    def _columns(self, frame: FeatureFrame) -> tuple[list[int], Cols, Cols | None]:
        """Per frame layout (cached): our features present, their columns, joint columns."""
        if self._cols is None or self._cols[0] != frame.names:
            index = {n: j for j, n in enumerate(frame.names)}
            mine = [i for i, n in enumerate(self.names) if n in index]
            cols = [index[self.names[i]] for i in mine]
            joint = None
            if self.joint is not None and all(n in index for n in self.joint.features):
                joint = [index[n] for n in self.joint.features]
            joint_cols = None if joint is None else _as_slice(joint)
            self._cols = (frame.names, mine, _as_slice(cols), joint_cols)
        return self._cols[1], self._cols[2], self._cols[3]

    def _fold_features(self, frame: FeatureFrame) -> None:
        # Blocks of rows that stay in cache (a large batch's column sums are twice slower).
        for start in range(0, frame.n_rows, _BLOCK_ROWS):
            self._fold_block(frame, slice(start, start + _BLOCK_ROWS))

    def _fold_block(self, frame: FeatureFrame, block: slice) -> None:
        mine, cols, joint_cols = self._columns(frame)
        if mine:
            x = frame.numeric[block, cols]  # NaN (missing, invalid) compares False everywhere
            b = self._bounds_t[:, mine]
            low = np.less(x, b[0])
            high = np.greater(x, b[1])
            self.out_of_range[mine, 0] += _column_counts(low)
            self.out_of_range[mine, 1] += _column_counts(high)
            outside = np.less(x, b[2], out=low)
            outside |= np.greater(x, b[3], out=high)
            self.feature_outliers[mine] += _column_counts(outside)
        if joint_cols is not None and self.joint is not None:
            rows = frame.numeric[block, joint_cols]
            if not all_finite(rows):
                rows = rows[np.isfinite(rows).all(axis=1)]
            if rows.shape[0]:
                self.rows_checked += int(rows.shape[0])
                self.rows += int(np.count_nonzero(self.joint.outliers(rows)))

    def _fold_outputs(self, out: OutputFrame) -> None:
        for j, (name, low, high, _) in enumerate(self.output_spec):
            values: FloatArray = _numeric_output(name, out)
            self.output_outliers[j] += int(np.count_nonzero((values < low) | (values > high)))

    # --- rendering -----------------------------------------------------------------
    def families(self, ctx: RenderContext) -> Iterable[Family]:
        ns, labels, memo = ctx.namespace, ctx.labels, self._memo
        if self.names:
            sided = self.out_of_range.reshape(-1)
            yield self._counts(ctx, names.FEATURE_OUT_OF_RANGE, self._sided_labels, sided)
            feature_labels = self._feature_labels
            yield self._counts(ctx, names.FEATURE_OUTLIERS, feature_labels, self.feature_outliers)
            yield from self._ratios(ctx, names.FEATURE_REFERENCE_OUTLIER_RATIO, names.FEATURE)
        if self.output_spec:
            outs = self.output_outliers
            yield self._counts(ctx, names.PREDICTION_OUTLIERS, self._output_labels, outs)
            yield from self._ratios(ctx, names.PREDICTION_REFERENCE_OUTLIER_RATIO, names.OUTPUT)
        if self.joint is not None:
            joint = self.joint
            values = (float(self.rows), float(self.rows_checked), joint.expected_ratio)
            specs = (
                names.OUTLIER_ROWS,
                names.OUTLIER_ROWS_CHECKED,
                names.OUTLIER_ROWS_REFERENCE_RATIO,
                names.OUTLIER_ROWS_REFERENCE_ROWS,
            )
            for spec, value in zip(specs, (*values, float(joint.count)), strict=True):
                one = memo.points(spec.name, labels, _method_labels, np.array([value]))
                yield Family(spec, ns, one)

    def _counts(
        self,
        ctx: RenderContext,
        spec: names.MetricSpec,
        label_sets: Callable[[Mapping[str, str]], list[dict[str, str]]],
        counts: npt.NDArray[Any],
    ) -> Family:
        """One counter family, a point per label set (unchanged points reused by the memo)."""
        values = counts.astype(np.float64)
        points = self._memo.points(spec.name, ctx.labels, label_sets, values)
        return Family(spec, ctx.namespace, points)

    def _sided_labels(self, base: Mapping[str, str]) -> list[dict[str, str]]:
        return [{**base, names.FEATURE: n, names.SIDE: side} for n in self.names for side in _SIDES]

    def _feature_labels(self, base: Mapping[str, str]) -> list[dict[str, str]]:
        return [{**base, names.FEATURE: n} for n in self.names]

    def _output_labels(self, base: Mapping[str, str]) -> list[dict[str, str]]:
        return [{**base, names.OUTPUT: spec[0]} for spec in self.output_spec]

    def _ratios(self, ctx: RenderContext, spec: names.MetricSpec, key: str) -> Iterable[Family]:
        """The reference ratios that the profile counted (none for older profiles)."""
        pairs = (
            [(f[0], f[5]) for f in self.feature_spec]
            if key == names.FEATURE
            else [(o[0], o[3]) for o in self.output_spec]
        )
        counted = [(n, float(r)) for n, r in pairs if r is not None]
        if counted:

            def make(base: Mapping[str, str]) -> list[dict[str, str]]:
                return [{**base, key: n} for n, _ in counted]

            ratios = np.array([r for _, r in counted])
            points = self._memo.points(spec.name, ctx.labels, make, ratios)
            yield Family(spec, ctx.namespace, points)

    # --- merging and state ---------------------------------------------------------
    def fresh(self) -> OutlierAggregate:
        """An empty aggregate of the same profile (a forked worker starts from it)."""
        return OutlierAggregate(self.feature_spec, self.output_spec, self.joint)

    def merge(self, other: OutlierAggregate) -> None:
        """Add ``other`` (built from the same profile) into this aggregate."""
        if other.names != self.names or len(other.output_spec) != len(self.output_spec):
            raise ValueError("cannot merge outlier aggregates of different profiles")
        self.out_of_range += other.out_of_range
        self.feature_outliers += other.feature_outliers
        self.output_outliers += other.output_outliers
        self.rows += other.rows
        self.rows_checked += other.rows_checked

    def state(self) -> dict[str, Any]:
        joint = self.joint
        return {
            "features": [list(f) for f in self.feature_spec],
            "outputs": [list(o) for o in self.output_spec],
            "joint": None if joint is None else joint.to_json(),
            "out_of_range": self.out_of_range.copy(),
            "feature_outliers": self.feature_outliers.copy(),
            "output_outliers": self.output_outliers.copy(),
            "rows": self.rows,
            "rows_checked": self.rows_checked,
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        features = [
            (str(f[0]), *(float(v) for v in f[1:5]), None if f[5] is None else float(f[5]))
            for f in state["features"]
        ]
        outputs = [
            (str(o[0]), float(o[1]), float(o[2]), None if o[3] is None else float(o[3]))
            for o in state["outputs"]
        ]
        joint = None
        if state["joint"] is not None:
            raw = state["joint"]
            section = {"fence_rule": list(FENCE_RULE), "joint": raw}
            joint = read_outliers(section, set(raw["features"])).joint
        self._configure(features, outputs, joint)  # type: ignore[arg-type]
        self.out_of_range = np.asarray(state["out_of_range"], dtype=np.int64).reshape(-1, 2).copy()
        self.feature_outliers = np.asarray(state["feature_outliers"], dtype=np.int64).copy()
        self.output_outliers = np.asarray(state["output_outliers"], dtype=np.int64).copy()
        self.rows = int(state["rows"])
        self.rows_checked = int(state["rows_checked"])


def _column_counts(mask: npt.NDArray[np.bool_]) -> IntArray:
    """True values per column of a C-ordered ``(rows, columns)`` mask of at most
    :data:`_BLOCK_ROWS` rows. ``column_reduce``'s first stage sums at most
    ``rows / 64`` values per cell (16 bits hold them, and sum faster than 64); its second
    stage sums in 64 bits."""
    counts = column_reduce(np.add, mask.view(np.uint8), dtype=np.uint16)
    return np.asarray(counts, dtype=np.int64)


def _as_slice(cols: list[int]) -> Cols:
    """Consecutive columns as a slice: the frame's columns are then viewed, not copied."""
    if cols and cols == list(range(cols[0], cols[0] + len(cols))):
        return slice(cols[0], cols[0] + len(cols))
    return cols


def _method_labels(base: Mapping[str, str]) -> list[dict[str, str]]:
    return [{**base, names.METHOD: MAHALANOBIS}]
