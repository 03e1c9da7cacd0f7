"""A layout given up front (a new drift window slot's) changes where counts sit, never
what is counted: the same values give the same buckets, quantiles, drift statistics and
exported series with it as without it."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from modelmon.aggregates import drift_slot_layout
from modelmon.aggregates.drift import DriftAggregate
from modelmon.batch import Batch, FeatureFrame, OutputFrame, RenderContext
from modelmon.points import ScalarPoint
from modelmon.profile import ReferenceProfile
from modelmon.sketches import columns
from modelmon.sketches.columns import EMPTY, LogSketchColumns

QS = np.linspace(0.0, 1.0, 101)


def _plain_buckets(
    x: np.ndarray, shift: np.ndarray, scale: int, max_buckets: int
) -> list[Counter[tuple[int, int]]]:
    """Per column: (sign, key) -> count of the finite ``x - shift``, keys by the mapping's
    formula, the lowest keys collapsed ``max_buckets`` below the column's top key."""
    out = []
    for j in range(x.shape[1]):
        v = x[:, j] - shift[j]
        v = v[np.isfinite(v)]
        nz = v[v != 0.0]
        keys = np.ceil(np.log2(np.abs(nz)) * 2.0**scale).astype(np.int64)
        if keys.size:
            keys = np.maximum(keys, keys.max() - (max_buckets - 1))
        c = Counter(zip(np.sign(nz).astype(int).tolist(), keys.tolist(), strict=True))
        if (v == 0.0).any():
            c[(0, 0)] = int((v == 0.0).sum())
        out.append(c)
    return out


def _buckets(s: LogSketchColumns) -> list[Counter[tuple[int, int]]]:
    """Per column: (sign, key) -> count read off the documented grid layout."""
    out = []
    span = s.span
    for j in range(s.width):
        c: Counter[tuple[int, int]] = Counter()
        for cell in np.flatnonzero(s.counts[j]).tolist():
            n = int(s.counts[j, cell])
            if cell == span:
                c[(0, 0)] = n
            elif cell > span:
                c[(1, int(s.lo[j]) + cell - span - 1)] = n
            else:
                c[(-1, int(s.lo[j]) + span - 1 - cell)] = n
        out.append(c)
    return out


def _data(rng: np.random.Generator, d: int) -> np.ndarray:
    x = rng.normal(rng.normal(size=d), rng.uniform(0.01, 10.0, d), size=(6000, d))
    x[::17, 0] = np.nan
    x[::19, 1] = np.inf
    x[:, 2] = np.round(x[:, 2])  # exact zeros after the shift
    x[:, 3] = rng.lognormal(0.0, 4.0, 6000)  # spans far more than the layout
    x[:2000, 4] = np.nan  # a column that starts with nothing
    return x


@pytest.mark.parametrize("max_buckets", [128, 4096])
@pytest.mark.parametrize("layout", ["exact", "narrow", "high", "low", "partial", "wide"])
def test_a_layout_up_front_counts_the_same_buckets(layout: str, max_buckets: int) -> None:
    rng = np.random.default_rng(max_buckets + len(layout))
    d = 12
    x = _data(rng, d)
    shift = np.nanmedian(np.where(np.isfinite(x), x, np.nan), axis=0)
    shift[2] = 0.0
    plain = LogSketchColumns(d, 0.01, max_buckets=max_buckets)
    laid = LogSketchColumns(d, 0.01, max_buckets=max_buckets)
    laid.add(np.zeros((3, d)))  # zeros before the layout move with it
    plain.add(np.zeros((3, d)))
    first = LogSketchColumns(d, 0.01, max_buckets=max_buckets)
    first.add(x[:3000], shift)
    low, top = first.occupied_keys()
    if layout == "narrow":
        low = (low + top) // 2
    elif layout == "high":
        low, top = low + 400, top + 400
    elif layout == "low":
        low, top = low - 900, top - 300
    elif layout == "partial":
        low[::2] = EMPTY
    elif layout == "wide":
        low = top - 10_000
    laid.lay_out(low, top)
    assert laid.span > 0
    for part in np.array_split(x, 41):
        plain.add(part, shift)
        laid.add(part, shift)
    expected = _plain_buckets(x, shift, plain.scale, max_buckets)
    for c in expected:
        c[(0, 0)] += 3  # the zeros added first
    assert _buckets(laid) == _buckets(plain)
    assert _buckets(plain) == expected
    np.testing.assert_array_equal(laid.top, plain.top)
    np.testing.assert_array_equal(laid.count, plain.count)
    np.testing.assert_array_equal(laid.quantiles(QS), plain.quantiles(QS))
    for j in range(d):
        np.testing.assert_array_equal(laid.column(j).quantiles(QS), plain.column(j).quantiles(QS))


def test_a_sketch_holding_values_keeps_its_layout() -> None:
    s = LogSketchColumns(2)
    s.add(np.array([[1.0, 2.0]]))
    before = (s.lo.copy(), s.span)
    s.lay_out(np.array([-500, -500]), np.array([100, 100]))
    assert (s.lo.tolist(), s.span) == (before[0].tolist(), before[1])


def _profile(rng: np.random.Generator, d: int) -> tuple[ReferenceProfile, np.ndarray]:
    loc = rng.normal(size=d) * 10.0
    x = rng.normal(loc, 1.0, size=(4000, d))
    x[:, 1] = np.round(x[:, 1])  # integer values: zeros after the shift
    rows = [{f"f{j}": float(v) for j, v in enumerate(r)} for r in x]
    preds = rng.normal(size=4000)
    return ReferenceProfile.from_data(rows, predictions=preds, created_at=0.0), loc


def _batch(now: float, x: np.ndarray, preds: np.ndarray) -> Batch:
    names_ = tuple(f"f{j}" for j in range(x.shape[1]))
    missing = np.isnan(x)
    frame = FeatureFrame(names_, x, missing, np.zeros_like(missing), {})
    out = OutputFrame(preds.size, values=preds)
    e = np.zeros(0)
    return Batch(now, e, np.zeros(0, dtype=np.int64), (), e, (), frame, out)


def _readings(agg: DriftAggregate, now: float) -> tuple[object, ...]:
    ctx = RenderContext("modelmon", {"model": "m", "version": "1"}, now)
    points = sorted(
        (fam.name, tuple(sorted(p.labels.items())), repr(p.value))
        for fam in agg.families(ctx)
        for p in fam.points
        if isinstance(p, ScalarPoint)
    )
    return (repr(agg.drift_scores(now)), repr(agg.decisions(now)), points)


def _run(profile: ReferenceProfile, loc: np.ndarray, seed: int) -> tuple[list[object], int]:
    rng = np.random.default_rng(seed)
    d = loc.size
    agg = DriftAggregate(profile, window_seconds=40.0, slots=4, min_samples=50)
    grown = 0
    original = LogSketchColumns._grow

    def counting(self: LogSketchColumns, kmin: np.ndarray, kmax: np.ndarray) -> None:
        nonlocal grown
        grown += 1
        original(self, kmin, kmax)

    readings: list[object] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(LogSketchColumns, "_grow", counting)
        for step in range(60):
            now = 3.0 * step  # 10 s slots: a new slot every few batches, old ones expire
            scale = np.where(np.arange(d) == 2, 0.05, 1.0)  # f2 drifts narrow
            shift = np.where(np.arange(d) == 3, 0.5 * (step > 30), 0.0)  # f3 shifts later
            x = rng.normal(loc + shift, scale, size=(int(rng.integers(20, 200)), d))
            x[:, 1] = np.round(x[:, 1])
            x[rng.random(x.shape) < 0.02] = np.nan
            if step == 40:
                x[0, 0] = 1e9  # a new extreme far beyond every layout
            agg.fold(_batch(now, x, np.asarray(rng.normal(size=x.shape[0]))))
            if step % 7 == 3:
                readings.append(_readings(agg, now))
        readings.append(_readings(agg, 200.0))
    readings.append(repr([s.state()["features"]["counts"] for s in agg.window.slots.values()]))
    return readings, grown


def test_slot_layouts_change_no_statistic_and_no_series() -> None:
    rng = np.random.default_rng(3)
    profile, loc = _profile(rng, 30)
    inherited = 0
    original = LogSketchColumns.lay_out_like

    def counting(self: LogSketchColumns, other: LogSketchColumns) -> None:
        nonlocal inherited
        inherited += 1
        original(self, other)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(LogSketchColumns, "lay_out_like", counting)
        laid, grown_laid = _run(profile, loc, seed=11)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(drift_slot_layout.SlotLayouts, "lay_out", lambda self, slots, slot: None)
        plain, grown_plain = _run(profile, loc, seed=11)
    assert len(laid) == len(plain)
    for a, b in zip(laid, plain, strict=True):
        assert a == b
    # and the layouts are used: far fewer re-layouts
    assert grown_laid * 3 < grown_plain, (grown_laid, grown_plain)
    assert inherited > 3  # and slots took the last slot's layout (merged by adding)


def test_a_new_slot_is_laid_out_from_the_reference_then_from_the_last_slot() -> None:
    rng = np.random.default_rng(4)
    profile, loc = _profile(rng, 5)
    agg = DriftAggregate(profile, window_seconds=100.0, slots=10)
    agg.fold(_batch(0.0, rng.normal(loc, 1.0, size=(1, 5)), np.zeros(1)))
    first = agg.window.slots[0].features.sketches
    ref_low, ref_top = drift_slot_layout.reference_keys(agg.features, 0.01)
    assert (ref_top != EMPTY).all() and (ref_low < ref_top).all()
    # the reference's range fits in the first slot's layout
    assert (first.lo <= ref_low).all() and (first.lo + first.span - 1 >= ref_top).all()
    agg.fold(_batch(1.0, rng.normal(loc, 1.0, size=(500, 5)), np.zeros(500)))
    low, top = first.occupied_keys()
    agg.fold(_batch(15.0, rng.normal(loc, 1.0, size=(1, 5)), np.zeros(1)))
    second = agg.window.slots[1].features.sketches
    assert (second.lo <= low).all() and (second.lo + second.span - 1 >= top).all()
    agg.fold(_batch(16.0, rng.normal(loc, 1.0, size=(500, 5)), np.zeros(500)))
    slots = [second]
    for k, extreme in ((2, True), (3, False), (4, False)):
        # each new slot: what the last one held, then 500 values (one far off in slot 2)
        agg.fold(_batch(10.0 * k + 5, rng.normal(loc, 1.0, size=(1, 5)), np.zeros(1)))
        x = rng.normal(loc, 1.0, size=(500, 5))
        if extreme:
            x[0, 0] = 1e12
        agg.fold(_batch(10.0 * k + 6, x, np.zeros(500)))
        slots.append(agg.window.slots[k].features.sketches)
    # slot 2: not much wider than slot 1 needed: the very same layout (merges add)
    # (its extreme then widened it); slot 3: the extreme was slot 2's own, kept;
    # slot 4: not carried on past the slot after it.
    assert np.array_equal(slots[1].lo, slots[0].lo)  # a new top moves no lo
    assert slots[1].span > 2 * slots[0].span
    assert slots[2].span == slots[1].span and np.array_equal(slots[2].lo, slots[1].lo)
    assert slots[3].span < slots[1].span / 2
    assert columns.EMPTY == EMPTY


def test_reference_keys_are_the_keys_of_the_profiles_extremes_and_nearest_value() -> None:
    rng = np.random.default_rng(6)
    profile, _ = _profile(rng, 6)
    agg = DriftAggregate(profile)
    group = agg.features
    low, top = drift_slot_layout.reference_keys(group, 0.01)
    scale = LogSketchColumns(1, 0.01).scale
    for c, i in enumerate(group.numeric):
        member = group.members[i]
        center = member.sketch_center
        assert member.min is not None and member.max is not None
        far = max(abs(member.min - center), abs(member.max - center))
        values = np.clip(np.asarray(member.sketch_values), member.min, member.max)
        near = np.abs(values - center)
        near = float(near[near > 0].min())
        assert top[c] == math.ceil(math.log2(far) * 2**scale)
        assert low[c] == min(math.ceil(math.log2(near) * 2**scale), top[c])
