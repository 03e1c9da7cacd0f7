from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelmon.sketches.moments import Moments, column_reduce


def test_scalar_moments_match_numpy() -> None:
    x = np.random.default_rng(0).normal(5.0, 3.0, 10_001)
    m = Moments()
    m.add(np.append(x, [np.nan, np.inf]))
    assert m.count == x.size
    assert m.mean == pytest.approx(x.mean())
    assert m.variance == pytest.approx(x.var())
    assert m.std == pytest.approx(x.std())
    assert (m.min, m.max) == (x.min(), x.max())


def test_matrix_moments_and_merge() -> None:
    x = np.random.default_rng(1).lognormal(size=(40_000, 4))
    x[::5, 2] = np.nan
    a, b = Moments(4), Moments(4)
    a.add(x[:17_000])
    b.add(x[17_000:])
    a.merge(b)
    np.testing.assert_array_equal(a.count, np.isfinite(x).sum(axis=0))
    np.testing.assert_allclose(a.mean, np.nanmean(x, axis=0))
    np.testing.assert_allclose(a.variance, np.nanvar(x, axis=0))
    np.testing.assert_array_equal(a.min, np.nanmin(x, axis=0))


def test_state_round_trip_and_width_check() -> None:
    m = Moments(2)
    m.add(np.arange(10.0).reshape(5, 2))
    again = Moments.from_state(m.state())
    np.testing.assert_array_equal(again.mean, m.mean)
    with pytest.raises(ValueError):
        m.merge(Moments())


def test_empty_is_nan() -> None:
    m = Moments()
    assert m.count == 0 and np.isnan(m.mean) and np.isnan(m.variance)


def test_column_reduce_matches_axis0() -> None:
    x = np.random.default_rng(2).normal(size=(1000, 7))
    np.testing.assert_allclose(column_reduce(np.add, x), x.sum(axis=0))
    np.testing.assert_array_equal(column_reduce(np.minimum, x), x.min(axis=0))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=200),
    st.integers(min_value=1, max_value=199),
)
def test_property_merge_equals_whole(values: list[float], cut: int) -> None:
    x = np.asarray(values)
    cut = min(cut, x.size - 1)
    a, b, whole = Moments(), Moments(), Moments()
    a.add(x[:cut])
    b.add(x[cut:])
    whole.add(x)
    a.merge(b)
    assert a.count == whole.count
    assert a.mean == pytest.approx(whole.mean, rel=1e-9, abs=1e-6)
    assert a.variance == pytest.approx(whole.variance, rel=1e-6, abs=1e-6)
