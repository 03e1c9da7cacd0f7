"""Drift scores: pure functions of a reference summary and live counts or sketches.

Formulas (``r`` = reference shares, ``c`` = current shares over the same bins or
categories, ``n`` = current count):

* **PSI** = ``sum((c_i - r_i) * ln(c_i / r_i))`` where shares below ``floor`` (1e-4) are
  replaced by ``floor``, without renormalising. Reading: < 0.1 stable, 0.1-0.25
  moderate, > 0.25 major shift.
* **Jensen-Shannon distance** = ``sqrt((KL(r || m) + KL(c || m)) / 2)``, ``m = (r + c)/2``,
  natural log, shares normalised to sum 1 (as ``scipy.spatial.distance.jensenshannon``);
  in [0, sqrt(ln 2)].
* **chi-square** = ``sum((n_i - n * r_i)**2 / (n * r_i))`` with ``r_i`` floored at
  ``floor`` (so an empty reference category gives a large, finite score).
* **KS** = ``sup_x |F_ref(x) - F_cur(x)|``, with ``F_ref`` from the reference quantile
  summary and ``F_cur`` from the live :class:`~modelmon.sketches.ddsketch.LogSketch`,
  both evaluated on the sketch's bucket grid (see :func:`ks_columns`).
* **Wasserstein normed** = ``W1(ref, cur) / max(std_ref, 0.001)`` (Evidently's
  "Wasserstein distance (normed)"), ``W1 = integral_0^1 |Q_ref(u) - Q_cur(u)| du``.

>>> psi([0.5, 0.5], [50, 50])
0.0
>>> round(js_distance([1.0, 0.0], [0.0, 1.0]) ** 2, 6) == round(__import__("math").log(2), 6)
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from .sketches.columns import LogSketchColumns
from .sketches.ddsketch import FloatArray, IntArray
from .sketches.extremes import all_finite
from .sketches.occupied import Occupied

PSI_FLOOR = 1e-4
STD_FLOOR = 1e-3

# Probabilities of the reference quantile summary: every percentile, and more points
# in the tails, where a heavy tail would otherwise dominate the Wasserstein error.
_PERCENTILES = tuple(round(k / 100, 2) for k in range(1, 100))
REFERENCE_QUANTILE_PROBS: tuple[float, ...] = (
    *(0.0, 0.001, 0.002, 0.005),
    *_PERCENTILES,
    *(0.995, 0.998, 0.999, 1.0),
)


def _shares(x: npt.ArrayLike) -> FloatArray:
    a = np.asarray(x, dtype=np.float64)
    total = float(a.sum())
    return a / total if total > 0 else np.full(a.shape, np.nan)


def psi(ref_shares: npt.ArrayLike, cur: npt.ArrayLike, floor: float = PSI_FLOOR) -> float:
    """Population stability index of current counts (or shares) against reference shares.

    ``sum((c - r) * ln(c / r))`` with both shares floored at ``floor``; ``cur`` is
    normalised to shares first. NaN when ``cur`` is empty.

    >>> round(psi([0.25, 0.25, 0.5], [10, 30, 60]), 4)
    0.1648
    """
    r = np.maximum(np.asarray(ref_shares, dtype=np.float64), floor)
    c = np.maximum(_shares(cur), floor)
    return float(np.sum((c - r) * np.log(c / r)))


def _kl_terms(p: FloatArray, m: FloatArray) -> float:
    # m >= p/2 > 0 wherever p > 0, except when p/2 underflows (p subnormal): such a
    # term is ~1e-308 and is left out rather than turned into inf * 0.
    pos = (p > 0) & (m > 0)
    return float(np.sum(p[pos] * np.log(p[pos] / m[pos])))


def js_distance(ref_shares: npt.ArrayLike, cur: npt.ArrayLike) -> float:
    """Jensen-Shannon distance (natural log), as ``scipy.spatial.distance.jensenshannon``.

    >>> js_distance([0.5, 0.5], [1, 1])
    0.0
    """
    p = _shares(ref_shares)
    q = _shares(cur)
    m = (p + q) / 2.0
    js = (_kl_terms(p, m) + _kl_terms(q, m)) / 2.0
    return math.sqrt(max(js, 0.0))


def chi2(ref_shares: npt.ArrayLike, cur_counts: npt.ArrayLike, floor: float = PSI_FLOOR) -> float:
    """Pearson's chi-square statistic of current counts against reference shares.

    >>> chi2([0.5, 0.5], [40, 60])
    4.0
    """
    obs = np.asarray(cur_counts, dtype=np.float64)
    expected = np.maximum(np.asarray(ref_shares, dtype=np.float64), floor) * obs.sum()
    if obs.sum() <= 0:
        return math.nan
    return float(np.sum((obs - expected) ** 2 / expected))


def _probs(probs: npt.ArrayLike | None, n: int) -> FloatArray:
    p = np.asarray(REFERENCE_QUANTILE_PROBS if probs is None else probs, dtype=np.float64)
    if p.shape != (n,):
        raise ValueError(f"{n} reference quantiles do not match {p.shape[0]} probabilities")
    return p


def wasserstein_between(
    ref_values: FloatArray, ref_weights: FloatArray, values: FloatArray, weights: FloatArray
) -> float:
    """W1 between two discrete distributions (values with weights; each side sums to 1).

    ``integral |F_ref(x) - F_cur(x)| dx`` over the merged value grid, exactly. With both
    sides held by log sketches of the same accuracy (the reference sketch of the profile
    and the live window's), this follows ``scipy.stats.wasserstein_distance`` on the raw
    samples within about 1% on heavy tails (lognormal sigma 2, t(3), Pareto 1.5).
    """
    x = np.concatenate([ref_values, values])
    w = np.concatenate([ref_weights, -weights])
    order = np.argsort(x, kind="stable")
    x, w = x[order], w[order]
    return float(np.sum(np.abs(np.cumsum(w)[:-1]) * np.diff(x)))


def wasserstein_rows(
    a: tuple[FloatArray, FloatArray, IntArray],
    b: tuple[FloatArray, FloatArray, IntArray],
) -> FloatArray:
    """:func:`wasserstein_between` of many pairs at once: ``(values, weights, row)`` each.

    Row ``r`` compares side ``a``'s points of row ``r`` with side ``b``'s; within a side
    the points are grouped by row, rows in increasing order, values sorted within a row,
    and every row has points on both sides. Keyed ``row + 1j * value`` (complex numbers
    sort by real part, then imaginary part), each side is one sorted run: one stable
    sort of ``a``'s keys then ``b``'s merges the two, every row's points together and in
    order, ``a`` first on ties, as :func:`wasserstein_between` orders them; then one
    cumulative sum, restarted at each row, and one sum of areas per row. Rows go in
    chunks whose temporaries stay small (no page faults).
    """
    (av, aw, ar), (bv, bw, br) = a, b
    k = int(max(ar.max(initial=-1), br.max(initial=-1))) + 1
    la, lb = np.bincount(ar, minlength=k), np.bincount(br, minlength=k)
    if k == 0 or not (la.all() and lb.all()):
        raise ValueError("every row needs points on both sides")
    sa = np.concatenate(([0], np.cumsum(la)))
    sb = np.concatenate(([0], np.cumsum(lb)))
    through = sa[1:] + sb[1:]  # points in rows 0 .. r
    out = np.empty(k)
    r0 = 0
    while r0 < k:
        before = int(through[r0 - 1]) if r0 else 0
        r1 = max(r0 + 1, int(np.searchsorted(through, before + _CHUNK_POINTS, side="right")))
        part_a = (av[sa[r0] : sa[r1]], aw[sa[r0] : sa[r1]], ar[sa[r0] : sa[r1]] - r0)
        part_b = (bv[sb[r0] : sb[r1]], bw[sb[r0] : sb[r1]], br[sb[r0] : sb[r1]] - r0)
        out[r0:r1] = _wasserstein_merged(part_a, part_b, la[r0:r1] + lb[r0:r1])
        r0 = r1
    return out


# Points per chunk: 128,000 bytes of complex keys, under malloc's mmap threshold (128 KiB):
# above it every temporary is a fresh mapping, and its page faults cost more than the work.
_CHUNK_POINTS = 8_000


def _wasserstein_merged(
    a: tuple[FloatArray, FloatArray, IntArray],
    b: tuple[FloatArray, FloatArray, IntArray],
    sizes: IntArray,
) -> FloatArray:
    (av, aw, ar), (bv, bw, br) = a, b
    keys = np.empty(av.size + bv.size, dtype=np.complex128)
    keys.real[: av.size], keys.real[av.size :] = ar, br  # not ``row + 1j * value``:
    keys.imag[: av.size], keys.imag[av.size :] = av, bv  # 1j * inf has a NaN real part
    order = np.argsort(keys, kind="stable")  # two sorted runs: one merge
    x = keys.imag[order]
    w = np.concatenate([aw, -bw])[order]
    np.cumsum(w, out=w)
    start = np.concatenate(([0], np.cumsum(sizes[:-1])))
    ends = start[1:] - 1  # the last point of every row but the last
    # Restart the sum at each row (what the rows before left is rounding, not mass).
    w -= np.repeat(np.concatenate(([0.0], w[ends])), sizes)
    np.abs(w, out=w)
    with np.errstate(over="ignore", invalid="ignore"):  # values near +-1e308: an inf gap
        gaps = np.diff(x)
        gaps[ends] = 0.0  # no area between rows
        gaps *= w[:-1]
        if not all_finite(gaps):  # inf * 0 is NaN: no mass crosses such a gap
            gaps[w[:-1] == 0.0] = 0.0
        return np.asarray(np.add.reduceat(gaps, start), dtype=np.float64)


# --- many columns at once ----------------------------------------------------------------


@dataclass(frozen=True)
class BinnedReference:
    """Reference shares of several members, padded to one ``(m, bins)`` matrix.

    Padding bins have share 0 and ``valid`` False; they add nothing to PSI or JS.
    """

    shares: FloatArray  # (m, bins)
    valid: npt.NDArray[np.bool_]  # (m, bins)

    @classmethod
    def of(cls, shares: list[FloatArray]) -> BinnedReference:
        width = max((len(s) for s in shares), default=0)
        out = np.zeros((len(shares), width))
        valid = np.zeros((len(shares), width), dtype=bool)
        for i, s in enumerate(shares):
            out[i, : len(s)] = s
            valid[i, : len(s)] = True
        return cls(out, valid)


def binned_scores(
    ref: BinnedReference, counts: IntArray, floor: float = PSI_FLOOR
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """PSI, JS distance and chi-square of every row of ``counts`` (``(m, bins)``).

    Row ``i`` gives the same numbers as :func:`psi`, :func:`js_distance` and
    :func:`chi2` of ``(ref.shares[i], counts[i])`` (NaN for an empty row).
    """
    obs = np.asarray(counts, dtype=np.float64)
    n = obs.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        cur = np.where(n > 0, obs / n, np.nan)
        r = np.maximum(ref.shares, floor)
        c = np.maximum(cur, floor)
        psi_ = np.sum((c - r) * np.log(c / r), axis=1)
        total = ref.shares.sum(axis=1, keepdims=True)
        p = ref.shares / np.where(total > 0, total, np.nan)
        m = (p + cur) / 2.0
        kl_p = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0) / m), 0.0)
        kl_q = np.where(cur > 0, cur * np.log(np.where(cur > 0, cur, 1.0) / m), 0.0)
        js = np.sqrt(np.maximum((kl_p.sum(axis=1) + kl_q.sum(axis=1)) / 2.0, 0.0))
        js = np.where(n[:, 0] > 0, js, np.nan)
        expected = r * n
        chi = np.sum(np.where(ref.valid, (obs - expected) ** 2 / expected, 0.0), axis=1)
        chi = np.where(n[:, 0] > 0, chi, np.nan)
    return psi_, js, chi


@dataclass(frozen=True)
class QuantileReference:
    """Reference quantile summaries of ``d`` columns, minus each column's shift.

    Built once per profile, so that :func:`ks_columns` and
    :func:`wasserstein_columns` only touch the live sketch.
    """

    quantiles: FloatArray  # (d, len(probs)), shifted
    std: FloatArray  # (d,)
    probs: FloatArray
    mid: FloatArray  # reference CDF between two summary points, (p_k + p_{k+1}) / 2
    slopes: FloatArray  # (d, len(probs) - 1) of the piecewise-linear quantile function
    # What ks_columns derives from the summary and a sketch layout, by layout (bounded).
    grid_memo: dict[bytes, tuple[IntArray, FloatArray]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def of(
        cls,
        quantiles: npt.ArrayLike,
        std: npt.ArrayLike,
        shifts: npt.ArrayLike,
        probs: npt.ArrayLike | None = None,
    ) -> QuantileReference:
        q = np.asarray(quantiles, dtype=np.float64)
        q = q.reshape(-1, len(REFERENCE_QUANTILE_PROBS) if probs is None else np.size(probs))
        p = _probs(probs, q.shape[1])
        r = q - np.asarray(shifts, dtype=np.float64).reshape(-1, 1)
        mid = np.concatenate(([0.0], (p[:-1] + p[1:]) / 2.0, [1.0]))
        slopes = (r[:, 1:] - r[:, :-1]) / (p[1:] - p[:-1])
        s = np.asarray(std, dtype=np.float64).reshape(-1)
        return cls(r, s, p, mid, slopes)


def _cum(counts: IntArray) -> tuple[FloatArray, FloatArray]:
    n = counts.sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.cumsum(counts, axis=1) / n[:, None], n


def ks_columns(
    ref: QuantileReference,
    sketch: LogSketchColumns,
    rows: IntArray,
    occupied: Occupied | None = None,
) -> FloatArray:
    """KS of each column in ``rows`` of ``sketch`` against ``ref`` (one-column oracle: tests).

    The same statistic (same grid, same reference CDF), for all rows in a few numpy
    calls on the non-empty cells only (``occupied``, built here if not given): the
    supremum of the gap between two step functions is reached where one of them steps,
    at a non-empty cell of the live sketch (live CDF against the reference CDF at that
    cell) or at a reference point (reference CDF against the live CDF of its cell).
    """
    occ = Occupied.of(sketch, rows) if occupied is None else occupied
    k = occ.n.size
    if k == 0:
        return np.zeros(0)
    cells, mid_at_ref = _reference_on_grid(ref, sketch, occ.rows, occ.width)
    p = cells.shape[1]
    # One search of the points' cells among the occupied ones serves both sides. The
    # reference CDF at occupied cell q counts the points whose cell is <= q's: those
    # whose first occupied cell at or past their own is at or before q (rows sorted).
    left, hit = occ.search(cells)
    placed = np.bincount(left.ravel(), minlength=occ.cells.size + 1)
    ref_le_cell = np.cumsum(placed[:-1]) - occ.row_of * p
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.abs(ref.mid[ref_le_cell] - occ.cum / np.repeat(occ.n, np.diff(occ.start)))
    d_cur = occ.row_max(gap)
    f_cur = occ.cdf_from_search(left, hit) if occ.cells.size else np.zeros(cells.shape)
    d_ref = np.abs(mid_at_ref - f_cur).max(axis=1)
    return np.asarray(np.where(occ.n > 0, np.maximum(d_cur, d_ref), np.nan), dtype=np.float64)


_KEPT_LAYOUTS = 4


def _reference_on_grid(
    ref: QuantileReference, sketch: LogSketchColumns, rows: IntArray, width: int
) -> tuple[IntArray, FloatArray]:
    """The reference points of ``rows`` on the sketch's grid: each point's cell and the
    reference CDF at each point. They depend on the layout only, which rarely changes
    between two reads of a window: kept per layout."""
    layout = np.array([width, sketch.scale], dtype=np.int64)
    parts = (rows, sketch.lo[rows], sketch.limit()[rows], layout)
    ident = b"".join(np.ascontiguousarray(x, dtype=np.int64).tobytes() for x in parts)
    hit = ref.grid_memo.get(ident)
    if hit is not None:
        return hit
    pos = sketch.positions(ref.quantiles[rows], rows)
    k, p = pos.shape
    row = np.arange(k)[:, None]
    cells = np.clip(np.floor(pos), -1, width - 1).astype(np.int64)  # each point's cell
    # Reference CDF at its own points: rows are sorted, so one offset searchsorted.
    span = float(np.max(pos) - np.min(pos)) + 2.0 if pos.size else 0.0
    flat = (pos + row * span).ravel()
    ref_le_ref = np.searchsorted(flat, flat, side="right").reshape(pos.shape) - row * p
    mid_at_ref = ref.mid[ref_le_ref]
    if len(ref.grid_memo) >= _KEPT_LAYOUTS:
        ref.grid_memo.clear()
    ref.grid_memo[ident] = (cells, mid_at_ref)
    return cells, mid_at_ref


def wasserstein_columns(
    ref: QuantileReference,
    sketch: LogSketchColumns,
    rows: IntArray,
    bounds: tuple[FloatArray, FloatArray],
) -> FloatArray:
    """Wasserstein normed of each column in ``rows`` (``bounds``: shifted min, max).

    The same integral, for all rows at once. Each row is first compacted to its
    non-empty buckets; the breakpoints ``u`` (reference probabilities and live
    cumulative shares) are then merged per row by counting instead of sorting: the
    probability ``p_k`` goes to ``k + t_k`` with ``t_k = #(c < p_k)`` (integer counts
    against ``p_k * n``: one offset searchsorted for all rows), the share ``c_i`` to
    ``i + #{k: t_k <= i}``.
    """
    k = len(rows)
    if k == 0:
        return np.zeros(0)
    counts, values = _compact(sketch.counts[rows], sketch.values()[rows])
    values = np.clip(values, bounds[0][:, None], bounds[1][:, None])
    g = counts.shape[1]
    cc = np.cumsum(counts, axis=1)
    n = cc[:, -1]
    p, r = ref.probs, ref.quantiles[rows]
    nr = p.shape[0]
    size = nr + g
    row = np.arange(k)[:, None]
    step = int(n.max()) + 1
    need = np.ceil(p[None, :] * n[:, None]).astype(np.int64) + row * step
    t = np.searchsorted((cc + row * step).ravel(), need.ravel(), side="left")
    t = t.reshape(k, nr) - row * g  # t[j, m] = #(c_j < p_m)
    hist = np.bincount((t + row * (g + 1)).ravel(), minlength=k * (g + 1))
    s = np.cumsum(hist.reshape(k, g + 1), axis=1)[:, :g]  # #(p <= c_i)
    with np.errstate(invalid="ignore", divide="ignore"):
        cum = cc / n[:, None]
    at_c = (np.arange(g) + s + row * size).ravel()
    at_p = (np.arange(nr) + t + row * size).ravel()
    u = np.empty(k * size)
    u[at_c] = cum.ravel()
    u[at_p] = np.broadcast_to(p, (k, nr)).ravel()
    j0 = np.clip(s - 1, 0, nr - 2)
    base = row * nr + j0
    q_at_c = r.ravel()[base] + (cum - p[j0]) * ref.slopes[rows].ravel()[base - row]
    q_at_c = np.where(s >= nr, r[:, -1:], q_at_c)  # np.interp's exact end point
    q = np.empty(k * size)
    q[at_c] = q_at_c.ravel()
    q[at_p] = r.ravel()
    is_c = np.zeros(k * size, dtype=np.int64)
    is_c[at_c] = 1
    bucket = np.minimum(np.cumsum(is_c.reshape(k, size), axis=1)[:, :-1], g - 1)
    q_cur = values.ravel()[bucket + row * g]
    q2 = q.reshape(k, size)
    a = q2[:, :-1] - q_cur
    b = q2[:, 1:] - q_cur
    total = np.abs(a) + np.abs(b)
    with np.errstate(invalid="ignore", divide="ignore"):
        crossing = (a * a + b * b) / (2.0 * total)
    area = np.where(a * b >= 0, total / 2.0, crossing)
    w = np.sum(area * np.diff(u.reshape(k, size), axis=1), axis=1)
    w = w / np.maximum(ref.std[rows], STD_FLOOR)
    return np.asarray(np.where(n > 0, w, np.nan), dtype=np.float64)


def _compact(counts: IntArray, values: FloatArray) -> tuple[IntArray, FloatArray]:
    """Each row's non-empty buckets moved to its front, padded with empty buckets."""
    full = counts > 0
    width = max(1, int(full.sum(axis=1).max()))
    row = np.arange(counts.shape[0])[:, None]
    dest = (np.cumsum(full, axis=1) - 1 + row * width)[full]
    out_c = np.zeros(counts.shape[0] * width, dtype=np.int64)
    out_v = np.zeros(counts.shape[0] * width)
    out_c[dest] = counts[full]
    out_v[dest] = values[full]
    return out_c.reshape(-1, width), out_v.reshape(-1, width)
