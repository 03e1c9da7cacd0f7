"""The occupied cells of some rows of a :class:`~modelmon.sketches.columns.LogSketchColumns`.

A window's sketches share one grid per column set, wide enough for every column's
range (about 2,300 cells for 20 normal features), while each row holds a few hundred
non-empty cells. What a drift view reads (quantiles, the KS statistic, Wasserstein
against the reference sketch) depends only on the non-empty cells and their cumulative
counts, so it is computed on this flat, row-major list of them: the same numbers as
on the dense grid (empty cells change no step function's supremum, and a quantile
always lands on a non-empty cell), in a fraction of the work.

>>> import numpy as np
>>> from modelmon.sketches.columns import LogSketchColumns
>>> s = LogSketchColumns(2)
>>> s.add(np.array([[1.0, -5.0], [2.0, -5.0], [3.0, np.nan]]))
>>> occ = Occupied.of(s, np.array([0, 1]))
>>> occ.n.tolist(), occ.cum.tolist()
([3, 2], [1, 2, 3, 2])
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from .columns import LogSketchColumns

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Occupied:
    """Non-empty cells of ``rows``, row by row, with inclusive cumulative counts."""

    rows: IntArray  # (k,) the sketch rows
    row_of: IntArray  # (N,) 0..k-1: the position in ``rows`` of each cell
    cells: IntArray  # (N,) grid cell, increasing within a row
    counts: IntArray  # (N,)
    cum: IntArray  # (N,) cumulative count within the row, inclusive
    start: IntArray  # (k + 1,) the cells of row i are start[i]:start[i + 1]
    n: IntArray  # (k,) total count of each row
    width: int  # cells in a grid row

    @classmethod
    def of(cls, sketch: LogSketchColumns, rows: IntArray) -> Occupied:
        rows = np.asarray(rows, dtype=np.int64)
        dense = sketch.counts
        if rows.size != dense.shape[0] or not np.array_equal(rows, np.arange(rows.size)):
            dense = dense[rows]  # every row in order (a drift view's case): no copy
        k, g = dense.shape
        full = dense != 0  # a boolean mask: flatnonzero of it is 4x that of the counts
        flat = np.flatnonzero(full)
        per_row = np.count_nonzero(full, axis=1)
        start = np.zeros(k + 1, dtype=np.int64)
        np.cumsum(per_row, out=start[1:])
        row_of = np.repeat(np.arange(k, dtype=np.int64), per_row)
        cells = flat - row_of * g
        counts = dense.reshape(-1)[flat].astype(np.int64, copy=False)
        total = np.zeros(flat.size + 1, dtype=np.int64)
        np.cumsum(counts, out=total[1:])
        before = total[start]
        cum = total[1:] - np.repeat(before[:-1], per_row)
        n = before[1:] - before[:-1]
        return cls(rows, row_of, cells, counts, cum, start, n, g)

    @cached_property
    def keys(self) -> IntArray:
        """``cells + row_of * (width + 2)``: increasing over all cells, rows apart (the
        key of cell ``c`` of row ``i``, ``-1 <= c <= width``, is ``c + i * (width + 2)``)."""
        return np.asarray(self.cells + self.row_of * (self.width + 2), dtype=np.int64)

    def search(self, cells: IntArray) -> tuple[IntArray, npt.NDArray[np.bool_]]:
        """For ``cells`` (``(k, m)``, each in ``-1 .. width``): the flat index of the first
        occupied cell of the row ``>= cells[i, j]`` (``np.searchsorted(..., "left")`` over
        :attr:`keys`) and whether that cell is ``cells[i, j]`` itself."""
        k, keys = self.n.size, self.keys
        wanted = (cells + np.arange(k, dtype=np.int64)[:, None] * (self.width + 2)).ravel()
        left = np.searchsorted(keys, wanted, side="left")
        if keys.size == 0:
            return left.reshape(cells.shape), np.zeros(cells.shape, dtype=bool)
        hit = keys[np.minimum(left, keys.size - 1)] == wanted
        return left.reshape(cells.shape), hit.reshape(cells.shape)

    def quantile_cells(self, qs: npt.ArrayLike) -> IntArray:
        """``(k, len(qs))`` the cell holding each quantile (lower: rank ``q * (n - 1)``).

        The first cell whose cumulative count exceeds ``floor(q * (n - 1))``, as
        :meth:`LogSketchColumns.quantiles` picks it; meaningless where ``n == 0``.
        """
        q = np.clip(np.asarray(qs, dtype=np.float64).reshape(-1), 0.0, 1.0)
        k = self.n.size
        if self.cells.size == 0:
            return np.zeros((k, q.size), dtype=np.int64)
        t = np.floor(q[None, :] * (self.n[:, None] - 1)).astype(np.int64)
        step = int(self.n.max(initial=0)) + 2
        offset = np.arange(k, dtype=np.int64)[:, None] * step
        # cum is increasing within a row and rows are ``step`` apart: one searchsorted.
        idx = np.searchsorted(self.cum + self.row_of * step, (t + offset).ravel(), side="right")
        idx = np.minimum(idx, self.cells.size - 1).reshape(t.shape)
        return np.asarray(self.cells[idx], dtype=np.int64)

    def row_max(self, values: FloatArray) -> FloatArray:
        """Per row, the maximum of ``values`` (one per cell); -inf for an empty row."""
        out = np.full(self.n.size, -np.inf)
        full = self.n > 0
        if self.cells.size:
            out[full] = np.maximum.reduceat(values, self.start[:-1][full])
        return out

    def cdf_at(self, cells: IntArray) -> FloatArray:
        """``(k, m)``: each row's share of count in cells ``<= cells[i, j]`` (NaN if empty)."""
        if self.cells.size == 0:
            return np.zeros(cells.shape)
        left, hit = self.search(cells)
        return self.cdf_from_search(left, hit)

    def cdf_from_search(self, left: IntArray, hit: npt.NDArray[np.bool_]) -> FloatArray:
        """:meth:`cdf_at` from the result of :meth:`search` (``cells.size > 0``)."""
        j = left + hit - 1  # the last occupied cell <= the searched cell
        inside = j >= self.start[:-1][:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            share = self.cum[np.maximum(j, 0)] / self.n[:, None]
        return np.asarray(np.where(inside, share, 0.0), dtype=np.float64)
