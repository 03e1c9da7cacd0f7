"""Exact sums: the fixed-point cross-products of the outlier moments against Python integers."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelmon.errors import ConfigurationError
from modelmon.exact_sums import GRID_BITS, grid_exponent, grid_moments, grid_values
from modelmon.outlier_moments import OutlierCounts
from modelmon.profile_builder import build_profile


def scalar_moments(
    rows: list[list[float]], exponents: list[int], centres: list[float]
) -> tuple[list[int], list[int]]:
    """The same sums one value at a time with Python floats and integers (the reference)."""
    p = len(exponents)
    q = [
        [
            round(math.ldexp(x, GRID_BITS - e) - math.ldexp(c, GRID_BITS - e))
            for x, e, c in zip(row, exponents, centres, strict=True)
        ]
        for row in rows
    ]
    s1 = [sum(r[i] for r in q) for i in range(p)]
    s2 = [sum(r[i] * r[j] for r in q) for i in range(p) for j in range(i, p)]  # i <= j
    return s1, s2


def plan_of(m: np.ndarray) -> tuple[list[int], list[float]]:
    centres = [float(v) for v in m[len(m) // 2]]  # any value of the column will do
    lows, highs = m.min(axis=0).tolist(), m.max(axis=0).tolist()
    return [
        grid_exponent(lo, hi, c) for lo, hi, c in zip(lows, highs, centres, strict=True)
    ], centres


def test_grid_moments_equal_python_integers_across_magnitudes() -> None:
    rng = np.random.default_rng(3)
    m = np.column_stack(
        [
            rng.normal(0.0, 1.0, 3000),
            rng.normal(1e6, 1e-3, 3000),  # far from zero, narrow
            rng.standard_cauchy(3000) * 1e150,  # huge and heavy-tailed
            rng.lognormal(0.0, 2.0, 3000) * 1e-300,  # tiny, some subnormal on the grid
            np.where(rng.random(3000) < 0.5, 0.0, 1e-12),  # mostly below a coarse grid
        ]
    )
    exponents, centres = plan_of(m)
    assert grid_moments(list(m.T), exponents, centres) == scalar_moments(
        m.tolist(), exponents, centres
    )


def test_the_grid_resolution_is_three_quarters_of_a_step_of_the_columns_bound() -> None:
    rng = np.random.default_rng(4)
    m = np.column_stack([rng.normal(5.0, 3.0, 500), rng.exponential(1e-200, 500)])
    exponents, centres = plan_of(m)
    q = grid_values(m, exponents, centres)
    for j, (e, c) in enumerate(zip(exponents, centres, strict=True)):
        step = Fraction(2) ** (e - GRID_BITS)
        assert all(abs(v) <= 2**GRID_BITS for v in q[:, j].tolist())
        worst = max(
            abs(Fraction(v) * step - (Fraction(x) - Fraction(c)))
            for v, x in zip(q[:, j].tolist(), m[:, j].tolist(), strict=True)
        )
        # the scaled difference is rounded (to half a step at most) before rint
        assert worst <= step * Fraction(3, 4)


def test_blocks_of_values_at_the_bound_do_not_lose_exactness() -> None:
    """Grid integers just below ``2**52`` (every slice near its maximum) over more rows
    than one block: the sums of their products pass ``2**53`` unless blocks are small."""
    rng = np.random.default_rng(9)
    n = (1 << 17) + 5000
    q = float(2**52 - 1) - rng.integers(0, 1 << 10, (n, 3)).astype(np.float64)
    q[::3, 1] *= -1.0
    m = np.ldexp(q, 3 - GRID_BITS)  # exact: the grid of E = 3 with centre 0
    exponents, centres = [3, 3, 3], [0.0, 0.0, 0.0]
    assert np.array_equal(grid_values(m, exponents, centres), q)
    assert grid_moments(list(m.T), exponents, centres) == scalar_moments(
        m.tolist(), exponents, centres
    )


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(allow_nan=False, allow_infinity=False, width=64),
            st.floats(-1e6, 1e6, allow_nan=False),
        ),
        min_size=2,
        max_size=60,
    ),
    st.lists(st.integers(0, 60), max_size=4),
)
def test_any_split_gives_the_same_exact_sums(
    rows: list[tuple[float, float]], cuts: list[int]
) -> None:
    m = np.asarray(rows, dtype=np.float64)
    exponents, centres = plan_of(m)
    whole = grid_moments(list(m.T), exponents, centres)
    assert whole == scalar_moments(m.tolist(), exponents, centres)
    bounds = [0, *sorted(c % (len(rows) + 1) for c in cuts), len(rows)]
    s1, s2 = [0] * 2, [0] * 3
    for a, b in itertools.pairwise(bounds):
        p1, p2 = grid_moments(list(m[a:b].T), exponents, centres)
        s1 = [x + y for x, y in zip(s1, p1, strict=True)]
        s2 = [x + y for x, y in zip(s2, p2, strict=True)]
    assert (s1, s2) == whole


def counts_of(columns: dict[str, np.ndarray]) -> OutlierCounts:
    names = list(columns)
    finite = [v[np.isfinite(v)] for v in columns.values()]
    centres = [float(v.mean()) for v in finite]
    ranges = [(float(v.min()), float(v.max())) for v in finite]
    counts = OutlierCounts.plan({}, names, centres, ranges)
    counts.add_rows(columns)
    return counts


def test_rows_with_a_missing_value_are_skipped() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.normal(0, 1, 1000), rng.normal(3, 2, 1000)
    a[::7] = np.nan
    b[::11] = np.inf
    joint = counts_of({"a": a, "b": b}).joint_reference()
    keep = np.isfinite(a) & np.isfinite(b)
    assert joint is not None and joint.count == int(keep.sum())
    complete = np.column_stack([a[keep], b[keep]])
    np.testing.assert_allclose(joint.mean, complete.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(joint.covariance, np.cov(complete.T, ddof=0), rtol=1e-11)


def test_a_column_constant_in_the_complete_rows_has_no_variance() -> None:
    """Spread only where another feature is missing: exactly zero variance, no joint test."""
    rng = np.random.default_rng(6)
    a = np.where(np.arange(400) < 200, 2.5, rng.normal(0, 1, 400))
    b = np.where(np.arange(400) < 200, rng.normal(0, 1, 400), np.nan)
    counts = counts_of({"a": a, "b": b})
    assert counts.rows == 200
    n, s1, s2 = counts.rows, counts.s1, counts.s2
    assert s2[0] * n == s1[0] ** 2 and s2[1] * n == s1[0] * s1[1]  # variance, covariance 0
    assert counts.joint_reference() is None


@pytest.mark.parametrize("scale", [1e150, 1e-150])
def test_huge_and_tiny_magnitudes_match_numpy_and_any_split(scale: float) -> None:
    rng = np.random.default_rng(7)
    x = rng.multivariate_normal([1.0, -2.0], [[1.0, 0.6], [0.6, 2.0]], 6000) * scale
    data = {"a": x[:, 0], "b": x[:, 1]}
    whole = build_profile(lambda: [data], created_at=0.0)
    split = [{k: v[i : i + 777] for k, v in data.items()} for i in range(0, 6000, 777)]
    assert build_profile(lambda: split, created_at=0.0).dumps() == whole.dumps()
    joint = whole.outliers.joint if whole.outliers else None
    assert joint is not None
    np.testing.assert_allclose(joint.mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(joint.covariance, np.cov(x.T, ddof=0), rtol=1e-10)


def test_a_covariance_beyond_floats_leaves_no_joint_test() -> None:
    rng = np.random.default_rng(8)
    x = rng.uniform(-1.0, 1.0, (500, 2)) * 1.7e308  # x - centre overflows, the variance too
    centres = [-1e308, 0.0]  # high - centre overflows for a
    counts = OutlierCounts.plan({}, ["a", "b"], centres, [(-1.7e308, 1.7e308)] * 2)
    assert counts.exponents == (1025, 1024)  # twice the largest magnitude bounds x - centre
    counts.add_rows({"a": x[:, 0], "b": x[:, 1]})
    assert counts.rows == 500 and counts.joint_reference() is None
    assert [counts.s1, counts.s2] == list(scalar_moments(x.tolist(), [1025, 1024], centres))


def test_a_state_from_another_grid_is_refused() -> None:
    counts = counts_of({"a": np.arange(10.0), "b": np.arange(10.0) ** 2})
    state = counts.state()
    assert OutlierCounts.from_state(state).joint_reference() == counts.joint_reference()
    del state["grid"]
    with pytest.raises(ConfigurationError, match="another modelmon version"):
        OutlierCounts.from_state(state)


def test_threads_and_chunks_give_the_same_profile() -> None:
    """Pass 2 runs the outlier moments beside the columns' counts on the builder's threads."""
    rng = np.random.default_rng(10)
    x = rng.multivariate_normal([0.0, 10.0, -3.0], np.diag([1.0, 4.0, 0.25]), 30_000)
    x[::37, 1] = np.nan
    data = {"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "k": rng.choice(["u", "v", "w"], 30_000)}
    one = build_profile(lambda: [data], created_at=0.0, threads=1)
    chunks = [{k: v[i : i + 4096] for k, v in data.items()} for i in range(0, 30_000, 4096)]
    threaded = build_profile(lambda: chunks, created_at=0.0, threads=3)
    assert threaded.dumps() == one.dumps()
    assert one.outliers is not None and one.outliers.joint is not None


def test_a_value_beyond_pass_1s_range_is_refused_not_summed_inexactly() -> None:
    counts = OutlierCounts.plan({}, ["a", "b"], [0.0, 0.0], [(-1.0, 1.0), (-1.0, 1.0)])
    counts.add_rows({"a": np.array([0.5, -0.25]), "b": np.array([1.0, -1.0])})
    before = counts.state()
    with pytest.raises(ConfigurationError, match="outside pass 1's range"):
        counts.add_rows({"a": np.array([0.5, 3.0]), "b": np.array([0.0, 0.0])})
    assert counts.state() == before  # nothing half-added
    with pytest.raises(ValueError, match="bound"):
        grid_moments([np.array([2.0**60])], [3], [0.0])
