"""The per-value work of a fold, vectorised (issue 15): same counts as the plain ways.

* categorical members counted in one pass over all their columns (``CategoryCodes``)
  equal the member-by-member lookups, with unknown, duplicate and missing values;
* Mahalanobis distances in blocks sized for a single-threaded BLAS equal a per-row
  computation, at any width;
* the outlier counters of a wide frame with NaN and inf equal numpy's;
* segment codes from a categorical column as before (:meth:`Segmenter.code` per value);
* parts are cut by values (rows x features), and the counts stay exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from modelmon import fold_parts
from modelmon.aggregates import drift_categories
from modelmon.aggregates import outliers as outlier_module
from modelmon.aggregates.drift import DriftAggregate, _batch
from modelmon.aggregates.outliers import OutlierAggregate
from modelmon.batch import Batch, FeatureFrame
from modelmon.monitor import Monitor
from modelmon.outliers import _product_rows, joint_from_data
from modelmon.profile import ReferenceProfile
from modelmon.segments import MISSING_CODE, OTHER_CODE, Segmenter

NOW = 1_000.0


def _categorical_case(seed: int) -> tuple[ReferenceProfile, FeatureFrame]:
    rng = np.random.default_rng(seed)
    names = ["x", "c0", "c1", "c2"]
    ref_rows = [
        {
            "x": float(rng.normal()),
            "c0": f"a{rng.integers(0, 30)}",  # more categories than max_categories
            "c1": f"b{rng.integers(0, 4)}",
            "c2": f"a{rng.integers(0, 6)}",  # shares values with c0
        }
        for _ in range(3000)
    ]
    profile = ReferenceProfile.from_data(
        ref_rows, feature_names=names, categorical=["c0", "c1", "c2"], max_categories=8
    )
    n = 5000
    cats = {}
    for j, (prefix, k) in enumerate((("a", 40), ("b", 6), ("a", 9)), start=1):
        col = np.array([f"{prefix}{v}" for v in rng.integers(0, k, n)], dtype=object)
        col[rng.random(n) < 0.05] = None  # missing
        col[rng.random(n) < 0.02] = "never-seen"
        cats[j] = col
    numeric = np.full((n, 4), np.nan)
    numeric[:, 0] = rng.normal(size=n)
    missing = np.zeros((n, 4), dtype=bool)
    for j, col in cats.items():
        missing[:, j] = [v is None for v in col]
    return profile, FeatureFrame(tuple(names), numeric, missing, np.zeros_like(missing), cats)


def _fold(profile: ReferenceProfile, frame: FeatureFrame) -> DriftAggregate:
    agg = DriftAggregate(profile, min_samples=10)
    agg.fold(_batch(frame, NOW))
    return agg


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_categorical_columns_in_one_pass_count_as_member_by_member(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile, frame = _categorical_case(seed)
    one_pass = _fold(profile, frame)
    assert one_pass.features.category_codes is not None
    monkeypatch.setattr(drift_categories, "MAX_TABLE_CELLS", 0)  # no table: member by member
    # an equal profile of its own: layouts (and their tables) are shared per profile object
    by_member = _fold(_categorical_case(seed)[0], frame)
    assert by_member.features.category_codes is None
    assert one_pass.cum_features.tolist() == by_member.cum_features.tolist()
    slot_a = one_pass.window.current(NOW).features
    slot_b = by_member.window.current(NOW).features
    assert slot_a.test_counts.tolist() == slot_b.test_counts.tolist()
    assert slot_a.missing.tolist() == slot_b.missing.tolist()
    # And both equal counting each value with the profile's own lookup.
    group = one_pass.features
    for i in group.categorical:
        member = group.members[i]
        values = frame.categorical[i]
        cells = member.test_index(values)  # the checked path (no text=True)
        expected = np.bincount(cells[cells >= 0], minlength=len(member.test_categories))
        start = group.test_offsets[i]
        got = slot_a.test_counts[start : start + len(member.test_categories)]
        assert got.tolist() == expected.tolist()
        assert int(got.sum()) == sum(v is not None for v in values)


def test_an_old_state_without_test_counts_still_counts_bins() -> None:
    profile, frame = _categorical_case(3)
    fresh = _fold(profile, frame)
    agg = DriftAggregate(profile, min_samples=10)
    slot = agg.window.current(NOW)
    slot.features.test_counts = np.zeros(0, dtype=np.int64)  # as loaded from before 0.2
    agg.fold(_batch(frame, NOW))
    assert agg.cum_features.tolist() == fresh.cum_features.tolist()
    assert slot.features.test_counts.size == 0


@pytest.mark.parametrize("d", [3, 20, 50])
def test_mahalanobis_distances_in_blocks_equal_a_row_by_row_computation(d: int) -> None:
    rng = np.random.default_rng(d)
    mix = rng.normal(size=(d, d))
    ref = rng.normal(size=(4000, d)) @ mix
    joint = joint_from_data([f"f{i}" for i in range(d)], ref)
    assert joint is not None
    live = rng.normal(size=(3000, d)) @ mix * 1.3
    got = joint.distances(live)
    mean, w = joint._whitening
    expected = np.array([float(np.sum((w @ (row - mean)) ** 2)) for row in live])
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    assert 16 <= _product_rows(d) * d * d <= max(65536 * 4, 16 * d * d)


def test_outlier_counters_of_a_wide_frame_equal_numpy() -> None:
    rng = np.random.default_rng(7)
    d = 60
    names = [f"f{i}" for i in range(d)]
    profile = ReferenceProfile.from_data(rng.normal(size=(3000, d)), feature_names=names)
    agg = OutlierAggregate.of(profile)
    assert agg is not None
    live = rng.standard_t(3, size=(9000, d))
    live[rng.random(live.shape) < 0.01] = np.nan
    live[5, 3] = np.inf
    frame = FeatureFrame(tuple(names), live, np.isnan(live), np.zeros_like(live, bool), {})
    agg.fold(_batch(frame, NOW))
    for i, name in enumerate(names):
        f = profile.features[name]
        fence = f.outlier_fence
        assert fence is not None
        x = live[:, i]
        assert agg.out_of_range[i].tolist() == [int(np.sum(x < f.min)), int(np.sum(x > f.max))]
        assert agg.feature_outliers[i] == int(np.sum((x < fence.low) | (x > fence.high)))
    assert agg.joint is not None  # the first MAX_JOINT_FEATURES features
    tested = [names.index(n) for n in agg.joint.features]
    complete = live[:, tested][np.isfinite(live[:, tested]).all(axis=1)]
    assert agg.rows_checked == complete.shape[0] < live.shape[0]
    assert agg.rows == int(np.count_nonzero(agg.joint.outliers(complete)))


def test_segment_codes_of_a_categorical_column_equal_code_per_value() -> None:
    seg = Segmenter("c", ["red", "green", "blue"])
    values: list[Any] = ["red", None, "blue", "teal", "green", "red", None, ""]
    frame = FeatureFrame(
        ("x", "c"),
        np.zeros((len(values), 2)),
        np.zeros((len(values), 2), bool),
        np.zeros((len(values), 2), bool),
        {1: np.array(values, dtype=object)},
    )
    codes = seg.codes(frame, len(values)).tolist()
    # As code() for every value but "" (a column's empty string is a value: pooled).
    assert codes[:-1] == [seg.code(v) for v in values[:-1]]
    assert codes[-1] == seg.code("teal") == OTHER_CODE
    assert codes[1] == MISSING_CODE and len(set(codes)) == 5


class _Widths:
    """An aggregate recording each part's rows x features."""

    def __init__(self) -> None:
        self.values: list[int] = []

    def fold(self, batch: Batch) -> None:
        frame = batch.features
        if frame is not None:
            self.values.append(frame.n_rows * len(frame.names))


@pytest.mark.parametrize("width", [4, 50, 300])
def test_parts_are_cut_by_values_and_counts_stay_exact(width: int) -> None:
    names = [f"f{i}" for i in range(width)]  # the width is known from the first fold on
    mon = Monitor(
        f"parts-{width}",
        "1",
        registry=False,
        buffer_size=100_000,
        strict=True,
        feature_names=names,
        max_features=width,
    )
    probe = _Widths()
    mon.aggregates["probe"] = probe  # type: ignore[assignment]
    rows = 10_000
    x = np.random.default_rng(width).normal(size=(rows, width))
    for start in range(0, rows, 500):
        mon.observe(x[start : start + 500], np.zeros(500))
    mon.fold(NOW)
    cap = max(fold_parts.MAX_PART_VALUES, fold_parts.MIN_PART_ROWS * width)
    assert sum(probe.values) == rows * width
    assert max(probe.values) <= cap
    assert mon.traffic.requests == rows // 500
    assert mon.traffic.predictions == rows
    if width * fold_parts.MAX_PART_ROWS > fold_parts.MAX_PART_VALUES:
        assert len(probe.values) >= rows * width // fold_parts.MAX_PART_VALUES
    mon.close()


def test_outlier_counts_of_full_blocks_are_exact() -> None:
    """Every value of every row beyond its bounds, over several full blocks: each count
    equals the rows (16-bit partial column sums, then 64-bit totals)."""
    rng = np.random.default_rng(3)
    profile = ReferenceProfile.from_data(rng.normal(size=(2000, 3)), feature_names=["a", "b", "c"])
    agg = OutlierAggregate.of(profile)
    n = 2 * outlier_module._BLOCK_ROWS + 5
    x = np.full((n, 3), 1e6)
    x[: outlier_module._BLOCK_ROWS, 1] = -1e6  # column b below its bounds in a full block
    no = np.zeros_like(x, bool)
    e = np.zeros(0)
    agg.fold(
        Batch(0.0, e, e.astype(np.int64), (), e, (), FeatureFrame(("a", "b", "c"), x, no, no, {}))
    )
    block = outlier_module._BLOCK_ROWS
    assert agg.feature_outliers.tolist() == [n, n, n]
    assert agg.out_of_range.tolist() == [[0, n], [block, n - block], [0, n]]
