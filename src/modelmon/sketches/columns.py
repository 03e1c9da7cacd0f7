"""Many quantile sketches side by side: one per column of a matrix, in one 2-D array.

:class:`LogSketchColumns` keeps ``width`` DDSketch-style sketches with the mapping of
:class:`~modelmon.sketches.ddsketch.LogSketch` (OpenTelemetry's base-2 exponential
mapping, :mod:`~modelmon.sketches.mapping`: ``key(x) = ceil(log2|x| * 2 ** scale)``,
bucket ``k`` represented by ``2 * gamma**k / (1 + gamma)``) in a single ``(width, 2 * span + 1)``
``int64`` array, so adding a matrix, merging, and reading every column (CDF grid,
quantiles) are a handful of numpy calls whatever the number of columns: no Python
loop per column, which is what dominates small batches.

Layout: row ``j`` covers the keys ``lo[j] .. lo[j] + span - 1`` of both signs, in
increasing value order: ``-|x|`` with key ``lo[j] + r`` at ``span - 1 - r``, exact zeros
at ``span``, ``+|x|`` with key ``lo[j] + r`` at ``span + 1 + r``. Empty buckets are
zeros, so a row is the column's bucket counts on its ordinal line.

Guarantee (as :class:`LogSketch`): ``quantiles(q)`` of a column is within relative
error ``a`` of the exact value of rank ``floor(q * (n - 1))``, as long as nothing
collapsed. A column spans at most ``max_buckets`` keys below ``top[j]``, its highest
key over both signs; smaller magnitudes collapse into key ``top[j] - max_buckets + 1``
(at ``a = 1%`` and 4096 buckets only for data spanning more than a factor ``1.8e19``).
Adding and merging are exact: the result never depends on the order of the data.

>>> import numpy as np
>>> s = LogSketchColumns(2)
>>> s.add(np.array([[1.0, -5.0], [2.0, np.nan], [3.0, 0.0]]))
>>> s.count.tolist()
[3, 2]
>>> [round(float(v), 2) for v in s.quantiles([0.5])[:, 0]]  # within 1% of 2 and -5
[1.99, -4.99]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from . import mapping
from .ddsketch import LogSketch
from .occupied import Occupied
from .scratch import MAX_VALUES, Scratch

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

EMPTY = -(1 << 60)  # ``top`` of a column holding no non-zero value
# Values per vectorised chunk: a whole fold part (fold_parts.MAX_PART_VALUES), so the
# fold's fixed cost per chunk is paid once a part. The drift fold's temporaries are
# reused arrays (modelmon.sketches.scratch): allocated afresh, arrays this large (and
# the former 256 KiB ones) were page-faulted in again at every fold.
_CHUNK = MAX_VALUES
_MIN_CHUNK_ROWS = 64  # wide matrices: fewer rows per chunk would cost more in calls
_KEY_BUFFER = 1 << 20  # indices counted per bincount
# Spare keys when the layout grows (fewer re-layouts); scale-6 keys are 1.85x denser than
# the former mapping's, so the spare range stays what 16 and 4 keys used to cover.
_PAD_LOW, _PAD_HIGH = 30, 8
# Spare keys above a column laid out up front (lay_out): its top is an estimate.
_LAID_PAD_HIGH = 64
# Values per grid cell below which a flush adds them one by one rather than through a
# histogram of the whole grid: numpy >= 1.25's ``add.at`` is the faster of the two up to
# twice as many values as cells; before, it was ten times slower per value.
_ADD_AT_SHARE = 2.0 if np.lib.NumpyVersion(np.__version__) >= "1.25.0" else 0.25


def chunk_rows(width: int) -> int:
    """Rows of a ``width``-column matrix per vectorised chunk (see ``_CHUNK``)."""
    return max(_MIN_CHUNK_ROWS, _CHUNK // max(width, 1))


class LogSketchColumns:
    """``width`` quantile sketches with relative accuracy ``relative_accuracy``.

    See the module doc for the layout and the guarantee.
    """

    __slots__ = (
        "_laid",
        "counts",
        "gamma",
        "inv_log_gamma",
        "lo",
        "max_buckets",
        "relative_accuracy",
        "scale",
        "span",
        "top",
        "width",
    )

    def __init__(
        self,
        width: int,
        relative_accuracy: float = 0.01,
        max_buckets: int = mapping.DEFAULT_MAX_BUCKETS,
    ) -> None:
        mapping.check_sketch_args(relative_accuracy, max_buckets)
        self.width = int(width)
        self.relative_accuracy = float(relative_accuracy)
        self.max_buckets = int(max_buckets)
        self.scale = mapping.scale_for(self.relative_accuracy)
        self.gamma = mapping.gamma(self.scale)
        self.inv_log_gamma = mapping.multiplier(self.scale)  # 1 / log2(gamma): keys use log2
        self.lo: IntArray = np.zeros(self.width, dtype=np.int64)
        self.top: IntArray = np.full(self.width, EMPTY, dtype=np.int64)
        self.span = 0
        self.counts: IntArray = np.zeros((self.width, 1), dtype=np.int64)
        self._laid: npt.NDArray[np.bool_] | None = None  # columns given a layout up front

    # --- reading -------------------------------------------------------------------
    @property
    def count(self) -> IntArray:
        """Values in each column."""
        return np.asarray(self.counts.sum(axis=1), dtype=np.int64)

    @property
    def params(self) -> tuple[int, float, int]:
        return (self.width, self.relative_accuracy, self.max_buckets)

    def limit(self) -> IntArray:
        """Lowest key that is not collapsed, per column."""
        return np.asarray(self.top - (self.max_buckets - 1), dtype=np.int64)

    def keys(self, values: npt.ArrayLike) -> FloatArray:
        """``ceil(log2|x| * 2 ** scale)`` elementwise (``-inf`` for 0, NaN for NaN)."""
        v = np.asarray(values, dtype=np.float64)
        return self._keys_into(v, np.empty(v.shape))

    def _keys_into(self, values: FloatArray, out: FloatArray) -> FloatArray:
        """:meth:`keys` of ``values`` written into ``out`` (same shape)."""
        np.abs(values, out=out)
        with np.errstate(divide="ignore", invalid="ignore"):
            np.log2(out, out=out)
        out *= self.inv_log_gamma
        return np.ceil(out, out=out)

    def positions(self, values: npt.ArrayLike, rows: IntArray | None = None) -> FloatArray:
        """Where ``values`` (``(len(rows), m)``, finite) fall on the grids of ``rows``.

        Position ``g`` (an integer) is grid cell ``g``; a value in no cell (its bucket
        is outside the layout) gets a position strictly between its neighbouring cells,
        so comparing positions compares bucket ordinals exactly. Keys below the collapse
        limit count as the limit key, as if the value had been added.
        """
        v = np.asarray(values, dtype=np.float64)
        lo = self.lo if rows is None else self.lo[rows]
        limit = self.limit() if rows is None else self.limit()[rows]
        k = np.maximum(self.keys(v), limit[:, None])
        r = k - lo[:, None]
        # Below the layout (r < 0): strictly between the zero cell and key lo's cell.
        inner = np.where(r >= 0, r + 1.0, 1.0 / (2.0 - np.minimum(r, 0.0)))
        return np.asarray(self.span + np.sign(v) * inner, dtype=np.float64)

    def values(self) -> FloatArray:
        """Representative value of every grid cell, ``(width, 2 * span + 1)``."""
        s = self.span
        if s == 0:
            return np.zeros((self.width, 1))
        k_lo, table = self._value_table()
        pos = table[(self.lo - k_lo)[:, None] + np.arange(s)]
        return np.concatenate([-pos[:, ::-1], np.zeros((self.width, 1)), pos], axis=1)

    def _value_table(self) -> tuple[int, FloatArray]:
        """``(k_lo, table)``: the representative value of key ``k_lo + i`` is ``table[i]``,
        for every key of the layout (``span > 0``)."""
        k_lo, k_hi = int(self.lo.min()), int(self.lo.max()) + self.span - 1
        return k_lo, _values_of_keys(self.scale, k_lo, k_hi)

    def values_at(self, rows: npt.ArrayLike, cells: npt.ArrayLike) -> FloatArray:
        """``values()[rows, cells]``, computed for those cells only (broadcasting)."""
        cell = np.asarray(cells, dtype=np.int64)
        signed = cell - self.span  # < 0: the negative side, 0: the zero cell
        if self.span == 0:
            return np.zeros(np.broadcast(np.asarray(rows), cell).shape)
        k_lo, table = self._value_table()
        out = table[
            self.lo[np.asarray(rows, dtype=np.intp)] - k_lo + np.maximum(np.abs(signed) - 1, 0)
        ]
        return np.where(signed == 0, 0.0, np.copysign(out, signed))

    def quantiles(
        self, qs: npt.ArrayLike, rows: IntArray | None = None, occupied: Occupied | None = None
    ) -> FloatArray:
        """``(rows, len(qs))`` estimated quantiles (NaN for an empty column).

        ``occupied``: the non-empty cells of ``rows``, when the caller has them already.
        """
        picked = np.arange(self.width) if rows is None else np.asarray(rows, dtype=np.int64)
        occ = Occupied.of(self, picked) if occupied is None else occupied
        out = self.values_at(picked[:, None], occ.quantile_cells(qs))
        return np.asarray(np.where(occ.n[:, None] > 0, out, np.nan), dtype=np.float64)

    # --- adding --------------------------------------------------------------------
    def occupied_keys(self) -> tuple[IntArray, IntArray]:
        """Per column, the lowest and highest key holding a non-zero value (both
        :data:`EMPTY` for a column holding none): what :meth:`lay_out` takes."""
        s = self.span
        if s == 0:
            return np.full(self.width, EMPTY, dtype=np.int64), self.top.copy()
        full = (self.counts[:, s - 1 :: -1] != 0) | (self.counts[:, s + 1 :] != 0)
        low = self.lo + np.argmax(full, axis=1)
        return np.where(self.top != EMPTY, low, EMPTY).astype(np.int64), self.top.copy()

    def lay_out(self, low: npt.ArrayLike, top: npt.ArrayLike) -> None:
        """Lay the columns out for the keys ``low[j] .. top[j]`` (expected, e.g. the last
        window slot's :meth:`occupied_keys`; :data:`EMPTY`: not known) before any non-zero
        value arrives: values that fit are then added without a re-layout.

        Each column gets spare keys above its ``top`` and all the room the common span
        leaves below its ``low`` (the low end of ``x - center`` is what keeps moving).
        Only where the counts sit changes, never what is counted: zeros already added
        move with the layout, a key below a column's collapse limit still collapses, and
        a column needing keys outside its layout is re-laid out as it would be anyway.
        A sketch already holding a non-zero value (``span > 0``) is left as it is.
        """
        low_ = np.asarray(low, dtype=np.int64).reshape(self.width)
        top_ = np.asarray(top, dtype=np.int64).reshape(self.width)
        known = (low_ != EMPTY) & (top_ != EMPTY) & (low_ <= top_)
        if self.span > 0 or not known.any():
            return
        hi = top_ + _LAID_PAD_HIGH
        lo = np.maximum(
            low_ - np.maximum(_PAD_LOW, (top_ - low_) // 4), top_ - (self.max_buckets - 1)
        )
        most = self.max_buckets + _LAID_PAD_HIGH
        span = min(int(np.max(np.where(known, hi - lo + 1, 1))), most)
        self._blank_layout(np.where(known, hi - span + 1, 0).astype(np.int64), span, known)

    def lay_out_like(self, other: LogSketchColumns) -> None:
        """Take ``other``'s layout (same width) before any non-zero value arrives, as
        :meth:`lay_out` does: sketches of one layout merge by adding their counts."""
        if self.span > 0 or other.span == 0 or other.width != self.width:
            return
        laid = other.top != EMPTY  # a column without values or a layout has no lo of its own
        self._blank_layout(
            other.lo.copy(), other.span, laid if other._laid is None else laid | other._laid
        )

    def _blank_layout(self, lo: IntArray, span: int, laid: npt.NDArray[np.bool_]) -> None:
        """Lay out a sketch holding no non-zero value (its zeros kept) as ``lo``/``span``."""
        counts = np.zeros((self.width, 2 * span + 1), dtype=np.int64)
        counts[:, span] = self.counts[:, 0]
        self.counts, self.lo, self.span, self._laid = counts, lo, span, laid

    def add(
        self,
        matrix: npt.ArrayLike,
        shifts: npt.ArrayLike | None = None,
    ) -> None:
        """Add column ``j`` of ``matrix`` minus ``shifts[j]`` to sketch ``j``.

        NaN and +-inf are skipped. Vectorised in row chunks that stay in cache, each
        worked on transposed (see :meth:`add_columns`).
        """
        m = np.asarray(matrix, dtype=np.float64)
        if m.ndim != 2 or m.shape[1] != self.width:
            raise ValueError(f"matrix of shape {m.shape} does not match width {self.width}")
        rows = chunk_rows(self.width)
        chunks = (m[start : start + rows].T for start in range(0, m.shape[0], rows))
        self._add_chunks(chunks, m.shape[0], shifts)

    def add_columns(
        self,
        columns: npt.ArrayLike,
        shifts: npt.ArrayLike | None = None,
        scratch: Scratch | None = None,
    ) -> None:
        """Add row ``j`` of ``columns`` (``(width, n)``: a matrix transposed) minus
        ``shifts[j]`` to sketch ``j``, as :meth:`add` adds the matrix.

        A column per row, every step with a per-column operand (the shift, the layout's
        offsets, the range of keys) runs along whole columns, not ``width`` values at a
        time; a caller holding its columns that way (the drift fold) saves the copy.
        ``scratch``: where the temporaries go (the fold's reused arrays; default new ones).
        """
        c = np.asarray(columns, dtype=np.float64)
        if c.ndim != 2 or c.shape[0] != self.width:
            raise ValueError(f"columns of shape {c.shape} do not match width {self.width}")
        step = chunk_rows(self.width)
        self._add_chunks(
            (c[:, s : s + step] for s in range(0, c.shape[1], step)),
            c.shape[1],
            shifts,
            scratch,
        )

    def _add_chunks(
        self,
        chunks: Iterable[FloatArray],
        n: int,
        shifts: npt.ArrayLike | None,
        scratch: Scratch | None = None,
    ) -> None:
        """Add the ``(width, k)`` chunks of ``n`` values per column in all."""
        d = self.width
        if n == 0 or d == 0:
            return
        shift = np.zeros(d) if shifts is None else np.asarray(shifts, dtype=np.float64).reshape(d)
        shift = shift[:, None]
        ws = Scratch() if scratch is None else scratch
        buf = ws.get("cells", (min(n, max(chunk_rows(d), _KEY_BUFFER // d)) * d,), np.intp)
        used = 0
        for chunk in chunks:
            diff, keys, kmin, kmax, zeros = self._chunk_keys(chunk, shift, ws)
            if self._needs_layout(kmin, kmax):
                self._flush(buf[:used])
                used = 0
                self._grow(kmin, kmax)
            else:
                self.top = np.maximum(self.top, _as_key(kmax, EMPTY))
            idx = self._cells(diff, keys, kmin, zeros)
            if used + idx.size > buf.size:
                self._flush(buf[:used])
                used = 0
            np.copyto(buf[used : used + idx.size], idx.ravel(), casting="unsafe")
            used += idx.size
        self._flush(buf[:used])

    def _chunk_keys(
        self, chunk: FloatArray, shift: FloatArray, ws: Scratch
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, bool]:
        """``x - shift`` of a ``(width, k)`` chunk (a C-ordered array of ``ws``), its
        keys, each column's lowest and highest key (NaN: none), and whether a key is
        -inf (an exact zero)."""
        diff = ws.get("diff", chunk.shape, np.float64)
        np.subtract(chunk, shift, out=diff)
        keys = self._keys_into(diff, ws.get("keys", chunk.shape, np.float64))
        kmax = np.fmax.reduce(keys, axis=1)
        if np.isposinf(kmax).any():  # +-inf in the data: skipped like NaN
            diff[np.isinf(diff)] = np.nan
            keys[np.isinf(keys) & (keys > 0)] = np.nan
            kmax = np.fmax.reduce(keys, axis=1)
        # Only zeros: nothing to lay out (after the infinities are out: a column of zeros
        # and an inf has no key but -inf left, which is no key to lay out either).
        kmax[np.isneginf(kmax)] = np.nan
        kmin = np.fmin.reduce(keys, axis=1)
        zeros = bool(np.isneginf(kmin).any())
        if zeros:  # exact zeros (key -inf) do not extend the range
            kmin = np.fmin.reduce(np.where(np.isneginf(keys), np.nan, keys), axis=1)
        return diff, keys, kmin, kmax, zeros

    def _needs_layout(self, kmin: FloatArray, kmax: FloatArray) -> bool:
        new = ~np.isnan(kmax)
        if not new.any():
            return False
        top = np.maximum(self.top, _as_key(kmax, EMPTY))
        limit = top - (self.max_buckets - 1)
        lo_need = np.maximum(_as_key(kmin, 0), limit)
        bad = new & ((lo_need < self.lo) | (top > self.lo + self.span - 1))
        bad |= (top != EMPTY) & (self.lo < limit)
        return bool(bad.any())

    def _grow(self, kmin: FloatArray, kmax: FloatArray) -> None:
        """Re-lay the counts out so that the keys ``kmin .. kmax`` fit (with spare keys)."""
        new = ~np.isnan(kmax)
        had = self.top != EMPTY
        # A column laid out up front (lay_out) keeps its layout until a value needs more.
        kept = had if self._laid is None else had | self._laid
        top = np.maximum(self.top, _as_key(kmax, EMPTY))
        limit = top - (self.max_buckets - 1)
        kmin_i = _as_key(kmin, 0)
        low_moves = new & (~kept | (kmin_i < self.lo))
        # Spare keys below grow with the column's range: data approaching zero (a column
        # of x - median keeps finding smaller |x|) re-lays out a logarithmic number of
        # times. The column's own range, not the common span: that would feed back into
        # the span (a wider span, wider pads, a wider span...).
        pad = np.maximum(_PAD_LOW, (top - kmin_i) // 2)
        lo = np.where(low_moves, kmin_i - pad, self.lo)
        lo = np.where(kept | new, np.maximum(lo, limit), 0)
        # The common span follows the occupied tops, not the old layout's (which is
        # as wide as its widest column): it would otherwise only ever grow.
        hi = np.where(had | new, top + _PAD_HIGH, np.where(kept, self.lo + self.span - 1, 0))
        span = self._grown_span(max(1, int(np.max(hi - lo + 1, initial=1))))
        lo = lo.astype(np.int64)
        moved = np.flatnonzero(lo != self.lo)
        if span == self.span and moved.size < self.width:
            # Often only a few columns move (one at the max_buckets cap collapses its
            # low end at each new top): re-lay out those rows only, the same per row.
            if moved.size:
                self.counts[moved] = _relayout(
                    self.counts[moved], self.lo[moved], span, lo[moved], span
                )
        else:
            self.counts = _relayout(self.counts, self.lo, self.span, lo, span)
        self.lo, self.span, self.top = lo, span, top.astype(np.int64)

    def _grown_span(self, needed: int) -> int:
        """The span for a layout needing ``needed`` keys in its widest column.

        The span is common to all columns, so a narrower column has spare keys up to it:
        a span kept when it suffices, and grown by a quarter when it does not, lets most
        later moves re-lay out only the columns that move (``_grow``) instead of the
        whole matrix, which at hundreds of columns was most of the fold.
        """
        if needed <= self.span:
            return self.span
        most = max(needed, self.max_buckets + _PAD_HIGH)  # a column's widest layout
        return min(max(needed, self.span + self.span // 4), most)

    def _cells(
        self, diff: FloatArray, keys: FloatArray, kmin: FloatArray, zeros: bool
    ) -> FloatArray:
        """Flat cell of every value of a transposed chunk (NaN -> the trash cell
        ``width * grid``); ``zeros``: some key is -inf."""
        s = self.span
        lo = self.lo.astype(np.float64)
        if zeros or bool(np.any(kmin < lo)):
            # Zeros (key -inf) go to the zero cell, collapsed keys to key lo.
            np.maximum(keys, lo[:, None], out=keys)
            keys -= (lo - 1.0)[:, None]
            keys *= np.sign(diff)
        else:
            keys -= (lo - 1.0)[:, None]
            np.copysign(keys, diff, out=keys)
        keys += (s + np.arange(self.width) * (2.0 * s + 1.0))[:, None]
        if math.isnan(float(keys.sum())):
            np.copyto(keys, self.width * (2.0 * s + 1.0), where=np.isnan(keys))
        return keys

    def _flush(self, idx: npt.NDArray[np.intp]) -> None:
        if idx.size == 0:
            return
        size = self.counts.size
        if idx.size < _ADD_AT_SHARE * size and self.counts.flags.c_contiguous:
            # Few values for the cells of the grid (scale 6 has 1.85x the cells of the
            # former mapping): add them where they fall, not through a full histogram.
            if int(idx.max()) >= size:  # NaN's trash cell
                idx = idx[idx < size]
            np.add.at(self.counts.reshape(-1), idx, 1)
            return
        hist = np.bincount(idx, minlength=size + 1)
        self.counts += hist[:size].reshape(self.counts.shape)

    # --- merging -------------------------------------------------------------------
    def merge(self, other: LogSketchColumns) -> None:
        """Add ``other`` (same width and parameters) into this one, exactly."""
        if other.params != self.params:
            raise ValueError(f"cannot merge sketch columns {self.params} and {other.params}")
        if other.span == 0:
            self.counts[:, self.span] += other.counts[:, 0]
            return
        if self.span == 0:
            zeros = self.counts[:, 0].copy()
            self.counts, self.lo, self.span = other.counts.copy(), other.lo.copy(), other.span
            self._laid = None if other._laid is None else other._laid.copy()
            self.top = other.top.copy()
            self.counts[:, self.span] += zeros
            return
        if np.array_equal(self.lo, other.lo) and self.span == other.span:
            self.counts += other.counts
            self.top = np.maximum(self.top, other.top)
        else:
            self._merge_layouts(other)

    def _merge_layouts(self, other: LogSketchColumns) -> None:
        top = np.maximum(self.top, other.top)
        mine, theirs = self.top != EMPTY, other.top != EMPTY
        big = 1 << 61
        lo = np.minimum(np.where(mine, self.lo, big), np.where(theirs, other.lo, big))
        any_ = mine | theirs
        lo = np.where(any_, np.maximum(lo, top - (self.max_buckets - 1)), 0)
        hi = np.where(any_, top, 0)
        span = max(1, int(np.max(hi - lo + 1, initial=1)))
        counts = _relayout(self.counts, self.lo, self.span, lo, span)
        counts += _relayout(other.counts, other.lo, other.span, lo, span)
        self.counts, self.lo, self.span, self.top = counts, lo.astype(np.int64), span, top
        self._laid = None  # the merged layout holds the occupied keys only

    def copy(self) -> LogSketchColumns:
        """An independent copy."""
        return LogSketchColumns.from_state(self.state())

    # --- conversion and persistence ------------------------------------------------
    def column(self, j: int) -> LogSketch:
        """Column ``j`` as a :class:`LogSketch` (same buckets and counts)."""
        s, row = self.span, self.counts[j]
        sketch = LogSketch(self.relative_accuracy, self.max_buckets)
        neg = row[:s][::-1].copy()
        pos = row[s + 1 :].copy()
        # Private on purpose: the columns are LogSketch's columnar twin (same bucket
        # layout) and fill its dense store directly, no public API for raw buckets.
        sketch._add_dense(int(self.lo[j]), neg, int(row[s]), pos)
        return sketch

    def state(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "relative_accuracy": self.relative_accuracy,
            "max_buckets": self.max_buckets,
            "span": self.span,
            "lo": self.lo.copy(),
            "top": self.top.copy(),
            "counts": self.counts.copy(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> LogSketchColumns:
        out = cls(int(state["width"]), float(state["relative_accuracy"]), int(state["max_buckets"]))
        out.span = int(state["span"])
        out.lo = np.asarray(state["lo"], dtype=np.int64).copy()
        out.top = np.asarray(state["top"], dtype=np.int64).copy()
        shape = (out.width, 2 * out.span + 1)
        out.counts = np.asarray(state["counts"], dtype=np.int64).reshape(shape).copy()
        return out

    @classmethod
    def from_sketches(
        cls, sketches: Sequence[LogSketch], relative_accuracy: float = 0.01
    ) -> LogSketchColumns:
        """Columns holding the buckets of ``sketches`` (e.g. an older saved state)."""
        first = sketches[0] if sketches else None
        out = cls(
            len(sketches),
            first.relative_accuracy if first else relative_accuracy,
            first.max_buckets if first else mapping.DEFAULT_MAX_BUCKETS,
        )
        for j, sk in enumerate(sketches):
            one = cls(len(sketches), out.relative_accuracy, out.max_buckets)
            st = sk.state()
            keys: list[int] = []
            for store in ("pos", "neg"):
                c = np.asarray(st[store]["counts"])
                keys += [int(st[store]["offset"]) + int(i) for i in np.flatnonzero(c)]
            one.top[j] = max(keys) if keys else EMPTY
            lo = min(keys) if keys else 0
            span = max(1, (max(keys) - lo + 1) if keys else 1)
            one.lo[:] = lo
            one.span = span
            one.counts = np.zeros((len(sketches), 2 * span + 1), dtype=np.int64)
            one.counts[j, span] = int(st["zero_count"])
            for store, sign in (("pos", 1), ("neg", -1)):
                c = np.asarray(st[store]["counts"], dtype=np.int64)
                r = int(st[store]["offset"]) - lo + np.arange(c.size)
                one.counts[j, span + sign * (r + 1)] += c
            out.merge(one)
        return out

    def __repr__(self) -> str:
        return f"LogSketchColumns(width={self.width}, count={self.count.tolist()})"


_TABLES: dict[tuple[int, int, int], FloatArray] = {}
_KEPT_TABLES = 32


def _values_of_keys(scale: int, k_lo: int, k_hi: int) -> FloatArray:
    """The representative values of the keys ``k_lo .. k_hi`` (read-only, shared).

    A drift view reads a few thousand of them several times per recompute while a
    window's layout rarely changes: computed once per layout, not per read."""
    ident = (scale, k_lo, k_hi)
    table = _TABLES.get(ident)
    if table is None:
        table = mapping.values(np.arange(k_lo, k_hi + 1, dtype=np.float64), scale)
        table.flags.writeable = False
        if len(_TABLES) >= _KEPT_TABLES:
            _TABLES.clear()  # bounded; a layout still in use is recomputed at its next read
        _TABLES[ident] = table
    return table


def _as_key(k: FloatArray, fill: int) -> IntArray:
    return np.where(np.isnan(k), fill, k).astype(np.int64)


def _relayout(
    counts: IntArray, lo: IntArray, span: int, new_lo: IntArray, new_span: int
) -> IntArray:
    """``counts`` (layout ``lo, span``) in the layout ``new_lo, new_span``.

    Keys below ``new_lo`` collapse into ``new_lo``; the new layout must reach every
    occupied key at the top.
    """
    d = counts.shape[0]
    out = np.zeros((d, 2 * new_span + 1), dtype=np.int64)
    out[:, new_span] = counts[:, span]
    if span == 0:
        return out
    # Both halves ordered by increasing key: row j (neg) and d + j (pos).
    halves = np.concatenate([counts[:, span - 1 :: -1], counts[:, span + 1 :]], axis=0)
    c = np.tile(new_lo - lo, 2)
    src = np.arange(new_span)[None, :] + c[:, None]
    ok = (src >= 0) & (src < span)
    moved = np.where(ok, np.take_along_axis(halves, np.clip(src, 0, span - 1), axis=1), 0)
    head = np.cumsum(halves, axis=1)[np.arange(2 * d), np.clip(c, 0, span - 1)]
    moved[:, 0] = np.where(c >= 0, head, moved[:, 0])
    out[:, :new_span] = moved[:d, ::-1]
    out[:, new_span + 1 :] = moved[d:]
    return out
