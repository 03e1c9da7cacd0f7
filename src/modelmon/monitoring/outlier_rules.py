"""Recording and alert rules of the outlier counters (see ``docs/outliers.md``).

The decision of :func:`modelmon.outliers.rate_flagged`, fleet-wide: per feature (or
output, or method) the window's outlier count ``k`` out of ``n`` checked values against
the reference outlier ratio (``N`` reference rows): the smaller of a one-sided Poisson
score and a two-proportion score (:func:`modelmon.outliers.rate_z`), flagged when
``k >= outlier_min_count``, ``z > z(outlier_alpha / m)`` (Bonferroni over the ``m``
members of the model) and ``k / n - ratio >= outlier_rate_floor``.

Built on :mod:`modelmon.monitoring.rules`' primitives; that module lists these groups.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from modelmon import names
from modelmon.monitoring.config import MonitoringConfig, num

# Private on purpose: these rules are the rules module's, kept apart for length.
from modelmon.monitoring.rules import (
    _WHO,
    FEATURES,
    PREDICTIONS,
    Alert,
    Recording,
    _lines,
    bin_rule_names,
    sum_rate,
    z_upper_promql,
)


@dataclass(frozen=True)
class OutlierFamily:
    what: str  # rule name stem: feature, prediction, row
    key: str  # the member label: feature, output, method
    counter: names.MetricSpec
    ratio: names.MetricSpec


FEATURE_OUTLIERS = OutlierFamily(
    "feature", names.FEATURE, names.FEATURE_OUTLIERS, names.FEATURE_REFERENCE_OUTLIER_RATIO
)
PREDICTION_OUTLIERS = OutlierFamily(
    "prediction", names.OUTPUT, names.PREDICTION_OUTLIERS, names.PREDICTION_REFERENCE_OUTLIER_RATIO
)
ROW_OUTLIERS = OutlierFamily(
    "row", names.METHOD, names.OUTLIER_ROWS, names.OUTLIER_ROWS_REFERENCE_RATIO
)
FAMILIES = (FEATURE_OUTLIERS, PREDICTION_OUTLIERS, ROW_OUTLIERS)


def outlier_rule_names(cfg: MonitoringConfig, fam: OutlierFamily) -> dict[str, str]:
    """The recording rule names of one outlier family."""
    w = cfg.outlier_window
    return {
        "count": cfg.rule(f"{fam.what}_outliers", w),
        "checked": cfg.rule(f"{fam.what}_outlier_checked", w),
        "ratio": cfg.rule(f"{fam.what}_reference_outlier_ratio", "max"),
        "reference_rows": _reference_rows_rule(cfg, fam),
        "expected": cfg.rule(f"{fam.what}_outliers_expected", w),
        "z_poisson": cfg.rule(f"{fam.what}_outlier_z_poisson", w),
        "z_proportions": cfg.rule(f"{fam.what}_outlier_z_proportions", w),
        "z": cfg.rule(f"{fam.what}_outlier_z", w),
        "tail": cfg.rule(f"{fam.what}_outlier_tail", "max"),
        "z_critical": cfg.rule(f"{fam.what}_outlier_z_critical", "max"),
        "detected": cfg.rule(f"{fam.what}_outliers_detected", w),
    }


def _checked(cfg: MonitoringConfig, fam: OutlierFamily, count: str) -> str:
    """Values tested in the window: valid feature values, predictions, or checked rows."""
    w, k = cfg.outlier_window, fam.key
    if fam is ROW_OUTLIERS:
        return sum_rate(cfg, names.OUTLIER_ROWS_CHECKED, w, k, fn="increase")
    if fam is PREDICTION_OUTLIERS:
        rows = sum_rate(cfg, names.PREDICTIONS, w, fn="increase")
        return f"0 * {count} + ignoring ({k}) group_left () {rows}"
    seen = sum_rate(cfg, names.FEATURE_OBSERVATIONS, w, k, fn="increase")
    bad = [
        f"({sum_rate(cfg, spec, w, k, fn='increase')} or 0 * {seen})"
        for spec in (names.FEATURE_MISSING, names.FEATURE_INVALID)
    ]
    return _lines(seen, f"- {bad[0]}", f"- {bad[1]}")


def _reference_rows_rule(cfg: MonitoringConfig, fam: OutlierFamily) -> str:
    """Reference rows: the drift group records them for features and outputs."""
    if fam is ROW_OUTLIERS:
        return cfg.rule("row_outlier_reference_rows", "max")
    return bin_rule_names(cfg, FEATURES if fam is FEATURE_OUTLIERS else PREDICTIONS)[
        "reference_rows"
    ]


def _family_rules(cfg: MonitoringConfig, fam: OutlierFamily) -> list[Recording]:
    n = outlier_rule_names(cfg, fam)
    k = fam.key
    count, checked, ratio = n["count"], n["checked"], n["ratio"]
    kk = f"({count} >= {cfg.outlier_min_count})"
    z_poisson = f"3 * sqrt({kk}) * (1 - 1 / (9 * {kk}) - ({n['expected']} / {kk}) ^ (1 / 3))"
    rows = n["reference_rows"]
    pooled = f"(({kk} + {ratio} * {rows}) / ({checked} + {rows}))"
    z_proportions = _lines(
        f"({kk} / ({checked} > 0) - {ratio} - 0.5 / {checked})",
        "/",
        f"sqrt({pooled} * (1 - {pooled}) * (1 / {checked} + 1 / {rows}))",
    )
    zp, zt = n["z_poisson"], n["z_proportions"]
    z = f"({zp} <= {zt}) or {zt}"  # the smaller score
    members = f"count by ({cfg.by()}) ({ratio})"
    tail = f"sqrt(2 * ln({members}) + {num(-2 * math.log(cfg.outlier_alpha))})"
    flagged = _lines(
        "(",
        f"  {n['z']} > ignoring ({k}) group_left () {n['z_critical']}",
        "  and",
        f"  {count} / ({checked} > 0) - {ratio} >= {num(cfg.outlier_rate_floor)}",
        ")",
    )
    rules = [
        Recording(count, sum_rate(cfg, fam.counter, cfg.outlier_window, k, fn="increase")),
        Recording(checked, _checked(cfg, fam, count)),
        Recording(ratio, f"max by ({cfg.by(k)}) ({cfg.series(fam.ratio)})"),
    ]
    if fam is ROW_OUTLIERS:
        spec = names.OUTLIER_ROWS_REFERENCE_ROWS
        rules.append(Recording(n["reference_rows"], f"max by ({cfg.by(k)}) ({cfg.series(spec)})"))
    return [
        *rules,
        Recording(n["expected"], f"{checked} * ({ratio} + 1 / {n['reference_rows']})"),
        Recording(zp, z_poisson),
        Recording(zt, z_proportions),
        Recording(n["z"], z),
        Recording(n["tail"], tail),
        Recording(n["z_critical"], z_upper_promql(n["tail"])),
        Recording(n["detected"], _lines(f"{flagged} * 0 + 1", "or", f"{n['z']} * 0")),
    ]


def outlier_recording_rules(cfg: MonitoringConfig) -> list[Recording]:
    """Every outlier family's rules (after the drift group, whose reference rows they read)."""
    return [rule for fam in FAMILIES for rule in _family_rules(cfg, fam)]


def outlier_alerts(cfg: MonitoringConfig) -> list[Alert]:
    """``ModelmonFeatureOutliers`` and ``ModelmonOutlierRows``."""
    test = (
        f"one-sided Poisson test at family-wise level {num(cfg.outlier_alpha)} against the "
        f"reference rate, at least {cfg.outlier_min_count} outliers and "
        f"{num(cfg.outlier_rate_floor * 100)} percentage points above the reference rate"
    )
    feature = "feature {{ $labels.feature }}"
    return [
        Alert(
            "ModelmonFeatureOutliers",
            f"{outlier_rule_names(cfg, FEATURE_OUTLIERS)['detected']} == 1",
            "warning",
            cfg.outlier_for,
            f"Outliers in {feature} of {_WHO} above the reference rate",
            f"Values of {feature} of {_WHO} fall beyond the reference fences more often than "
            f"the reference does (window {cfg.outlier_window}; {test}). Compare the outlier "
            "and out-of-range panels and check the upstream source of the feature.",
            cfg.outlier_keep_firing_for,
        ),
        Alert(
            "ModelmonOutlierRows",
            f"{outlier_rule_names(cfg, ROW_OUTLIERS)['detected']} == 1",
            "warning",
            cfg.outlier_for,
            f"Rows of {_WHO} jointly unlike the reference ({{{{ $labels.method }}}})",
            f"Rows of {_WHO} are joint outliers ({{{{ $labels.method }}}} distance to the "
            f"reference) more often than the reference's rows (window {cfg.outlier_window}; "
            f"{test}). Look for a changed relation between features: a join, a unit or a "
            "feature pipeline that changed.",
            cfg.outlier_keep_firing_for,
        ),
    ]
