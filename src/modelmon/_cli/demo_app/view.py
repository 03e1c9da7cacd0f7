"""What the demo shows: the scraped metrics read into a :class:`View`, and its rendering.

Which bundled alert rules would fire now is approximated from the scraped values with
the thresholds of :class:`modelmon.monitoring.config.MonitoringConfig`. The drift alerts
come from the same decisions the bundled rules use: the exported
``modelmon_feature_drift_detected`` / ``modelmon_prediction_drift_detected`` /
``modelmon_feature_missing_drift_detected`` (a two-sample test at a known false-alarm rate,
see docs/drift.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from modelmon.monitoring.config import MonitoringConfig

TOP_FEATURES = 5
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass(frozen=True)
class Thresholds:
    """The bundled alert rules' thresholds (from the default monitoring config)."""

    error_ratio: float = 14.4 * (1 - 0.999)
    latency_seconds: float = 0.5
    slow_ratio: float = 14.4 * (1 - 0.99)
    psi_critical: float = 0.25
    accuracy_target: float = 0.8

    @classmethod
    def bundled(cls) -> Thresholds:
        c = MonitoringConfig()
        return cls(
            error_ratio=14.4 * (1 - c.availability_slo),
            latency_seconds=c.latency_slo_seconds,
            slow_ratio=14.4 * (1 - c.latency_slo_target),
            psi_critical=c.psi_critical,
            accuracy_target=c.accuracy_target,
        )


# --- reading the metrics ------------------------------------------------------------------


def parse(text: str) -> Samples:
    from prometheus_client.parser import text_string_to_metric_families

    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _select(samples: Samples, name: str, **labels: str) -> Iterator[tuple[dict[str, str], float]]:
    for (n, lbl), v in samples.items():
        d = dict(lbl)
        if n == name and all(d.get(k) == val for k, val in labels.items()):
            yield d, v


def total(samples: Samples, name: str, **labels: str) -> float:
    return sum(v for _, v in _select(samples, name, **labels))


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float:
    """Prometheus' ``histogram_quantile`` over cumulative bucket counts (by upper bound)."""
    bounds = sorted(buckets)
    count = buckets[bounds[-1]] if bounds else 0.0
    if count <= 0:
        return math.nan
    rank = q * count
    prev_bound, prev_count = 0.0, 0.0
    for b in bounds:
        c = buckets[b]
        if c >= rank:
            if math.isinf(b):
                return prev_bound
            return prev_bound + (b - prev_bound) * (rank - prev_count) / max(c - prev_count, 1e-12)
        prev_bound, prev_count = b, c
    return prev_bound


def _buckets(samples: Samples, name: str) -> dict[float, float]:
    out: dict[float, float] = {}
    for labels, v in _select(samples, name + "_bucket"):
        le = float(labels["le"])
        out[le] = out.get(le, 0.0) + v
    return out


@dataclass(frozen=True)
class View:
    """What one refresh shows."""

    elapsed: float
    phase: str
    requests: float
    rps: float
    p50: float
    p99: float
    error_rate: float
    psi: tuple[tuple[str, float], ...]
    prediction_psi: float
    accuracy: float
    alerts: tuple[str, ...]
    flagged: tuple[str, ...] = ()  # features whose drift decision is 1


def make_view(
    prev: Samples | None, cur: Samples, dt: float, elapsed: float, phase: str, th: Thresholds
) -> View:
    name = "modelmon_request_duration_seconds"
    requests = total(cur, "modelmon_requests_total")
    d_req = requests - (total(prev, "modelmon_requests_total") if prev else 0.0)
    errors = total(cur, "modelmon_request_errors_total")
    d_err = errors - (total(prev, "modelmon_request_errors_total") if prev else 0.0)
    cur_b, prev_b = _buckets(cur, name), _buckets(prev, name) if prev else {}
    window = {b: c - prev_b.get(b, 0.0) for b, c in cur_b.items()}
    if not any(window.values()):
        window = cur_b
    psi = sorted(
        ((lb["feature"], v) for lb, v in _select(cur, "modelmon_feature_drift", method="psi")),
        key=lambda kv: -kv[1],
    )
    pred_psi = max(
        (v for _, v in _select(cur, "modelmon_prediction_drift", method="psi")), default=math.nan
    )
    acc = next((v for _, v in _select(cur, "modelmon_performance", metric="accuracy")), math.nan)
    error_rate = d_err / d_req if d_req > 0 else 0.0
    slow = _slow_share(window, th.latency_seconds)
    alerts = []
    if error_rate > th.error_ratio:
        alerts.append("ModelmonErrorBudgetBurn")
    if slow > th.slow_ratio:
        alerts.append("ModelmonLatencyBudgetBurn")
    flagged = _flagged(cur, "modelmon_feature_drift_detected", "feature")
    if flagged:
        alerts.append("ModelmonFeatureDrift")
    if _flagged(cur, "modelmon_prediction_drift_detected", "output"):
        alerts.append("ModelmonPredictionDrift")
    if _flagged(cur, "modelmon_feature_missing_drift_detected", "feature"):
        alerts.append("ModelmonFeatureMissingShift")
    if acc < th.accuracy_target:
        alerts.append("ModelmonAccuracyBelowTarget")
    return View(
        elapsed,
        phase,
        requests,
        d_req / dt if dt > 0 else 0.0,
        histogram_quantile(0.5, window),
        histogram_quantile(0.99, window),
        error_rate,
        tuple(psi[:TOP_FEATURES]),
        pred_psi,
        acc,
        tuple(alerts),
        flagged,
    )


def _flagged(samples: Samples, name: str, key: str) -> tuple[str, ...]:
    """Members whose exported decision is 1 (the same decision the bundled rules make)."""
    return tuple(sorted(lb[key] for lb, v in _select(samples, name) if v == 1.0))


def _slow_share(buckets: Mapping[float, float], slo: float) -> float:
    count = buckets.get(math.inf, 0.0)
    if count <= 0:
        return 0.0
    fast = max((c for b, c in buckets.items() if b <= slo), default=0.0)
    return 1.0 - fast / count


# --- rendering -------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.1f}ms"


def number(x: float, fmt: str = ".3f") -> str:
    """``x`` formatted, or "-" for NaN."""
    return "-" if math.isnan(x) else format(x, fmt)


def log_line(v: View) -> str:
    drift = ", ".join(f"{f}={p:.2f}" for f, p in v.psi[:3]) or "-"
    return (
        f"[{v.elapsed:5.1f}s] phase={v.phase} requests={v.requests:.0f} rps={v.rps:.1f} "
        f"p50={_ms(v.p50)} p99={_ms(v.p99)} errors={v.error_rate:.1%} "
        f"accuracy={number(v.accuracy)} psi: {drift} flagged: {', '.join(v.flagged) or '-'} "
        f"alerts: {', '.join(v.alerts) or 'none'}"
    )


def screen(v: View, url: str, duration: float) -> str:
    lines = [
        f"modelmon demo  {v.elapsed:5.1f}s / {duration:.0f}s  phase: {v.phase}   metrics: {url}",
        "",
        f"  requests/s   {v.rps:8.1f}      total requests {v.requests:.0f}",
        f"  latency      p50 {_ms(v.p50):>9}   p99 {_ms(v.p99):>9}",
        f"  error rate   {v.error_rate:8.1%}",
        f"  accuracy     {number(v.accuracy):>8}      "
        f"prediction PSI {number(v.prediction_psi, '.2f')}",
        "",
        "  top drifted features (PSI; * = flagged by the drift test)",
    ]
    lines += [
        f"  {'*' if f in v.flagged else ' '} {f:<28} {p:6.2f}  {'#' * min(int(p * 10), 40)}"
        for f, p in v.psi
    ]
    lines += ["", "  alert rules that would fire now:"]
    lines += [f"    \x1b[31m{a}\x1b[0m" for a in v.alerts] or ["    none"]
    return "\x1b[H\x1b[2J" + "\n".join(lines) + "\n"
