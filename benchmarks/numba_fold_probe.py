"""Probe: the drift fold's numeric part as one numba kernel, against the numpy path.

Issue 15 asks for a 64-row batch with a reference at <= 2.0 x prometheus-client
(about 3.4 ns per value). The numpy drift fold makes some 25 vectorised passes per
value. This script measures what a compiled kernel doing every step of a value in one
loop costs instead, and whether its output is bit-identical:

- the finite count, min and max per column (``Extremes.add_columns``),
- the sketch cell of ``x - center`` (``LogSketchColumns.add_columns``: key
  ``ceil(log2|x - c| * 2 ** scale)``, collapsed keys to ``lo``, zeros to the zero cell,
  NaN and +-inf skipped) added into the existing count matrix,
- the reference bin of ``x`` (``drift_layout._numeric_bins``: edges strictly below ``x``,
  bin 0 then corrected by the finite count).

The kernel assumes the sketch layout already holds every key (the window slot was laid
out by earlier data); values that would need a re-layout are counted and reported, not
added (a shipped kernel would hand the part back to the numpy path). Both sides fold
the same matrices into copies of the same window slot; the numpy side is the real
``DriftAggregate._fold_numeric``. Process CPU, sides interleaved with a rotating order,
median [min-max] over the rounds. Not part of ``run.py``: numba is no dependency.

Run: ``python benchmarks/numba_fold_probe.py [--rounds 7] [--quick]``.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

try:
    import numba
except ImportError:  # pragma: no cover - depends on the environment
    numba = None

from _harness import Stat, cpu_per_item, interleave, ratios

from modelmon.aggregates.drift import DriftAggregate, _batch
from modelmon.batch import FeatureFrame
from modelmon.profile import ReferenceProfile

REF_ROWS = 4096


CELL_BITS = 12  # mantissa bits indexing the key table (cells narrower than any bucket)


def key_tables(scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Per ``2 ** -CELL_BITS`` cell of the mantissa ``m`` in [1, 2): the keys within the
    octave below the cell (``base``) and the one bucket bound inside it (``bound``; 3.0
    when none), so that ``ceil(2 ** scale * log2 m) == base + (m > bound)``."""
    per = 1 << scale
    bounds = 2.0 ** (np.arange(per) / per)
    cells = np.arange(1 << CELL_BITS)
    c_lo, c_hi = 1.0 + cells / (1 << CELL_BITS), 1.0 + (cells + 1) / (1 << CELL_BITS)
    base = np.searchsorted(bounds, c_lo, side="left").astype(np.int64)
    nxt = np.append(bounds, 2.0)[base]
    return base, np.where(nxt < c_hi, nxt, 3.0)


if numba is not None:  # the kernels, at module level so that numba's cache finds them

    @numba.njit(cache=True, nogil=True, inline="always")
    def table_key(a, word, bits_of, mult, base, bound, scale):  # type: ignore[no-untyped-def]
        """The key of ``a > 0`` from its exponent and the mantissa table (``word``: a
        1-float scratch, ``bits_of`` its int64 view); libm's log2 near a bound."""
        word[0] = a
        bits = bits_of[0]
        expo = (bits >> 52) - 1023
        cell = (bits >> (52 - CELL_BITS)) & ((1 << CELL_BITS) - 1)
        m = 1.0 + (bits & 0xFFFFFFFFFFFFF) * 2.220446049250313e-16
        bd = bound[cell]
        if expo == -1023 or abs(m - bd) < 1e-9:
            return math.ceil(math.log2(a) * mult)
        return (expo << scale) + base[cell] + (m > bd)

    @numba.njit(cache=True, nogil=True)
    def plain(  # type: ignore[no-untyped-def]
        matrix, centers, lo, top, span, mult, edges, counts, ext_n, ext_min, ext_max, bins
    ):
        """The straightforward kernel: row-major, libm log2, branches. Returns the
        values not added (their key is above the layout)."""
        n, d = matrix.shape
        n_edges = edges.shape[0]
        missed = 0
        for i in range(n):
            for j in range(d):
                x = matrix[i, j]
                b = 0  # reference bin: edges strictly below x (NaN: none), as _numeric_bins
                for k in range(n_edges):
                    if x > edges[k, j]:
                        b += 1
                bins[j, b] += 1
                if not math.isfinite(x):
                    continue
                ext_n[j] += 1
                if x < ext_min[j]:
                    ext_min[j] = x
                if x > ext_max[j]:
                    ext_max[j] = x
                diff = x - centers[j]
                if diff == 0.0:
                    counts[j, span] += 1
                    continue
                if not math.isfinite(diff):
                    continue
                key = math.ceil(math.log2(abs(diff)) * mult)
                r = key - lo[j]
                if r >= span:
                    missed += 1
                    continue
                if key > top[j]:
                    top[j] = key
                if r < 0:
                    r = 0  # collapsed (the layout's lo is at the collapse limit, see _cells)
                if diff > 0.0:
                    counts[j, span + 1 + r] += 1
                else:
                    counts[j, span - 1 - r] += 1
        for j in range(d):
            bins[j, 0] -= n - ext_n[j]  # as _numeric_bins: NaN and -inf land in bin 0
        return missed

    @numba.njit(cache=True, nogil=True)
    def tuned(  # type: ignore[no-untyped-def]
        matrix,
        centers,
        lo,
        top,
        span,
        mult,
        edges_t,
        counts,
        ext_n,
        ext_min,
        ext_max,
        bins,
        base,
        bound,
        scale,
    ):
        """Column by column (a column's count row, edges and center stay in L1), the key
        from the float's exponent and a mantissa table (libm log2 only within 1e-9 of a
        bucket bound and for subnormals), the sign of the cell without a branch."""
        n, d = matrix.shape
        n_edges = edges_t.shape[1]
        missed = 0
        word = np.empty(1)
        bits_of = word.view(np.int64)
        for j in range(d):
            e = edges_t[j]
            c, low, row, brow = centers[j], lo[j], counts[j], bins[j]
            cnt, mn, mx, tp = 0, ext_min[j], ext_max[j], top[j]
            for i in range(n):
                x = matrix[i, j]
                b = 0
                for k in range(n_edges):
                    b += x > e[k]
                brow[b] += 1
                if not math.isfinite(x):
                    continue
                cnt += 1
                mn = min(mn, x)
                mx = max(mx, x)
                diff = x - c
                if diff == 0.0:
                    row[span] += 1
                    continue
                if not math.isfinite(diff):
                    continue
                key = table_key(abs(diff), word, bits_of, mult, base, bound, scale)
                r = key - low
                if r >= span:
                    missed += 1
                    continue
                tp = max(tp, key)
                r = max(r, 0)
                row[span + (2 * np.int64(diff > 0.0) - 1) * (1 + r)] += 1
            ext_n[j] += cnt
            ext_min[j], ext_max[j], top[j] = mn, mx, tp
            brow[0] -= n - cnt
        return missed

    @numba.njit(cache=True)
    def keys(v, mult, base, bound, scale):  # type: ignore[no-untyped-def]
        """The sketch keys of ``v`` both ways: libm log2, and the table."""
        out = np.empty((2, v.size))
        word = np.empty(1)
        bits_of = word.view(np.int64)
        for i in range(v.size):
            a = abs(v[i])
            out[0, i] = math.ceil(math.log2(a) * mult)
            out[1, i] = table_key(a, word, bits_of, mult, base, bound, scale)
        return out


def _kernels() -> tuple[Any, Any, Any]:
    return plain, tuned, keys


class Setup:
    """A DriftAggregate with a reference of ``d`` features, its window slot laid out."""

    def __init__(self, d: int, rng: np.random.Generator) -> None:
        loc = rng.normal(size=d)
        ref = rng.normal(loc=loc, size=(REF_ROWS, d))
        names = tuple(f"x{i}" for i in range(d))
        profile = ReferenceProfile.from_data(ref, feature_names=list(names), created_at=0.0)
        self.agg = DriftAggregate(profile, max_features=max(d, 100))
        self.names, self.loc = names, loc
        # Warm the slot as the monitor would: earlier data of the same distribution.
        self.agg.fold(self.batch(rng.normal(loc=loc, size=(REF_ROWS, d))))
        self.group = self.agg.features
        self.slot = self.agg.window.current(0.0).features

    def batch(self, x: np.ndarray) -> Any:
        frame = FeatureFrame(self.names, x, np.isnan(x), np.isnan(x), {})
        return _batch(frame, now=0.0)


def numpy_fold(setup: Setup, slot: Any, matrix: np.ndarray) -> np.ndarray:
    counts = np.zeros(setup.group.total_bins, dtype=np.int64)
    setup.agg._fold_numeric(setup.group, matrix, slot, counts)
    return counts


class Kernel:
    """One kernel with the per-group arrays it takes (built once, as a monitor would)."""

    def __init__(self, fn: Any, setup: Setup, tuned: bool) -> None:
        self.fn, self.tuned = fn, tuned
        sk = setup.slot.sketches
        self.edges = np.ascontiguousarray(setup.group.edges.T) if tuned else setup.group.edges
        self.extra = (*key_tables(sk.scale), sk.scale) if tuned else ()

    def fold(self, setup: Setup, slot: Any, matrix: np.ndarray) -> tuple[np.ndarray, int]:
        """The kernel, then the bins into the group's flat counts (as _fold_numeric)."""
        group, sk, ex = setup.group, slot.sketches, slot.extremes
        d = matrix.shape[1]
        bins = np.zeros((d, group.edges.shape[0] + 1), dtype=np.int64)
        ext_n = np.zeros(d, dtype=np.int64)
        missed = self.fn(
            matrix,
            group.centers,
            sk.lo,
            sk.top,
            sk.span,
            sk.inv_log_gamma,
            self.edges,
            sk.counts,
            ext_n,
            ex._min,
            ex._max,
            bins,
            *self.extra,
        )
        ex._count += ext_n
        counts = np.zeros(group.total_bins, dtype=np.int64)
        counts[group.numeric_cells] += bins[group.numeric_bins]
        return counts, int(missed)


def draw(rng: np.random.Generator, setup: Setup, rows: int, d: int, odd: bool) -> np.ndarray:
    """As overhead.py's batch inputs: normal around a per-feature location, a little
    drifted. ``odd``: also a few NaN, +-inf and exact centers (every branch of both
    sides; the equality check's inputs, not the timed ones, as overhead.py has none)."""
    x = rng.normal(loc=setup.loc + rng.normal(scale=0.05, size=d), size=(rows, d))
    if odd:
        where = rng.integers(0, x.size, size=max(1, x.size // 5000))
        x.flat[where] = rng.choice([np.nan, np.inf, -np.inf], size=where.size)
        col = rng.integers(0, d)
        x[: max(1, rows // 100), col] = setup.group.centers[col]
    return x


def compare(kernel: Kernel, setup: Setup, matrices: list[np.ndarray]) -> dict[str, Any]:
    a, b = copy.deepcopy(setup.slot), copy.deepcopy(setup.slot)
    same_bins, missed = True, 0
    for m in matrices:
        ca = numpy_fold(setup, a, m)
        cb, miss = kernel.fold(setup, b, m)
        missed += miss
        same_bins &= bool(np.array_equal(ca, cb))
    sa, sb = a.sketches, b.sketches
    layout = sa.span == sb.span and np.array_equal(sa.lo, sb.lo)
    return {
        "bins": same_bins,
        "counts": bool(np.array_equal(a.extremes._count, b.extremes._count)),
        "extremes": bool(
            np.array_equal(a.extremes._min, b.extremes._min)
            and np.array_equal(a.extremes._max, b.extremes._max)
        ),
        "top": bool(np.array_equal(sa.top, sb.top)),
        "cells": bool(layout and np.array_equal(sa.counts, sb.counts)),
        "cells_differing": int(np.abs(sa.counts - sb.counts).sum()) if layout else -1,
        "missed": missed,
    }


def key_check(keys: Any, n: int, rng: np.random.Generator) -> str:
    """Sketch keys of random values of many magnitudes and of values at and next to
    every bucket bound of the float range: numpy's ``ceil(log2|x| * 2**6)`` against
    libm's log2 and against the table."""
    from modelmon.sketches import mapping

    scale = 6
    mult = mapping.multiplier(scale)
    bounds = mapping.lower_bound(np.arange(-1022 * 64, 1023 * 64, dtype=np.float64), scale)
    mags = rng.choice([1e-300, 1e-3, 1.0, 1e3, 1e300], size=n)
    v = np.concatenate(
        [
            rng.normal(scale=mags, size=n),
            bounds,
            np.nextafter(bounds, np.inf),
            np.nextafter(bounds, 0.0),
            2.0 ** np.arange(-1074.0, 1024.0),  # powers of two, subnormals included
        ]
    )
    v = v[np.isfinite(v) & (v != 0.0)]
    ref = np.ceil(np.log2(np.abs(v)) * mult)
    out = keys(v, mult, *key_tables(scale), scale)
    libm, table = (int(np.count_nonzero(ref != out[i])) for i in (0, 1))
    return f"of {v.size} keys, libm log2 differs from numpy's in {libm}, the table in {table}"


def _side(
    setup: Setup, kernel: Kernel | None, slot: Any, pool: list[np.ndarray], reps: int
) -> Callable[[], float]:
    """CPU seconds per value of ``reps`` folds of the pool's matrices into ``slot``."""

    def work() -> int:
        for r in range(reps):
            m = pool[r % len(pool)]
            if kernel is None:
                numpy_fold(setup, slot, m)
            else:
                kernel.fold(setup, slot, m)
        return reps * pool[0].size

    return lambda: cpu_per_item(work)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="2 rounds, 64-row parts")
    args = ap.parse_args()
    if numba is None:
        print("numba is not installed: pip install numba")
        return
    rounds = 2 if args.quick else max(args.rounds, 5)
    rng = np.random.default_rng(15)
    plain, tuned, keys = _kernels()
    cases = [("batch_ref: parts of 4,096 rows x 20", 20), ("num500_ref: 4,096 rows x 500", 500)]
    print(f"numba {numba.__version__}, numpy {np.__version__}, rounds {rounds}")
    first = True
    for label, d in cases:
        rows = 64 if args.quick else 4096
        setup = Setup(d, rng)
        kernels = {
            "numba plain": Kernel(plain, setup, False),
            "numba tuned": Kernel(tuned, setup, True),
        }
        pool = [draw(rng, setup, rows, d, odd=False) for _ in range(4)]
        checked = pool + [draw(rng, setup, rows, d, odd=True) for _ in range(4)]
        if first:  # compile (or load from numba's cache) on the first call of each
            for name, k in kernels.items():
                t0 = time.perf_counter()
                k.fold(setup, copy.deepcopy(setup.slot), pool[0])
                ms = (time.perf_counter() - t0) * 1e3
                print(f"{name}: first call (compile or load from cache) {ms:.0f} ms")
            first = False
        print(f"\n{label}, {rows * d * len(checked)} values checked (half with NaN/inf/0)")
        for name, k in kernels.items():
            print(f"  {name} equal to numpy: {compare(k, setup, checked)}")
        reps = 1 if args.quick else max(1, 2_000_000 // (rows * d))
        slots = {n: copy.deepcopy(setup.slot) for n in ["numpy", *kernels]}
        sides = {n: _side(setup, kernels.get(n), slots[n], pool, reps) for n in slots}
        kept = interleave(sides, rounds)
        for name in slots:
            ns = Stat.of(kept[name]).scaled(1e9).fmt(2)
            vs = (
                ""
                if name == "numpy"
                else f", numpy / it {ratios(kept['numpy'], kept[name]).fmt(2)}"
            )
            print(f"  {name:12s} {ns} ns/value{vs}")
    print("\n" + key_check(keys, 20_000 if args.quick else 2_000_000, rng))


if __name__ == "__main__":
    main()
