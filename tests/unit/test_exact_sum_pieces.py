"""``exact_sum`` (error-free pieces) against Python fractions and the per-exponent sum."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelmon.exact_sums import SCALE, exact_sum, exact_sum_by_exponent


def reference(values: np.ndarray) -> int:
    total = sum((Fraction(float(x)) for x in values), Fraction(0)) * 2**SCALE
    assert total.denominator == 1
    return int(total)


def cases() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [
        np.array([1e16, 1.0, -1e16, 0.5]),
        np.array([5e-324, -5e-324, 1e-310, 2.2250738585072014e-308]),
        np.array([0.0, -0.0]),
        np.array([1e308, -1e308, 1.0, 2.0**-1074]),  # beyond the pieces' range: by exponent
        np.array([1.5 * 2.0**959, 2.0**959, -3.0]),
        np.full(70_000, 1.0 + 2.0**-52),  # two blocks of values at the top of their grid
        np.round(rng.normal(3, 4, 100_000) * 100, 6),
        rng.standard_cauchy(20_000),
        np.ldexp(rng.normal(size=20_000), rng.integers(-1074, 950, 20_000)),
        np.ldexp(rng.normal(size=5_000), rng.integers(-1074, -1000, 5_000)),
    ]


@pytest.mark.parametrize("case", range(len(cases())))
def test_exact_sum_equals_python_fractions_and_the_per_exponent_sum(case: int) -> None:
    values = cases()[case]
    expected = reference(values)
    assert exact_sum(values) == expected
    assert exact_sum_by_exponent(values) == expected


def test_any_split_and_order_gives_the_same_integer() -> None:
    values = cases()[8]
    whole = exact_sum(values)
    parts = sum(exact_sum(p) for p in np.array_split(values, 7))
    assert parts == whole == exact_sum(values[::-1]) == exact_sum(np.sort(values))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=0, max_size=40)
)
def test_any_finite_doubles(xs: list[float]) -> None:
    values = np.array(xs, dtype=np.float64)
    assert exact_sum(values) == reference(values)
