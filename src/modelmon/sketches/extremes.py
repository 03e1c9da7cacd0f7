"""Mergeable count, min and max of the finite values of each column of a matrix.

What a drift window reads of its raw values besides the sketches: the values counted
(the bins' finite count) and the range (live quantiles and Wasserstein points are
clipped to it). :class:`~modelmon.sketches.moments.Moments` keeps the same three and
also the mean and the sum of squared deviations, two more passes over every value
that nothing in a drift window reads. Count, min and max are exact whatever the order
of the data and however it is split.

Its state has the keys of a :class:`Moments` state it shares (``width``, ``count``,
``min``, ``max``), so a state written with a :class:`Moments` loads as well.

>>> import numpy as np
>>> e = Extremes(2)
>>> e.add(np.array([[1.0, np.nan], [-3.0, 2.0], [np.inf, 5.0]])).tolist()  # finite values
[2, 2]
>>> e.min.tolist(), e.max.tolist()
([-3.0, 2.0], [1.0, 5.0])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def all_finite(values: npt.NDArray[np.float64]) -> bool:
    """Whether every value is finite, in one C pass (their sum is finite exactly then).

    The sum may be ``inf - inf`` or pass the largest double: that is the answer "no" (or
    a very rare "no" for finite values past 1e308, which callers then read the slow,
    exact way), never a warning.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.sum(values)))


class Extremes:
    """Per column of ``width``: finite values seen, their min and max (NaN when none)."""

    __slots__ = ("_count", "_max", "_min", "width")

    def __init__(self, width: int) -> None:
        self.width = int(width)
        self._count: IntArray = np.zeros(self.width, dtype=np.int64)
        self._min: FloatArray = np.full(self.width, np.inf)
        self._max: FloatArray = np.full(self.width, -np.inf)

    def add(self, matrix: npt.ArrayLike) -> IntArray:
        """Add the finite values of ``matrix`` (``(n, width)``; NaN and +-inf skipped).

        Returns the finite values of each column of ``matrix``."""
        v = np.asarray(matrix, dtype=np.float64).reshape(-1, self.width)
        return self.add_columns(v.T)  # one body: the drift fold holds its values transposed

    def add_columns(self, columns: npt.ArrayLike) -> IntArray:
        """:meth:`add` of a matrix given transposed: ``columns`` is ``(width, n)``."""
        c = np.asarray(columns, dtype=np.float64).reshape(self.width, -1)
        if all_finite(c):  # fast path
            added = np.full(self.width, c.shape[1], dtype=np.int64)
            if c.shape[1]:
                self._widen(c.min(axis=1), c.max(axis=1))
        else:
            ok = np.isfinite(c)
            added = np.count_nonzero(ok, axis=1).astype(np.int64)
            kept = np.where(ok, c, np.nan)
            self._widen(np.fmin.reduce(kept, axis=1), np.fmax.reduce(kept, axis=1))
        self._count += added
        return added

    def _widen(self, lo: FloatArray, hi: FloatArray) -> None:
        np.fmin(self._min, lo, out=self._min)
        np.fmax(self._max, hi, out=self._max)

    def merge(self, other: Extremes) -> None:
        """Add ``other`` (same width) into this one, exactly."""
        if other.width != self.width:
            raise ValueError(f"cannot merge Extremes of width {self.width} and {other.width}")
        self._count = self._count + other._count
        self._min = np.fmin(self._min, other._min)
        self._max = np.fmax(self._max, other._max)

    @property
    def count(self) -> IntArray:
        """Finite values seen, per column."""
        return self._count.copy()

    @property
    def min(self) -> FloatArray:
        """Smallest finite value per column; NaN when none."""
        return np.where(self._count > 0, self._min, np.nan)

    @property
    def max(self) -> FloatArray:
        """Largest finite value per column; NaN when none."""
        return np.where(self._count > 0, self._max, np.nan)

    def state(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "count": self._count.copy(),
            "min": self._min.copy(),
            "max": self._max.copy(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Extremes:
        """From :meth:`state`, or from a :class:`Moments` state (its count, min, max)."""
        width = state["width"]
        count = np.asarray(state["count"], dtype=np.int64).reshape(-1)
        out = cls(count.size if width is None else int(width))
        out._count = count.copy()
        out._min = np.asarray(state["min"], dtype=np.float64).reshape(-1).copy()
        out._max = np.asarray(state["max"], dtype=np.float64).reshape(-1).copy()
        return out

    def __repr__(self) -> str:
        return f"Extremes(count={self._count.tolist()!r})"
