"""A drift window's view (scores, quantiles, decisions) equals the plain per-member sums.

``_compute_view`` reads every member of a group at once from the occupied cells of the
window's sketches (merged searches, complex-keyed merges, layouts kept between reads).
Here each member is read on its own, from its dense sketch row and its bins, with the
one-member functions: the numbers must agree to rounding.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from modelmon import drift
from modelmon import drift_decision as decision
from modelmon.aggregates.drift import DriftAggregate
from modelmon.aggregates.drift_layout import _Group, _GroupSlot
from modelmon.aggregates.drift_window import _compute_view, _WindowView
from modelmon.batch import Batch, FeatureFrame
from modelmon.profile import ReferenceProfile
from modelmon.sketches.extremes import Extremes
from modelmon.sketches.moments import Moments

from ._drift_oracle import ks_statistic

SCALE = np.array([1.0, 3.0, 0.01, 50.0, 1.0, 1.0, 1.0, 1.0])
SHIFT = np.array([0.0, 100.0, 0.0, 1e4, 0.0, 0.0, 5.0, 0.0])


def _frame(
    x: np.ndarray, names: list[str], cats: dict[int, np.ndarray] | None = None
) -> FeatureFrame:
    missing = np.isnan(x)
    for j, v in (cats or {}).items():
        missing[:, j] = np.array([c is None for c in v])
    return FeatureFrame(tuple(names), x, missing, np.zeros_like(missing), cats or {})


def _fold(agg: DriftAggregate, frame: FeatureFrame, now: float) -> None:
    e = np.zeros(0)
    agg.fold(Batch(now, e, np.zeros(0, dtype=np.int64), (), e, (), frame))


def _numeric(
    seed: int, min_samples: int, old_format: bool = False, empty: bool = True
) -> DriftAggregate:
    """Eight numeric features: heavy tails, rounding, missing values, an empty column."""
    rng = np.random.default_rng(seed)
    names = [f"f{j}" for j in range(8)]
    ref = rng.normal(size=(4000, 8)) * SCALE + SHIFT
    ref[:, 6] = rng.lognormal(0, 2, 4000)
    ref[:, 7] = rng.standard_t(2, 4000)
    profile = ReferenceProfile.from_data(ref, feature_names=names)
    if old_format:  # a profile written without reference sketches
        doc = profile.to_json()
        doc["format_version"] = 1
        for member in list(doc["features"].values())[::2]:
            del member["sketch_values"], member["sketch_counts"]
        profile = ReferenceProfile.loads(json.dumps(doc))
    agg = DriftAggregate(profile, min_samples=min_samples)
    for k in range(4):
        cur = rng.normal(0.2 * k, 1.2, size=(300, 8)) * SCALE + SHIFT
        cur[:, 4] = np.round(cur[:, 4])  # exact zeros, few cells
        if empty:
            cur[:, 5] = np.nan  # no value at all
        cur[:100, 6] = rng.lognormal(3, 2, 100)  # a wide grid
        cur[rng.random(300) < 0.3, 3] = np.nan
        cur[:, 7] = rng.standard_t(2, 300) * (1 + k)
        _fold(agg, _frame(cur, names), 10.0 + k)
    return agg


def _categorical(seed: int) -> DriftAggregate:
    rng = np.random.default_rng(seed)
    rows = [
        {"x": float(a), "c": str(c), "y": float(b)}
        for a, b, c in zip(
            rng.normal(size=3000),
            rng.normal(size=3000),
            rng.choice(["a", "b", "c", "d"], 3000, p=[0.4, 0.3, 0.2, 0.1]),
            strict=True,
        )
    ]
    profile = ReferenceProfile.from_data(rows)
    agg = DriftAggregate(profile, min_samples=50)
    names = list(profile.features)
    for k in range(3):
        x = rng.normal(0.3, 1.0, size=(400, len(names)))
        cats = {}
        for j, name in enumerate(names):
            if profile.features[name].kind == "categorical":
                cats[j] = rng.choice(np.array(["a", "b", "c", "e", None], dtype=object), 400)
                x[:, j] = np.nan
        _fold(agg, _frame(x, names, cats), 20.0 + k)
    return agg


def _plain_wasserstein(group: _Group, slot: _GroupSlot, i: int) -> float:
    """W1 of the live sketch row against the reference sketch, or the quantile summary."""
    c = group.column_of[i]
    counts, center = slot.sketches.counts[c], group.centers[c]
    lo, hi = slot.extremes.min[c], slot.extremes.max[c]
    ref = group.ref_sketches[c]
    if ref is None:
        bounds = (np.array([lo - center]), np.array([hi - center]))
        rows = np.array([c])
        return float(drift.wasserstein_columns(group.reference, slot.sketches, rows, bounds)[0])
    full = counts > 0
    live = np.clip(slot.sketches.values()[c][full] + center, lo, hi)
    weights = counts[full] / counts.sum()
    w = drift.wasserstein_between(ref[0], ref[1], live, weights)
    return w / max(group.members[i].std or 0.0, drift.STD_FLOOR)


def _check(group: _Group, slot: _GroupSlot, view: _WindowView, agg: DriftAggregate) -> int:
    cfg = agg.decision_config
    checked = 0
    for i, member in enumerate(group.members):
        bins = group.bins(slot.counts, i)
        if bins.sum() < agg.min_samples:
            assert view.scores[i] is None and view.decisions[i] is None
            continue
        got = view.scores[i]
        assert got is not None
        assert got["psi"] == pytest.approx(drift.psi(member.shares, bins), abs=1e-12)
        assert got["js"] == pytest.approx(drift.js_distance(member.shares, bins), abs=1e-12)
        pvalues = {}
        cells, shares = group.test_cells(slot, i)
        test = decision.binned_test(cells, shares, member.reference_rows)
        pvalues["chi2"] = test.pvalue
        c = group.column_of[i]
        if c < 0:
            assert got["chi2"] == pytest.approx(drift.chi2(member.shares, bins), rel=1e-12)
        else:
            one = slot.sketches.column(c)
            ks = ks_statistic(member.quantiles, one, shift=group.centers[c])
            assert got["ks"] == pytest.approx(ks, abs=1e-12)
            w = _plain_wasserstein(group, slot, i)
            assert got["wasserstein"] == pytest.approx(w, rel=1e-12, abs=1e-300)
            q = slot.sketches.quantiles(agg.quantiles)[c] + group.centers[c]
            q = np.clip(q, slot.extremes.min[c], slot.extremes.max[c])
            np.testing.assert_array_equal(view.quantiles[i], q)
            pvalues["ks"] = decision.ks_pvalue(got["ks"], float(bins.sum()), member.reference_rows)
        made = view.decisions[i]
        assert made is not None
        assert made.pvalues == pytest.approx(pvalues, rel=1e-10, abs=1e-12)
        assert (made.test.df, made.test.cells) == (test.df, test.cells)
        assert made.test.statistic == pytest.approx(test.statistic, rel=1e-10, abs=1e-12)
        assert made.detected == decision.flagged(
            test, cfg.z_critical(len(group.members)), cfg.psi_floor
        )
        checked += 1
    for i, member in enumerate(group.members):
        if slot.seen.size and slot.seen[i] >= agg.min_samples:
            t = decision.missing_test(
                float(slot.missing[i]), float(slot.seen[i]), member.missing_share,
                member.reference_total,
            )  # fmt: skip
            assert view.missing[i] is not None and view.missing[i].test == t
    return checked


@pytest.mark.parametrize(
    "make",
    [
        lambda: _numeric(0, 100),
        lambda: _numeric(7, 100, empty=False),  # every column read: no selection
        lambda: _numeric(1, 1000),  # a member below min_samples (the missing values)
        lambda: _numeric(2, 10, old_format=True),  # half the members without a sketch
        lambda: _categorical(3),
    ],
)
def test_view_equals_the_plain_member_by_member_sums(make: object) -> None:
    agg = make()  # type: ignore[operator]
    merged = agg.window.snapshot(agg.folded_at)
    checked = 0
    for group, slot in ((agg.features, merged.features), (agg.outputs, merged.outputs)):
        for _ in range(2):  # the second read uses what the first kept per layout
            view = _compute_view(group, slot, agg.min_samples, agg.quantiles, agg.decision_config)
            checked += _check(group, slot, view, agg)
    assert checked >= 4


def test_view_after_the_layout_moves_is_computed_on_the_new_layout() -> None:
    agg = _numeric(4, 100)
    first = agg.window.snapshot(agg.folded_at)
    _compute_view(agg.features, first.features, 100, agg.quantiles, agg.decision_config)
    rng = np.random.default_rng(5)
    far = rng.normal(size=(200, 8)) * SCALE * 1e3 + SHIFT  # new extremes: a new layout
    _fold(agg, _frame(far, [f"f{j}" for j in range(8)]), agg.folded_at or 0.0)
    merged = agg.window.snapshot(agg.folded_at)
    moved, before = merged.features.sketches, first.features.sketches
    assert moved.span != before.span or not np.array_equal(moved.lo, before.lo)
    view = _compute_view(agg.features, merged.features, 100, agg.quantiles, agg.decision_config)
    assert _check(agg.features, merged.features, view, agg) >= 4


def test_binned_tests_without_pooling_equal_the_one_member_test() -> None:
    """Windows where every cell expects enough counts (no pooling at all, a short path)."""
    rng = np.random.default_rng(6)
    shares = [rng.dirichlet(np.full(k, 5.0)) for k in (3, 10, 7, 10)]
    counts = [rng.multinomial(20_000, s) for s in shares]
    got = decision.binned_tests(counts, shares, [5000.0, 1e6, 300.0, 5000.0])
    for c, s, n, test in zip(counts, shares, [5000.0, 1e6, 300.0, 5000.0], got, strict=True):
        want = decision.binned_test(c, s, n)
        assert (test.df, test.cells) == (want.df, want.cells)
        assert test.statistic == pytest.approx(want.statistic, rel=1e-10)
        assert test.psi == pytest.approx(want.psi, rel=1e-10, abs=1e-15)


@pytest.mark.parametrize("seed", [0, 1])
def test_extremes_equal_the_moments_count_min_max(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(40_000, 5)) * [1.0, 1e6, 1e-6, 1.0, 1.0]
    x[rng.random(x.shape) < 0.05] = np.nan
    x[3, 1], x[7, 2], x[:, 4] = np.inf, -np.inf, np.nan  # skipped; a column of nothing
    a, b = Extremes(5), Extremes(5)
    m = Moments(5)
    added = a.add(x[:25_000])
    b.add(x[25_000:])
    a.merge(b)
    m.add(x)
    np.testing.assert_array_equal(added, np.isfinite(x[:25_000]).sum(axis=0))
    np.testing.assert_array_equal(a.count, m.count)
    np.testing.assert_array_equal(a.min, m.min)
    np.testing.assert_array_equal(a.max, m.max)
    loaded = Extremes.from_state(m.state())  # a slot saved with Moments
    np.testing.assert_array_equal(loaded.min, m.min)
    again = Extremes.from_state(a.state())
    np.testing.assert_array_equal(again.max, a.max)
    assert math.isnan(float(again.min[4]))
