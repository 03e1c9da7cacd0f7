"""Mergeable count, mean, variance, min and max (Chan et al. parallel update).

Guarantee: ``merge`` gives the same count/min/max and, up to floating-point rounding,
the same mean and ``m2`` as adding the concatenated data (Chan, Golub & LeVeque,
"Algorithms for computing the sample variance", 1979).

A :class:`Moments` holds either one series (``width=None``, ``add`` takes a 1-D array
and the properties are floats) or ``width`` columns at once (``add`` takes an
``(n, width)`` matrix, reduced column-wise, and the properties are arrays).

>>> import numpy as np
>>> m = Moments(); m.add(np.array([1.0, 2.0, 3.0, np.nan]))
>>> m.count, m.mean, m.variance
(3, 2.0, 0.6666666666666666)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from .extremes import all_finite

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_GROUP = 64  # rows folded side by side in column_reduce (long inner loops)
# Values per chunk of vectorised work: temporaries stay in cache and below malloc's
# mmap threshold, which is several times faster than whole-matrix temporaries.
CHUNK_VALUES = 1 << 14


def column_reduce(ufunc: np.ufunc, m: npt.NDArray[Any], dtype: Any = None) -> npt.NDArray[Any]:
    """``ufunc.reduce(m, axis=0)`` for a C-ordered ``(n, d)`` matrix, several times faster.

    numpy reduces axis 0 of a narrow matrix row by row (inner loops of length ``d``);
    viewing ``_GROUP`` rows as one wide row gives long vectorised inner loops.
    """
    n, d = m.shape
    k = n // _GROUP * _GROUP
    if k == 0:
        return np.asarray(ufunc.reduce(m, axis=0, dtype=dtype))
    wide = np.ascontiguousarray(m[:k]).reshape(-1, _GROUP * d)
    r = ufunc.reduce(ufunc.reduce(wide, axis=0, dtype=dtype).reshape(_GROUP, d), axis=0)
    if k < n:
        r = ufunc(r, ufunc.reduce(m[k:], axis=0, dtype=dtype))
    return np.asarray(r)


def _reading(attr: str, doc: str, *, nan_when_empty: bool = False) -> Any:
    """A read-only :class:`Moments` property: its array ``attr``, a float when ``width=None``."""

    def read(self: Moments) -> Any:
        a = getattr(self, attr)
        return self._out(np.where(self._count > 0, a, np.nan) if nan_when_empty else a)

    return property(read, doc=doc)


class Moments:
    """Count, mean, ``m2`` (sum of squared deviations), min, max of finite values.

    >>> import numpy as np
    >>> a, b = Moments(), Moments()
    >>> a.add(np.arange(10.0)); b.add(np.arange(10.0, 20.0)); a.merge(b)
    >>> a.count, a.mean, a.min, a.max
    (20, 9.5, 0.0, 19.0)
    """

    __slots__ = ("_count", "_m2", "_max", "_mean", "_min", "width")

    def __init__(self, width: int | None = None) -> None:
        self.width = width
        w = 1 if width is None else int(width)
        self._count: IntArray = np.zeros(w, dtype=np.int64)
        self._mean: FloatArray = np.zeros(w)
        self._m2: FloatArray = np.zeros(w)
        self._min: FloatArray = np.full(w, np.inf)
        self._max: FloatArray = np.full(w, -np.inf)

    # --- adding --------------------------------------------------------------------
    def add(self, values: npt.ArrayLike) -> None:
        """Add the finite values (NaN and +-inf are skipped), column-wise if 2-D."""
        v = np.asarray(values, dtype=np.float64)
        v = v.reshape(-1, 1) if self.width is None else v.reshape(-1, self.width)
        rows = max(1, CHUNK_VALUES // v.shape[1])
        for start in range(0, v.shape[0], rows):
            chunk = v[start : start + rows]
            if all_finite(chunk):  # fast path
                self._add_parts(*_clean_parts(chunk))
            else:
                self._add_parts(*_masked_parts(chunk))

    def _add_parts(
        self, n: IntArray, mean: FloatArray, m2: FloatArray, lo: FloatArray, hi: FloatArray
    ) -> None:
        total = self._count + n
        safe = np.maximum(total, 1)
        delta = mean - self._mean
        self._m2 = self._m2 + m2 + delta * delta * (self._count * n / safe)
        self._mean = np.where(total > 0, self._mean + delta * (n / safe), 0.0)
        self._count = total
        self._min = np.fmin(self._min, lo)
        self._max = np.fmax(self._max, hi)

    def merge(self, other: Moments) -> None:
        """Add ``other`` (same width) into this one (Chan et al.)."""
        if other.width != self.width:
            raise ValueError(f"cannot merge Moments of width {self.width} and {other.width}")
        self._add_parts(other._count, other._mean, other._m2, other._min, other._max)

    # --- reading -------------------------------------------------------------------
    def _out(self, a: npt.NDArray[Any]) -> Any:
        return a.copy() if self.width is not None else a[0].item()

    count = _reading("_count", "Values seen.")
    mean = _reading("_mean", "Mean; NaN when empty.", nan_when_empty=True)
    m2 = _reading("_m2", "Sum of squared deviations from the mean.")
    min = _reading("_min", "Smallest value; NaN when empty.", nan_when_empty=True)
    max = _reading("_max", "Largest value; NaN when empty.", nan_when_empty=True)

    @property
    def variance(self) -> Any:
        """Population variance (``ddof=0``); NaN when empty."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self._out(np.where(self._count > 0, self._m2 / self._count, np.nan))

    @property
    def std(self) -> Any:
        """Population standard deviation (``ddof=0``)."""
        return self._out(np.sqrt(np.atleast_1d(np.asarray(self.variance, dtype=np.float64))))

    # --- persistence ---------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "count": self._count.copy(),
            "mean": self._mean.copy(),
            "m2": self._m2.copy(),
            "min": self._min.copy(),
            "max": self._max.copy(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Moments:
        width = state["width"]
        m = cls(None if width is None else int(width))
        m._count = np.asarray(state["count"], dtype=np.int64).copy()
        m._mean = np.asarray(state["mean"], dtype=np.float64).copy()
        m._m2 = np.asarray(state["m2"], dtype=np.float64).copy()
        m._min = np.asarray(state["min"], dtype=np.float64).copy()
        m._max = np.asarray(state["max"], dtype=np.float64).copy()
        return m

    def __repr__(self) -> str:
        return f"Moments(count={self.count!r}, mean={self.mean!r}, std={self.std!r})"


Parts = tuple[IntArray, FloatArray, FloatArray, FloatArray, FloatArray]


def _clean_parts(v: FloatArray) -> Parts:
    n = v.shape[0]
    mean = column_reduce(np.add, v) / n
    dev = v - mean
    np.multiply(dev, dev, out=dev)
    m2 = column_reduce(np.add, dev)
    lo = column_reduce(np.minimum, v)
    hi = column_reduce(np.maximum, v)
    return np.full(v.shape[1], n, dtype=np.int64), mean, m2, lo, hi


def _masked_parts(v: FloatArray) -> Parts:
    ok = np.isfinite(v)
    n = column_reduce(np.add, ok.view(np.uint8), dtype=np.int64).astype(np.int64)
    filled = np.where(ok, v, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, column_reduce(np.add, filled) / np.maximum(n, 1), 0.0)
    dev = np.where(ok, v - mean, 0.0)
    np.multiply(dev, dev, out=dev)
    m2 = column_reduce(np.add, dev)
    lo = column_reduce(np.fmin, np.where(ok, v, np.nan))
    hi = column_reduce(np.fmax, np.where(ok, v, np.nan))
    return n, mean, m2, np.where(n > 0, lo, np.inf), np.where(n > 0, hi, -np.inf)
