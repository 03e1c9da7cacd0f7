"""The drift fold's transposed paths give what the row-major ones give, exactly."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from modelmon.aggregates.drift_layout import _numeric_bins
from modelmon.sketches.columns import LogSketchColumns
from modelmon.sketches.extremes import Extremes


def _matrix(seed: int, rows: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_t(2, size=(rows, 6)) * [1.0, 1e4, 1e-4, 1.0, 1.0, 1.0]
    x[:, 3] = np.round(x[:, 3])  # exact zeros
    x[rng.random(x.shape) < 0.05] = np.nan
    x[rng.integers(0, rows, 3), 4] = np.inf
    x[rng.integers(0, rows, 3), 4] = -np.inf
    x[:, 5] = 7.0  # one value: a column at its center
    return x


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_add_columns_equals_add(seed: int) -> None:
    a, b = LogSketchColumns(6), LogSketchColumns(6)
    shifts = np.array([0.0, 3.0, 0.0, 0.0, 0.0, 7.0])
    for part in range(5):  # several folds: new extremes re-lay out between them
        x = _matrix(seed * 10 + part, 3000) * (1 + 10 * part)
        a.add(x, shifts)
        b.add_columns(np.ascontiguousarray(x.T), shifts)
        assert (a.span, a.lo.tolist(), a.top.tolist()) == (b.span, b.lo.tolist(), b.top.tolist())
        np.testing.assert_array_equal(a.counts, b.counts)
    assert a.count.sum() > 0


def test_add_columns_checks_the_width() -> None:
    with pytest.raises(ValueError, match="do not match width"):
        LogSketchColumns(3).add_columns(np.zeros((2, 5)))


@pytest.mark.parametrize("seed", [3, 4])
def test_extremes_of_columns_equal_extremes_of_rows(seed: int) -> None:
    x = _matrix(seed, 5000)
    rows, cols = Extremes(6), Extremes(6)
    got_rows = rows.add(x)
    got_cols = cols.add_columns(np.ascontiguousarray(x.T))
    np.testing.assert_array_equal(got_rows, got_cols)
    np.testing.assert_array_equal(got_cols, np.isfinite(x).sum(axis=0))
    for attr in ("count", "min", "max"):
        np.testing.assert_array_equal(getattr(rows, attr), getattr(cols, attr))
    finite = Extremes(6)
    finite.add_columns(np.nan_to_num(x, nan=1.0, posinf=2.0, neginf=-2.0).T)  # the fast path
    assert finite.count.tolist() == [5000] * 6


def test_numeric_bins_of_columns_equal_a_search_per_column() -> None:
    rng = np.random.default_rng(5)
    x = _matrix(6, 70_000)  # several chunks
    x[:, 4] = np.where(np.isinf(x[:, 4]), np.nan, x[:, 4])  # bins count finite values
    edges = np.full((9, 6), np.inf)
    for j in range(6):
        e = np.unique(np.round(np.nanquantile(x[:, j], np.linspace(0.1, 0.9, 9 - j)), 1))
        edges[: e.size, j] = e
    x[rng.integers(0, 70_000, 50), 0] = edges[2, 0]  # values on an edge: bin (e1, e2]
    valid = np.isfinite(x).sum(axis=0)
    got = _numeric_bins(np.ascontiguousarray(x.T), edges, valid)
    for j in range(6):
        finite = x[:, j][np.isfinite(x[:, j])]
        want = np.bincount(np.searchsorted(edges[:, j], finite, side="left"), minlength=10)
        np.testing.assert_array_equal(got[j], want)


def test_a_column_of_zeros_and_an_infinity_adds_the_zeros_only() -> None:
    """Its only key left once the infinity is out is -inf: no range to lay out (it was
    taken for one, through an invalid cast of -inf)."""
    s = LogSketchColumns(2)
    s.add(np.array([[1.0, 7.0], [2.0, 7.0]]), np.array([0.0, 7.0]))
    s.add(np.array([[1.0, np.inf], [2.0, 7.0], [3.0, 7.0]]), np.array([0.0, 7.0]))
    assert s.count.tolist() == [5, 4]
    assert s.quantiles([0.5])[1, 0] == 0.0


@pytest.mark.parametrize(
    "column",
    [[np.inf, -np.inf, 1.0], [1e308, 1e308, -2.0], [np.nan, 3.0, -np.inf]],
)
def test_extremes_of_infinities_and_huge_values_add_quietly(column: list[float]) -> None:
    # The fast path's sum is inf - inf (NaN) or past the largest double here: no warning
    # reaches the caller, and the finite values are counted as by a plain reading.
    extremes = Extremes(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        added = extremes.add_columns(np.array([column]))
    finite = [v for v in column if np.isfinite(v)]
    assert added.tolist() == [len(finite)]
    assert extremes.min.tolist() == [min(finite)] and extremes.max.tolist() == [max(finite)]
