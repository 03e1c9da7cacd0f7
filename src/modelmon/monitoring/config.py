"""The one small configuration every generated dashboard, rule and route is built from.

>>> cfg = MonitoringConfig(namespace="shop", selector='job="api"')
>>> cfg.series(names.REQUESTS, model="$model")
'shop_requests_total{job="api",model=~"$model"}'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from modelmon import names
from modelmon.errors import ConfigurationError
from modelmon.exporters.prometheus import le_value

_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_NAMESPACE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*')
# The fast-burn page fires at 14.4x the error budget: above that an SLO cannot page at all.
_FASTEST_BURN = 14.4
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def duration_seconds(text: str) -> float:
    """Seconds in a Prometheus duration (``"1h30m"`` -> 5400.0)."""
    if not _DURATION.match(text):
        raise ConfigurationError(f"not a Prometheus duration: {text!r} (e.g. '30m', '1h', '3d')")
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text)
    return float(sum(int(n) * _UNITS[u] for n, u in parts))


def parse_selector(selector: str) -> tuple[tuple[str, str, str], ...]:
    """Split extra label matchers (``'job="api",env=~"prod.*"'``) into (label, op, value)."""
    text = selector.strip().strip(",")
    if not text:
        return ()
    matchers: list[tuple[str, str, str]] = []
    pos = 0
    while pos < len(text):
        match = _MATCHER.match(text, pos)
        if match is None:
            raise ConfigurationError(
                f'selector must be label matchers like \'job="api",env=~"prod"\', got {selector!r}'
            )
        matchers.append((match.group(1), match.group(2), match.group(3)))
        pos = match.end()
        if pos < len(text):
            if text[pos] != ",":
                raise ConfigurationError(f"matchers must be separated by commas: {selector!r}")
            pos += 1
    return tuple(matchers)


def num(value: float) -> str:
    """A number for PromQL or a label value: shortest exact form (``1e-4``, ``0.25``, ``30``)."""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


@dataclass(frozen=True)
class MonitoringConfig:
    """Namespace, selectors, SLOs, thresholds and windows of the generated monitoring.

    Every field has a default fit for a typical online model; the committed files under
    ``grafana/`` are the output for ``MonitoringConfig()``.
    """

    namespace: str = names.DEFAULT_NAMESPACE
    selector: str = ""  # extra label matchers added to every selector, e.g. 'job="api"'
    group_labels: tuple[str, ...] = ()  # kept by fleet aggregations besides model, version
    availability_slo: float = 0.999
    latency_slo_seconds: float = 0.5
    latency_slo_target: float = 0.99
    psi_warning: float = 0.1
    psi_critical: float = 0.25
    drift_for: str = "30m"
    drift_window: str = "30m"
    drift_min_samples: int = 100
    drift_alpha: float = 0.05  # family-wise false-alarm rate per window (Bonferroni)
    drift_psi_floor: float = 0.1  # effect-size floor of the drift decision
    missing_drift_floor: float = 0.05  # smallest absolute missing-share change flagged
    drift_keep_firing_for: str = "1h"  # hysteresis of the drift alerts
    missing_jump: float = 0.1
    # Outlier alerts (docs/outliers.md): a one-sided Poisson test of the window's outlier
    # count against the reference rate, Bonferroni over the features, with a minimum
    # count and an effect floor on the rate; hysteresis as the drift alerts'.
    outlier_window: str = "30m"
    outlier_for: str = "15m"
    outlier_keep_firing_for: str = "1h"
    outlier_alpha: float = 0.01
    outlier_min_count: int = 10
    outlier_rate_floor: float = 0.001
    confidence_drop: float = 0.1
    confidence_window: str = "1h"
    low_confidence_threshold: float = 0.5
    accuracy_target: float = 0.8
    rmse_target: float | None = None
    rmse_degradation_factor: float = 1.5
    performance_window: str = "1h"
    performance_for: str = "30m"
    min_outcomes: int = 50
    no_predictions_for: str = "30m"
    # A source (scraped target or OTLP pusher) is alive while its heartbeat is younger.
    heartbeat_timeout: str = "5m"
    heartbeat_lookback: str = "1h"  # how long a silent model is remembered
    staleness_days: float = 30
    sdk_window: str = "15m"
    runbook_base_url: str = "https://github.com/modelmon/modelmon/blob/main/docs/alerts.md"
    matchers: tuple[tuple[str, str, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _NAMESPACE.match(self.namespace):
            raise ConfigurationError(f"namespace must be a metric name prefix: {self.namespace!r}")
        object.__setattr__(self, "matchers", parse_selector(self.selector))
        for label in self.group_labels:
            if not _LABEL.match(label) or label in ("model", "version", "instance", "le"):
                raise ConfigurationError(f"group_labels: invalid or reserved label {label!r}")
        for name in ("drift_for", "drift_window", "confidence_window", "performance_window"):
            duration_seconds(getattr(self, name))
        if self.drift_keep_firing_for != "0s":
            duration_seconds(self.drift_keep_firing_for)
        self._check_open("drift_alpha", self.drift_alpha, 0, 0.5)
        for name in ("outlier_window", "outlier_for", "outlier_keep_firing_for"):
            duration_seconds(getattr(self, name))
        self._check_open("outlier_alpha", self.outlier_alpha, 0, 0.5)
        if self.outlier_min_count < 1 or not 0 <= self.outlier_rate_floor < 1:
            raise ConfigurationError("need outlier_min_count >= 1 and 0 <= outlier_rate_floor < 1")
        if not 0 <= self.missing_drift_floor < 1:
            raise ConfigurationError("missing_drift_floor must be in [0, 1)")
        if not self.drift_psi_floor >= 0:
            raise ConfigurationError("drift_psi_floor must be >= 0")
        for name in (
            "performance_for",
            "no_predictions_for",
            "sdk_window",
            "heartbeat_timeout",
            "heartbeat_lookback",
        ):
            duration_seconds(getattr(self, name))
        self._check_slo("availability_slo", self.availability_slo)
        self._check_slo("latency_slo_target", self.latency_slo_target)
        if self.latency_slo_seconds not in names.DURATION_BUCKETS:
            raise ConfigurationError(
                f"latency_slo_seconds={self.latency_slo_seconds} must be a latency bucket "
                f"boundary, one of {names.DURATION_BUCKETS}"
            )
        if self.low_confidence_threshold not in names.CONFIDENCE_BUCKETS:
            raise ConfigurationError(
                f"low_confidence_threshold must be one of {names.CONFIDENCE_BUCKETS}"
            )
        if not 0 < self.psi_warning < self.psi_critical:
            raise ConfigurationError("need 0 < psi_warning < psi_critical")
        self._check_open("missing_jump", self.missing_jump, 0, 0.5)
        self._check_open("confidence_drop", self.confidence_drop, 0, 0.5)
        self._check_open("accuracy_target", self.accuracy_target, 0, 1)
        if self.rmse_target is not None and self.rmse_target <= 0:
            raise ConfigurationError("rmse_target must be positive (or None for a relative alert)")
        if self.rmse_degradation_factor <= 1:
            raise ConfigurationError("rmse_degradation_factor must be > 1")
        if self.staleness_days <= 0 or self.drift_min_samples < 1 or self.min_outcomes < 1:
            raise ConfigurationError("staleness_days, drift_min_samples, min_outcomes must be > 0")
        if not self.runbook_base_url.startswith(("http://", "https://")):
            raise ConfigurationError("runbook_base_url must be an http(s) URL")

    @staticmethod
    def _check_slo(name: str, value: float) -> None:
        if not 1 - 1 / _FASTEST_BURN < value < 1:
            raise ConfigurationError(
                f"{name}={value} must be in ({1 - 1 / _FASTEST_BURN:.4f}, 1): a lower target "
                "makes the 14.4x burn rate exceed 100% and the page alert could never fire"
            )

    @staticmethod
    def _check_open(name: str, value: float, low: float, high: float) -> None:
        if not low < value < high:
            raise ConfigurationError(f"{name}={value} must be in ({low}, {high})")

    # --- helpers shared by the renderers ------------------------------------------------

    def name(self, spec: names.MetricSpec, suffix: str = "") -> str:
        """The exposed series name of ``spec`` (``suffix`` is ``_bucket``, ``_sum``, ...)."""
        return spec.prometheus_name(self.namespace) + suffix

    def rule(self, what: str, window: str) -> str:
        """A recording rule name, ``<namespace>:<what>:<window>``."""
        return f"{self.namespace}:{what}:{window}"

    def series(self, spec: names.MetricSpec, suffix: str = "", **labels: str) -> str:
        """``spec``'s series with the selector; values starting with ``$`` match as regexes.

        Keyword values become ``label="value"``, or ``label=~"value"`` for Grafana
        variables (``$model``) and values given as ``"~regex"``.
        """
        return self.name(spec, suffix) + self.matcher_block(**labels)

    def matcher_block(self, **labels: str) -> str:
        """``{...}`` with the selector's matchers then ``labels`` (empty string if none)."""
        parts = [f'{label}{op}"{value}"' for label, op, value in self.matchers]
        for label, value in labels.items():
            if value.startswith("$"):
                parts.append(f'{label}=~"{value}"')
            elif value.startswith("~"):
                parts.append(f'{label}=~"{value[1:]}"')
            else:
                parts.append(f'{label}="{value}"')
        return "{" + ",".join(parts) + "}" if parts else ""

    def by(self, *labels: str) -> str:
        """``model, version`` plus ``group_labels`` plus ``labels``, for ``by (...)``."""
        return ", ".join((*names.BASE_LABELS, *self.group_labels, *labels))

    def runbook_url(self, alert: str) -> str:
        """The runbook section of ``alert`` on docs/alerts.md (anchor = the name in lower case)."""
        return f"{self.runbook_base_url}#{alert.lower()}"

    @property
    def le_latency_slo(self) -> str:
        """The ``le`` label value of the latency SLO bucket."""
        return le_value(self.latency_slo_seconds)

    @property
    def le_low_confidence(self) -> str:
        """The ``le`` label value of the low-confidence bucket."""
        return le_value(self.low_confidence_threshold)
