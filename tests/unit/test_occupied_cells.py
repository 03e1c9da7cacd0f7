"""Drift maths on the occupied cells only give the dense-grid numbers."""

from __future__ import annotations

import numpy as np
import pytest

from modelmon.drift import (
    REFERENCE_QUANTILE_PROBS,
    QuantileReference,
    ks_columns,
    wasserstein_between,
    wasserstein_rows,
)
from modelmon.sketches.columns import LogSketchColumns
from modelmon.sketches.occupied import Occupied


def _dense_ks(ref: QuantileReference, sketch: LogSketchColumns, rows: np.ndarray) -> np.ndarray:
    """The statistic on the whole grid: the live and reference CDFs at every cell."""
    counts = sketch.counts[rows]
    k, g = counts.shape
    n = counts.sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        cum = np.cumsum(counts, axis=1) / n[:, None]
    pos = sketch.positions(ref.quantiles[rows], rows)
    cells = np.clip(np.floor(pos), -1, g - 1).astype(np.intp) + 1
    ref_le_cell = np.array([[np.sum(cells[r] <= c + 1) for c in range(g)] for r in range(k)])
    d_cur = np.abs(ref.mid[ref_le_cell] - cum).max(axis=1)
    ref_le_ref = np.array([[np.sum(pos[r] <= p) for p in pos[r]] for r in range(k)])
    cum0 = np.concatenate([np.zeros((k, 1)), cum], axis=1)
    f_cur = np.take_along_axis(cum0, cells, axis=1)
    d_ref = np.abs(ref.mid[ref_le_ref] - f_cur).max(axis=1)
    return np.where(n > 0, np.maximum(d_cur, d_ref), np.nan)


def _sketches(seed: int) -> tuple[LogSketchColumns, QuantileReference, np.ndarray]:
    rng = np.random.default_rng(seed)
    d = 6
    ref = rng.normal(size=(5000, d)) * [1.0, 3.0, 0.01, 50.0, 1.0, 1.0]
    cur = rng.normal(0.2, 1.3, size=(1500, d)) * [1.0, 3.0, 0.01, 50.0, 1.0, 1.0]
    cur[:, 4] = np.round(cur[:, 4])  # few cells, exact zeros
    cur[:, 5] = np.nan  # an empty column
    cur[:300, 1] = rng.lognormal(3.0, 2.0, 300)  # a heavy tail: a wide grid
    q = np.quantile(ref, REFERENCE_QUANTILE_PROBS, axis=0).T
    centers = q[:, q.shape[1] // 2].copy()
    cols = LogSketchColumns(d)
    cols.add(cur, centers)
    return cols, QuantileReference.of(q, ref.std(axis=0), centers), centers


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("rows", [[0, 1, 2, 3, 4, 5], [3, 1], [5], [4, 5, 0]])
def test_ks_on_occupied_cells_equals_the_dense_grid(seed: int, rows: list[int]) -> None:
    cols, reference, _ = _sketches(seed)
    picked = np.array(rows)
    np.testing.assert_array_equal(
        ks_columns(reference, cols, picked), _dense_ks(reference, cols, picked)
    )


@pytest.mark.parametrize("seed", [0, 3])
def test_quantiles_on_occupied_cells_equal_a_search_of_the_dense_grid(seed: int) -> None:
    cols, _, _ = _sketches(seed)
    qs = np.array([0.0, 0.01, 0.05, 0.5, 0.95, 0.999, 1.0])
    got = cols.quantiles(qs)
    values = cols.values()
    for j in range(cols.width):
        counts = cols.counts[j]
        n = int(counts.sum())
        if n == 0:
            assert np.isnan(got[j]).all()
            continue
        cum = np.cumsum(counts)
        for i, q in enumerate(qs):
            cell = int(np.argmax(cum > np.floor(q * (n - 1))))  # first cell past the rank
            assert got[j, i] == values[j, cell], (j, q)


def test_occupied_cells_of_an_all_empty_selection() -> None:
    cols = LogSketchColumns(3)
    cols.add(np.array([[1.0, np.nan, np.nan]]))
    occ = Occupied.of(cols, np.array([1, 2]))
    assert occ.cells.size == 0 and occ.n.tolist() == [0, 0]
    assert np.isnan(cols.quantiles([0.5], np.array([1, 2]))).all()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_wasserstein_rows_equals_one_pair_at_a_time(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sides: list[list[tuple[np.ndarray, np.ndarray]]] = [[], []]
    for _ in range(int(rng.integers(1, 40))):
        for side in sides:
            size = int(rng.integers(1, 900))
            values = np.sort(rng.standard_t(3, size) * 10.0 ** rng.integers(-3, 4))
            if rng.random() < 0.3:
                values = np.round(values)  # ties, within and across sides
            weights = rng.random(size)
            side.append((values, weights / weights.sum()))

    def flat(side: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, ...]:
        rows = np.repeat(np.arange(len(side)), [v.size for v, _ in side])
        return np.concatenate([v for v, _ in side]), np.concatenate([w for _, w in side]), rows

    a, b = flat(sides[0]), flat(sides[1])
    got = wasserstein_rows((a[0], a[1], a[2]), (b[0], b[1], b[2]))
    want = [wasserstein_between(*sides[0][r], *sides[1][r]) for r in range(len(sides[0]))]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)


def test_wasserstein_rows_refuses_a_row_with_one_side_only() -> None:
    one = np.array([1.0]), np.array([1.0]), np.array([0])
    other = np.array([1.0]), np.array([1.0]), np.array([1])
    with pytest.raises(ValueError, match="both sides"):
        wasserstein_rows(one, other)
