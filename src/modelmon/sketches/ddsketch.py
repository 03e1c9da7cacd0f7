"""A mergeable quantile sketch with a relative-accuracy guarantee (DDSketch-style).

Three small layers, as in DataDog's ``sketches-py``:

* the **mapping** (:mod:`modelmon.sketches.mapping`): OpenTelemetry's base-2
  exponential mapping at the coarsest scale meeting the accuracy ``a`` (scale 6 for
  1%), ``gamma = 2 ** (2 ** -scale)``, ``key(x) = ceil(log2|x| * 2 ** scale)``; bucket
  ``k`` holds ``gamma**(k-1) < |x| <= gamma**k`` (OTel bucket index ``k - 1``) and is
  represented by ``2 * gamma**k / (1 + gamma)``, within a relative error
  ``(gamma - 1) / (gamma + 1) <= a`` of every value in the bucket;
* the **stores**: one dense ``int64`` array for positive values, one for negative
  values (indexed by ``key(|x|)``), each with an offset, plus a zero count;
* the **sketch**: :class:`LogSketch`.

Guarantee: for any ``q``, ``quantile(q)`` is within a relative error ``a`` of the
exact value of rank ``floor(q * (n - 1))`` (``np.quantile(..., method="lower")``),
as long as no bucket below that value was collapsed (see ``max_buckets``).

``max_buckets`` bounds each store: when a store would span more keys, the buckets of
the *lowest* keys (the values closest to zero) are collapsed into the lowest kept
bucket. At ``a = 1%`` (scale 6) and 4096 buckets a store spans a dynamic range of
``2 ** 64`` (about 1.8e19), so this only happens for data that mixes values that
far apart in magnitude; only the quantiles of the collapsed, smallest magnitudes lose
their guarantee.

NaN and +-inf never enter the sketch; :meth:`LogSketch.add` returns how many values it
rejected.

>>> import numpy as np
>>> s = LogSketch(0.01)
>>> s.add(np.array([1.0, 2.0, 3.0, np.nan]))
1
>>> round(s.quantile(0.5), 2)
1.99
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from . import mapping
from .moments import CHUNK_VALUES, column_reduce

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Ordinal of a bucket in a single increasing order over negatives, zero, positives:
# negatives ``-(key + _ORD)``, zero ``0``, positives ``key + _ORD``. Keys are bounded
# by about +-ln(1.8e308) / ln(gamma), far below 2**40 for any sane accuracy.
_ORD = 1 << 40
_KEY_BUFFER = 1 << 20  # keys counted per bincount in add_columns


class _Store:
    """A dense count array over consecutive keys ``offset .. offset + len - 1``."""

    __slots__ = ("counts", "offset")

    def __init__(self) -> None:
        self.counts: IntArray = np.zeros(0, dtype=np.int64)
        self.offset = 0

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def add_dense(self, lo: int, counts: IntArray, max_buckets: int) -> None:
        """Add ``counts[i]`` to key ``lo + i``, then collapse to ``max_buckets`` keys."""
        nz = np.flatnonzero(counts)
        if nz.size == 0:
            return
        counts = counts[nz[0] : nz[-1] + 1]
        lo += int(nz[0])
        hi = lo + len(counts)  # exclusive
        if self.counts.size == 0:
            self.counts, self.offset = counts.astype(np.int64, copy=True), lo
        else:
            self._extend(min(lo, self.offset), max(hi, self.offset + len(self.counts)))
            start = lo - self.offset
            self.counts[start : start + len(counts)] += counts
        self._collapse(max_buckets)

    def limit(self, max_buckets: int) -> int:
        """Lowest key a value could be added at without collapsing (any key if empty)."""
        if self.counts.size == 0:
            return -(1 << 60)
        return self.offset + len(self.counts) - max_buckets

    def _extend(self, lo: int, hi: int) -> None:
        if lo == self.offset and hi == self.offset + len(self.counts):
            return
        grown = np.zeros(hi - lo, dtype=np.int64)
        start = self.offset - lo
        grown[start : start + len(self.counts)] = self.counts
        self.counts, self.offset = grown, lo

    def _collapse(self, max_buckets: int) -> None:
        excess = len(self.counts) - max_buckets
        if excess > 0:
            self.counts[excess] += self.counts[:excess].sum()
            self.counts = self.counts[excess:].copy()
            self.offset += excess

    def merge(self, other: _Store, max_buckets: int) -> None:
        if other.counts.size:
            self.add_dense(other.offset, other.counts, max_buckets)

    def state(self) -> dict[str, Any]:
        return {"offset": self.offset, "counts": self.counts.copy()}

    def load(self, state: Mapping[str, Any]) -> None:
        self.offset = int(state["offset"])
        self.counts = np.asarray(state["counts"], dtype=np.int64).copy()


class LogSketch:
    """Quantile sketch with relative accuracy ``relative_accuracy`` (see module doc).

    >>> import numpy as np
    >>> a, b = LogSketch(), LogSketch()
    >>> _ = a.add(np.arange(1.0, 501.0)); _ = b.add(np.arange(501.0, 1001.0))
    >>> a.merge(b); a.count
    1000
    >>> abs(a.quantile(0.9) - 900.0) <= 0.01 * 900.0
    True
    """

    __slots__ = (
        "_buckets",
        "_neg",
        "_pos",
        "gamma",
        "inv_log_gamma",
        "max_buckets",
        "relative_accuracy",
        "scale",
        "zero_count",
    )

    def __init__(
        self, relative_accuracy: float = 0.01, max_buckets: int = mapping.DEFAULT_MAX_BUCKETS
    ) -> None:
        mapping.check_sketch_args(relative_accuracy, max_buckets)
        self.relative_accuracy = float(relative_accuracy)
        self.max_buckets = int(max_buckets)
        self.scale = mapping.scale_for(self.relative_accuracy)
        self.gamma = mapping.gamma(self.scale)
        self.inv_log_gamma = mapping.multiplier(self.scale)  # 1 / log2(gamma): keys use log2
        self._pos = _Store()
        self._neg = _Store()
        self.zero_count = 0
        self._buckets: tuple[IntArray, IntArray, FloatArray] | None = None

    # --- adding --------------------------------------------------------------------
    @property
    def count(self) -> int:
        """Values in the sketch (rejected values excluded)."""
        return self._pos.total + self._neg.total + self.zero_count

    def add(self, values: npt.ArrayLike) -> int:
        """Add every finite value of ``values``; return how many were rejected (NaN, inf)."""
        v = np.asarray(values, dtype=np.float64).reshape(-1, 1)
        before = self.count
        add_columns([self], v)
        return v.shape[0] - (self.count - before)

    def _add_dense(self, lo: int, neg: IntArray, zero: int, pos: IntArray) -> None:
        self._buckets = None
        self._neg.add_dense(lo, neg, self.max_buckets)
        self._pos.add_dense(lo, pos, self.max_buckets)
        self.zero_count += zero

    def merge(self, other: LogSketch) -> None:
        """Add ``other`` into this sketch, exactly (same result as adding its values)."""
        if (other.relative_accuracy, other.max_buckets) != (
            self.relative_accuracy,
            self.max_buckets,
        ):
            raise ValueError(
                "cannot merge sketches with different parameters: "
                f"({self.relative_accuracy}, {self.max_buckets}) vs "
                f"({other.relative_accuracy}, {other.max_buckets})"
            )
        self._buckets = None
        self._pos.merge(other._pos, self.max_buckets)
        self._neg.merge(other._neg, self.max_buckets)
        self.zero_count += other.zero_count

    def copy(self) -> LogSketch:
        """An independent copy."""
        return LogSketch.from_state(self.state())

    # --- reading -------------------------------------------------------------------
    def buckets(self) -> tuple[IntArray, IntArray, FloatArray]:
        """Non-empty buckets in increasing value order: ``(ordinals, counts, values)``.

        ``ordinals`` order buckets over the whole real line (see :meth:`ordinals`);
        ``values`` are the representative values. Cached until the next change.
        """
        if self._buckets is None:
            self._buckets = self._compute_buckets()
        return self._buckets

    def _compute_buckets(self) -> tuple[IntArray, IntArray, FloatArray]:
        neg_keys = np.flatnonzero(self._neg.counts)[::-1]
        pos_keys = np.flatnonzero(self._pos.counts)
        neg_k = neg_keys + self._neg.offset
        pos_k = pos_keys + self._pos.offset
        parts_o = [-(neg_k + _ORD)]
        parts_c = [self._neg.counts[neg_keys]]
        parts_v = [-self._value(neg_k)]
        if self.zero_count:
            parts_o.append(np.zeros(1, dtype=np.int64))
            parts_c.append(np.array([self.zero_count], dtype=np.int64))
            parts_v.append(np.zeros(1))
        parts_o.append(pos_k + _ORD)
        parts_c.append(self._pos.counts[pos_keys])
        parts_v.append(self._value(pos_k))
        return (
            np.concatenate(parts_o).astype(np.int64),
            np.concatenate(parts_c).astype(np.int64),
            np.concatenate(parts_v).astype(np.float64),
        )

    def _value(self, keys: IntArray) -> FloatArray:
        return mapping.values(keys, self.scale)

    def ordinals(self, values: npt.ArrayLike) -> IntArray:
        """The bucket ordinal of each value (comparable with :meth:`buckets`' ordinals).

        Values below a store's collapse limit (its highest key minus ``max_buckets - 1``)
        map to that limit, as they would if added; other values keep their own bucket.
        NaN maps to 0 (the zero bucket): callers pass finite values.
        """
        v = np.asarray(values, dtype=np.float64)
        a = np.abs(v)
        with np.errstate(divide="ignore", invalid="ignore"):
            k = np.ceil(np.log2(a) * self.inv_log_gamma)
        k = np.nan_to_num(k, nan=0.0, posinf=0.0, neginf=0.0).astype(np.int64)
        pos_k = np.maximum(k, self._pos.limit(self.max_buckets))
        neg_k = np.maximum(k, self._neg.limit(self.max_buckets))
        out = np.where(v > 0, pos_k + _ORD, np.where(v < 0, -(neg_k + _ORD), 0))
        return np.asarray(out, dtype=np.int64)

    def quantiles(self, qs: npt.ArrayLike) -> FloatArray:
        """Estimated quantiles (``nan`` for an empty sketch); ``qs`` in [0, 1]."""
        q = np.clip(np.asarray(qs, dtype=np.float64), 0.0, 1.0)
        _, counts, values = self.buckets()
        n = int(counts.sum())
        if n == 0:
            return np.full(q.shape, np.nan)
        cum = np.cumsum(counts)
        pos = np.searchsorted(cum, q * (n - 1), side="right")
        return np.asarray(values[np.minimum(pos, len(values) - 1)], dtype=np.float64)

    def quantile(self, q: float) -> float:
        """Estimated ``q``-quantile (``nan`` when empty)."""
        return float(self.quantiles(np.array([q]))[0])

    def cdf(self, x: npt.ArrayLike) -> FloatArray:
        """Share of values ``<= x`` at bucket resolution (values in x's bucket count).

        The error is at most the mass of the bucket holding ``x``.
        """
        ords, counts, _ = self.buckets()
        n = int(counts.sum())
        xs = np.asarray(x, dtype=np.float64)
        if n == 0:
            return np.full(xs.shape, np.nan)
        cum = np.concatenate([[0], np.cumsum(counts)])
        pos = np.searchsorted(ords, self.ordinals(xs), side="right")
        return np.asarray(cum[pos] / n, dtype=np.float64)

    # --- persistence ---------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Plain representation (ints, floats, numpy arrays)."""
        return {
            "relative_accuracy": self.relative_accuracy,
            "max_buckets": self.max_buckets,
            "zero_count": self.zero_count,
            "pos": self._pos.state(),
            "neg": self._neg.state(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> LogSketch:
        """Inverse of :meth:`state`."""
        sketch = cls(float(state["relative_accuracy"]), int(state["max_buckets"]))
        sketch.zero_count = int(state["zero_count"])
        sketch._buckets = None
        sketch._pos.load(state["pos"])
        sketch._neg.load(state["neg"])
        return sketch

    def __repr__(self) -> str:
        return f"LogSketch(relative_accuracy={self.relative_accuracy}, count={self.count})"


def add_columns(
    sketches: Sequence[LogSketch],
    matrix: npt.ArrayLike,
    shifts: npt.ArrayLike | None = None,
    bounds: tuple[FloatArray, FloatArray] | None = None,
) -> None:
    """Add column ``j`` of a 2-D ``matrix`` (minus ``shifts[j]``) to ``sketches[j]``.

    Vectorised over the whole matrix (in row chunks that stay in cache) with one
    ``np.bincount`` per chunk: no per-value loop. All sketches must share their
    parameters. NaN and +-inf are skipped. ``bounds`` (column-wise NaN-ignoring min
    and max of ``matrix``, e.g. from :class:`~modelmon.sketches.moments.Moments`)
    saves a pass when the caller has them.
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] != len(sketches):
        raise ValueError(f"matrix of shape {m.shape} does not match {len(sketches)} sketches")
    if not sketches or m.shape[0] == 0:
        return
    first = sketches[0]
    if any(
        (s.relative_accuracy, s.max_buckets) != (first.relative_accuracy, first.max_buckets)
        for s in sketches
    ):
        raise ValueError("add_columns needs sketches with equal parameters")
    d = m.shape[1]
    shift = np.zeros(d) if shifts is None else np.asarray(shifts, dtype=np.float64).reshape(d)
    lo_v, hi_v = bounds if bounds is not None else _bounds(m)
    if not (
        np.all(np.isfinite(lo_v) | np.isnan(lo_v)) and np.all(np.isfinite(hi_v) | np.isnan(hi_v))
    ):
        m = np.where(np.isinf(m), np.nan, m)
        lo_v, hi_v = _bounds(m)
    top = _top_keys(first, np.fmax(np.abs(lo_v - shift), np.abs(hi_v - shift)))
    width = first.max_buckets
    lo = top - (width - 1)
    trash = d * (2 * width + 1)
    hist = np.zeros(trash + 1, dtype=np.int64)
    rows = max(1, CHUNK_VALUES // d)
    # Keys of many chunks are collected and counted at once: one bincount per chunk
    # would spend its time zeroing and adding the (2 * width + 1) * d histogram.
    buf = np.empty(min(m.shape[0], max(rows, _KEY_BUFFER // d)) * d, dtype=np.int64)
    used = 0
    for start in range(0, m.shape[0], rows):
        keys = _chunk_keys(first, m[start : start + rows], shift, lo)
        if used + keys.size > buf.size:
            hist += np.bincount(buf[:used], minlength=trash + 1)
            used = 0
        np.copyto(buf[used : used + keys.size], keys.ravel(), casting="unsafe")
        used += keys.size
    hist += np.bincount(buf[:used], minlength=trash + 1)
    blocks = hist[:-1].reshape(d, 2 * width + 1)
    for j, sketch in enumerate(sketches):
        block = blocks[j]
        sketch._add_dense(int(lo[j]), block[width - 1 :: -1], int(block[width]), block[width + 1 :])


def _bounds(m: FloatArray) -> tuple[FloatArray, FloatArray]:
    return column_reduce(np.fmin, m), column_reduce(np.fmax, m)


def _top_keys(sketch: LogSketch, max_abs: FloatArray) -> FloatArray:
    """Highest key of each column, plus one as a margin for ulp differences of log."""
    with np.errstate(divide="ignore", invalid="ignore"):
        top = np.ceil(np.log2(max_abs) * sketch.inv_log_gamma) + 1.0
    return np.where(np.isfinite(top), top, 0.0)


def _chunk_keys(sketch: LogSketch, m: FloatArray, shift: FloatArray, lo: FloatArray) -> FloatArray:
    """Histogram slot of every value of a chunk, as floats (NaN -> the trash slot)."""
    d, width = m.shape[1], sketch.max_buckets
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = m - shift
        keys = np.abs(diff)
        np.log2(keys, out=keys)
        keys *= sketch.inv_log_gamma
        np.ceil(keys, out=keys)  # NaN stays NaN, zeros are -inf
        np.maximum(keys, lo, out=keys)  # zeros, and collapse below the kept range
        # Column j's block has 2 * width + 1 slots; with rel = key - lo, negatives sit
        # at width - 1 - rel, zero at width, positives at width + 1 + rel.
        keys -= lo - 1.0
        keys *= np.sign(diff)
        keys += width + np.arange(d) * (2 * width + 1)
    if math.isnan(float(keys.sum())):
        np.copyto(keys, d * (2 * width + 1), where=np.isnan(keys))
    return keys
