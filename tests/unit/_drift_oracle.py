"""One-column reference implementations of the KS and Wasserstein columns of modelmon.drift.

modelmon computes these scores for many columns at once (:func:`modelmon.drift.ks_columns`,
:func:`modelmon.drift.wasserstein_columns`); these scalar versions, checked against scipy on raw
samples in test_drift.py, are the oracle the column versions are compared with.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from modelmon.drift import STD_FLOOR, _probs
from modelmon.sketches.ddsketch import LogSketch


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
