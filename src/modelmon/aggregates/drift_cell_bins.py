"""The drift fold's reference bins read off the sketch cells of the values.

The fold puts every numeric value in a cell of its column's sketch (a logarithm, the
layout) and in a reference bin (the number of bin edges below it). The bin edges are
fixed per reference, so within one sketch layout each cell lies in one bin, unless an
edge falls in it: per layout, a table gives each cell's bin, and only the values in a
cell next to an edge's (and NaN, +-inf) are compared with the edges. That replaces one
comparison per edge and value (:func:`~modelmon.aggregates.drift_layout._numeric_bins`,
which gives the same counts) with one lookup.

Exact by construction: ``x - shift`` is rounded monotonically and the cell of a value
is non-decreasing in it, so a value in a cell at least two cells away from an edge's
cell (the edge mapped the same way) is on the same side of the edge as the cell; one
cell of margin absorbs a logarithm that is off by one unit in the last place at a key's
boundary.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ..batch import FloatArray, IntArray
from ..sketches.columns import LogSketchColumns

_AMBIGUOUS = -1
_KEPT = 4  # tables kept (one per sketch layout: a window's slots, merged snapshots)


class CellBins:
    """Per column, bins ``(-inf, e0], (e0, e1], ..., (e_last, inf)`` of the edges
    ``edges`` (``(n_edges, d)``, padded with +inf) counted from sketch cells."""

    __slots__ = ("_by_column", "_tables", "centers", "edges", "width")

    def __init__(self, edges: FloatArray, centers: FloatArray) -> None:
        self.edges = np.asarray(edges, dtype=np.float64)
        self.centers = np.asarray(centers, dtype=np.float64)
        self.width = self.edges.shape[0] + 1
        self._by_column = np.ascontiguousarray(self.edges.T)  # (d, n_edges)
        self._tables: dict[tuple[float, int, bytes], npt.NDArray[np.signedinteger[Any]]] = {}

    def count(
        self, columns: FloatArray, cells: npt.NDArray[np.intp], sketches: LogSketchColumns,
        valid: IntArray,
    ) -> IntArray:  # fmt: skip
        """``(d, width)`` bin counts of ``columns`` (``(d, k)``) whose flat sketch cells
        (:meth:`LogSketchColumns.add_chunk_cells`) are ``cells``; ``valid``: the finite
        values per column (NaN lands in bin 0 and is taken out, as in ``_numeric_bins``)."""
        d, k = columns.shape
        flat = np.take(self._table(sketches), cells)
        ambiguous = np.flatnonzero(flat < 0)
        if ambiguous.size:
            rows = ambiguous // k
            x = columns.reshape(-1)[ambiguous]
            below = np.count_nonzero(x[:, None] > self._by_column[rows], axis=1)
            flat.reshape(-1)[ambiguous] = rows * self.width + below
        binned = np.bincount(flat.reshape(-1), minlength=d * self.width).reshape(d, self.width)
        binned[:, 0] -= k - np.asarray(valid, dtype=np.int64)
        return binned

    def _table(self, sketches: LogSketchColumns) -> npt.NDArray[np.signedinteger[Any]]:
        ident = (sketches.relative_accuracy, sketches.span, sketches.lo.tobytes())
        table = self._tables.get(ident)
        if table is None:
            if len(self._tables) >= _KEPT:
                self._tables.clear()  # bounded; a layout in use is rebuilt at its next fold
            table = self._tables[ident] = self._build(sketches)
        return table

    def _build(self, sketches: LogSketchColumns) -> npt.NDArray[np.signedinteger[Any]]:
        """Flat bin (``column * width + bin``) of every flat cell, ``-1`` where an
        edge's cell is within one cell; the trash cell (NaN, +-inf) is ``-1`` too."""
        n_edges, d = self.edges.shape
        grid = 2 * sketches.span + 1
        finite = np.isfinite(self.edges.T)  # (d, n_edges); the +inf padding never counts
        diff = np.subtract(np.where(finite, self.edges.T, 0.0), self.centers[:, None])
        where = sketches.cells_of(diff)  # (d, n_edges), may lie off the grid
        rows = np.repeat(np.arange(d), n_edges)[finite.reshape(-1)]
        at = where[finite]
        # Edges strictly below each cell: a count at the cell after the edge's, summed up.
        marks = np.zeros((d, grid + 1), dtype=np.int64)
        np.add.at(marks, (rows, np.clip(at + 1, 0, grid).astype(np.intp)), 1)
        below = np.cumsum(marks[:, :grid], axis=1)
        table = below + (np.arange(d, dtype=np.int64) * self.width)[:, None]
        for step in (-1.0, 0.0, 1.0):
            near = at + step
            ok = (near >= 0) & (near < grid)
            table[rows[ok], near[ok].astype(np.intp)] = _AMBIGUOUS
        small = np.int32 if d * self.width < 2**31 else np.int64  # a smaller table: fewer misses
        return np.concatenate([table.reshape(-1), [_AMBIGUOUS]]).astype(small)
