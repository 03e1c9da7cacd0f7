"""``promtool test rules`` cases of the outlier alerts (``outliers.yml``).

Scenario outcomes follow from the documented test (:func:`modelmon.outliers.rate_flagged`),
and the recording rules' score is checked against that function's value.
"""

from __future__ import annotations

from typing import Any

from modelmon import names
from modelmon.monitoring.config import MonitoringConfig, duration_seconds
from modelmon.monitoring.outlier_rules import FEATURE_OUTLIERS, ROW_OUTLIERS, outlier_rule_names

# Private on purpose: these cases are the rule-tests module's, kept apart for length.
from modelmon.monitoring.rule_tests import (
    REFERENCE_ROWS,
    _Builder,
    _close_to,
    _fmt,
    _Suite,
    constant,
    ramp,
)
from modelmon.outliers import MAHALANOBIS, rate_z

#: The reference outlier ratio of the scenarios' feature.
FEATURE_RATIO = 2e-4
#: The reference ratio of the scenarios' joint test (about its nominal alpha).
ROW_RATIO = 1e-3


def _feature_series(
    b: _Builder, n: int, seen: float, outliers: float, missing: float = 0.0
) -> None:
    b.metric(names.FEATURE_REFERENCE_OUTLIER_RATIO, constant(FEATURE_RATIO, n), feature="f1")
    b.metric(names.FEATURE_REFERENCE_ROWS, constant(REFERENCE_ROWS, n), feature="f1")
    b.metric(names.FEATURE_OBSERVATIONS, ramp((seen, n)), feature="f1")
    b.metric(names.FEATURE_MISSING, ramp((missing, n)), feature="f1")
    if outliers:
        b.metric(names.FEATURE_OUTLIERS, ramp((outliers, n)), feature="f1")


def _timing(suite: _Suite) -> tuple[str, int, int]:
    """Evaluation time (window filled, ``for`` passed), its steps + 1, window steps."""
    cfg = suite.cfg
    at_seconds = duration_seconds(cfg.outlier_for) + duration_seconds(cfg.outlier_window) + 600
    return _fmt(at_seconds), suite.steps(at_seconds) + 1, suite.steps(cfg.outlier_window)


def _feature_outliers(suite: _Suite) -> None:
    cfg = suite.cfg
    alert = "ModelmonFeatureOutliers"
    at, n, window = _timing(suite)
    min_rate = cfg.outlier_min_count / window  # per step: the minimum count over the window
    floor = cfg.outlier_rate_floor
    cases = [
        # 2% outliers (100 times the reference rate) among 100 values a minute.
        ("fires when outliers exceed the reference rate", 100.0, 2.0, True),
        ("healthy at the reference rate", 1e5, 1e5 * FEATURE_RATIO, False),
        # A 20% outlier share, but fewer outliers in the window than the minimum count.
        ("healthy below the minimum count", 0.5 * min_rate / 0.2, 0.5 * min_rate, False),
        # Significant (thousands of values), but only half the rate floor above the reference.
        (
            "healthy when the excess is below the rate floor",
            1e5,
            1e5 * (FEATURE_RATIO + floor / 2),
            False,
        ),
        ("quiet", 0.0, 0.0, False),
    ]
    who = suite.who(feature="f1")
    rules = outlier_rule_names(cfg, FEATURE_OUTLIERS)
    for name, seen, outliers, fires in cases:
        b = suite.builder()
        _feature_series(b, n, seen, outliers, missing=seen * 0.1)
        exprs = []
        checked = 0.9 * seen * window  # 10% of the values are missing: not checked
        if outliers * window >= cfg.outlier_min_count:
            z = rate_z(outliers * window, checked, FEATURE_RATIO, REFERENCE_ROWS)
            exprs.append(_close_to(rules["z"], z, who, at))
        suite.group(name, b, alert, at, [("warning", who)] if fires else [], exprs)
    _keeps_firing(suite, alert, n, window)


def _keeps_firing(suite: _Suite, alert: str, n: int, window: int) -> None:
    """Outliers that stop after firing keep the alert on for ``outlier_keep_firing_for``."""
    cfg = suite.cfg
    fire = n
    gap = suite.steps(cfg.outlier_window) + suite.steps("5m")
    b = suite.builder()
    total = fire + gap
    b.metric(names.FEATURE_REFERENCE_OUTLIER_RATIO, constant(FEATURE_RATIO, total), feature="f1")
    b.metric(names.FEATURE_REFERENCE_ROWS, constant(REFERENCE_ROWS, total), feature="f1")
    b.metric(names.FEATURE_OBSERVATIONS, ramp((100.0, total)), feature="f1")
    b.metric(names.FEATURE_OUTLIERS, ramp((2.0, fire), (0.0, gap)), feature="f1")
    who = [("warning", suite.who(feature="f1"))]
    after = _fmt(total * suite.step)
    suite.group(
        "fires and stays firing after the outliers stop (keep_firing_for)",
        b,
        alert,
        _fmt((fire - 1) * suite.step),
        who,
        more=[(after, who)],
    )


def _outlier_rows(suite: _Suite) -> None:
    cfg = suite.cfg
    alert = "ModelmonOutlierRows"
    at, n, window = _timing(suite)
    who = suite.who(method=MAHALANOBIS)
    rules = outlier_rule_names(cfg, ROW_OUTLIERS)
    for name, checked, rows, fires in (
        ("fires when rows are joint outliers far above the reference rate", 100.0, 10.0, True),
        ("healthy at the reference rate", 1e4, 1e4 * ROW_RATIO, False),
        ("quiet", 0.0, 0.0, False),
    ):
        b = suite.builder()
        m = {"method": MAHALANOBIS}
        b.metric(names.OUTLIER_ROWS_REFERENCE_RATIO, constant(ROW_RATIO, n), **m)
        b.metric(names.OUTLIER_ROWS_REFERENCE_ROWS, constant(REFERENCE_ROWS, n), **m)
        b.metric(names.OUTLIER_ROWS_CHECKED, ramp((checked, n)), **m)
        b.metric(names.OUTLIER_ROWS, ramp((rows, n)), **m)
        exprs = []
        if rows * window >= cfg.outlier_min_count:
            z = rate_z(rows * window, checked * window, ROW_RATIO, REFERENCE_ROWS)
            exprs.append(_close_to(rules["z"], z, who, at))
        suite.group(name, b, alert, at, [("warning", who)] if fires else [], exprs)


def outliers_file(cfg: MonitoringConfig) -> dict[str, Any]:
    """The ``outliers.yml`` test file."""
    suite = _Suite(cfg, "1m")
    _feature_outliers(suite)
    _outlier_rows(suite)
    return suite.document("1m")
