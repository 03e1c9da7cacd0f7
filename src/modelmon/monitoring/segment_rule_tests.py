"""``promtool test rules`` groups of the segment alerts (``segments.yml``).

The accuracy scenarios feed the model's confusion counters and the per-segment outcome
counters from the same simulated labels, and check the recorded segment accuracy against
its exact value.
"""

from __future__ import annotations

from typing import Any

from modelmon import names
from modelmon.monitoring.config import MonitoringConfig, duration_seconds

# The rule-test builder's private helpers: this file is its segment part, split off for size.
from modelmon.monitoring.rule_tests import _Builder, _close_to, _fmt, _Suite, constant, ramp
from modelmon.monitoring.segments import ACCURACY_GAP, rule_names


def segments_file(cfg: MonitoringConfig) -> dict[str, Any]:
    """The test document of the segment alerts."""
    suite = _Suite(cfg, "1m")
    _segment_drift(suite)
    _segment_accuracy(suite)
    return suite.document("1m")


def _segment_drift(suite: _Suite) -> None:
    cfg, alert = suite.cfg, "ModelmonSegmentFeatureDrift"
    at = _fmt(duration_seconds(cfg.drift_for) + 600)
    n = suite.steps(at)
    cases = [
        ("fires for the drifted segment only", {"a": 0.0, "b": 1.0}),
        ("healthy", {"a": 0.0, "b": 0.0}),
        ("quiet", {}),
    ]
    for name, states in cases:
        b = suite.builder()
        for segment, state in states.items():
            b.metric(
                names.SEGMENT_FEATURE_DRIFT_DETECTED,
                constant(state, n),
                **{names.SEGMENT: segment, names.FEATURE: "f1"},
            )
        fired = [s for s, state in states.items() if state]
        expected = [
            ("warning", suite.who(**{names.SEGMENT: s, names.FEATURE: "f1"})) for s in fired
        ]
        suite.group(name, b, alert, at, expected)


def _labels(b: _Builder, per_step: float, accuracies: dict[str, float], n: int) -> None:
    """Labels at ``per_step`` per segment and step, a share ``accuracy`` of them correct."""
    model_correct = model_wrong = 0.0
    for segment, acc in accuracies.items():
        for result, share in (("correct", acc), ("wrong", 1 - acc)):
            labels = {names.SEGMENT: segment, names.RESULT: result}
            b.metric(names.SEGMENT_OUTCOMES, ramp((per_step * share, n)), **labels)
        model_correct += per_step * acc
        model_wrong += per_step * (1 - acc)
    if accuracies:
        cells = (("x", "x", model_correct), ("x", "y", model_wrong))
        for actual, predicted, rate in cells:
            b.metric(names.OUTCOMES, ramp((rate, n)), actual=actual, predicted=predicted)


def _segment_accuracy(suite: _Suite) -> None:
    cfg, alert = suite.cfg, "ModelmonSegmentAccuracyLow"
    window = duration_seconds(cfg.performance_window)
    at = _fmt(window + duration_seconds(cfg.performance_for) + 1800)
    n = suite.steps(at)
    per_step = max(100.0, 4.0 * cfg.min_outcomes * suite.step / window)
    few = cfg.min_outcomes / 4 * suite.step / window
    low = 0.5
    # The gap floor matters: a gap just under it is not flagged however many labels.
    near = 0.9 - ACCURACY_GAP * 0.8
    cases = [
        ("fires for the segment that is badly served", per_step, {"a": 0.95, "b": low}, "b"),
        ("healthy", per_step, {"a": 0.9, "b": 0.9}, None),
        ("healthy with a gap under the floor", per_step, {"a": 0.9, "b": near}, None),
        ("healthy with too few outcomes to judge", few, {"a": 0.95, "b": 0.0}, None),
        ("quiet", 0.0, {}, None),
    ]
    rule = rule_names(cfg)["accuracy"]
    for name, rate, accuracies, bad in cases:
        b = suite.builder()
        _labels(b, rate, accuracies, n)
        exprs = []
        if bad is not None:
            one = f'{rule}{{{names.SEGMENT}="{bad}"}}'
            exprs.append(_close_to(one, low, suite.who(**{names.SEGMENT: bad}), at))
        expected = [] if bad is None else [("critical", suite.who(**{names.SEGMENT: bad}))]
        suite.group(name, b, alert, at, expected, exprs)
