"""``promtool test rules`` unit tests for every alert, generated for a configuration.

Each alert gets test groups named ``"<Alert>: fires ..."`` (the series that must trigger
it), ``"<Alert>: healthy"`` and ``"<Alert>: quiet"`` (no traffic), with expected labels
and annotations. Scenario values derive from the config's thresholds, so a custom export
ships tests that match its own rules. Drift and accuracy rules also get exact-value
checks against numpy computations of PSI, JS distance and accuracy.
"""

# Long module: the promtool unit tests of every alert, written as data (series in,
# alerts out) next to each other so a rule and its test are reviewed together.

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from modelmon import names
from modelmon.errors import ConfigurationError
from modelmon.exporters.prometheus import le_value
from modelmon.monitoring.config import MonitoringConfig, duration_seconds, num
from modelmon.monitoring.rules import (
    FEATURES,
    PSI_FLOOR,
    Alert,
    alert_groups,
    bin_rule_names,
    recording_groups,
)

RULE_FILES = ("../recording_rules.yml", "../alert_rules.yml")
TOLERANCE = 1e-9
_TEMPLATE = re.compile(r"\{\{ \$labels\.([a-zA-Z_][a-zA-Z0-9_]*) \}\}")


# --- exact reference computations (numpy) ---------------------------------------------


def psi(live: ArrayLike, reference: ArrayLike, floor: float = PSI_FLOOR) -> float:
    """PSI = sum (cur - ref) * ln(cur / ref), shares floored at ``floor``, no renormalising."""
    cur = np.maximum(np.asarray(live, float) / np.sum(live), floor)
    ref = np.maximum(np.asarray(reference, float), floor)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def js_distance(live: ArrayLike, reference: ArrayLike) -> float:
    """Jensen-Shannon distance in natural log (as ``scipy.spatial.distance.jensenshannon``)."""
    p = np.asarray(live, float) / np.sum(live)
    q = np.asarray(reference, float) / np.sum(reference)
    m = (p + q) / 2
    kl_p = np.sum(p[p > 0] * np.log(p[p > 0] / m[p > 0]))
    kl_q = np.sum(q[q > 0] * np.log(q[q > 0] / m[q > 0]))
    return float(np.sqrt(max(0.5 * kl_p + 0.5 * kl_q, 0.0)))


def _mixture_for_psi(target: float, bins: int) -> np.ndarray:
    """Live shares (uniform mixed with a point mass on bin 0) whose PSI vs uniform is ``target``."""
    uniform = np.full(bins, 1 / bins)
    point = np.eye(bins)[0]
    low, high = 0.0, 1.0
    if psi(point, uniform) < target:
        raise ConfigurationError(f"cannot build a test distribution with PSI {target}")
    for _ in range(100):
        mid = (low + high) / 2
        if psi((1 - mid) * uniform + mid * point, uniform) < target:
            low = mid
        else:
            high = mid
    return np.asarray((1 - high) * uniform + high * point)


# --- series helpers --------------------------------------------------------------------


def ramp(*segments: tuple[float, int]) -> str:
    """Expanding notation of a counter growing by ``per_step`` for ``steps`` steps per segment."""
    (first_rate, first_steps), *rest = segments
    parts = [f"0+{num(first_rate)}x{first_steps}"]
    value = first_rate * first_steps
    for rate, steps in rest:
        parts.append(f"{num(value + rate)}+{num(rate)}x{steps - 1}")
        value += rate * steps
    return " ".join(parts)


def constant(value: float, steps: int) -> str:
    return f"{num(value)}+0x{steps}"


@dataclass
class _Builder:
    """Collects input series for one test group, labelled like a real scrape."""

    cfg: MonitoringConfig
    base: dict[str, str]
    series: list[dict[str, str]] = field(default_factory=list)

    def add(self, name: str, values: str, **labels: str) -> None:
        merged = {**self.base, **labels}
        body = ",".join(f'{k}="{v}"' for k, v in sorted(merged.items()))
        self.series.append({"series": f"{name}{{{body}}}", "values": values})

    def metric(self, spec: names.MetricSpec, values: str, suffix: str = "", **labels: str) -> None:
        self.add(self.cfg.name(spec, suffix), values, **labels)


def _base_labels(cfg: MonitoringConfig) -> dict[str, str]:
    labels = {"instance": "127.0.0.1:8000", "job": "modelmon", "model": "m", "version": "1"}
    labels.update(dict.fromkeys(cfg.group_labels, "g"))
    for label, op, value in cfg.matchers:
        if op != "=":
            raise ConfigurationError(
                f"rule tests need equality matchers in the selector, got {label}{op}{value!r}"
            )
        labels[label] = value
    return labels


# --- expectations ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Expect:
    alert: str
    severity: str
    labels: Mapping[str, str]


def _annotations(cfg: MonitoringConfig, alert: Alert, labels: Mapping[str, str]) -> dict[str, str]:
    def fill(text: str) -> str:
        return _TEMPLATE.sub(lambda m: labels.get(m.group(1), ""), text)

    return {
        "description": fill(alert.description),
        "runbook_url": cfg.runbook_url(alert.alert),
        "summary": fill(alert.summary),
    }


class _Suite:
    """Builds the test groups of one file."""

    def __init__(self, cfg: MonitoringConfig, interval: str) -> None:
        self.cfg = cfg
        self.interval = interval
        self.step = duration_seconds(interval)
        self.groups: list[dict[str, Any]] = []
        self.alerts: dict[tuple[str, str], Alert] = {
            (a.alert, a.severity): a for _, alerts in alert_groups(cfg) for a in alerts
        }

    def builder(self) -> _Builder:
        return _Builder(self.cfg, _base_labels(self.cfg))

    def steps(self, duration: str | float) -> int:
        seconds = duration if isinstance(duration, float) else duration_seconds(duration)
        return math.ceil(seconds / self.step)

    def who(self, **extra: str) -> dict[str, str]:
        base = _base_labels(self.cfg)
        keep = ("model", "version", *self.cfg.group_labels)
        return {**{k: base[k] for k in keep}, **extra}

    def group(
        self,
        name: str,
        b: _Builder,
        alert: str,
        eval_time: str,
        expected: Iterable[tuple[str, Mapping[str, str]]] = (),
        exprs: Sequence[dict[str, Any]] = (),
        more: Sequence[tuple[str, Iterable[tuple[str, Mapping[str, str]]]]] = (),
    ) -> None:
        tests = []
        for at, exp in ((eval_time, expected), *more):
            exp_alerts = []
            for severity, labels in exp:
                full = {**labels, "severity": severity}
                rule = self.alerts[(alert, severity)]
                exp_alerts.append(
                    {
                        "exp_labels": dict(sorted(full.items())),
                        "exp_annotations": _annotations(self.cfg, rule, full),
                    }
                )
            tests.append({"eval_time": at, "alertname": alert, "exp_alerts": exp_alerts})
        doc: dict[str, Any] = {
            "name": f"{alert}: {name}",
            "interval": self.interval,
            "input_series": b.series,
            "alert_rule_test": tests,
        }
        if exprs:
            doc["promql_expr_test"] = list(exprs)
        self.groups.append(doc)

    def document(self, evaluation_interval: str) -> dict[str, Any]:
        # Recording groups first: with evaluation intervals above the 5m lookback an alert
        # evaluated before its recording rule would see nothing.
        order = [name for name, _ in recording_groups(self.cfg)]
        order += [name for name, _ in alert_groups(self.cfg)]
        return {
            "rule_files": list(RULE_FILES),
            "evaluation_interval": evaluation_interval,
            "group_eval_order": order,
            "tests": self.groups,
        }


def _close_to(expr: str, value: float, labels: Mapping[str, str], at: str) -> dict[str, Any]:
    body = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return {
        "expr": f"abs({expr} - {num(value)}) < bool {num(TOLERANCE)}",
        "eval_time": at,
        "exp_samples": [{"labels": f"{{{body}}}", "value": 1}],
    }


def _fmt(seconds: float) -> str:
    """Seconds as a promtool eval_time (whole minutes)."""
    return f"{math.ceil(seconds / 60)}m"


# --- SLO -------------------------------------------------------------------------------


def _slo_file(cfg: MonitoringConfig) -> dict[str, Any]:
    suite = _Suite(cfg, "1m")
    _error_budget(suite)
    _latency_budget(suite)
    return suite.document("1m")


def _burn_scenarios(budget: float) -> list[tuple[str, float, str, list[str]]]:
    """(name, bad-event ratio, duration, expected severities) for an SLO with ``budget``."""
    fast = min(20 * budget, (1 + 14.4 * budget) / 2)
    return [
        ("fires (page and ticket) on a fast burn", fast, "2h", ["page", "ticket"]),
        ("fires (ticket) on a slow burn", 2 * budget, "2h", ["ticket"]),
        ("healthy", 0.1 * budget, "2h", []),
    ]


def _error_budget(suite: _Suite) -> None:
    alert, per_step = "ModelmonErrorBudgetBurn", 600.0
    for name, ratio, duration, severities in _burn_scenarios(1 - suite.cfg.availability_slo):
        n = suite.steps(duration)
        b = suite.builder()
        b.metric(names.REQUESTS, ramp((per_step, n)))
        b.metric(names.REQUEST_ERRORS, ramp((per_step * ratio, n)), error_type="ValueError")
        suite.group(name, b, alert, duration, [(s, suite.who()) for s in severities])
    b = suite.builder()
    b.metric(names.REQUESTS, constant(0, suite.steps("2h")))
    suite.group("quiet", b, alert, "2h")


def _latency_series(b: _Builder, slo: float, per_step: float, slow: float, n: int) -> None:
    for bound in (*names.DURATION_BUCKETS, math.inf):
        inc = per_step * (1 - slow) if bound <= slo else per_step
        le = le_value(bound)
        b.metric(names.REQUEST_DURATION, ramp((inc, n)), "_bucket", le=le)
    b.metric(names.REQUEST_DURATION, ramp((per_step, n)), "_count")
    b.metric(names.REQUEST_DURATION, ramp((per_step * 0.01, n)), "_sum")


def _latency_budget(suite: _Suite) -> None:
    alert, cfg = "ModelmonLatencyBudgetBurn", suite.cfg
    for name, slow, duration, severities in _burn_scenarios(1 - cfg.latency_slo_target):
        b = suite.builder()
        _latency_series(b, cfg.latency_slo_seconds, 600.0, slow, suite.steps(duration))
        suite.group(name, b, alert, duration, [(s, suite.who()) for s in severities])
    b = suite.builder()
    _latency_series(b, cfg.latency_slo_seconds, 0.0, 0.0, suite.steps("2h"))
    suite.group("quiet", b, alert, "2h")


# --- drift -----------------------------------------------------------------------------


def _drift_file(cfg: MonitoringConfig) -> dict[str, Any]:
    suite = _Suite(cfg, "1m")
    _bin_drift(suite, names.FEATURE_BIN, names.FEATURE_REFERENCE_RATIO, "feature", "f1")
    _bin_drift(suite, names.PREDICTION_BIN, names.PREDICTION_REFERENCE_RATIO, "output", "y")
    _psi_js_exact(suite)
    _missing_values(suite)
    _missing_shift(suite)
    return suite.document("1m")


#: Reference rows of the drift test scenarios.
REFERENCE_ROWS = 10_000.0
#: 120 rows over 10 equally likely bins: PSI 0.14 (above the 0.1 floor) from sampling noise
#: alone; the two-sample chi-square (16.2, 9 df) is far from significant.
SMALL_STATIONARY_WINDOW = (20.0, 6.0, 16.0, 8.0, 17.0, 7.0, 9.0, 14.0, 11.0, 12.0)


def two_sample_chi2(live: ArrayLike, ref_shares: ArrayLike, ref_rows: float) -> float:
    """Pearson's chi-square of the 2 x k table (window counts, reference counts), numpy."""
    x = np.asarray(live, float)
    y = np.asarray(ref_shares, float) * ref_rows
    table = np.vstack([x, y])
    table = table[:, table.sum(axis=0) > 0]
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
    return float(np.sum((table - expected) ** 2 / expected))


def _bins(
    b: _Builder,
    counter: names.MetricSpec,
    reference: names.MetricSpec,
    key: str,
    column: str,
    live: Sequence[float] | None,
    ref: Sequence[float],
    n: int,
    segments: Sequence[tuple[Sequence[float], int]] = (),
) -> None:
    for i, share in enumerate(ref):
        b.metric(reference, constant(share, n), **{key: column, "bin": str(i)})
    rows = names.FEATURE_REFERENCE_ROWS if key == "feature" else names.PREDICTION_REFERENCE_ROWS
    b.metric(rows, constant(REFERENCE_ROWS, n), **{key: column})
    if live is not None:
        for i, count in enumerate(live):
            b.metric(counter, ramp((count, n)), **{key: column, "bin": str(i)})
    if segments:
        for i in range(len(ref)):
            parts = [(float(per_step[i]), steps) for per_step, steps in segments]
            b.metric(counter, ramp(*parts), **{key: column, "bin": str(i)})


def _bin_drift(
    suite: _Suite, counter: names.MetricSpec, reference: names.MetricSpec, key: str, column: str
) -> None:
    cfg = suite.cfg
    alert = "ModelmonFeatureDrift" if key == "feature" else "ModelmonPredictionDrift"
    uniform = np.full(10, 0.1)
    at = _fmt(duration_seconds(cfg.drift_for) + 1800)
    n = suite.steps(at)
    per_step = max(1000.0, float(cfg.drift_min_samples))
    who = suite.who(**{key: column})
    floor = cfg.drift_psi_floor
    cases = [
        ("fires (critical) on major drift", 2 * cfg.psi_critical, ["critical", "warning"]),
        (
            "fires (warning) on moderate drift",
            max((floor + cfg.psi_critical) / 2, floor * 1.5),
            ["warning"],
        ),
        ("healthy despite a significant shift below the PSI floor", floor / 2, []),
    ]
    for name, target, severities in cases:
        b = suite.builder()
        live = _mixture_for_psi(target, 10) * per_step
        _bins(b, counter, reference, key, column, list(live), list(uniform), n)
        suite.group(name, b, alert, at, [(s, who) for s in severities])
    if key == "feature":  # the prediction rules are the same template: test it once
        # 120 rows in the window: PSI above the floor from noise alone, the test is silent.
        window_steps = suite.steps(cfg.drift_window)
        small = [c / window_steps for c in SMALL_STATIONARY_WINDOW]
        b = suite.builder()
        _bins(b, counter, reference, key, column, small, list(uniform), n)
        suite.group("healthy on a small stationary window with PSI above the floor", b, alert, at)
        _no_flapping(suite, counter, reference, key, column, per_step)
    b = suite.builder()
    _bins(b, counter, reference, key, column, [0.0] * 10, list(uniform), n)
    suite.group("quiet", b, alert, at)


def _no_flapping(
    suite: _Suite,
    counter: names.MetricSpec,
    reference: names.MetricSpec,
    key: str,
    column: str,
    per_step: float,
) -> None:
    """A shift that comes and goes every 20 minutes after firing keeps the alert firing."""
    cfg = suite.cfg
    alert = "ModelmonFeatureDrift" if key == "feature" else "ModelmonPredictionDrift"
    uniform = np.full(10, 0.1)
    drifted = list(_mixture_for_psi(2 * cfg.psi_critical, 10) * per_step)
    clean = list(uniform * per_step)
    fire = suite.steps(cfg.drift_for) + suite.steps(cfg.drift_window)
    gap = suite.steps("20m")
    segments = [(drifted, fire), (clean, gap), (drifted, gap), (clean, gap), (drifted, gap)]
    total = sum(steps for _, steps in segments)
    b = suite.builder()
    _bins(b, counter, reference, key, column, None, list(uniform), total, segments)
    who = suite.who(**{key: column})
    both = [("critical", who), ("warning", who)]
    checks = [fire + gap - 1, fire + 2 * gap - 1, fire + 3 * gap - 1, fire + 4 * gap - 2]
    at = [_fmt(k * suite.step) for k in checks]
    suite.group(
        "fires and does not flap while a shift comes and goes (keep_firing_for)",
        b,
        alert,
        at[0],
        both,
        more=[(t, both) for t in at[1:]],
    )


def _missing_shift(suite: _Suite) -> None:
    """The missing share against the reference (28%): 70% fires, 28% and no traffic do not."""
    cfg = suite.cfg
    alert, per_step, ref_missing = "ModelmonFeatureMissingShift", 100.0, 0.28
    at_seconds = duration_seconds(cfg.drift_for) + duration_seconds(cfg.drift_window) + 600
    at = _fmt(at_seconds)
    n = suite.steps(at_seconds) + 1
    for name, share, traffic, fires in (
        ("fires when the missing share leaves the reference's", 0.7, per_step, True),
        ("healthy at the reference's missing share", ref_missing, per_step, False),
        ("quiet", 0.0, 0.0, False),
    ):
        b = suite.builder()
        b.metric(names.FEATURE_REFERENCE_MISSING_RATIO, constant(ref_missing, n), feature="f1")
        b.metric(
            names.FEATURE_REFERENCE_ROWS,
            constant(REFERENCE_ROWS * (1 - ref_missing), n),
            feature="f1",
        )
        b.metric(names.FEATURE_OBSERVATIONS, ramp((traffic, n)), feature="f1")
        b.metric(names.FEATURE_MISSING, ramp((traffic * share, n)), feature="f1")
        expected = [("warning", suite.who(feature="f1"))] if fires else []
        suite.group(name, b, alert, at, expected)


def _psi_js_exact(suite: _Suite) -> None:
    """PSI and JS from the recording rules equal numpy's, with floors, zero and absent bins."""
    cfg = suite.cfg
    ref = [0.3, 0.2, 0.15, 0.1, 0.1, 0.05, 0.05, 0.05, 0.0]
    live = [10.0, 5.0, 0.0, 80.0, 3.0, 2.0, 70.0, 30.0, 7.0]
    # Bin 2 never gets a series (zero-filled by the rule); bin 8 has no reference share.
    b = suite.builder()
    n = suite.steps("1h")
    for i, share in enumerate(ref):
        b.metric(names.FEATURE_REFERENCE_RATIO, constant(share, n), feature="f2", bin=str(i))
    b.metric(names.FEATURE_REFERENCE_ROWS, constant(REFERENCE_ROWS, n), feature="f2")
    for i, count in enumerate(live):
        if count:
            b.metric(names.FEATURE_BIN, ramp((count, n)), feature="f2", bin=str(i))
    rules = bin_rule_names(cfg, FEATURES)
    labels = suite.who(feature="f2")
    window = [c * suite.steps(cfg.drift_window) for c in live]
    exprs = [
        _close_to(rules["psi"], psi(live, ref), labels, "1h"),
        _close_to(rules["js"], js_distance(live, ref), labels, "1h"),
        _close_to(rules["chi2"], two_sample_chi2(window, ref, REFERENCE_ROWS), labels, "1h"),
    ]
    severities = ["warning"] + (["critical"] if psi(live, ref) > cfg.psi_critical else [])
    suite.group(
        "fires on major drift, PSI, JS and chi-square equal numpy",
        b,
        "ModelmonFeatureDrift",
        "1h",
        [(s, labels) for s in sorted(severities)],
        exprs,
    )


def _missing_values(suite: _Suite) -> None:
    alert, per_step = "ModelmonFeatureMissingValues", 100.0
    base, jump = suite.steps("2h"), suite.steps("45m")
    at = _fmt((base + jump) * suite.step)
    cases = [
        ("fires when values go missing", (per_step * 0.01, base), (per_step, jump), True),
        ("healthy", (per_step * 0.01, base), (per_step * 0.01, jump), False),
        ("quiet", (0.0, base), (0.0, jump), False),
    ]
    for name, before, after, fires in cases:
        b = suite.builder()
        seen = per_step if before[0] else 0.0
        b.metric(names.FEATURE_OBSERVATIONS, ramp((seen, base), (seen, jump)), feature="f1")
        b.metric(names.FEATURE_MISSING, ramp(before, after), feature="f1")
        expected = [("warning", suite.who(feature="f1"))] if fires else []
        suite.group(name, b, alert, at, expected)


# --- confidence ------------------------------------------------------------------------


def _confidence_file(cfg: MonitoringConfig) -> dict[str, Any]:
    suite = _Suite(cfg, "30m")
    alert = "ModelmonConfidenceCollapse"
    week, tail = suite.steps("1w"), suite.steps("2h")
    at = _fmt((week + tail) * suite.step)
    cases = [
        ("fires when confidence collapses", 0.95, 0.4, 60.0, True),
        ("healthy", 0.95, 0.95, 60.0, False),
        ("quiet", 0.95, 0.95, 0.0, False),
    ]
    for name, usual, collapsed, per_step, fires in cases:
        b = suite.builder()
        for bound in (*names.CONFIDENCE_BUCKETS, math.inf):
            le = le_value(bound)
            before = per_step if bound >= usual else 0.0
            after = per_step if bound >= collapsed else 0.0
            b.metric(names.CONFIDENCE, ramp((before, week), (after, tail)), "_bucket", le=le)
        b.metric(names.CONFIDENCE, ramp((per_step, week), (per_step, tail)), "_count")
        b.metric(names.CONFIDENCE, ramp((per_step * 0.9, week), (per_step * 0.3, tail)), "_sum")
        suite.group(name, b, alert, at, [("warning", suite.who())] if fires else [])
    return suite.document("30m")


# --- performance -----------------------------------------------------------------------


def _performance_file(cfg: MonitoringConfig) -> dict[str, Any]:
    suite = _Suite(cfg, "5m")
    _accuracy(suite)
    _rmse(suite)
    return suite.document("5m")


def _outcomes(b: _Builder, per_step: float, acc: float, n: int, tail: str = "") -> None:
    half = per_step / 2
    for actual, predicted, share in (
        ("a", "a", acc),
        ("b", "b", acc),
        ("a", "b", 1 - acc),
        ("b", "a", 1 - acc),
    ):
        # "0+rxn" holds n + 1 samples (steps 0..n): a tail takes the place of the last.
        series = ramp((half * share, n - 1)) + tail if tail else ramp((half * share, n))
        b.metric(names.OUTCOMES, series, actual=actual, predicted=predicted)


def _accuracy(suite: _Suite) -> None:
    cfg, alert = suite.cfg, "ModelmonAccuracyBelowTarget"
    at = _fmt(duration_seconds(cfg.performance_window) + duration_seconds(cfg.performance_for))
    at = _fmt(duration_seconds(at) + 1800)
    n = suite.steps(at)
    per_step = float(max(100, cfg.min_outcomes))
    few = cfg.min_outcomes / 4 * suite.step / duration_seconds(cfg.performance_window)
    healthy = (1 + cfg.accuracy_target) / 2
    # A failed scrape marks every series of the target stale: the latest sample is a
    # staleness marker while the window still holds the counts (" stale" at step n).
    cases = [
        ("fires when accuracy falls below target", per_step, cfg.accuracy_target / 2, "", True),
        ("fires when every prediction is wrong", per_step, 0.0, "", True),
        ("healthy", per_step, healthy, "", False),
        ("healthy right after a failed scrape", per_step, healthy, " stale", False),
        ("healthy with too few outcomes to judge", few, 0.0, "", False),
        ("quiet", 0.0, 0.0, "", False),
    ]
    for name, rate, acc, tail, fires in cases:
        b = suite.builder()
        _outcomes(b, rate, acc, n, tail)
        exprs = []
        if rate and (name.startswith("fires") or tail):
            exprs.append(
                _close_to(cfg.rule("accuracy", cfg.performance_window), acc, suite.who(), at)
            )
        suite.group(name, b, alert, at, [("critical", suite.who())] if fires else [], exprs)


def _regression(b: _Builder, per_step: float, segments: Sequence[tuple[float, int]]) -> None:
    count = [(per_step, steps) for _, steps in segments]
    squared = [(per_step * rmse**2, steps) for rmse, steps in segments]
    absolute = [(per_step * rmse, steps) for rmse, steps in segments]
    for spec in (names.REGRESSION_SQUARED_ERROR, names.REGRESSION_ABSOLUTE_ERROR):
        b.metric(spec, ramp(*count), "_count")
    b.metric(names.REGRESSION_SQUARED_ERROR, ramp(*squared), "_sum")
    b.metric(names.REGRESSION_ABSOLUTE_ERROR, ramp(*absolute), "_sum")
    b.metric(names.REGRESSION_OUTCOMES, ramp(*count))


def _rmse(suite: _Suite) -> None:
    cfg, alert = suite.cfg, "ModelmonRMSEAboveTarget"
    base, tail = suite.steps("1d"), suite.steps("2h")
    at = _fmt((base + tail) * suite.step)
    per_step = float(max(100, cfg.min_outcomes))
    if cfg.rmse_target is None:
        usual, bad = 1.0, 2 * cfg.rmse_degradation_factor
    else:
        usual, bad = cfg.rmse_target / 2, cfg.rmse_target * 2
    cases = [
        ("fires when RMSE rises", per_step, usual, bad, True),
        ("healthy", per_step, usual, usual, False),
        ("quiet", 0.0, usual, usual, False),
    ]
    for name, rate, before, after, fires in cases:
        b = suite.builder()
        _regression(b, rate, [(before, base), (after, tail)])
        suite.group(name, b, alert, at, [("critical", suite.who())] if fires else [])


# --- availability and SDK health -------------------------------------------------------


def _availability_file(cfg: MonitoringConfig) -> dict[str, Any]:
    suite = _Suite(cfg, "1m")
    _no_predictions(suite)
    _target_down(suite)
    _heartbeat_lost(suite)
    _metrics_absent(suite)
    _concept_drift(suite)
    _sdk(suite, "ModelmonInternalErrors", names.INTERNAL_ERRORS, names.STAGE, "fold")
    _sdk(suite, "ModelmonDroppedObservations", names.DROPPED, names.REASON, "buffer_full")
    return suite.document("1m")


def _no_predictions(suite: _Suite) -> None:
    alert = "ModelmonNoPredictions"
    at = _fmt(duration_seconds(suite.cfg.no_predictions_for) + 900)
    n = suite.steps(at)
    beating = f"0+{num(suite.step)}x{n}"  # a heartbeat at every step: the source is alive
    cases = [
        ("fires when predictions stop while the source is alive", constant(60, n), beating, True),
        ("healthy", beating, beating, False),
        ("silent when the source is gone", constant(60, n), "0+60x5", False),
        ("quiet", constant(0, n), beating, False),
    ]
    for name, last, heartbeat, fires in cases:
        b = suite.builder()
        b.metric(names.LAST_PREDICTION, last)
        b.metric(names.HEARTBEAT, heartbeat)
        suite.group(name, b, alert, at, [("critical", suite.who())] if fires else [])


def _heartbeat_lost(suite: _Suite) -> None:
    """Scraped and pushed sources alike: a model whose every source stopped."""
    alert = "ModelmonHeartbeatLost"
    step = num(suite.step)
    beat_20m = f"0+{step}x20"
    cases: list[tuple[str, list[tuple[str, dict[str, str]]], bool]] = [
        ("fires when a scraped target disappears", [(beat_20m + " stale", {})], True),
        ("fires when a pushed source stops", [(beat_20m, {})], True),
        (
            "fires when a Collector re-exposes the last push of a stopped source",
            [(f"{beat_20m} {num(20 * suite.step)}+0x25", {})],
            True,
        ),
        ("healthy", [(f"0+{step}x45", {})], False),
        ("quiet", [(f"0+{step}x45", {})], False),
        (
            "silent across a rollout to a new version",
            [(beat_20m, {}), (f"_x15 {num(15 * suite.step)}+{step}x30", {"version": "2"})],
            False,
        ),
        (
            "silent when a restarted process pushes under a new instance id",
            [(beat_20m, {}), (f"_x20 {num(20 * suite.step)}+{step}x25", {"instance": "new-id"})],
            False,
        ),
    ]
    base = _base_labels(suite.cfg)
    labels = {"job": base["job"], "model": base["model"]}
    labels.update({k: base[k] for k in suite.cfg.group_labels})
    for name, series, fires in cases:
        b = suite.builder()
        for values, extra in series:
            b.metric(names.HEARTBEAT, values, **extra)
        if name == "quiet":  # alive without traffic
            b.metric(names.REQUESTS, constant(0, 45))
        suite.group(name, b, alert, "35m", [("critical", labels)] if fires else [])


def _model_info(b: _Builder, values: str) -> None:
    b.metric(names.MODEL_INFO, values, task="classification", sdk_version="0", reference="r")


def _target_down(suite: _Suite) -> None:
    alert = "ModelmonTargetDown"
    cases = [
        ("fires when the target stops answering", "1+0x10 _x30", "1+0x10 0+0x29", True),
        ("healthy", constant(1, 40), constant(1, 40), False),
        ("quiet", constant(1, 40), constant(1, 40), False),
    ]
    base = _base_labels(suite.cfg)
    for name, info, up, fires in cases:
        b = suite.builder()
        _model_info(b, info)
        b.add("up", up)
        if name == "quiet":
            b.metric(names.REQUESTS, constant(0, 40))
        labels = suite.who(instance=base["instance"], job=base["job"])
        suite.group(name, b, alert, "35m", [("critical", labels)] if fires else [])


def _metrics_absent(suite: _Suite) -> None:
    alert = "ModelmonMetricsAbsent"
    absent_labels = {k: v for k, op, v in suite.cfg.matchers if op == "="}
    for name, info, fires in (
        ("fires when no modelmon series is scraped", None, True),
        ("healthy", constant(1, 30), False),
        ("quiet", constant(1, 30), False),
    ):
        b = suite.builder()
        b.add("up", constant(1, 30))
        if info is not None:
            _model_info(b, info)
        if name == "quiet":
            b.metric(names.REQUESTS, constant(0, 30))
        suite.group(name, b, alert, "20m", [("critical", absent_labels)] if fires else [])


def _concept_drift(suite: _Suite) -> None:
    alert, detector = "ModelmonConceptDrift", "adwin"
    cases = [
        ("fires on a detection", "0+0x30 1+0x30", constant(0, 60), 10.0, True),
        (
            "fires while the detector is in drift state",
            constant(0, 60),
            "0+0x30 1+0x30",
            10.0,
            True,
        ),
        ("healthy", constant(0, 60), constant(0, 60), 10.0, False),
        ("quiet", constant(0, 60), constant(0, 60), 0.0, False),
    ]
    for name, detected, state, per_step, fires in cases:
        b = suite.builder()
        b.metric(names.CONCEPT_DRIFT_DETECTED, detected, detector=detector)
        b.metric(names.CONCEPT_DRIFT, state, detector=detector)
        _outcomes(b, per_step, 0.9, 60)
        labels = suite.who(detector=detector)
        suite.group(name, b, alert, "40m", [("warning", labels)] if fires else [])


def _sdk(suite: _Suite, alert: str, spec: names.MetricSpec, key: str, value: str) -> None:
    cases = [
        ("fires while the count rises", 1.0, 10.0, True),
        ("healthy", 0.0, 10.0, False),
        ("quiet", 0.0, 0.0, False),
    ]
    for name, per_step, traffic, fires in cases:
        b = suite.builder()
        b.metric(spec, ramp((per_step, 30)), **{key: value})
        b.metric(names.REQUESTS, ramp((traffic, 30)))
        labels = suite.who(**{key: value})
        suite.group(name, b, alert, "20m", [("warning", labels)] if fires else [])


# --- staleness -------------------------------------------------------------------------


def _staleness_file(cfg: MonitoringConfig) -> dict[str, Any]:
    suite = _Suite(cfg, "1d")
    alert, day = "ModelmonModelStale", 86400.0
    at_seconds = math.ceil(cfg.staleness_days + 2) * day
    n = suite.steps(at_seconds)
    at = f"{int(at_seconds // day)}d"
    young = at_seconds - day
    for name, trained, traffic, fires in (
        ("fires when the model is older than the limit", 1.0, 10.0, True),
        ("healthy", young, 10.0, False),
        ("quiet", young, 0.0, False),
    ):
        b = suite.builder()
        b.metric(names.MODEL_TRAINED, constant(trained, n))
        b.metric(names.PREDICTIONS, ramp((traffic, n)))
        suite.group(name, b, alert, at, [("ticket", suite.who())] if fires else [])
    return suite.document("1d")


# --- public ----------------------------------------------------------------------------


def render_rule_tests(config: MonitoringConfig) -> dict[str, dict[str, Any]]:
    """promtool test files by file name (``slo.yml``, ...), to live in ``prometheus/tests/``.

    Raises :class:`~modelmon.errors.ConfigurationError` when the selector has matchers
    other than ``=`` (the tests need concrete label values).
    """
    from modelmon.monitoring.outlier_rule_tests import outliers_file  # built on this module

    from .segment_rule_tests import segments_file  # it builds on this module

    return {
        "availability.yml": _availability_file(config),
        "confidence.yml": _confidence_file(config),
        "drift.yml": _drift_file(config),
        "outliers.yml": outliers_file(config),
        "performance.yml": _performance_file(config),
        "segments.yml": segments_file(config),
        "slo.yml": _slo_file(config),
        "staleness.yml": _staleness_file(config),
    }
