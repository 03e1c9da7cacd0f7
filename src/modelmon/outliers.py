"""Outliers against a reference profile: fences per column, Mahalanobis distance per row.

Pure maths on numpy arrays (no I/O, no globals); the fold's
:class:`~modelmon.aggregates.outliers.OutlierAggregate` applies it to live batches.

**Out of range.** A value below the reference minimum or above its maximum (strict
inequalities). By definition no reference value is out of range.

**Fences.** From the reference quantiles ``q`` of a numeric column::

    low  = q(0.001) - 0.5 * (q(0.75) - q(0.25))
    high = q(0.999) + 0.5 * (q(0.75) - q(0.25))

A value is an outlier when ``x < low`` or ``x > high``. The 0.1 % / 99.9 % quantiles
set where the tails start, whatever the shape; half the inter-quartile range beyond them
keeps a few extreme reference values inside. The share of reference values beyond the
fences (``ratio``) is counted on the reference data itself when the profile is built:
about 2e-4 for a normal column, 5e-4 for an exponential one, 0 for a uniform one. It is
the expected outlier rate of live traffic drawn like the reference.

**Multivariate (``method="mahalanobis"``).** A row's squared Mahalanobis distance
``d2 = (x - m)' S^-1 (x - m)`` against the reference mean ``m`` and covariance ``S`` of
at most :data:`MAX_JOINT_FEATURES` numeric features (the first ones of the profile with a
non-zero spread). Under a multivariate normal reference ``d2`` follows a chi-square
with ``p`` degrees of freedom; a row is an outlier when ``d2`` exceeds its
``1 - alpha`` quantile (``alpha`` = :data:`ROW_ALPHA`). Real data are rarely normal,
so the share of reference rows beyond the cut-off is counted when the profile is built
(``ratio``); it is the expected rate. Rows with a missing or invalid value in any of the
``p`` features are not tested (counted apart). A singular or ill-conditioned covariance
(collinear features) is regularised: the covariance is scaled to a correlation matrix,
whose eigenvalues below :data:`EIGEN_FLOOR` are raised to it; a row breaking an exact
linear relation of the reference then has a large distance, as it should.

>>> import numpy as np
>>> q = np.quantile(np.random.default_rng(0).normal(size=100_000), (0.001, 0.25, 0.75, 0.999))
>>> low, high = fences_of(q, (0.001, 0.25, 0.75, 0.999))
>>> round(low, 1), round(high, 1)
(-3.8, 3.8)
>>> round(chi2_quantile(0.999, 2), 4)
13.8155
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._cached import cached_property  # no lock: safe across fork (see there)
from .drift import REFERENCE_QUANTILE_PROBS
from .errors import ReferenceError_

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

FENCE_LOW_Q = 0.001
FENCE_HIGH_Q = 0.999
FENCE_IQR_MULTIPLE = 0.5
#: Tail probability of the chi-square cut-off of the Mahalanobis test (normal reference).
ROW_ALPHA = 0.001
#: Numeric features in the Mahalanobis test at most (the first ones of the profile).
MAX_JOINT_FEATURES = 50
#: Smallest eigenvalue kept in the reference correlation matrix (regularisation).
EIGEN_FLOOR = 1e-6
MAHALANOBIS = "mahalanobis"
MAX_JOINT_AT_LOAD = 1000
_BLOCK_ROWS = 1024
# OpenBLAS runs a matrix product on one thread while m * n * k <= 65536 * 4 (its
# GEMM_MULTITHREAD_THRESHOLD); above, it wakes threads that spin for the product's length,
# which on a busy machine costs 5-20 times the single-threaded CPU time.
_SINGLE_THREAD_PRODUCT = 65536 * 4


class OutlierFormatError(ReferenceError_):
    """The ``outliers`` section of a profile is invalid (raised at load, naming the field)."""


# --- fences -------------------------------------------------------------------------------


def fences_of(
    quantiles: npt.ArrayLike, probs: Sequence[float] = REFERENCE_QUANTILE_PROBS
) -> tuple[float, float]:
    """``(low, high)`` fences from a quantile summary (see the module doc)."""
    q = np.interp((FENCE_LOW_Q, 0.25, 0.75, FENCE_HIGH_Q), probs, np.asarray(quantiles, float))
    spread = FENCE_IQR_MULTIPLE * float(q[2] - q[1])
    return float(q[0]) - spread, float(q[3]) + spread


def beyond(values: FloatArray, low: float, high: float) -> tuple[int, int]:
    """Values strictly below ``low`` and strictly above ``high`` (NaN counts in neither)."""
    return int(np.count_nonzero(values < low)), int(np.count_nonzero(values > high))


@dataclass(frozen=True)
class Fence:
    """One numeric column's outlier fences and the reference share beyond them."""

    low: float
    high: float
    ratio: float | None = None  # None: a profile built before outliers were counted

    def to_json(self) -> list[float | None]:
        return [self.low, self.high, self.ratio]


def fence_from_data(valid: FloatArray, quantiles: Sequence[float]) -> Fence:
    """The fence of a column from its reference quantiles, with the share counted on ``valid``."""
    low, high = fences_of(quantiles)
    below, above = beyond(valid, low, high)
    return Fence(low, high, (below + above) / valid.size if valid.size else 0.0)


# --- chi-square -----------------------------------------------------------------------


def _gamma_q(a: float, x: float) -> float:
    """Regularised upper incomplete gamma ``Q(a, x)`` (series / Lentz continued fraction)."""
    if x <= 0:
        return 1.0
    log_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        k = a
        while abs(term) > abs(total) * 1e-15:
            k += 1
            term *= x / k
            total += term
        return max(0.0, 1.0 - total * math.exp(log_front))
    tiny = 1e-300
    b = x + 1 - a
    c, d = 1 / tiny, 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return math.exp(log_front) * h


def chi2_sf(x: float, df: int) -> float:
    """``P(X > x)`` for a chi-square ``X`` with ``df`` degrees of freedom."""
    return _gamma_q(df / 2, x / 2)


def chi2_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of a chi-square with ``df`` degrees of freedom (bisection)."""
    tail = 1 - p
    lo, hi = 0.0, max(1.0, float(df))
    while chi2_sf(hi, df) > tail:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if chi2_sf(mid, df) > tail:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return (lo + hi) / 2


# --- the alert's decision -------------------------------------------------------------


def rate_z(count: float, checked: float, ratio: float, reference_rows: float) -> float:
    """Normal score of ``count`` outliers in ``checked`` values against the reference rate.

    The smaller of two one-sided scores, so each one's weakness is covered by the other:

    * **Poisson** (exact in the tail for few outliers): ``count`` against the mean
      ``lambda = checked * (ratio + 1 / N)`` (the reference rate plus one reference value's
      worth, so a reference without outliers still expects some):
      ``P(K >= k) = P(chi2(2k) <= 2 lambda)``, which Wilson-Hilferty turns into
      ``z = 3 sqrt(k) (1 - 1 / (9k) - (lambda / k)^(1/3))``;
    * **two proportions** (the reference ratio is itself an estimate from ``N`` values):
      ``z = (k / n - r - 0.5 / n) / sqrt(p (1 - p) (1 / n + 1 / N))`` with the pooled
      share ``p = (k + r N) / (n + N)``.

    PromQL evaluates the same expressions. Flag when ``z > z(alpha / m)``.
    """
    if count <= 0 or checked <= 0:
        return -math.inf
    expected = checked * (ratio + 1.0 / reference_rows)
    cube_root = math.pow(expected / count, 1 / 3)
    poisson = 3 * math.sqrt(count) * (1 - 1 / (9 * count) - cube_root)
    pooled = (count + ratio * reference_rows) / (checked + reference_rows)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / checked + 1 / reference_rows))
    excess = count / checked - ratio - 0.5 / checked
    proportions = excess / spread if spread > 0 else math.inf
    return min(poisson, proportions)


def rate_flagged(
    count: float,
    checked: float,
    ratio: float,
    reference_rows: float,
    z_critical: float,
    min_count: int,
    floor: float,
) -> bool:
    """The outlier alerts' decision (see :func:`rate_z`), with its minimum count and floor."""
    if count < min_count or checked <= 0:
        return False
    z = rate_z(count, checked, ratio, reference_rows)
    return z > z_critical and count / checked - ratio >= floor


# --- Mahalanobis --------------------------------------------------------------------------


@dataclass(frozen=True)
class JointReference:
    """Reference mean and covariance of the features of the Mahalanobis test."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    covariance: tuple[tuple[float, ...], ...]
    count: int  # complete reference rows the moments come from
    ratio: float | None = None  # share of them beyond the cut-off (None: not counted)
    alpha: float = ROW_ALPHA

    @cached_property
    def cutoff(self) -> float:
        """The ``1 - alpha`` chi-square quantile for ``len(features)`` degrees of freedom."""
        return chi2_quantile(1 - self.alpha, len(self.features))

    @property
    def expected_ratio(self) -> float:
        """The counted reference share, else the nominal ``alpha`` (normal reference)."""
        return self.alpha if self.ratio is None else self.ratio

    @cached_property
    def _whitening(self) -> tuple[FloatArray, FloatArray]:
        """``(m, W)`` with ``d2 = |W (x - m)|^2`` on the regularised correlation matrix."""
        cov = np.asarray(self.covariance, dtype=np.float64)
        scale = np.sqrt(np.diag(cov))
        corr = cov / np.outer(scale, scale)
        values, vectors = np.linalg.eigh((corr + corr.T) / 2)
        values = np.maximum(values, EIGEN_FLOOR)
        w = (vectors / np.sqrt(values)).T / scale
        return np.asarray(self.mean, dtype=np.float64), np.asarray(w, dtype=np.float64)

    def distances(self, rows: FloatArray) -> FloatArray:
        """Squared Mahalanobis distance of each row (columns in :attr:`features` order)."""
        mean, w = self._whitening
        out = np.empty(rows.shape[0])
        block = _product_rows(w.shape[0])
        for start in range(0, rows.shape[0], block):
            z = (rows[start : start + block] - mean) @ w.T
            out[start : start + block] = np.einsum("ij,ij->i", z, z)
        return out

    def outliers(self, rows: FloatArray) -> BoolArray:
        return np.asarray(self.distances(rows) > self.cutoff)

    def to_json(self) -> dict[str, Any]:
        return {
            "method": MAHALANOBIS,
            "features": list(self.features),
            "mean": list(self.mean),
            "covariance": [list(r) for r in self.covariance],
            "count": self.count,
            "ratio": self.ratio,
            "alpha": self.alpha,
        }


def _product_rows(d: int) -> int:
    """Rows per block of ``(rows x d) @ (d x d)``: small enough for a single-threaded BLAS
    (a threaded one spins its threads and multiplies the fold's CPU time), at least 16."""
    return max(16, min(_BLOCK_ROWS, _SINGLE_THREAD_PRODUCT // max(d * d, 1)))


def joint_features(
    candidates: Sequence[str], stds: Mapping[str, float | None], cap: int = MAX_JOINT_FEATURES
) -> tuple[str, ...]:
    """The first ``cap`` numeric features with a non-zero reference spread."""
    kept = [n for n in candidates if (stds.get(n) or 0.0) > 0.0]
    return tuple(kept[:cap])


def joint_from_data(
    names_: Sequence[str], matrix: FloatArray, alpha: float = ROW_ALPHA
) -> JointReference | None:
    """Mean, covariance (``ddof=0``) and counted ratio of the complete rows of ``matrix``."""
    complete = matrix[np.isfinite(matrix).all(axis=1)]
    if not names_ or complete.shape[0] < 2:
        return None
    mean = complete.mean(axis=0)
    centred = complete - mean
    cov = centred.T @ centred / complete.shape[0]
    return _with_ratio(
        JointReference(
            tuple(names_),
            tuple(float(v) for v in mean),
            tuple(tuple(float(v) for v in row) for row in cov),
            int(complete.shape[0]),
            alpha=alpha,
        ),
        complete,
    )


def joint_of_columns(
    stds: Mapping[str, float | None], column: Callable[[str], npt.ArrayLike]
) -> JointReference | None:
    """The Mahalanobis reference of the first numeric features with a spread (``stds`` in
    profile order; ``column(name)`` gives a column's values, NaN where missing)."""
    chosen = joint_features(list(stds), stds)
    if not chosen:
        return None
    matrix = np.column_stack([np.asarray(column(n), dtype=np.float64) for n in chosen])
    return joint_from_data(chosen, matrix)


def _with_ratio(joint: JointReference, complete: FloatArray) -> JointReference | None:
    if np.any(np.diag(np.asarray(joint.covariance)) <= 0):
        return None
    share = float(np.count_nonzero(joint.outliers(complete))) / complete.shape[0]
    return JointReference(
        joint.features, joint.mean, joint.covariance, joint.count, share, joint.alpha
    )


def joint_from_moments(
    names_: Sequence[str], count: int, mean: FloatArray, covariance: FloatArray
) -> JointReference | None:
    """A joint reference from merged moments (the profile builder: ratio not counted)."""
    if not names_ or count < 2 or np.any(np.diag(covariance) <= 0):
        return None
    return JointReference(
        tuple(names_),
        tuple(float(v) for v in mean),
        tuple(tuple(float(v) for v in row) for row in covariance),
        int(count),
    )


# --- the profile section --------------------------------------------------------------

#: ``(low quantile, high quantile, IQR multiple)``: stored so a profile says its rule.
FENCE_RULE = (FENCE_LOW_Q, FENCE_HIGH_Q, FENCE_IQR_MULTIPLE)


@dataclass(frozen=True)
class OutlierReference:
    """The ``outliers`` section of a reference profile (the fences live in each member)."""

    joint: JointReference | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"fence_rule": list(FENCE_RULE)}
        if self.joint is not None:
            out["joint"] = self.joint.to_json()
        return out


# --- validation at load ---------------------------------------------------------------


def _fail(field_: str, why: str) -> OutlierFormatError:
    return OutlierFormatError(f"invalid reference profile: outliers field {field_!r}: {why}")


def _number(x: Any, field_: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise _fail(field_, f"must be a number, got {type(x).__name__}")
    v = float(x)
    if not math.isfinite(v):
        raise _fail(field_, f"must be finite, got {v!r}")
    return v


def _share(x: Any, field_: str) -> float | None:
    if x is None:
        return None
    v = _number(x, field_)
    if not 0.0 <= v <= 1.0:
        raise _fail(field_, f"must lie in [0, 1], got {v!r}")
    return v


def read_fence(value: Any, member: str) -> Fence:
    """Validate a member's ``fence`` field (``[low, high, ratio]``)."""
    where = f"{member} fence"
    if not isinstance(value, list) or len(value) != 3:
        raise _fail(where, "must be [low, high, ratio]")
    low, high = _number(value[0], where), _number(value[1], where)
    if low > high:
        raise _fail(where, f"low {low!r} is above high {high!r}")
    return Fence(low, high, _share(value[2], where))


def _read_joint(raw: Any, allowed: set[str]) -> JointReference:
    if not isinstance(raw, dict) or raw.get("method") != MAHALANOBIS:
        raise _fail("joint", f"must be an object with method {MAHALANOBIS!r}")
    features = raw.get("features")
    if not isinstance(features, list) or not 1 <= len(features) <= MAX_JOINT_AT_LOAD:
        raise _fail("joint.features", f"must list 1 to {MAX_JOINT_AT_LOAD} features")
    if len(set(features)) != len(features) or not set(features) <= allowed:
        raise _fail("joint.features", "must name distinct numeric features of the profile")
    p = len(features)
    mean, cov = raw.get("mean"), raw.get("covariance")
    if not isinstance(mean, list) or len(mean) != p:
        raise _fail("joint.mean", f"must hold {p} numbers")
    if not isinstance(cov, list) or len(cov) != p:
        raise _fail("joint.covariance", f"must be a {p} x {p} matrix")
    if any(not isinstance(row, list) or len(row) != p for row in cov):
        raise _fail("joint.covariance", f"must be a {p} x {p} matrix")
    m = np.asarray([[_number(v, "joint.covariance") for v in row] for row in cov])
    if not np.allclose(m, m.T, rtol=1e-9, atol=0.0) or np.any(np.diag(m) <= 0):
        raise _fail("joint.covariance", "must be symmetric with a positive diagonal")
    count = raw.get("count")
    if isinstance(count, bool) or not isinstance(count, int) or count < 2:
        raise _fail("joint.count", f"must be an integer >= 2, got {count!r}")
    alpha = _number(raw.get("alpha"), "joint.alpha")
    if not 0.0 < alpha < 0.5:
        raise _fail("joint.alpha", f"must lie in (0, 0.5), got {alpha!r}")
    return JointReference(
        tuple(str(f) for f in features),
        tuple(_number(v, "joint.mean") for v in mean),
        tuple(tuple(float(v) for v in row) for row in m),
        count,
        _share(raw.get("ratio"), "joint.ratio"),
        alpha,
    )


def read_outliers(raw: Any, numeric_features: set[str]) -> OutlierReference:
    """Validate a profile's ``outliers`` section (raises :class:`OutlierFormatError`)."""
    if not isinstance(raw, dict):
        raise _fail("outliers", "must be an object")
    rule = raw.get("fence_rule")
    if not isinstance(rule, list) or tuple(rule) != FENCE_RULE:
        raise _fail("fence_rule", f"must be {list(FENCE_RULE)} (this modelmon's rule)")
    joint = raw.get("joint")
    return OutlierReference(None if joint is None else _read_joint(joint, numeric_features))
