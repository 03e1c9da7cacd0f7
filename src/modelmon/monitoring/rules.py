"""Prometheus recording and alert rules, generated from the metric catalogue.

Recording rules are fleet-wide: they aggregate away ``instance``/``job``/``pod`` and keep
``model``, ``version`` (plus ``feature``/``output``/``bin`` where they matter and the
config's ``group_labels``). Names follow ``<namespace>:<what>:<window>``.

>>> doc = render_recording_rules(MonitoringConfig())
>>> "modelmon:feature_psi:30m" in [r["record"] for g in doc["groups"] for r in g["rules"]]
True
"""

# Long module: one renderer of the Prometheus rule groups, one function per alert
# family, all read from the same catalogue; split by family it would scatter the
# shared thresholds and selectors.

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from modelmon import names
from modelmon.monitoring.config import MonitoringConfig, duration_seconds, num

Severity = Literal["page", "critical", "warning", "ticket"]

#: Windows of the multi-window multi-burn-rate SLO alerts (SRE workbook, chapter 5).
SLO_WINDOWS: tuple[str, ...] = ("5m", "30m", "1h", "6h", "3d")
#: (burn rate, long window, short window) pairs that page, and the one that files a ticket.
PAGE_BURNS: tuple[tuple[float, str, str], ...] = ((14.4, "1h", "5m"), (6.0, "6h", "30m"))
TICKET_BURNS: tuple[tuple[float, str, str], ...] = ((1.0, "3d", "6h"),)
RATE_WINDOW = "5m"
#: Shares below this floor count as the floor in PSI (no renormalisation), as in-process.
PSI_FLOOR = 1e-4
MISSING_BASELINE_WINDOW = "1d"
RMSE_BASELINE_WINDOW = "1w"
CONFIDENCE_BASELINE_OFFSET = "1w"


@dataclass(frozen=True)
class Recording:
    """One recording rule."""

    record: str
    expr: str

    def as_dict(self) -> dict[str, Any]:
        return {"record": self.record, "expr": self.expr}


@dataclass(frozen=True)
class Alert:
    """One alerting rule; annotations use only ``$labels`` so promtool tests pin them."""

    alert: str
    expr: str
    severity: Severity
    for_: str
    summary: str
    description: str
    keep_firing_for: str = "0s"

    def as_dict(self, config: MonitoringConfig) -> dict[str, Any]:
        rule: dict[str, Any] = {"alert": self.alert, "expr": self.expr}
        if self.for_ != "0s":
            rule["for"] = self.for_
        if self.keep_firing_for != "0s":
            rule["keep_firing_for"] = self.keep_firing_for
        rule["labels"] = {"severity": self.severity}
        rule["annotations"] = {
            "description": self.description,
            "runbook_url": config.runbook_url(self.alert),
            "summary": self.summary,
        }
        return rule


# --- expression builders (shared with the dashboard) -----------------------------------


def _lines(*parts: str) -> str:
    return "\n".join(parts)


def _indent(expr: str, by: int = 2) -> str:
    return "\n".join(" " * by + line for line in expr.split("\n"))


def sum_rate(
    cfg: MonitoringConfig,
    spec: names.MetricSpec,
    window: str,
    *keep: str,
    suffix: str = "",
    fn: str = "rate",
    **labels: str,
) -> str:
    """``sum by (model, version, *keep) (fn(series[window]))``."""
    return f"sum by ({cfg.by(*keep)}) ({fn}({cfg.series(spec, suffix, **labels)}[{window}]))"


def error_ratio(cfg: MonitoringConfig, window: str, **labels: str) -> str:
    """Failed calls / calls; 0 (not absent) when nothing failed, absent without traffic."""
    errors = sum_rate(cfg, names.REQUEST_ERRORS, window, **labels)
    calls = sum_rate(cfg, names.REQUESTS, window, **labels)
    return _lines("(", f"  {errors}", "  or", f"  0 * {calls}", ")", "/", f"({calls} > 0)")


def slow_ratio(cfg: MonitoringConfig, window: str, **labels: str) -> str:
    """Share of calls slower than the latency SLO (count minus the SLO bucket)."""
    fast = sum_rate(
        cfg, names.REQUEST_DURATION, window, suffix="_bucket", le=cfg.le_latency_slo, **labels
    )
    calls = sum_rate(cfg, names.REQUEST_DURATION, window, suffix="_count", **labels)
    return _lines("1 - (", f"  {fast}", "  /", f"  ({calls} > 0)", ")")


def histogram_quantile(
    cfg: MonitoringConfig, q: float, spec: names.MetricSpec, window: str, **labels: str
) -> str:
    """``histogram_quantile(q, ...)`` over the fleet (buckets summed across instances)."""
    inner = sum_rate(cfg, spec, window, "le", suffix="_bucket", **labels)
    return f"histogram_quantile({num(q)}, {inner})"


def share_below(
    cfg: MonitoringConfig, spec: names.MetricSpec, le: str, window: str, **labels: str
) -> str:
    """Share of observations of histogram ``spec`` at or below bucket ``le``."""
    below = sum_rate(cfg, spec, window, suffix="_bucket", le=le, **labels)
    total = sum_rate(cfg, spec, window, suffix="_count", **labels)
    return f"{below}\n/\n({total} > 0)"


@dataclass(frozen=True)
class _BinFamily:
    """Feature bins or prediction bins: what differs between the two drift rule sets."""

    what: str  # "feature" or "prediction"
    key: str  # the label naming the column: "feature" or "output"
    counter: names.MetricSpec
    reference: names.MetricSpec
    drift: names.MetricSpec
    rows: names.MetricSpec


FEATURES = _BinFamily(
    "feature",
    names.FEATURE,
    names.FEATURE_BIN,
    names.FEATURE_REFERENCE_RATIO,
    names.FEATURE_DRIFT,
    names.FEATURE_REFERENCE_ROWS,
)
PREDICTIONS = _BinFamily(
    "prediction",
    names.OUTPUT,
    names.PREDICTION_BIN,
    names.PREDICTION_REFERENCE_RATIO,
    names.PREDICTION_DRIFT,
    names.PREDICTION_REFERENCE_ROWS,
)

# Abramowitz & Stegun 26.2.23 (as modelmon.drift_decision.z_upper): the normal upper quantile.
_AS_C = (2.515517, 0.802853, 0.010328)
_AS_D = (1.432788, 0.189269, 0.001308)


def z_upper_promql(t: str) -> str:
    """The A&S 26.2.23 normal quantile from ``t = sqrt(-2 ln p)`` (a PromQL expression)."""
    c0, c1, c2 = (num(x) for x in _AS_C)
    d1, d2, d3 = (num(x) for x in _AS_D)
    return (
        f"{t} - ({c0} + {c1} * {t} + {c2} * {t} ^ 2)"
        f" / (1 + {d1} * {t} + {d2} * {t} ^ 2 + {d3} * {t} ^ 3)"
    )


def bin_rule_names(cfg: MonitoringConfig, fam: _BinFamily) -> dict[str, str]:
    """The recording rule names of one bin family (increase, reference, share, psi, js)."""
    w = cfg.drift_window
    return {
        "increase": cfg.rule(f"{fam.what}_bin_increase", w),
        "reference": cfg.rule(f"{fam.what}_reference_ratio", "max"),
        "share": cfg.rule(f"{fam.what}_bin_share", w),
        "psi": cfg.rule(f"{fam.what}_psi", w),
        "js": cfg.rule(f"{fam.what}_js", w),
        "reference_rows": cfg.rule(f"{fam.what}_reference_rows", "max"),
        "rows": cfg.rule(f"{fam.what}_window_rows", w),
        "pooled": cfg.rule(f"{fam.what}_bin_pooled_share", w),
        "chi2": cfg.rule(f"{fam.what}_chi2", w),
        "df": cfg.rule(f"{fam.what}_chi2_df", w),
        "z": cfg.rule(f"{fam.what}_chi2_z", w),
        "tail": cfg.rule(f"{fam.what}_drift_tail", "max"),
        "z_critical": cfg.rule(f"{fam.what}_drift_z_critical", "max"),
        "detected": cfg.rule(f"{fam.what}_drift_detected", w),
    }


def _bin_rules(cfg: MonitoringConfig, fam: _BinFamily) -> list[Recording]:
    n = bin_rule_names(cfg, fam)
    k = fam.key
    total = f"(sum by ({cfg.by(k)}) ({n['increase']}) >= {cfg.drift_min_samples})"
    share = _lines(
        "(",
        f"  {n['increase']}",
        "  / ignoring (bin) group_left ()",
        f"  {total}",
        ")",
        "or",
        "(",
        f"  0 * {n['reference']}",
        "  and ignoring (bin)",
        f"  {total}",
        ")",
    )
    floor = num(PSI_FLOOR)
    cur, ref = f"clamp_min({n['share']}, {floor})", f"clamp_min({n['reference']}, {floor})"
    psi = _lines(
        f"sum by ({cfg.by(k)}) (", f"  ({cur} - {ref})", "  *", f"  ln({cur} / {ref})", ")"
    )
    mid = f"(({n['share']} + {n['reference']}) / 2)"
    p, q = f"({n['share']} > 0)", f"({n['reference']} > 0)"
    js = _lines(
        "sqrt(clamp_min(",
        f"  0.5 * sum by ({cfg.by(k)}) ({p} * ln({p} / {mid}))",
        "  +",
        f"  0.5 * sum by ({cfg.by(k)}) ({q} * ln({q} / {mid})),",
        "  0",
        "))",
    )
    return [
        Recording(
            n["increase"],
            sum_rate(cfg, fam.counter, cfg.drift_window, k, "bin", fn="increase"),
        ),
        Recording(n["reference"], f"max by ({cfg.by(k, 'bin')}) ({cfg.series(fam.reference)})"),
        Recording(n["share"], share),
        Recording(n["psi"], psi),
        Recording(n["js"], js),
        *_decision_rules(cfg, fam),
    ]


def _decision_rules(cfg: MonitoringConfig, fam: _BinFamily) -> list[Recording]:
    """The drift decision of :mod:`modelmon.drift_decision`, fleet-wide.

    Two-sample chi-square ``n_eff * sum (c - r)^2 / p`` over the exported bins (``p`` the
    pooled share), its Wilson-Hilferty normal score, and the Bonferroni critical score
    ``z(alpha / m)`` with ``m`` the members of the model (count of reference-rows series).
    """
    n = bin_rule_names(cfg, fam)
    k = fam.key
    g = "ignoring (bin) group_left ()"
    rows, ref_rows = n["rows"], n["reference_rows"]
    pooled = _lines(
        "(",
        f"  {n['share']} * {g} {rows}",
        "  +",
        f"  {n['reference']} * {g} {ref_rows}",
        ")",
        f"/ {g}",
        f"({rows} + {ref_rows})",
    )
    chi2 = _lines(
        f"sum by ({cfg.by(k)}) (",
        f"  ({n['share']} - {n['reference']}) ^ 2 / ({n['pooled']} > 0)",
        ")",
        f"* ({rows} * {ref_rows} / ({rows} + {ref_rows}))",
    )
    df = f"count by ({cfg.by(k)}) ({n['pooled']} > 0) - 1"
    a = f"(2 / (9 * {n['df']}))"
    z = _lines(
        "(",
        f"  ({n['chi2']} / ({n['df']} > 0)) ^ (1 / 3)",
        f"  - (1 - {a})",
        ")",
        f"/ sqrt{a}",
    )
    members = f"count by ({cfg.by()}) ({ref_rows})"
    tail = f"sqrt(2 * ln({members}) + {num(-2 * math.log(cfg.drift_alpha))})"
    flagged = _lines(
        "(",
        f"  {n['z']} > ignoring ({k}) group_left () {n['z_critical']}",
        "  and",
        f"  {n['psi']} >= {num(cfg.drift_psi_floor)}",
        ")",
    )
    detected = _lines(f"{flagged} * 0 + 1", "or", f"{n['z']} * 0")
    return [
        Recording(ref_rows, f"max by ({cfg.by(k)}) ({cfg.series(fam.rows)})"),
        Recording(
            rows,
            f"sum by ({cfg.by(k)}) ({n['increase']}) >= {cfg.drift_min_samples}",
        ),
        Recording(n["pooled"], pooled),
        Recording(n["chi2"], chi2),
        Recording(n["df"], df),
        Recording(n["z"], z),
        Recording(n["tail"], tail),
        Recording(n["z_critical"], z_upper_promql(n["tail"])),
        Recording(n["detected"], detected),
    ]


def missing_rule_names(cfg: MonitoringConfig) -> dict[str, str]:
    """The recording rule names of the missing-share decision."""
    w = cfg.drift_window
    return {
        "ratio": cfg.rule("feature_missing_ratio", w),
        "reference": cfg.rule("feature_reference_missing_ratio", "max"),
        "seen": cfg.rule("feature_values_seen", w),
        "reference_total": cfg.rule("feature_reference_values", "max"),
        "z": cfg.rule("feature_missing_z", w),
        "tail": cfg.rule("feature_missing_tail", "max"),
        "z_critical": cfg.rule("feature_missing_z_critical", "max"),
        "detected": cfg.rule("feature_missing_drift_detected", w),
    }


def _missing_decision_rules(cfg: MonitoringConfig) -> list[Recording]:
    """Two-proportion z-test of the window's missing share against the reference's."""
    n = missing_rule_names(cfg)
    k = names.FEATURE
    w = cfg.drift_window
    ref_rows = bin_rule_names(cfg, FEATURES)["reference_rows"]
    seen = sum_rate(cfg, names.FEATURE_OBSERVATIONS, w, k, fn="increase")
    r, q, s, t = n["ratio"], n["reference"], n["seen"], n["reference_total"]
    pooled = f"(({r} * {s} + {q} * {t}) / ({s} + {t}))"
    z = _lines(
        f"clamp_min(abs({r} - {q}) - 0.5 / {s}, 0)",
        "/",
        f"sqrt({pooled} * (1 - {pooled}) * (1 / {s} + 1 / {t}))",
    )
    members = f"count by ({cfg.by()}) ({q})"
    tail = f"sqrt(2 * ln({members}) + {num(-2 * math.log(cfg.drift_alpha / 2))})"
    flagged = _lines(
        "(",
        f"  {n['z']} > ignoring ({k}) group_left () {n['z_critical']}",
        "  and",
        f"  abs({r} - {q}) >= {num(cfg.missing_drift_floor)}",
        ")",
    )
    return [
        Recording(q, f"max by ({cfg.by(k)}) ({cfg.series(names.FEATURE_REFERENCE_MISSING_RATIO)})"),
        Recording(s, f"{seen} >= {cfg.drift_min_samples}"),
        Recording(t, f"{ref_rows} / (1 - ({q} < 1))"),
        Recording(n["z"], z),
        Recording(n["tail"], tail),
        Recording(n["z_critical"], z_upper_promql(n["tail"])),
        Recording(n["detected"], _lines(f"{flagged} * 0 + 1", "or", f"{n['z']} * 0")),
    ]


def missing_ratio(cfg: MonitoringConfig, window: str, **labels: str) -> str:
    """Missing values / values seen, per feature (0 when none were missing)."""
    k = names.FEATURE
    missing = sum_rate(cfg, names.FEATURE_MISSING, window, k, fn="increase", **labels)
    seen = sum_rate(cfg, names.FEATURE_OBSERVATIONS, window, k, fn="increase", **labels)
    return _lines("(", f"  {missing}", "  or", f"  0 * {seen}", ")", "/", f"({seen} > 0)")


def accuracy(cfg: MonitoringConfig, window: str) -> str:
    """Correct / labelled outcomes from the confusion counters.

    PromQL cannot compare two labels of one series, so the diagonal (actual == predicted)
    is selected with ``and`` against a copy of each actual class whose ``predicted`` label
    is set to the same value by ``label_replace``. The classes come from the same range
    selection as the counts: an instant selector would return nothing right after a
    failed scrape (Prometheus marks the target's series stale) while the range still
    counts outcomes, and the empty diagonal would read as accuracy 0.
    """
    a, p = names.ACTUAL, names.PREDICTED
    cells = sum_rate(cfg, names.OUTCOMES, window, a, p, fn="increase")
    diagonal = f'label_replace(group by ({cfg.by(a)}) ({cells}), "{p}", "$1", "{a}", "(.+)")'
    labelled = cfg.rule("labelled_outcomes", window)
    return _lines(
        "(",
        f"  sum by ({cfg.by()}) (",
        f"    {cells}",
        "    and",
        f"    {diagonal}",
        "  )",
        "  or",
        f"  0 * {labelled}",
        ")",
        "/",
        f"({labelled} > 0)",
    )


def _error_root(cfg: MonitoringConfig, spec: names.MetricSpec, window: str, sqrt: bool) -> str:
    total = sum_rate(cfg, spec, window, suffix="_sum", fn="increase")
    count = sum_rate(cfg, spec, window, suffix="_count", fn="increase")
    ratio = f"{total}\n/\n({count} > 0)"
    return f"sqrt(\n{_indent(ratio)}\n)" if sqrt else ratio


def _age(cfg: MonitoringConfig, spec: names.MetricSpec, agg: str) -> str:
    return f"time() - {agg} by ({cfg.by()}) ({cfg.series(spec)} > 0)"


# --- recording rules -------------------------------------------------------------------


def recording_groups(cfg: MonitoringConfig) -> list[tuple[str, list[Recording]]]:
    """All recording rules, in evaluation order (later rules read earlier ones)."""
    from modelmon.monitoring.outlier_rules import outlier_recording_rules  # built on this module

    from .segments import segment_recordings  # it builds on this module

    ns = cfg.namespace
    return [
        (f"{ns}.traffic", _traffic_rules(cfg)),
        (f"{ns}.drift", _bin_rules(cfg, FEATURES) + _bin_rules(cfg, PREDICTIONS) + _missing(cfg)),
        (f"{ns}.outliers", outlier_recording_rules(cfg)),
        (f"{ns}.performance", _performance_rules(cfg)),
        (f"{ns}.segments", segment_recordings(cfg)),
        (f"{ns}.staleness", _staleness_rules(cfg)),
    ]


def _traffic_rules(cfg: MonitoringConfig) -> list[Recording]:
    w = RATE_WINDOW
    rules = [
        Recording(cfg.rule("request_rate", w), sum_rate(cfg, names.REQUESTS, w)),
        Recording(cfg.rule("prediction_rate", w), sum_rate(cfg, names.PREDICTIONS, w)),
    ]
    for label, q in (("50", 0.5), ("90", 0.9), ("99", 0.99)):
        name = cfg.rule(f"latency_p{label}_seconds", w)
        rules.append(Recording(name, histogram_quantile(cfg, q, names.REQUEST_DURATION, w)))
    rules += [Recording(cfg.rule("error_ratio", x), error_ratio(cfg, x)) for x in SLO_WINDOWS]
    rules += [Recording(cfg.rule("request_slow_ratio", x), slow_ratio(cfg, x)) for x in SLO_WINDOWS]
    cw = cfg.confidence_window
    rules.append(
        Recording(
            cfg.rule("confidence_p50", cw), histogram_quantile(cfg, 0.5, names.CONFIDENCE, cw)
        )
    )
    return rules


def _missing(cfg: MonitoringConfig) -> list[Recording]:
    windows = dict.fromkeys((cfg.drift_window, MISSING_BASELINE_WINDOW))
    ratios = [
        Recording(cfg.rule("feature_missing_ratio", w), missing_ratio(cfg, w)) for w in windows
    ]
    return ratios + _missing_decision_rules(cfg)


def _performance_rules(cfg: MonitoringConfig) -> list[Recording]:
    w = cfg.performance_window
    sq, ab = names.REGRESSION_SQUARED_ERROR, names.REGRESSION_ABSOLUTE_ERROR
    rules = [
        Recording(
            cfg.rule("labelled_outcomes", w),
            sum_rate(cfg, names.OUTCOMES, w, fn="increase"),
        ),
        Recording(cfg.rule("accuracy", w), accuracy(cfg, w)),
        Recording(
            cfg.rule("labelled_regression_outcomes", w),
            sum_rate(cfg, sq, w, suffix="_count", fn="increase"),
        ),
        Recording(cfg.rule("rmse", w), _error_root(cfg, sq, w, sqrt=True)),
        Recording(cfg.rule("mae", w), _error_root(cfg, ab, w, sqrt=False)),
    ]
    if cfg.rmse_target is None:
        base = RMSE_BASELINE_WINDOW
        rules.append(Recording(cfg.rule("rmse", base), _error_root(cfg, sq, base, sqrt=True)))
    return rules


def _staleness_rules(cfg: MonitoringConfig) -> list[Recording]:
    return [
        Recording(cfg.rule("model_age_seconds", "max"), _age(cfg, names.MODEL_TRAINED, "min")),
        Recording(
            cfg.rule("reference_age_seconds", "max"), _age(cfg, names.REFERENCE_CREATED, "min")
        ),
        Recording(
            cfg.rule("seconds_since_last_prediction", "min"),
            _age(cfg, names.LAST_PREDICTION, "max"),
        ),
    ]


# --- alert rules -----------------------------------------------------------------------

_WHO = "{{ $labels.model }} {{ $labels.version }}"


def alert_groups(cfg: MonitoringConfig) -> list[tuple[str, list[Alert]]]:
    """All alerting rules, grouped by concern."""
    from modelmon.monitoring.outlier_rules import outlier_alerts  # built on this module

    from .segments import segment_alerts  # it builds on this module

    ns = cfg.namespace
    return [
        (f"{ns}.alerts.slo", _slo_alerts(cfg)),
        (f"{ns}.alerts.drift", _drift_alerts(cfg)),
        (f"{ns}.alerts.outliers", outlier_alerts(cfg)),
        (f"{ns}.alerts.performance", _performance_alerts(cfg)),
        (f"{ns}.alerts.segments", segment_alerts(cfg)),
        (f"{ns}.alerts.availability", _availability_alerts(cfg)),
        (f"{ns}.alerts.sdk", _sdk_alerts(cfg)),
    ]


def _burn(cfg: MonitoringConfig, what: str, slo: float, burns: tuple[Any, ...]) -> str:
    legs = []
    for factor, long, short in burns:
        limit = f"({num(factor)} * (1 - {num(slo)}))"
        legs.append(
            _lines(
                "(",
                f"  {cfg.rule(what, long)} > {limit}",
                "  and",
                f"  {cfg.rule(what, short)} > {limit}",
                ")",
            )
        )
    return "\nor\n".join(legs)


def _slo_alerts(cfg: MonitoringConfig) -> list[Alert]:
    avail, lat = num(cfg.availability_slo * 100), num(cfg.latency_slo_target * 100)
    slow = f"slower than {num(cfg.latency_slo_seconds)}s"
    errors_desc = (
        f"{_WHO} fails fast enough to exhaust its {avail}% availability error budget "
        "(multi-window burn rate). Check the errors-by-type panel and recent deploys."
    )
    latency_desc = (
        f"{_WHO} answers {slow} too often for its {lat}% latency objective "
        "(multi-window burn rate). Check latency percentiles, batch size and saturation."
    )
    return [
        Alert(
            "ModelmonErrorBudgetBurn",
            _burn(cfg, "error_ratio", cfg.availability_slo, PAGE_BURNS),
            "page",
            "2m",
            f"{_WHO} is burning its error budget fast",
            errors_desc,
        ),
        Alert(
            "ModelmonErrorBudgetBurn",
            _burn(cfg, "error_ratio", cfg.availability_slo, TICKET_BURNS),
            "ticket",
            "1h",
            f"{_WHO} is slowly burning its error budget",
            errors_desc,
        ),
        Alert(
            "ModelmonLatencyBudgetBurn",
            _burn(cfg, "request_slow_ratio", cfg.latency_slo_target, PAGE_BURNS),
            "page",
            "2m",
            f"{_WHO} is burning its latency budget fast",
            latency_desc,
        ),
        Alert(
            "ModelmonLatencyBudgetBurn",
            _burn(cfg, "request_slow_ratio", cfg.latency_slo_target, TICKET_BURNS),
            "ticket",
            "1h",
            f"{_WHO} is slowly burning its latency budget",
            latency_desc,
        ),
    ]


def _drift_pair(cfg: MonitoringConfig, fam: _BinFamily, alert: str, subject: str) -> list[Alert]:
    rules = bin_rule_names(cfg, fam)
    detected = f"{rules['detected']} == 1"
    test = (
        f"a two-sample chi-square test at family-wise level {num(cfg.drift_alpha)} "
        f"(Bonferroni over the model's members) with PSI >= {num(cfg.drift_psi_floor)}"
    )
    common = (
        f"(window {cfg.drift_window}; {test}). Compare reference and live shares per bin "
        "on the dashboard and check the upstream data source."
    )
    return [
        Alert(
            alert,
            f"{detected}\nand\n{rules['psi']} > {num(cfg.psi_critical)}",
            "critical",
            cfg.drift_for,
            f"{subject} of {_WHO} drifted (major: PSI > {num(cfg.psi_critical)})",
            f"The fleet-wide distribution of {subject} of {_WHO} differs from the reference "
            f"profile, with PSI above {num(cfg.psi_critical)}, for {cfg.drift_for} {common}",
            cfg.drift_keep_firing_for,
        ),
        Alert(
            alert,
            detected,
            "warning",
            cfg.drift_for,
            f"{subject} of {_WHO} drifted",
            f"The fleet-wide distribution of {subject} of {_WHO} differs from the reference "
            f"profile for {cfg.drift_for} {common}",
            cfg.drift_keep_firing_for,
        ),
    ]


def _drift_alerts(cfg: MonitoringConfig) -> list[Alert]:
    feature = "feature {{ $labels.feature }}"
    output = "prediction output {{ $labels.output }}"
    missing = (
        f"{cfg.rule('feature_missing_ratio', cfg.drift_window)} > "
        f"{cfg.rule('feature_missing_ratio', MISSING_BASELINE_WINDOW)} + {num(cfg.missing_jump)}"
    )
    conf_base = (
        f"histogram_quantile(0.5, sum by ({cfg.by('le')}) (rate("
        f"{cfg.series(names.CONFIDENCE, '_bucket')}[{cfg.confidence_window}] "
        f"offset {CONFIDENCE_BASELINE_OFFSET})))"
    )
    confidence = (
        f"{cfg.rule('confidence_p50', cfg.confidence_window)}\n<\n"
        f"{conf_base} - {num(cfg.confidence_drop)}"
    )
    return [
        *_drift_pair(cfg, FEATURES, "ModelmonFeatureDrift", feature),
        *_drift_pair(cfg, PREDICTIONS, "ModelmonPredictionDrift", output),
        Alert(
            "ModelmonFeatureMissingValues",
            missing,
            "warning",
            "15m",
            f"Missing values of {feature} of {_WHO} jumped",
            f"The share of missing values of {feature} over {cfg.drift_window} is more than "
            f"{num(cfg.missing_jump * 100)} percentage points above its "
            f"{MISSING_BASELINE_WINDOW} average. Check the upstream feature pipeline.",
        ),
        Alert(
            "ModelmonFeatureMissingShift",
            f"{missing_rule_names(cfg)['detected']} == 1",
            "warning",
            cfg.drift_for,
            f"Missing share of {feature} of {_WHO} differs from the reference",
            f"The share of missing values of {feature} over {cfg.drift_window} differs from "
            "the reference profile's (two-proportion test at family-wise level "
            f"{num(cfg.drift_alpha)}, change >= {num(cfg.missing_drift_floor * 100)} percentage "
            "points). Check the upstream feature pipeline and joins.",
            cfg.drift_keep_firing_for,
        ),
        Alert(
            "ModelmonConfidenceCollapse",
            confidence,
            "warning",
            "30m",
            f"Median confidence of {_WHO} collapsed",
            f"The median prediction confidence over {cfg.confidence_window} is more than "
            f"{num(cfg.confidence_drop)} below the same window {CONFIDENCE_BASELINE_OFFSET} ago. "
            "Look at the confidence heatmap and at input drift.",
        ),
    ]


def _performance_alerts(cfg: MonitoringConfig) -> list[Alert]:
    w = cfg.performance_window
    enough = f"{cfg.rule('labelled_outcomes', w)} >= {cfg.min_outcomes}"
    enough_reg = f"{cfg.rule('labelled_regression_outcomes', w)} >= {cfg.min_outcomes}"
    if cfg.rmse_target is None:
        factor = num(cfg.rmse_degradation_factor)
        rmse = f"{cfg.rule('rmse', w)} > {factor} * {cfg.rule('rmse', RMSE_BASELINE_WINDOW)}"
        rmse_what = f"more than {factor}x its {RMSE_BASELINE_WINDOW} average"
    else:
        rmse = f"{cfg.rule('rmse', w)} > {num(cfg.rmse_target)}"
        rmse_what = f"above the target {num(cfg.rmse_target)}"
    detected = sum_rate(cfg, names.CONCEPT_DRIFT_DETECTED, w, names.DETECTOR, fn="increase")
    state = f"max by ({cfg.by(names.DETECTOR)}) ({cfg.series(names.CONCEPT_DRIFT)})"
    return [
        Alert(
            "ModelmonAccuracyBelowTarget",
            f"{cfg.rule('accuracy', w)} < {num(cfg.accuracy_target)}\nand\n{enough}",
            "critical",
            cfg.performance_for,
            f"Accuracy of {_WHO} is below {num(cfg.accuracy_target)}",
            f"Fleet accuracy over the labelled outcomes of the last {w} (at least "
            f"{cfg.min_outcomes}) is below {num(cfg.accuracy_target)}. Check the confusion "
            "matrix, drift panels and the label feed.",
        ),
        Alert(
            "ModelmonRMSEAboveTarget",
            f"{rmse}\nand\n{enough_reg}",
            "critical",
            cfg.performance_for,
            f"RMSE of {_WHO} is {rmse_what}",
            f"Fleet RMSE over the labelled outcomes of the last {w} (at least "
            f"{cfg.min_outcomes}) is {rmse_what}. Check drift panels and the label feed.",
        ),
        Alert(
            "ModelmonConceptDrift",
            f"{detected} > 0\nor\n{state} > 0",
            "warning",
            "0s",
            f"Concept drift detected for {_WHO} ({{{{ $labels.detector }}}})",
            f"The {{{{ $labels.detector }}}} detector on the error stream of {_WHO} signalled "
            f"a change in the last {w}: the relation between inputs and labels moved. "
            "Consider retraining on recent labelled data.",
        ),
    ]


def alive(cfg: MonitoringConfig) -> str:
    """Sources (scraped or pushed) whose heartbeat is younger than ``heartbeat_timeout``.

    Not ``up``: Prometheus makes ``up`` for scraped targets only, and OTLP-pushed data
    has none. A source that stops has no heartbeat at all (scrape staleness, or the 5m
    lookback of pushed samples) or an old one (a Collector re-exposing its last value).
    """
    timeout = num(duration_seconds(cfg.heartbeat_timeout))
    return f"time() - {cfg.series(names.HEARTBEAT)} < {timeout}"


def _model_by(cfg: MonitoringConfig) -> str:
    """``job, model`` plus ``group_labels``: a model, whatever its versions and instances."""
    return ", ".join(("job", names.MODEL, *cfg.group_labels))


def _availability_alerts(cfg: MonitoringConfig) -> list[Alert]:
    idle = num(duration_seconds(cfg.no_predictions_for))
    last = cfg.series(names.LAST_PREDICTION)
    no_predictions = _lines(
        "time() - max by (" + cfg.by() + ") (",
        f"  {last} > 0",
        f"  and on (instance, job, {cfg.by()})",
        f"  {alive(cfg)}",
        f") > {idle}",
    )
    by_model = _model_by(cfg)
    heartbeat_lost = _lines(
        f"group by ({by_model}) (",
        f"  max_over_time({cfg.series(names.HEARTBEAT)}[{cfg.heartbeat_lookback}])",
        ")",
        f"unless on ({by_model})",
        f"{alive(cfg)}",
    )
    # Scraped targets only (per instance, while service discovery still lists them);
    # ModelmonHeartbeatLost covers pushed data and targets that disappear.
    up = f"up{cfg.matcher_block()}"
    seen = f"max_over_time({cfg.series(names.MODEL_INFO)}[1d])"
    target_down = _lines(
        f"group by (instance, job, {cfg.by()}) ({seen})",
        "and on (instance, job)",
        f"{up} == 0",
    )
    stale = num(cfg.staleness_days * 86400)
    return [
        Alert(
            "ModelmonNoPredictions",
            no_predictions,
            "critical",
            "5m",
            f"{_WHO} made no prediction for {cfg.no_predictions_for}",
            f"Sources serving {_WHO} are alive but none predicted for "
            f"{cfg.no_predictions_for}. Check the upstream callers, routing and the serving logs.",
        ),
        Alert(
            "ModelmonHeartbeatLost",
            heartbeat_lost,
            "critical",
            "5m",
            "No source of model {{ $labels.model }} is alive",
            "No process serving model {{ $labels.model }} (job {{ $labels.job }}) sent a "
            f"heartbeat in the last {cfg.heartbeat_timeout}, scraped or pushed over OTLP, "
            f"though one did in the last {cfg.heartbeat_lookback}. Check the processes, "
            "their /metrics endpoint or OTLP exporter, and the Collector.",
        ),
        Alert(
            "ModelmonTargetDown",
            target_down,
            "critical",
            "5m",
            f"Target {{{{ $labels.instance }}}} serving {_WHO} is down",
            "Prometheus cannot scrape {{ $labels.instance }} (job {{ $labels.job }}), which "
            f"served {_WHO} in the last day. Check the process, its /metrics endpoint "
            "and the network path.",
        ),
        Alert(
            "ModelmonMetricsAbsent",
            f"absent({cfg.series(names.MODEL_INFO)})",
            "critical",
            "15m",
            "No modelmon metrics are scraped",
            f"No {cfg.name(names.MODEL_INFO)} series exists: no monitored model is scraped. "
            "Check the scrape configuration and that the service exposes /metrics.",
        ),
        Alert(
            "ModelmonModelStale",
            f"{cfg.rule('model_age_seconds', 'max')} > {stale}",
            "ticket",
            "1h",
            f"{_WHO} is older than {num(cfg.staleness_days)} days",
            f"{_WHO} was trained more than {num(cfg.staleness_days)} days ago. "
            "Plan a retraining or confirm the model is still fit for current data.",
        ),
    ]


def _sdk_alerts(cfg: MonitoringConfig) -> list[Alert]:
    w = cfg.sdk_window
    internal = sum_rate(cfg, names.INTERNAL_ERRORS, w, names.STAGE, fn="increase")
    dropped = sum_rate(cfg, names.DROPPED, w, names.REASON, fn="increase")
    return [
        Alert(
            "ModelmonInternalErrors",
            f"{internal} > 0",
            "warning",
            "0s",
            f"modelmon fails internally for {_WHO} (stage {{{{ $labels.stage }}}})",
            f"The SDK counted internal errors at stage {{{{ $labels.stage }}}} in the last {w}."
            " Predictions are unaffected but monitoring data is incomplete: read the "
            "service log line 'modelmon internal error'.",
        ),
        Alert(
            "ModelmonDroppedObservations",
            f"{dropped} > 0",
            "warning",
            "0s",
            f"modelmon drops observations for {_WHO} ({{{{ $labels.reason }}}})",
            f"The SDK dropped observations (reason {{{{ $labels.reason }}}}) in the last {w}: "
            "monitoring data is incomplete. Check buffer size and CPU saturation.",
        ),
    ]


# --- documents -------------------------------------------------------------------------


def render_recording_rules(config: MonitoringConfig) -> dict[str, Any]:
    """The recording rules file as a dict (``{"groups": [...]}``), ready for YAML or JSON."""
    return {
        "groups": [
            {"name": name, "rules": [r.as_dict() for r in rules]}
            for name, rules in recording_groups(config)
        ]
    }


def render_alert_rules(config: MonitoringConfig) -> dict[str, Any]:
    """The alert rules file as a dict (``{"groups": [...]}``), ready for YAML or JSON."""
    return {
        "groups": [
            {"name": name, "rules": [a.as_dict(config) for a in alerts]}
            for name, alerts in alert_groups(config)
        ]
    }


def alert_names(config: MonitoringConfig) -> list[str]:
    """Distinct alert names in rule order (each has a docs/alerts.md anchor: its name, lowered)."""
    return list(dict.fromkeys(a.alert for _, alerts in alert_groups(config) for a in alerts))
