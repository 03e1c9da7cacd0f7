"""The drift aggregate's label sets and metric specs: points built once per group.

Split by job from :mod:`modelmon.aggregates.drift`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from .. import names
from ..batch import IntArray
from ..points import Point, ScalarColumns, ScalarPoint

# private: the aggregate's layout and window view, split by job from .drift
from .drift_layout import CATEGORICAL_METHODS, NUMERIC_METHODS, _Group
from .drift_window import _WindowView
from .series_memo import Labels, SeriesMemo


class _GroupLabels:
    """The label sets of one group's points, built once and shared by every scrape.

    Point tuples are handed out again while their values are the same (see
    :mod:`.series_memo`): the renderer reuses their text.
    """

    def __init__(
        self, base: Mapping[str, str], group: _Group, key: str, qs: tuple[float, ...]
    ) -> None:
        bin_labels: list[dict[str, str]] = []
        ratio: list[Point] = []
        self.method_labels: list[dict[str, dict[str, str]]] = []
        self.quantile_labels: list[list[dict[str, str]]] = []
        methods = (*NUMERIC_METHODS, *CATEGORICAL_METHODS)
        self.member_labels: list[dict[str, str]] = []
        for member in group.members:
            for b, share in enumerate(member.shares):
                labels = {**base, key: member.name, names.BIN: str(b)}
                bin_labels.append(labels)
                ratio.append(ScalarPoint(labels, share))
            one = {**base, key: member.name}
            self.member_labels.append(one)
            self.method_labels.append({m: {**one, names.METHOD: m} for m in methods})
            self.quantile_labels.append([{**one, names.QUANTILE: _fmt(q)} for q in qs])
        self.bin_labels: tuple[dict[str, str], ...] = tuple(bin_labels)
        self.ratio_points = tuple(ratio)
        self._memo = SeriesMemo()
        self._bins: tuple[bytes, ScalarColumns] | None = None
        # The last view read and its points: a view is frozen and replaced, never changed,
        # so scrapes between two statistics refreshes skip the per-member loops.
        self._decided: tuple[_WindowView, tuple[ScalarColumns, ...]] | None = None
        self._windowed: tuple[_WindowView, tuple[ScalarColumns, ScalarColumns]] | None = None
        self.members = group.members
        self.rows_points: tuple[Point, ...] = tuple(
            ScalarPoint(lb, float(m.reference_rows))
            for lb, m in zip(self.member_labels, group.members, strict=True)
        )
        self.missing_ratio_points: tuple[Point, ...] = tuple(
            ScalarPoint(lb, float(m.missing_share))
            for lb, m in zip(self.member_labels, group.members, strict=True)
        )

    def decision_points(self, view: _WindowView) -> tuple[ScalarColumns, ...]:
        """Detected flags, p-values, missing-share flags and p-values of a window."""
        last = self._decided
        if last is not None and last[0] is view:
            return last[1]
        found: tuple[tuple[list[Labels], list[float]], ...] = tuple(([], []) for _ in range(4))
        detected, pvalues, m_detected, m_pvalues = found
        for i, d in enumerate(view.decisions):
            if d is None:
                continue
            detected[0].append(self.member_labels[i])
            detected[1].append(1.0 if d.detected else 0.0)
            labels = self.method_labels[i]
            for method, p in d.pvalues.items():
                if not math.isnan(p):
                    pvalues[0].append(labels[method])
                    pvalues[1].append(p)
        for i, md in enumerate(view.missing):
            if md is None:
                continue
            m_detected[0].append(self.member_labels[i])
            m_detected[1].append(1.0 if md.detected else 0.0)
            m_pvalues[0].append(self.member_labels[i])
            m_pvalues[1].append(md.test.pvalue)
        memo = self._memo
        points = tuple(memo.scalar_columns(("decided", k), *cols) for k, cols in enumerate(found))
        self._decided = (view, points)
        return points

    def bin_points(self, cum: IntArray) -> ScalarColumns:
        raw = cum.tobytes()
        last = self._bins
        if last is not None and last[0] == raw:
            return last[1]
        points = ScalarColumns(self.bin_labels, tuple(cum.tolist()))
        self._bins = (raw, points)
        return points

    def window_points(self, view: _WindowView) -> tuple[ScalarColumns, ScalarColumns]:
        """Drift scores and live quantiles of a window."""
        last = self._windowed
        if last is not None and last[0] is view:
            return last[1]
        drift_labels: list[Labels] = []
        drift_values: list[float] = []
        quant_labels: list[Labels] = []
        quant_values: list[float] = []
        for i, scores in enumerate(view.scores):
            if scores is None:
                continue
            labels = self.method_labels[i]
            for method, value in scores.items():
                if not math.isnan(value):
                    drift_labels.append(labels[method])
                    drift_values.append(value)
            live = view.quantiles.get(i)
            if live is not None:
                quant_labels += self.quantile_labels[i]
                quant_values += live.tolist()
        memo = self._memo
        points = (
            memo.scalar_columns("drift", drift_labels, drift_values),
            memo.scalar_columns("q", quant_labels, quant_values),
        )
        self._windowed = (view, points)
        return points


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
