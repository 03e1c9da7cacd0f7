"""The drift aggregate's label sets and metric specs: points built once per group.

Split by job from :mod:`modelmon.aggregates.drift`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Protocol

from .. import names
from ..batch import IntArray
from ..points import Point, ScalarPoint

# private: the aggregate's layout and window view, split by job from .drift
from .drift_layout import CATEGORICAL_METHODS, NUMERIC_METHODS, _Group
from .drift_window import _WindowView
from .series_memo import SeriesMemo


class _Decided(Protocol):
    @property
    def detected(self) -> bool: ...


class _GroupLabels:
    """The label sets of one group's points, built once and shared by every scrape.

    Point tuples are handed out again while their values are the same (see
    :mod:`.series_memo`): the renderer reuses their text.
    """

    def __init__(
        self, base: Mapping[str, str], group: _Group, key: str, qs: tuple[float, ...]
    ) -> None:
        self.bin_labels: list[dict[str, str]] = []
        ratio: list[Point] = []
        self.method_labels: list[dict[str, dict[str, str]]] = []
        self.quantile_labels: list[list[dict[str, str]]] = []
        methods = (*NUMERIC_METHODS, *CATEGORICAL_METHODS)
        self.member_labels: list[dict[str, str]] = []
        for member in group.members:
            for b, share in enumerate(member.shares):
                labels = {**base, key: member.name, names.BIN: str(b)}
                self.bin_labels.append(labels)
                ratio.append(ScalarPoint(labels, share))
            one = {**base, key: member.name}
            self.member_labels.append(one)
            self.method_labels.append({m: {**one, names.METHOD: m} for m in methods})
            self.quantile_labels.append([{**one, names.QUANTILE: _fmt(q)} for q in qs])
        self.ratio_points = tuple(ratio)
        self._memo = SeriesMemo()
        self._bins: tuple[bytes, tuple[Point, ...]] | None = None
        self.members = group.members
        self.rows_points: tuple[Point, ...] = tuple(
            ScalarPoint(lb, float(m.reference_rows))
            for lb, m in zip(self.member_labels, group.members, strict=True)
        )
        self.missing_ratio_points: tuple[Point, ...] = tuple(
            ScalarPoint(lb, float(m.missing_share))
            for lb, m in zip(self.member_labels, group.members, strict=True)
        )

    def decision_points(self, view: _WindowView) -> tuple[tuple[Point, ...], ...]:
        """Detected flags, p-values, missing-share flags and p-values of a window."""
        pvalues = tuple(
            ScalarPoint(self.method_labels[i][method], p)
            for i, d in enumerate(view.decisions)
            if d is not None
            for method, p in d.pvalues.items()
            if not math.isnan(p)
        )
        m_pvalues = tuple(
            ScalarPoint(self.member_labels[i], md.test.pvalue)
            for i, md in enumerate(view.missing)
            if md is not None
        )
        found = (self._flags(view.decisions), pvalues, self._flags(view.missing), m_pvalues)
        return tuple(self._memo.settle(("decided", k), t) for k, t in enumerate(found))

    def _flags(self, decided: Sequence[_Decided | None]) -> tuple[Point, ...]:
        """1.0 (detected) or 0.0 per decided member; none for an undecided one."""
        return tuple(
            ScalarPoint(self.member_labels[i], 1.0 if d.detected else 0.0)
            for i, d in enumerate(decided)
            if d is not None
        )

    def bin_points(self, cum: IntArray) -> tuple[Point, ...]:
        raw = cum.tobytes()
        last = self._bins
        if last is not None and last[0] == raw:
            return last[1]
        points = tuple(map(ScalarPoint, self.bin_labels, cum.tolist()))
        self._bins = (raw, points)
        return points

    def window_points(self, view: _WindowView) -> tuple[tuple[Point, ...], tuple[Point, ...]]:
        drift_points: list[Point] = []
        quant_points: list[Point] = []
        for i, scores in enumerate(view.scores):
            if scores is None:
                continue
            labels = self.method_labels[i]
            for method, value in scores.items():
                if not math.isnan(value):
                    drift_points.append(ScalarPoint(labels[method], value))
            live = view.quantiles.get(i)
            if live is not None:
                quant_points += map(ScalarPoint, self.quantile_labels[i], live.tolist())
        memo = self._memo
        return memo.settle("drift", tuple(drift_points)), memo.settle("q", tuple(quant_points))


_FEATURE_SPECS = (
    names.FEATURE_BIN,
    names.FEATURE_REFERENCE_RATIO,
    names.FEATURE_DRIFT,
    names.FEATURE_QUANTILE,
)
_OUTPUT_SPECS = (
    names.PREDICTION_BIN,
    names.PREDICTION_REFERENCE_RATIO,
    names.PREDICTION_DRIFT,
    names.PREDICTION_QUANTILE,
)

_DECISION_SPECS = {
    names.FEATURE: (
        names.FEATURE_DRIFT_DETECTED,
        names.FEATURE_DRIFT_PVALUE,
        names.FEATURE_REFERENCE_ROWS,
    ),
    names.OUTPUT: (
        names.PREDICTION_DRIFT_DETECTED,
        names.PREDICTION_DRIFT_PVALUE,
        names.PREDICTION_REFERENCE_ROWS,
    ),
}


def _fmt(q: float) -> str:
    """Quantile label: ``0.05``, ``0.5``, ``0.95`` (shortest repr)."""
    return repr(float(q))
