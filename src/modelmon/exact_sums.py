"""Exact, order-independent sums of floats (the profile builder's mergeable moments).

A finite double is ``m * 2**(e - 1075)`` with integers ``0 <= m < 2**53`` and
``1 <= e <= 2046``, so ``sum(x) * 2**SCALE`` is an integer: summed as a Python integer it
does not depend on the order or the partitioning of the values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SCALE = 1074
_SUM_CHUNK = 1 << 14  # values per vectorised exact-sum step (stays in cache)
_SUM_BLOCK = 1 << 25  # float sums of halves < 2**27 stay exact up to 2**26 values


def exact_sum(values: FloatArray) -> int:
    """``sum(values) * 2**1074`` exactly, as an integer (``values`` finite).

    Per block of at most ``2**16`` values, in error-free pieces: with ``2**e`` above the
    largest remainder, adding and subtracting ``1.5 * 2**(g + 52)`` rounds every
    remainder to a multiple of ``2**g`` (``g = e - k``, exactly), the difference is the
    next remainder (exact), and the rounded values, below ``2**k`` units each, sum below
    ``2**53`` units in any order; the pieces add as integers until nothing remains. So
    the result does not depend on the order or the split of the values. Values near the
    top of the range (or not finite) take :func:`exact_sum_by_exponent`.

    >>> v = np.array([1e16, 1.0, -1e16, 0.5])
    >>> exact_sum(v) / 2**1074, float(v.sum())
    (1.5, 0.5)
    """
    total = 0
    for start in range(0, values.size, _PIECE_ROWS):
        rem = np.array(values[start : start + _PIECE_ROWS], dtype=np.float64)
        k = 52 - rem.size.bit_length()  # n values below 2**k units: the sum < 2**52 units
        rounded = np.empty_like(rem)
        while rem.size:
            top = max(-float(rem.min()), float(rem.max()))
            if top == 0.0:
                break
            if not top < _PIECE_TOP:  # rem + c could overflow (or NaN/inf): by exponent
                return exact_sum_by_exponent(values)
            grid = max(math.frexp(top)[1] - k, -SCALE)  # top < 2**(grid + k)
            c = math.ldexp(1.5, grid + 52)
            np.add(rem, c, out=rounded)
            rounded -= c  # rem rounded to a multiple of 2**grid, exactly
            rem -= rounded  # the exact remainder, |rem| <= 2**(grid - 1)
            units = math.ldexp(float(rounded.sum()), -grid)  # an exact integer
            total += int(units) << (grid + SCALE)
    return total


_PIECE_ROWS = 1 << 16
_PIECE_TOP = 2.0**960  # grid + 53 <= 1023 for every k >= 35: c and rem + c stay finite


def exact_sum_by_exponent(values: FloatArray) -> int:
    """:func:`exact_sum` per sign and exponent (any magnitude; slower).

    Each double is read from its bits as ``+-(2**52 [normal] + f) * 2**(e - 1075)``:
    per sign and exponent, the values are counted and the two halves of ``f`` (each
    below ``2**26``) are summed as floats, which stay exact; so the result does not
    depend on the order of the values.

    >>> exact_sum_by_exponent(np.array([1e16, 1.0, -1e16, 0.5])) / 2**1074
    1.5
    """
    total = 0
    for block in range(0, values.size, _SUM_BLOCK):
        counts = np.zeros(_SLOTS, dtype=np.int64)
        his = np.zeros(_SLOTS)
        los = np.zeros(_SLOTS)
        end = min(block + _SUM_BLOCK, values.size)
        for start in range(block, end, _SUM_CHUNK):  # small chunks stay in cache
            _add_signed(values[start : min(start + _SUM_CHUNK, end)], counts, his, los)
        for slot in np.flatnonzero(counts).tolist():
            exponent, sign = slot & 0x7FF, -1 if slot >> 11 else 1
            m = (int(his[slot]) << 26) + int(los[slot])
            if exponent:  # normal numbers: the implicit leading bit of each value
                m += int(counts[slot]) << 52
            total += sign * (m << (max(exponent, 1) - 1))  # subnormals: as exponent 1
    return total


_SLOTS = 1 << 12  # sign bit and 11 exponent bits: the top 12 bits of a double
_MANTISSA = (1 << 52) - 1
_HALF = (1 << 26) - 1


def _add_signed(v: FloatArray, counts: IntArray, his: FloatArray, los: FloatArray) -> None:
    """Count ``v`` per sign and exponent and add the halves of their fractions there."""
    if v.size == 0:
        return
    bits = np.ascontiguousarray(v, dtype=np.float64).view(np.uint64)
    slot = (bits >> np.uint64(52)).view(np.int64)  # < 4096: the same integers, no copy
    frac = bits & np.uint64(_MANTISSA)
    counts += np.bincount(slot, minlength=_SLOTS)
    his += np.bincount(slot, weights=(frac >> np.uint64(26)).astype(np.float64), minlength=_SLOTS)
    los += np.bincount(slot, weights=(frac & np.uint64(_HALF)).astype(np.float64), minlength=_SLOTS)


# --- exact cross-products on a fixed-point grid (the Mahalanobis moments) ------------------

#: Bits of the fixed-point grid below each column's bound: a value is rounded to a
#: multiple of ``2**(E - GRID_BITS)`` where ``2**E`` bounds ``|x - centre|`` (about one
#: unit in the last place of the column's largest deviation).
GRID_BITS = 52
_SLICE = 18  # a grid integer is three slices: 0 <= low, mid < 2**18, |high| <= 2**16
_GRAM_ROWS = 1 << 13  # slice products < 2**36: a block's sums stay below 2**49 (exact);
# (blocks up to 2**17 rows would be exact; 8,192 keeps the buffer small: 3 MB at 16 columns)
_TOP = 2.0 ** (GRID_BITS - 2 * _SLICE)  # the largest |high| of a value within its bound
_FLUSH_BLOCKS = 1 << 12  # int64 sums of blocks below 2**49 each stay below 2**61


def grid_exponent(low: float, high: float, centre: float) -> int:
    """The ``E`` with ``|x - centre| < 2**E`` for every ``low <= x <= high`` (finite).

    The bound is the rounded difference at each end (rounding is monotonic, so every
    value in between rounds inside it); when that overflows, twice the largest magnitude;
    with no spread, the magnitude (so scaling the values cannot overflow).

    >>> grid_exponent(-3.0, 5.0, 1.0), grid_exponent(6.0, 6.0, 6.0)
    (3, 3)
    """
    far = max(abs(high - centre), abs(low - centre))
    if far > 0 and math.isfinite(far):
        return math.frexp(far)[1]
    top = max(abs(low), abs(high), abs(centre))
    return math.frexp(top)[1] + (far > 0) if top > 0 else -1074


def grid_values(
    matrix: FloatArray, exponents: Sequence[int], centres: Sequence[float]
) -> FloatArray:
    """Each value's grid integer ``rint(x * 2**k - centre * 2**k)``, ``k = GRID_BITS - E``
    of its column, as exact float64 integers (``|q| <= 2**GRID_BITS``).

    Scaling by a power of two is exact and comes first, so no difference overflows; the
    scaled difference is rounded (by at most 1/4 once above ``2**51``) before ``rint``, so
    ``q`` is within 3/4 of a grid step of the exact ``x - centre``.
    """
    k = GRID_BITS - np.asarray(exponents, dtype=np.int64)
    scaled = np.ldexp(matrix, k)
    scaled -= np.ldexp(np.asarray(centres, dtype=np.float64), k)
    return np.rint(scaled, out=scaled)


def grid_moments(
    columns: Sequence[FloatArray], exponents: Sequence[int], centres: Sequence[float]
) -> tuple[list[int], list[int]]:
    """Exact ``sum(q_i)`` and ``sum(q_i * q_j)`` (``i <= j``, ``np.triu_indices`` order) of
    the grid integers (:func:`grid_values`) of ``columns`` (equal lengths, finite values
    within each column's bound: else ``ValueError``, as the sums would not be exact).

    Every ``q`` is split into three slices of at most 18 bits, and one float64 matrix
    product per block of rows (``Y @ Y.T`` with the rows of ``Y`` ``[1, low, mid, high]``)
    sums their pairwise products: each is an integer below ``2**36`` and a block's sums
    stay below ``2**49``, so BLAS computes them exactly in any order; the blocks add as
    integers. The result is the same for any split of the rows, and costs one small
    matrix product per block instead of an exact sum per pair of columns.

    >>> s1, s2 = grid_moments([np.array([1.0, 3.0]), np.array([2.0, -4.0])], [2, 3], [0, 0])
    >>> s1 == [4 << 50, -2 << 49], s2 == [10 << 100, -10 << 99, 20 << 98]
    (True, True)
    """
    p = len(columns)
    rows = columns[0].size if p else 0
    width = 1 + 3 * p
    k = [GRID_BITS - int(e) for e in exponents]
    shifted = [math.ldexp(float(c), kk) for c, kk in zip(centres, k, strict=True)]
    total = np.zeros((width, width), dtype=object)
    sums = np.zeros((width, width), dtype=np.int64)
    buffer = np.empty((width, min(rows, _GRAM_ROWS)))
    pending = 0
    for start in range(0, rows, _GRAM_ROWS):
        n = min(rows - start, _GRAM_ROWS)
        y = buffer[:, :n]  # one row per slice, contiguous: y @ y.T is one BLAS call
        y[0] = 1.0
        for j, column in enumerate(columns):
            low, mid, high = y[1 + j], y[1 + p + j], y[1 + 2 * p + j]
            np.ldexp(column[start : start + n], k[j], out=high)  # q first, in high's row
            high -= shifted[j]
            np.rint(high, out=high)
            np.multiply(high, 2.0**-_SLICE, out=mid)  # q >> 18, exactly
            np.floor(mid, out=mid)
            np.multiply(mid, -(2.0**_SLICE), out=low)
            low += high
            np.multiply(mid, 2.0**-_SLICE, out=high)
            np.floor(high, out=high)
            mid -= high * 2.0**_SLICE
        top = y[1 + 2 * p :]
        if top.size and not np.abs(top).max() <= _TOP:  # also NaN: not a finite value
            raise ValueError("a value beyond its column's grid bound 2**E (or not finite)")
        sums += (y @ y.T).astype(np.int64)
        pending += 1
        if pending == _FLUSH_BLOCKS:
            total += sums.astype(object)
            sums[:] = 0
            pending = 0
    total += sums.astype(object)
    parts = [1 + a * p + np.arange(p) for a in range(3)]
    s1 = np.zeros(p, dtype=object)
    s2 = np.zeros((p, p), dtype=object)
    for a in range(3):
        s1 += total[0, parts[a]] * (1 << (_SLICE * a))
        for b in range(3):
            s2 += total[np.ix_(parts[a], parts[b])] * (1 << (_SLICE * (a + b)))
    iu, ju = np.triu_indices(p)
    return [int(v) for v in s1], [int(v) for v in s2[iu, ju]]
