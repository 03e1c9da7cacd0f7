"""The dashboard's "Outliers" row (see ``docs/outliers.md``); built on the dashboard module."""

from __future__ import annotations

from modelmon import names
from modelmon.monitoring.config import MonitoringConfig

# Private on purpose: this row is the dashboard module's, kept apart for length.
from modelmon.monitoring.dashboard import _MV, Panel, Target, _fleet, _increase
from modelmon.monitoring.outlier_rules import (
    FEATURE_OUTLIERS,
    PREDICTION_OUTLIERS,
    ROW_OUTLIERS,
    OutlierFamily,
    outlier_rule_names,
)


def _rate_vs_reference(cfg: MonitoringConfig, fam: OutlierFamily, title: str, legend: str) -> Panel:
    n = outlier_rule_names(cfg, fam)
    live = f"{_fleet(cfg, n['count'])}\n/\n({_fleet(cfg, n['checked'])} > 0)"
    return Panel(
        title,
        "timeseries",
        (
            Target(live, f"live {legend}"),
            Target(_fleet(cfg, n["ratio"]), f"reference {legend}"),
        ),
        "percentunit",
        description=(
            f"Share of values beyond the reference fences over {cfg.outlier_window}, beside "
            "the share of the reference beyond them (the expected rate)."
        ),
    )


def outlier_panels(cfg: MonitoringConfig) -> list[Panel]:
    """Outlier rates against the reference, out-of-range counts, the decisions."""
    feat = "{{feature}} " + _MV
    detected = outlier_rule_names(cfg, FEATURE_OUTLIERS)["detected"]
    rows_detected = outlier_rule_names(cfg, ROW_OUTLIERS)["detected"]
    out_of_range = _increase(cfg, names.FEATURE_OUT_OF_RANGE, names.FEATURE, names.SIDE)
    return [
        _rate_vs_reference(cfg, FEATURE_OUTLIERS, "Outlier share per feature (fleet)", feat),
        Panel(
            "Out-of-range values per feature",
            "timeseries",
            (Target(out_of_range, "{{side}} " + feat),),
            description="Values below the reference minimum (low) or above its maximum (high).",
        ),
        _rate_vs_reference(cfg, ROW_OUTLIERS, "Joint outlier rows (fleet)", "{{method}} " + _MV),
        _rate_vs_reference(
            cfg,
            PREDICTION_OUTLIERS,
            "Prediction outlier share per output (fleet)",
            "{{output}} " + _MV,
        ),
        Panel(
            "Outlier decisions (1 = above the reference rate)",
            "timeseries",
            (
                Target(_fleet(cfg, detected), feat),
                Target(_fleet(cfg, rows_detected), "rows {{method}} " + _MV),
            ),
        ),
    ]
