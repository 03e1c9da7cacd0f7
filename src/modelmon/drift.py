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
  both evaluated on the sketch's bucket grid (see :func:`ks_statistic`).
* **Wasserstein normed** = ``W1(ref, cur) / max(std_ref, 0.001)`` (Evidently's
  "Wasserstein distance (normed)"), ``W1 = integral_0^1 |Q_ref(u) - Q_cur(u)| du``.

>>> psi([0.5, 0.5], [50, 50])
0.0
>>> round(js_distance([1.0, 0.0], [0.0, 1.0]) ** 2, 6) == round(__import__("math").log(2), 6)
True
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from .sketches.ddsketch import FloatArray, LogSketch

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
    pos = p > 0
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


def ks_statistic(
    ref_quantiles: npt.ArrayLike,
    sketch: LogSketch,
    *,
    probs: npt.ArrayLike | None = None,
    shift: float = 0.0,
) -> float:
    """Kolmogorov-Smirnov D between a reference quantile summary and a live sketch.

    ``ref_quantiles[k]`` is the reference quantile at ``probs[k]`` (default
    :data:`REFERENCE_QUANTILE_PROBS`, which must start at 0 and end at 1); the sketch
    holds ``x - shift``. Both CDFs are taken on the sketch's bucket grid: the live CDF is
    exact there, the reference CDF between two summary points ``k, k+1`` is estimated
    as ``(p_k + p_{k+1}) / 2`` (error at most half a step). NaN for an empty sketch.
    """
    ords, counts, _ = sketch.buckets()
    n = int(counts.sum())
    if n == 0:
        return math.nan
    r = np.asarray(ref_quantiles, dtype=np.float64) - shift
    p = _probs(probs, r.shape[0])
    ref_ords = sketch.ordinals(r)
    cum = np.cumsum(counts) / n
    mid = np.concatenate(([0.0], (p[:-1] + p[1:]) / 2.0, [1.0]))
    # Both CDFs are step functions on the ordinal line: the supremum is reached at a
    # jump of one of them, so evaluating at both sets of jumps is enough.
    d_cur = np.abs(mid[np.searchsorted(ref_ords, ords, side="right")] - cum)
    at = np.searchsorted(ords, ref_ords, side="right")
    f_cur = np.concatenate(([0.0], cum))[at]
    d_ref = np.abs(mid[np.searchsorted(ref_ords, ref_ords, side="right")] - f_cur)
    return float(max(d_cur.max(), d_ref.max()))


def wasserstein_normed(
    ref_quantiles: npt.ArrayLike,
    ref_std: float,
    sketch: LogSketch,
    *,
    probs: npt.ArrayLike | None = None,
    shift: float = 0.0,
    bounds: tuple[float, float] | None = None,
) -> float:
    """Wasserstein-1 distance divided by ``max(ref_std, 0.001)``.

    ``W1 = integral_0^1 |Q_ref(u) - Q_cur(u)| du`` with ``Q_ref`` the piecewise-linear
    interpolation of the reference quantile summary and ``Q_cur`` the sketch's step
    quantile function (bucket representatives, clipped to ``bounds`` = the live min and
    max when given), integrated exactly. NaN for an empty sketch.
    """
    _, counts, values = sketch.buckets()
    n = int(counts.sum())
    if n == 0:
        return math.nan
    r = np.asarray(ref_quantiles, dtype=np.float64) - shift
    p = _probs(probs, r.shape[0])
    v = values if bounds is None else np.clip(values, bounds[0] - shift, bounds[1] - shift)
    cum = np.cumsum(counts) / n
    u = np.sort(np.concatenate((p, cum)))
    q_ref = np.interp(u, p, r)
    mid = (u[:-1] + u[1:]) / 2.0
    q_cur = v[np.minimum(np.searchsorted(cum, mid, side="left"), len(v) - 1)]
    a = q_ref[:-1] - q_cur
    b = q_ref[1:] - q_cur
    aa, ab = np.abs(a), np.abs(b)
    same_sign = a * b >= 0
    den = np.where(same_sign, 1.0, 2.0 * (aa + ab))
    area = np.where(same_sign, (aa + ab) / 2.0, (a * a + b * b) / den)
    w = float(np.sum(area * np.diff(u)))
    return w / max(float(ref_std), STD_FLOOR)
