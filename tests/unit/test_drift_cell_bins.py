"""The drift fold's bins read off sketch cells equal the comparison with every edge."""

from __future__ import annotations

import numpy as np
import pytest

from modelmon.aggregates.drift_cell_bins import CellBins
from modelmon.aggregates.drift_layout import _numeric_bins
from modelmon.sketches.columns import LogSketchColumns

D = 7


def _edges(rng: np.random.Generator, centers: np.ndarray) -> np.ndarray:
    """Per column a different number of edges (padded with +inf): one at the center
    (``x - center == 0``), negative and positive ones, some close together."""
    edges = np.full((9, D), np.inf)
    for j in range(D):
        n = 9 - j % 4
        e = np.concatenate([[centers[j]], centers[j] + rng.standard_t(3, n - 1) * 10.0 ** (j - 3)])
        if j == 2:
            e[1] = np.nextafter(e[2], np.inf)  # two edges one ulp apart
        edges[:n, j] = np.unique(e)[:n] if np.unique(e).size >= n else np.unique(e)[0]
        edges[:, j] = np.sort(edges[:, j])
    return edges


def _values(
    rng: np.random.Generator, edges: np.ndarray, centers: np.ndarray, n: int, spread: float
) -> np.ndarray:
    """Columns ``(D, n)``: spread values, values on the edges and one ulp either side,
    exact centers (the zero cell), tiny offsets (collapsed keys), NaN and +-inf."""
    scale = spread * 10.0 ** (np.arange(D) - 3)
    x = centers[:, None] + rng.standard_t(2, size=(D, n)) * scale[:, None]
    for j in range(D):
        e = edges[:, j][np.isfinite(edges[:, j])]
        on = rng.choice(e, size=n // 10)
        on = np.concatenate([on, np.nextafter(on, np.inf), np.nextafter(on, -np.inf)])
        at = rng.choice(n, size=on.size, replace=False)
        x[j, at] = on
    x[:, rng.integers(0, n, 5)] = centers[:, None]
    x[:, rng.integers(0, n, 5)] = centers[:, None] + 1e-300
    x[:, rng.integers(0, n, 5)] = centers[:, None] - 1e-300
    x[rng.random(x.shape) < 0.02] = np.nan
    x[rng.random(x.shape) < 0.002] = np.inf
    x[rng.random(x.shape) < 0.002] = -np.inf
    return x


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("max_buckets", [4096, 64])  # 64: small keys collapse
def test_cell_bins_equal_the_comparison_with_every_edge(seed: int, max_buckets: int) -> None:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=D) * [0, 1, 1e3, -5, 0, 1e-3, 2]
    edges = _edges(rng, centers)
    cell_bins = CellBins(edges, centers)
    cells_side = LogSketchColumns(D, 0.01, max_buckets)
    plain_side = LogSketchColumns(D, 0.01, max_buckets)
    for part in range(6):  # growing ranges: the layout moves between chunks
        x = _values(rng, edges, centers, 3000, spread=1.0 + 7 * part)
        valid = np.isfinite(x).sum(axis=1)
        cells = cells_side.add_chunk_cells(x, centers)
        plain_side.add_columns(x, centers)
        got = cell_bins.count(x, cells, cells_side, valid)
        np.testing.assert_array_equal(got, _numeric_bins(x, edges, valid))
        for j in range(D):  # and against a search per column, finite values
            finite = x[j][np.isfinite(x[j])]
            want = np.bincount(np.searchsorted(edges[:, j], finite, side="left"), minlength=10)
            if not np.isposinf(x[j]).any():  # +inf: today's bins count it at the top
                np.testing.assert_array_equal(got[j], want)
        # the sketch itself is what add_columns makes
        assert cells_side.span == plain_side.span
        assert cells_side.lo.tolist() == plain_side.lo.tolist()
        np.testing.assert_array_equal(cells_side.counts, plain_side.counts)


def test_cells_are_the_flat_cells_the_sketch_counts() -> None:
    rng = np.random.default_rng(9)
    s = LogSketchColumns(3)
    x = rng.normal(size=(3, 500))
    x[0, :7] = np.nan
    cells = s.add_chunk_cells(x, np.zeros(3))
    grid = 2 * s.span + 1
    np.testing.assert_array_equal(
        np.bincount(cells.reshape(-1), minlength=3 * grid + 1)[:-1], s.counts.reshape(-1)
    )
    assert (cells[0, :7] == 3 * grid).all()  # NaN: the trash cell


def test_an_empty_chunk_and_an_all_nan_chunk() -> None:
    s = LogSketchColumns(2)
    bins = CellBins(np.array([[0.0, 1.0]]), np.zeros(2))
    empty = np.zeros((2, 0))
    got = bins.count(empty, s.add_chunk_cells(empty, np.zeros(2)), s, np.zeros(2, np.int64))
    assert got.tolist() == [[0, 0], [0, 0]]
    nan = np.full((2, 3), np.nan)
    got = bins.count(nan, s.add_chunk_cells(nan, np.zeros(2)), s, np.zeros(2, np.int64))
    assert got.tolist() == [[0, 0], [0, 0]]
