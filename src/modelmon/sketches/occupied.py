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
        dense = sketch.counts[rows]
        k, g = dense.shape
        flat = np.flatnonzero(dense)
        row_of, cells = np.divmod(flat, g)
        counts = dense.ravel()[flat].astype(np.int64)
        total = np.concatenate(([0], np.cumsum(counts)))
        start = np.searchsorted(row_of, np.arange(k + 1)).astype(np.int64)
        before = total[start]
        cum = total[1:] - before[:-1][row_of]
        n = before[1:] - before[:-1]
        return cls(np.asarray(rows, dtype=np.int64), row_of, cells, counts, cum, start, n, g)

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
        k = self.n.size
        if self.cells.size == 0:
            return np.zeros(cells.shape)
        w = self.width + 2
        offset = np.arange(k, dtype=np.int64)[:, None] * w
        keys = self.cells + self.row_of * w
        j = np.searchsorted(keys, (cells + offset).ravel(), side="right").reshape(cells.shape) - 1
        inside = j >= self.start[:-1][:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            share = self.cum[np.maximum(j, 0)] / self.n[:, None]
        return np.asarray(np.where(inside, share, 0.0), dtype=np.float64)
