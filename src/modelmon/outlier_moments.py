"""Pass 2 of the profile builder for outliers: fence counts and joint moments, mergeable.

Fences are fixed between the passes from the merged pass 1 (the quantile summary the
profile will hold), so pass 2 counts every column's values beyond them exactly. The
moments of the Mahalanobis test are sums over the complete rows of the joint features,
centred on the pass-1 means: each deviation ``d = x - mean`` is rounded to a fixed-point
grid of ``2**-52`` of its column's largest deviation (known from pass 1's min and max),
and ``sum(q_i)`` and ``sum(q_i * q_j)`` for ``i <= j`` are exact integers
(:func:`modelmon.exact_sums.grid_moments`: one float64 matrix product per block of rows,
exact by construction), so any partitioning gives the same mean and covariance, bit for
bit: those of the values on the grid, correctly rounded. The share of reference rows
beyond the chi-square cut-off would need a third pass: builder profiles leave it unset
(the exported expected rate is then the nominal ``alpha``; see ``docs/outliers.md``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import ConfigurationError
from .exact_sums import GRID_BITS, grid_exponent, grid_moments
from .outliers import Fence, JointReference, fences_of, joint_from_moments

FloatArray = npt.NDArray[np.float64]


class OutlierCounts:
    """Values beyond each column's fence, and the joint features' exact moments."""

    def __init__(
        self,
        fences: Mapping[str, tuple[float, float]],
        joint: Sequence[str] = (),
        shift: Sequence[float] = (),
        exponents: Sequence[int] = (),
    ) -> None:
        self.fences = {str(n): (float(lo), float(hi)) for n, (lo, hi) in fences.items()}
        self.joint = tuple(joint)
        self.shift = np.asarray(shift, dtype=np.float64)
        self.exponents = tuple(int(e) for e in exponents)  # each column's grid bound 2**E
        if not len(self.joint) == self.shift.size == len(self.exponents):
            raise ConfigurationError("joint features, centres and grid exponents differ in number")
        self.beyond = dict.fromkeys(self.fences, 0)
        p = len(self.joint)
        self.rows = 0
        self.s1 = [0] * p
        self.s2 = [0] * (p * (p + 1) // 2)

    @classmethod
    def plan(
        cls,
        quantiles: Mapping[str, Sequence[float]],
        joint: Sequence[str],
        shift: Sequence[float],
        ranges: Sequence[tuple[float, float]],
    ) -> OutlierCounts:
        """Fences from each numeric column's quantile summary; the joint features' centre
        (``shift``) and fixed-point grid (from each one's ``(min, max)``)."""
        grids = [grid_exponent(lo, hi, c) for (lo, hi), c in zip(ranges, shift, strict=True)]
        return cls({n: fences_of(q) for n, q in quantiles.items()}, joint, shift, grids)

    def count(self, name: str, valid: FloatArray) -> None:
        """Count the finite values of column ``name`` beyond its fence."""
        fence = self.fences.get(name)
        if fence is not None:
            self.beyond[name] += int(np.count_nonzero((valid < fence[0]) | (valid > fence[1])))

    def add_rows(self, columns: Mapping[str, FloatArray]) -> None:
        """Add the complete rows of the joint features (float columns, NaN missing)."""
        if not self.joint:
            return
        cols = [np.asarray(columns[n], dtype=np.float64) for n in self.joint]
        complete = np.isfinite(cols[0])
        for c in cols[1:]:
            complete &= np.isfinite(c)
        rows = int(np.count_nonzero(complete))
        if rows < complete.size:
            cols = [c[complete] for c in cols]
        if rows:
            try:
                s1, s2 = grid_moments(cols, self.exponents, self.shift.tolist())
            except ValueError as exc:
                raise ConfigurationError(
                    f"pass 2 sees a value of {list(self.joint)} outside pass 1's range: "
                    "both passes must read the same rows"
                ) from exc
            self.rows += rows
            _add(self.s1, s1)
            _add(self.s2, s2)

    def merge(self, other: OutlierCounts) -> None:
        if (
            other.fences != self.fences
            or other.joint != self.joint
            or other.exponents != self.exponents
            or other.shift.tolist() != self.shift.tolist()
        ):
            raise ValueError("cannot merge outlier counts of different plans")
        for name, c in other.beyond.items():
            self.beyond[name] += c
        self.rows += other.rows
        _add(self.s1, other.s1)
        _add(self.s2, other.s2)

    # --- results -----------------------------------------------------------------------
    def fence(self, name: str, count: int) -> Fence | None:
        """The fence of column ``name`` with its reference ratio (``count`` valid values)."""
        fence = self.fences.get(name)
        if fence is None:
            return None
        return Fence(fence[0], fence[1], self.beyond[name] / count if count else 0.0)

    def joint_reference(self) -> JointReference | None:
        """Mean and covariance (``ddof=0``) of the complete rows on their grids, correctly
        rounded (``None`` when there are fewer than 2 rows, or they overflow a float)."""
        n, p = self.rows, len(self.joint)
        if p == 0 or n < 2:
            return None
        unit = [e - GRID_BITS for e in self.exponents]  # grid step 2**unit of each column
        mean = [float(c) + _scaled(self.s1[i], unit[i], n) for i, c in enumerate(self.shift)]
        cov = np.empty((p, p))
        iu, ju = np.triu_indices(p)
        for k, (i, j) in enumerate(zip(iu.tolist(), ju.tolist(), strict=True)):
            numerator = self.s2[k] * n - self.s1[i] * self.s1[j]
            cov[i, j] = cov[j, i] = _scaled(numerator, unit[i] + unit[j], n * n)
        if not (np.isfinite(cov).all() and np.isfinite(mean).all()):
            return None
        return joint_from_moments(self.joint, n, np.asarray(mean), cov)

    # --- state ---------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "fences": [[n, lo, hi] for n, (lo, hi) in self.fences.items()],
            "joint": list(self.joint),
            "shift": [repr(float(v)) for v in self.shift],
            "grid": [GRID_BITS, list(self.exponents)],
            "beyond": [[n, c] for n, c in self.beyond.items()],
            "rows": self.rows,
            "s1": [str(v) for v in self.s1],
            "s2": [str(v) for v in self.s2],
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> OutlierCounts:
        bits, exponents = state.get("grid") or (None, [])
        if bits != GRID_BITS:  # the sums are in grid units: another grid cannot be added
            raise ConfigurationError(
                "this profile builder state was written by another modelmon version "
                "(its outlier moments use another grid): rebuild both passes with one version"
            )
        out = cls(
            {str(n): (float(lo), float(hi)) for n, lo, hi in state["fences"]},
            [str(n) for n in state["joint"]],
            [float(v) for v in state["shift"]],
            [int(e) for e in exponents],
        )
        out.beyond = {str(n): int(c) for n, c in state["beyond"]}
        out.rows = int(state["rows"])
        out.s1 = [int(v) for v in state["s1"]]
        out.s2 = [int(v) for v in state["s2"]]
        return out


def _add(into: list[int], values: Sequence[int]) -> None:
    for k, v in enumerate(values):
        into[k] += v


def _scaled(numerator: int, exponent: int, denominator: int) -> float:
    """Correctly rounded ``numerator * 2**exponent / denominator`` (Python's int division
    is); ``+-inf`` when it overflows a float."""
    try:
        if exponent >= 0:
            return (numerator << exponent) / denominator
        return numerator / (denominator << -exponent)
    except OverflowError:
        return math.copysign(math.inf, numerator)
