"""Pass 2 of the profile builder for outliers: fence counts and joint moments, mergeable.

Fences are fixed between the passes from the merged pass 1 (the quantile summary the
profile will hold), so pass 2 counts every column's values beyond them exactly. The
moments of the Mahalanobis test are sums over the complete rows of the joint features,
centred on the pass-1 means: ``sum(d_i)`` and ``sum(d_i * d_j)`` for ``i <= j``, each
product rounded once per row and summed exactly (:mod:`modelmon.exact_sums`), so any
partitioning gives the same mean and covariance, bit for bit. The share of reference rows
beyond the chi-square cut-off would need a third pass: builder profiles leave it unset
(the exported expected rate is then the nominal ``alpha``; see ``docs/outliers.md``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .exact_sums import SCALE, exact_column_sums
from .outliers import Fence, JointReference, fences_of, joint_from_moments

FloatArray = npt.NDArray[np.float64]
_PRODUCT_VALUES = 1 << 20  # products computed at once (bounds the temporary matrix)


class OutlierCounts:
    """Values beyond each column's fence, and the joint features' exact moments."""

    def __init__(
        self,
        fences: Mapping[str, tuple[float, float]],
        joint: Sequence[str] = (),
        shift: Sequence[float] = (),
    ) -> None:
        self.fences = {str(n): (float(lo), float(hi)) for n, (lo, hi) in fences.items()}
        self.joint = tuple(joint)
        self.shift = np.asarray(shift, dtype=np.float64)
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
    ) -> OutlierCounts:
        """Fences from each numeric column's quantile summary; the joint features' centre."""
        return cls({n: fences_of(q) for n, q in quantiles.items()}, joint, shift)

    def count(self, name: str, valid: FloatArray) -> None:
        """Count the finite values of column ``name`` beyond its fence."""
        fence = self.fences.get(name)
        if fence is not None:
            self.beyond[name] += int(np.count_nonzero((valid < fence[0]) | (valid > fence[1])))

    def add_rows(self, columns: Mapping[str, FloatArray]) -> None:
        """Add the complete rows of the joint features (float columns, NaN missing)."""
        if not self.joint:
            return
        matrix = np.column_stack([np.asarray(columns[n], dtype=np.float64) for n in self.joint])
        d = matrix[np.isfinite(matrix).all(axis=1)] - self.shift
        if d.shape[0] == 0:
            return
        self.rows += int(d.shape[0])
        _add(self.s1, exact_column_sums(d))
        iu, ju = np.triu_indices(len(self.joint))
        step = max(_PRODUCT_VALUES // iu.size, 1)
        for start in range(0, d.shape[0], step):
            part = d[start : start + step]
            _add(self.s2, exact_column_sums(part[:, iu] * part[:, ju]))

    def merge(self, other: OutlierCounts) -> None:
        if other.fences != self.fences or other.joint != self.joint:
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
        """Mean and covariance (``ddof=0``) of the complete rows, correctly rounded."""
        n, p = self.rows, len(self.joint)
        if p == 0 or n < 2:
            return None
        mean = [float(s) + _div(self.s1[i], n << SCALE) for i, s in enumerate(self.shift)]
        cov = np.empty((p, p))
        iu, ju = np.triu_indices(p)
        denominator = (n * n) << (2 * SCALE)
        for k, (i, j) in enumerate(zip(iu.tolist(), ju.tolist(), strict=True)):
            numerator = ((self.s2[k] * n) << SCALE) - self.s1[i] * self.s1[j]
            cov[i, j] = cov[j, i] = _div(numerator, denominator)
        return joint_from_moments(self.joint, n, np.asarray(mean), cov)

    # --- state ---------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "fences": [[n, lo, hi] for n, (lo, hi) in self.fences.items()],
            "joint": list(self.joint),
            "shift": [repr(float(v)) for v in self.shift],
            "beyond": [[n, c] for n, c in self.beyond.items()],
            "rows": self.rows,
            "s1": [str(v) for v in self.s1],
            "s2": [str(v) for v in self.s2],
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> OutlierCounts:
        out = cls(
            {str(n): (float(lo), float(hi)) for n, lo, hi in state["fences"]},
            [str(n) for n in state["joint"]],
            [float(v) for v in state["shift"]],
        )
        out.beyond = {str(n): int(c) for n, c in state["beyond"]}
        out.rows = int(state["rows"])
        out.s1 = [int(v) for v in state["s1"]]
        out.s2 = [int(v) for v in state["s2"]]
        return out


def _add(into: list[int], values: Sequence[int]) -> None:
    for k, v in enumerate(values):
        into[k] += v


def _div(numerator: int, denominator: int) -> float:
    """Correctly rounded ``numerator / denominator`` (Python's int division is)."""
    return numerator / denominator
