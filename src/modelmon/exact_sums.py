"""Exact, order-independent sums of floats (the profile builder's mergeable moments).

A finite double is ``m * 2**(e - 1075)`` with integers ``0 <= m < 2**53`` and
``1 <= e <= 2046``, so ``sum(x) * 2**SCALE`` is an integer: summed as a Python integer it
does not depend on the order or the partitioning of the values.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SCALE = 1074
_SUM_CHUNK = 1 << 14  # values per vectorised exact-sum step (stays in cache)
_SUM_BLOCK = 1 << 25  # float sums of halves < 2**27 stay exact up to 2**26 values


def exact_sum(values: FloatArray) -> int:
    """``sum(values) * 2**1074`` exactly, as an integer (``values`` finite).

    Each double is read from its bits as ``+-(2**52 [normal] + f) * 2**(e - 1075)``:
    per sign and exponent, the values are counted and the two halves of ``f`` (each
    below ``2**26``) are summed as floats, which stay exact; so the result does not
    depend on the order of the values.

    >>> v = np.array([1e16, 1.0, -1e16, 0.5])
    >>> exact_sum(v) / 2**1074, float(v.sum())
    (1.5, 0.5)
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


def exact_column_sums(matrix: FloatArray) -> list[int]:
    """:func:`exact_sum` of each column of a 2-D array (one vectorised pass)."""
    rows, width = matrix.shape
    totals = [0] * width
    block_rows = max(_SUM_BLOCK // max(width, 1), 1)
    chunk_rows = max(_SUM_CHUNK // max(width, 1), 1)
    for block in range(0, rows, block_rows):
        his = np.zeros(2047 * width)
        los = np.zeros(2047 * width)
        end = min(block + block_rows, rows)
        for start in range(block, end, chunk_rows):  # small chunks stay in cache
            _add_mantissas(matrix[start : min(start + chunk_rows, end)], his, los)
        for k in np.flatnonzero((his != 0) | (los != 0)).tolist():
            col, e = divmod(k, 2047)
            totals[col] += ((int(his[k]) << 26) + int(los[k])) << (e - 1)
    return totals


def _add_mantissas(v: FloatArray, his: FloatArray, los: FloatArray) -> None:
    """Add the signed mantissa halves of ``v`` (rows x columns) per column and exponent
    (index ``2047 * column + exponent``; float sums stay exact)."""
    if v.size == 0:
        return
    bits = np.ascontiguousarray(v, dtype=np.float64).view(np.int64)
    biased = (bits >> 52) & 0x7FF
    m = bits & _MANTISSA
    m |= (biased > 0).astype(np.int64) << 52  # the implicit leading bit of normal numbers
    e = np.maximum(biased, 1)  # subnormals share the exponent of the smallest normal
    negative = bits < 0
    hi = (m >> 26).astype(np.float64)
    lo = (m & _HALF).astype(np.float64)
    np.negative(hi, out=hi, where=negative)
    np.negative(lo, out=lo, where=negative)
    e = (e + 2047 * np.arange(v.shape[1])).reshape(-1)
    his += np.bincount(e, weights=hi.reshape(-1), minlength=his.size)
    los += np.bincount(e, weights=lo.reshape(-1), minlength=los.size)
