from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from modelmon.drift import (
    REFERENCE_QUANTILE_PROBS,
    chi2,
    js_distance,
    psi,
)
from modelmon.sketches.ddsketch import LogSketch

from ._drift_oracle import ks_statistic, wasserstein_normed


def test_psi_formula_with_floor() -> None:
    ref = np.array([0.5, 0.5, 0.0])
    cur = np.array([30, 60, 10])
    r = np.maximum(ref, 1e-4)
    c = cur / cur.sum()
    assert psi(ref, cur) == pytest.approx(np.sum((c - r) * np.log(c / r)))
    assert psi([0.2, 0.8], [0.2, 0.8]) == 0.0
    assert math.isnan(psi([0.5, 0.5], [0, 0]))


# Subnormal shares are left out of the comparison: there p/2 underflows to 0 and scipy
# returns inf (a JS distance is at most sqrt(ln 2)); see test_js_is_bounded_for_subnormals.
shares = st.floats(0.0, 1.0, allow_subnormal=False)
share_lists = st.lists(shares, min_size=2, max_size=12).filter(lambda v: sum(v) > 0)


@settings(max_examples=80, deadline=None)
@given(share_lists, st.data())
def test_js_equals_scipy(p: list[float], data: st.DataObject) -> None:
    q = data.draw(st.lists(shares, min_size=len(p), max_size=len(p)).filter(lambda v: sum(v) > 0))
    with np.errstate(invalid="ignore"):  # scipy takes sqrt of a rounding-negative ~-1e-17
        want = float(jensenshannon(p, q))
    assert js_distance(p, q) == pytest.approx(0.0 if math.isnan(want) else want, abs=1e-7)


def test_js_is_bounded_for_subnormals() -> None:
    d = js_distance([5e-324, 1.0], [1.0, 0.0])
    assert d == pytest.approx(math.sqrt(math.log(2)), abs=1e-9)


def test_chi2_equals_scipy() -> None:
    ref = np.array([0.2, 0.3, 0.5])
    obs = np.array([25, 25, 50])
    expected = stats.chisquare(obs, ref * obs.sum()).statistic
    assert chi2(ref, obs) == pytest.approx(expected)


def test_ks_and_wasserstein_on_a_known_shift() -> None:
    rng = np.random.default_rng(0)
    ref, cur = rng.normal(0, 1, 20_000), rng.normal(0.5, 1, 20_000)
    q = np.quantile(ref, REFERENCE_QUANTILE_PROBS)
    s = LogSketch()
    s.add(cur)
    assert ks_statistic(q, s) == pytest.approx(stats.ks_2samp(ref, cur).statistic, abs=0.02)
    w = wasserstein_normed(q, ref.std(), s, bounds=(cur.min(), cur.max()))
    assert w == pytest.approx(stats.wasserstein_distance(ref, cur) / ref.std(), rel=0.05)


def test_empty_sketch_gives_nan_and_probs_are_checked() -> None:
    q = np.linspace(0, 1, len(REFERENCE_QUANTILE_PROBS))
    assert math.isnan(ks_statistic(q, LogSketch()))
    assert math.isnan(wasserstein_normed(q, 1.0, LogSketch()))
    s = LogSketch()
    s.add(np.ones(3))
    with pytest.raises(ValueError):
        ks_statistic(q[:5], s)
