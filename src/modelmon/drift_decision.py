"""Drift decisions: two-sample tests whose false-alarm rate is known at every window size.

A drift score (PSI, JS, KS) is a measurement; a decision needs the score's sampling noise,
which depends on both sample sizes: the window's rows ``n`` and the reference's rows
``N`` (``1/n_eff = 1/n + 1/N``). Every decision here is a two-sample test at level
``alpha / m`` (Bonferroni over the ``m`` members tested at once: features of one model,
or outputs of one model) plus an effect-size floor, so that a huge window does not flag a
trivial shift.

* **Binned distribution** (numeric bins, categories): Pearson's two-sample chi-square
  ``X2 = n_eff * sum_i (c_i - r_i)**2 / p_i`` with ``c`` the window shares, ``r`` the
  reference shares and ``p_i = (n c_i + N r_i) / (n + N)`` the pooled share; cells whose
  expected window count under the reference ``n r_i`` is below :data:`MIN_EXPECTED`, and
  cells the reference never saw (new categories), are pooled into one cell (Cochran's
  rule; joined to the smallest other cell if still below the minimum), so the
  chi-square approximation holds for small windows and rare categories. ``df`` = cells
  - 1. The tail is taken with the Wilson-Hilferty cube-root normal approximation,
  which PromQL can evaluate too: ``z = ((X2/df)**(1/3) - (1 - a))
  / sqrt(a)``, ``a = 2 / (9 df)``; flagged when ``z > z_crit(alpha / m)`` and the PSI over
  the same cells is at least ``psi_floor``. In the tail the approximation is conservative
  (the true tail probability at the critical value is 0.3-1.0 times the nominal one).
* **Missing share**: a two-proportion z-test (continuity-corrected, two-sided) of the
  window's missing share against the reference's, with an absolute floor.
* **KS** (exported, not part of the decision): the asymptotic Kolmogorov p-value of
  ``sqrt(n_eff) * D`` with Stephens' small-sample correction.

``z_crit`` is the Abramowitz-Stegun 26.2.23 rational approximation of the normal upper
quantile (absolute error < 4.5e-4), the same expression the recording rules render.

>>> t = binned_test([50, 50], [0.5, 0.5], 1000)
>>> round(t.statistic, 6), t.df
(0.0, 1)
>>> round(z_upper(0.025), 2)
1.96
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .errors import ConfigurationError

#: Cells with an expected window count below this are pooled into one cell.
MIN_EXPECTED = 5.0
DEFAULT_ALPHA = 0.05
DEFAULT_PSI_FLOOR = 0.1
DEFAULT_MISSING_FLOOR = 0.05
PSI_FLOOR = 1e-4

# Abramowitz & Stegun 26.2.23.
_C = (2.515517, 0.802853, 0.010328)
_D = (1.432788, 0.189269, 0.001308)


def z_upper(p: float) -> float:
    """Upper normal quantile ``z`` with ``P(Z > z) = p`` for ``0 < p <= 0.5`` (A&S 26.2.23)."""
    t = math.sqrt(-2.0 * math.log(p))
    return t - (_C[0] + _C[1] * t + _C[2] * t * t) / (
        1.0 + _D[0] * t + _D[1] * t * t + _D[2] * t**3
    )


def wilson_hilferty_z(statistic: float, df: int) -> float:
    """The chi-square statistic as a standard normal score (Wilson-Hilferty)."""
    a = 2.0 / (9.0 * df)
    return (math.copysign(abs(statistic / df) ** (1.0 / 3.0), statistic) - (1.0 - a)) / math.sqrt(a)


def normal_sf(z: float) -> float:
    """``P(Z > z)`` for a standard normal ``Z``."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


@dataclass(frozen=True)
class DecisionConfig:
    """Level and effect-size floors of the drift decisions.

    ``alpha`` is the family-wise false-alarm rate per window and family (the features
    of one model; the outputs of one model); ``psi_floor`` the smallest PSI flagged;
    ``missing_floor`` the smallest absolute change of the missing share flagged.
    """

    alpha: float = DEFAULT_ALPHA
    psi_floor: float = DEFAULT_PSI_FLOOR
    missing_floor: float = DEFAULT_MISSING_FLOOR

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 0.5:
            raise ConfigurationError(f"drift_alpha must lie in (0, 0.5), got {self.alpha!r}")
        if not self.psi_floor >= 0.0:
            raise ConfigurationError(f"drift_psi_floor must be >= 0, got {self.psi_floor!r}")
        if not 0.0 <= self.missing_floor < 1.0:
            raise ConfigurationError(
                f"missing_floor must lie in [0, 1), got {self.missing_floor!r}"
            )

    def z_critical(self, members: int, two_sided: bool = False) -> float:
        """The critical normal score at ``alpha / members`` (halved when two-sided)."""
        p = self.alpha / max(members, 1)
        return z_upper(p / 2.0 if two_sided else p)


@dataclass(frozen=True)
class BinnedTest:
    """Result of :func:`binned_test`: statistic, degrees of freedom, score, p-value, PSI."""

    statistic: float
    df: int
    z: float
    pvalue: float
    psi: float
    cells: int


def binned_test(counts: npt.ArrayLike, ref_shares: npt.ArrayLike, ref_rows: float) -> BinnedTest:
    """Two-sample chi-square of window counts against reference shares of ``ref_rows`` rows.

    Cells expected below :data:`MIN_EXPECTED` window rows under the reference, and new
    cells, are pooled into one cell (see the module doc); ``psi`` is the PSI over the
    cells tested (shares floored at 1e-4). With fewer than two cells, or an empty side,
    nothing can be tested: ``z = -inf``, ``pvalue = 1``.
    """
    x = np.asarray(counts, dtype=np.float64)
    r = np.asarray(ref_shares, dtype=np.float64)
    total_r = float(r.sum())
    n, big_n = float(x.sum()), float(ref_rows)
    if n <= 0 or big_n <= 0 or total_r <= 0:
        return BinnedTest(0.0, 0, -math.inf, 1.0, math.nan, 0)
    r = r / total_r
    c = x / n
    p = (x + big_n * r) / (n + big_n)
    # Pool on the reference (not on the window's own counts, which would bias the
    # statistic): cells expected below MIN_EXPECTED rows, and cells the reference never
    # saw (new categories), go to one cell; if that cell is still expected below the
    # minimum, it joins the smallest of the other cells.
    small = (n * r < MIN_EXPECTED) & (p > 0)
    big = ~small & (p > 0)
    cs, rs, ps = c[big], r[big], p[big]
    if small.any():
        pooled = (c[small].sum(), r[small].sum(), p[small].sum())
        if n * pooled[1] < MIN_EXPECTED and cs.size:
            j = int(np.argmin(rs))
            cs[j], rs[j], ps[j] = cs[j] + pooled[0], rs[j] + pooled[1], ps[j] + pooled[2]
        else:
            cs, rs, ps = (
                np.append(cs, pooled[0]),
                np.append(rs, pooled[1]),
                np.append(ps, pooled[2]),
            )
    df = cs.size - 1
    if df < 1:
        return BinnedTest(0.0, 0, -math.inf, 1.0, 0.0, int(cs.size))
    n_eff = n * big_n / (n + big_n)
    stat = float(n_eff * np.sum((cs - rs) ** 2 / ps))
    z = wilson_hilferty_z(stat, df)
    psi = _psi(rs, cs)
    return BinnedTest(stat, df, z, normal_sf(z), psi, int(cs.size))


def binned_tests(
    counts: Sequence[npt.ArrayLike], ref_shares: Sequence[npt.ArrayLike], ref_rows: npt.ArrayLike
) -> list[BinnedTest]:
    """:func:`binned_test` of many members at once (the same pooling, one padded matrix).

    Padding cells have no count and no share, so they are in no tested cell; sums run
    over the padded rows, so figures may differ from the one-member function in the
    last bits only.
    """
    m = len(counts)
    if m == 0:
        return []
    width = max((np.size(c) for c in counts), default=0)
    x = np.zeros((m, max(width, 1)))
    r = np.zeros(x.shape)
    for i, (c, s) in enumerate(zip(counts, ref_shares, strict=True)):
        x[i, : np.size(c)] = c
        r[i, : np.size(s)] = s
    return padded_binned_tests(x, r, ref_rows)


def padded_binned_tests(
    x: npt.NDArray[np.float64], r: npt.NDArray[np.float64], ref_rows: npt.ArrayLike
) -> list[BinnedTest]:
    """:func:`binned_tests` of members already padded to one matrix: window counts ``x``
    and reference shares ``r`` (``(m, cells)``, zeros past each member's cells; ``r`` is
    left as it was)."""
    m = x.shape[0]
    if m == 0:
        return []
    r = np.array(r, dtype=np.float64)
    big_n = np.asarray(ref_rows, dtype=np.float64)
    n, total_r = x.sum(axis=1), r.sum(axis=1)
    empty = (n <= 0) | (big_n <= 0) | (total_r <= 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r /= np.where(empty, 1.0, total_r)[:, None]
        c = x / np.where(empty, 1.0, n)[:, None]
        p = (x + big_n[:, None] * r) / (n + big_n)[:, None]
        small = (n[:, None] * r < MIN_EXPECTED) & (p > 0)
        big = ~small & (p > 0)
        tested = [np.where(big, v, 0.0) for v in (c, r, p)]
        apart = np.zeros(m, dtype=bool)
        pooled: list[npt.NDArray[np.float64]] = []
        if small.any():  # not in a warm window: its bins expect enough counts each
            pooled = [np.where(small, v, 0.0).sum(axis=1) for v in (c, r, p)]
            has_small, has_big = small.any(axis=1), big.any(axis=1)
            join = has_small & (n * pooled[1] < MIN_EXPECTED) & has_big
            apart = has_small & ~join
            # Joined to the big cell of smallest reference share (the first one on ties).
            j = np.argmin(np.where(big, r, np.inf), axis=1)
            rows = np.flatnonzero(join)
            for v, add in zip(tested, pooled, strict=True):
                v[rows, j[rows]] += add[rows]
        ct, rt, pt = tested
        terms = np.where(big, (ct - rt) ** 2 / np.where(big, pt, 1.0), 0.0).sum(axis=1)
        psi = np.where(big, _psi_terms(rt, ct), 0.0).sum(axis=1)
        if pooled:
            terms += np.where(apart, (pooled[0] - pooled[1]) ** 2 / pooled[2], 0.0)
            psi += np.where(apart, _psi_terms(pooled[1], pooled[0]), 0.0)
        n_eff = n * big_n / (n + big_n)
    cells = big.sum(axis=1) + apart
    out: list[BinnedTest] = []
    for i in range(m):
        if empty[i]:
            out.append(BinnedTest(0.0, 0, -math.inf, 1.0, math.nan, 0))
        elif cells[i] < 2:
            out.append(BinnedTest(0.0, 0, -math.inf, 1.0, 0.0, int(cells[i])))
        else:
            df = int(cells[i]) - 1
            stat = float(n_eff[i] * terms[i])
            z = wilson_hilferty_z(stat, df)
            out.append(BinnedTest(stat, df, z, normal_sf(z), float(psi[i]), int(cells[i])))
    return out


def _psi_terms(r: npt.NDArray[np.float64], c: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    rr, cc = np.maximum(r, PSI_FLOOR), np.maximum(c, PSI_FLOOR)
    return np.asarray((cc - rr) * np.log(cc / rr), dtype=np.float64)


def _psi(r: npt.NDArray[np.float64], c: npt.NDArray[np.float64]) -> float:
    rr, cc = np.maximum(r, PSI_FLOOR), np.maximum(c, PSI_FLOOR)
    return float(np.sum((cc - rr) * np.log(cc / rr)))


def ks_pvalue(d: float, n: float, ref_rows: float) -> float:
    """Asymptotic two-sample Kolmogorov-Smirnov p-value of ``D`` (Stephens' correction)."""
    if not (n > 0 and ref_rows > 0) or math.isnan(d):
        return math.nan
    ne = n * ref_rows / (n + ref_rows)
    lam = (math.sqrt(ne) + 0.12 + 0.11 / math.sqrt(ne)) * d
    if lam < 0.2:
        return 1.0
    total = 0.0
    for k in range(1, 101):
        term = 2.0 * (-1) ** (k - 1) * math.exp(-2.0 * k * k * lam * lam)
        total += term
        if abs(term) < 1e-12:
            break
    return float(min(max(total, 0.0), 1.0))


@dataclass(frozen=True)
class MissingTest:
    """Result of :func:`missing_test`: window and reference shares, score, p-value."""

    share: float
    ref_share: float
    z: float
    pvalue: float


def missing_test(missing: float, seen: float, ref_share: float, ref_total: float) -> MissingTest:
    """Two-proportion z-test (continuity-corrected, two-sided): window vs reference missing.

    ``seen`` counts the window's values (missing or not), ``ref_total`` the reference's
    rows (missing or not).
    """
    if seen <= 0 or ref_total <= 0:
        return MissingTest(math.nan, ref_share, -math.inf, 1.0)
    share = missing / seen
    pooled = (missing + ref_share * ref_total) / (seen + ref_total)
    var = pooled * (1.0 - pooled) * (1.0 / seen + 1.0 / ref_total)
    gap = max(abs(share - ref_share) - 0.5 / seen, 0.0)
    z = (0.0 if gap == 0 else math.inf) if var <= 0 else gap / math.sqrt(var)
    return MissingTest(share, ref_share, z, min(1.0, 2.0 * normal_sf(z)))


def flagged(test: BinnedTest, z_crit: float, psi_floor: float) -> bool:
    """The drift decision of one member."""
    return test.df >= 1 and test.z > z_crit and test.psi >= psi_floor


def missing_flagged(test: MissingTest, z_crit: float, floor: float) -> bool:
    """The missing-share decision of one feature."""
    return test.z > z_crit and abs(test.share - test.ref_share) >= floor


def bonferroni_members(tested: Sequence[object]) -> int:
    """How many members a family's correction divides ``alpha`` by (at least 1)."""
    return max(len(tested), 1)
