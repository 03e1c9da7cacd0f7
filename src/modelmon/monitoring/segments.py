"""Monitoring as code for segments: recording rules, alerts and dashboard panels.

Recording rules aggregate the ``segment_*`` series by ``segment`` fleet-wide. Two alerts
name the segment:

* ``ModelmonSegmentFeatureDrift``: a feature drifted within one segment (the in-process
  decision ``segment_feature_drift_detected``, at family-wise level ``drift_alpha`` over
  features x segments, with the PSI floor), for ``drift_for``, with the drift hysteresis.
* ``ModelmonSegmentAccuracyLow``: a segment's accuracy over ``performance_window`` is
  below the model's by more than :data:`ACCURACY_GAP` and by a one-sided z-test at level
  0.001 (``z = (p_model - p_segment) / sqrt(p_model (1 - p_model) / n_segment) >``
  :data:`Z_CRITICAL`), with at least ``min_outcomes`` labels in the segment.
"""

from __future__ import annotations

from typing import Any

from modelmon import names
from modelmon.monitoring.config import MonitoringConfig, num
from modelmon.monitoring.rules import RATE_WINDOW, Alert, Recording, sum_rate

#: One-sided z critical value at level 0.001 (per segment and evaluation).
Z_CRITICAL = 3.09
#: The smallest accuracy gap (model minus segment) the accuracy alert flags.
ACCURACY_GAP = 0.05
_WHO = "{{ $labels.model }} {{ $labels.version }}"
_SEGMENT = "segment {{ $labels.segment }}"


def rule_names(cfg: MonitoringConfig) -> dict[str, str]:
    """The segment recording rules by short key (shared with the dashboard and tests)."""
    w = cfg.performance_window
    return {
        "requests": cfg.rule("segment_request_rate", RATE_WINDOW),
        "predictions": cfg.rule("segment_prediction_rate", RATE_WINDOW),
        "labelled": cfg.rule("segment_labelled_outcomes", w),
        "accuracy": cfg.rule("segment_accuracy", w),
        "gap": cfg.rule("segment_accuracy_gap", w),
        "z": cfg.rule("segment_accuracy_gap_z", w),
        "rmse": cfg.rule("segment_rmse", w),
        "drift": cfg.rule("segment_feature_drift_detected", "max"),
    }


def segment_recordings(cfg: MonitoringConfig) -> list[Recording]:
    """Fleet-wide per-segment traffic, accuracy (and its gap to the model's), RMSE, drift."""
    w, s = cfg.performance_window, names.SEGMENT
    n = rule_names(cfg)
    outcomes = names.SEGMENT_OUTCOMES
    correct = sum_rate(cfg, outcomes, w, s, fn="increase", **{names.RESULT: "correct"})
    sq = names.SEGMENT_SQUARED_ERROR
    squared = sum_rate(cfg, sq, w, s, suffix="_sum", fn="increase")
    count = sum_rate(cfg, sq, w, s, suffix="_count", fn="increase")
    model_accuracy = cfg.rule("accuracy", w)
    on = f"on ({cfg.by()})"
    drift = (
        f"max by ({cfg.by(s, names.FEATURE)}) ({cfg.series(names.SEGMENT_FEATURE_DRIFT_DETECTED)})"
    )
    return [
        Recording(n["requests"], sum_rate(cfg, names.SEGMENT_REQUESTS, RATE_WINDOW, s)),
        Recording(n["predictions"], sum_rate(cfg, names.SEGMENT_PREDICTIONS, RATE_WINDOW, s)),
        Recording(n["labelled"], sum_rate(cfg, outcomes, w, s, fn="increase")),
        Recording(n["accuracy"], f"{correct}\n/\n({n['labelled']} > 0)"),
        Recording(n["gap"], f"{model_accuracy}\n- {on} group_right\n{n['accuracy']}"),
        Recording(
            n["z"],
            f"{n['gap']} * sqrt({n['labelled']})\n/ {on} group_left\n"
            f"sqrt({model_accuracy} * (1 - {model_accuracy}))",
        ),
        Recording(n["rmse"], f"sqrt(\n  {squared}\n  /\n  ({count} > 0)\n)"),
        Recording(n["drift"], drift),
    ]


def segment_alerts(cfg: MonitoringConfig) -> list[Alert]:
    """The two alerts naming the segment (see the module doc)."""
    n = rule_names(cfg)
    w = cfg.performance_window
    feature = "feature {{ $labels.feature }}"
    accuracy = (
        f"{n['z']} > {num(Z_CRITICAL)}\nand\n{n['gap']} > {num(ACCURACY_GAP)}\n"
        f"and\n{n['labelled']} >= {cfg.min_outcomes}"
    )
    return [
        Alert(
            "ModelmonSegmentFeatureDrift",
            f"{n['drift']} == 1",
            "warning",
            cfg.drift_for,
            f"Feature {{{{ $labels.feature }}}} of {_WHO} drifted in {_SEGMENT}",
            f"Within {_SEGMENT}, the distribution of {feature} of {_WHO} differs from the "
            f"reference profile for {cfg.drift_for} (two-sample test at family-wise level "
            f"{num(cfg.drift_alpha)} over features and segments, PSI >= "
            f"{num(cfg.drift_psi_floor)}). Compare the segment's drift scores with the "
            "model's: a drift in one segment only points at that slice's data source.",
            cfg.drift_keep_firing_for,
        ),
        Alert(
            "ModelmonSegmentAccuracyLow",
            accuracy,
            "critical",
            cfg.performance_for,
            f"Accuracy of {_WHO} is low in {_SEGMENT}",
            f"Over the labelled outcomes of the last {w} (at least {cfg.min_outcomes} in the "
            f"segment), the accuracy in {_SEGMENT} is more than {num(ACCURACY_GAP * 100)} "
            f"points below the model's, beyond chance (one-sided z > {num(Z_CRITICAL)}). "
            "Check the segment's drift panels and its share of traffic.",
        ),
    ]


def segment_panels(cfg: MonitoringConfig) -> list[Any]:
    """The dashboard's "Segments" row: worst segments first, then per-segment series."""
    from modelmon.monitoring.dashboard import Panel, Target  # the dashboard imports us lazily

    n = rule_names(cfg)
    sel = '{model=~"$model",version=~"$version",segment=~"$segment"}'
    legend = "{{segment}} {{model}} {{version}}"
    worst = f"sort(bottomk(10, {n['accuracy']}{sel}))"
    gap = f"sort_desc(topk(10, {n['z']}{sel}))"
    drifted = f"sum by ({cfg.by(names.SEGMENT)}) ({n['drift']}{sel})"
    return [
        Panel(
            f"Worst segments (accuracy, {cfg.performance_window})",
            "table",
            (
                Target(worst, "", instant=True, format="table"),
                Target(gap, "", instant=True, format="table"),
                Target(drifted, "", instant=True, format="table"),
            ),
            width=12,
            description=(
                "Lowest segment accuracy first; z of the gap to the model's accuracy "
                f"(alert above {num(Z_CRITICAL)}); features drifted within the segment."
            ),
            transformations=(
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True},
                        "renameByName": {
                            "Value #A": "accuracy",
                            "Value #B": "gap z",
                            "Value #C": "drifted features",
                        },
                    },
                },
            ),
        ),
        Panel(
            "Predictions per second by segment",
            "timeseries",
            (Target(f"{n['predictions']}{sel}", legend),),
            "ops",
            width=12,
        ),
        Panel(
            f"Accuracy by segment ({cfg.performance_window}, fleet)",
            "timeseries",
            (Target(f"{n['accuracy']}{sel}", legend),),
            "percentunit",
        ),
        Panel(
            "Feature drift (PSI) by segment, selected feature",
            "timeseries",
            (
                Target(
                    f"max by ({cfg.by(names.SEGMENT)}) ("
                    + cfg.series(
                        names.SEGMENT_FEATURE_DRIFT,
                        model="$model",
                        version="$version",
                        segment="$segment",
                        feature="$feature",
                        method="psi",
                    )
                    + ")",
                    legend,
                ),
            ),
            thresholds=(cfg.drift_psi_floor,),
        ),
        Panel(
            f"RMSE by segment ({cfg.performance_window}, fleet)",
            "timeseries",
            (Target(f"{n['rmse']}{sel}", legend),),
        ),
    ]
