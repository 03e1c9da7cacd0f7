"""A snapshot of one monitor, read from its exported samples.

Every view of a monitor outside Prometheus (the HTML report, MLflow metrics) is built
from the same samples a scrape returns, so its numbers equal the exported gauges by
construction: a live :class:`~modelmon.Monitor`, a ``/metrics`` page, a multi-process
state directory and a scored CSV file all go through :func:`snapshot_from_samples`.

>>> import numpy as np, modelmon
>>> from modelmon.report.snapshot import monitor_snapshot
>>> rng = np.random.default_rng(0)
>>> ref = modelmon.ReferenceProfile.from_data(rng.normal(size=(500, 1)), feature_names=["x"])
>>> mon = modelmon.Monitor("doc", "1", reference=ref, registry=False, min_samples=10)
>>> _ = mon.observe(rng.normal(3.0, 1.0, size=(200, 1)), np.zeros(200))
>>> snap = monitor_snapshot(mon)
>>> snap.features[0].name, snap.features[0].decision
('x', 'drift')
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import names
from ..drift import REFERENCE_QUANTILE_PROBS
from ..errors import ConfigurationError
from ..profile import FeatureProfile, ReferenceProfile

if TYPE_CHECKING:
    from ..monitor import Monitor

#: PSI at or above which a feature is called drifted when the samples carry no test
#: decision (``*_drift_detected``): the usual rule of thumb for a "major shift".
FALLBACK_PSI_DRIFT = 0.25

DRIFT = "drift"
OK = "ok"
NO_DATA = "not enough data"
_DECISION_RANK = {DRIFT: 0, OK: 1, NO_DATA: 2}

Labels = tuple[tuple[str, str], ...]


class Samples:
    """Exported samples of one monitor: ``(sample name, labels) -> value``.

    Labels exclude ``model`` and ``version`` (the monitor is chosen when reading).
    """

    def __init__(self, namespace: str, values: Mapping[tuple[str, Labels], float]) -> None:
        self.namespace = namespace
        self.values = dict(values)
        self._by_name: dict[str, list[tuple[dict[str, str], float]]] = {}
        self._groups: dict[tuple[str, str, str], dict[str, dict[str, float]]] = {}
        for (n, lb), v in self.values.items():
            self._by_name.setdefault(n, []).append((dict(lb), v))

    def get(self, name: str, **labels: str) -> float | None:
        return self.values.get((f"{self.namespace}_{name}", tuple(sorted(labels.items()))))

    def series(self, name: str) -> list[tuple[dict[str, str], float]]:
        """Every sample of ``name``: its labels (as a dict) and value."""
        return self._by_name.get(f"{self.namespace}_{name}", [])

    def by(self, name: str, key: str, **match: str) -> dict[str, float]:
        """Samples of ``name`` matching ``match``, keyed by the value of label ``key``."""
        if len(match) == 1:  # the common case (one feature): grouped once per name
            ((mk, mv),) = match.items()
            return self._grouped(name, key, mk).get(mv, {})
        out: dict[str, float] = {}
        for labels, value in self.series(name):
            if key in labels and all(labels.get(k) == v for k, v in match.items()):
                out[labels[key]] = value
        return out

    def _grouped(self, name: str, key: str, group: str) -> dict[str, dict[str, float]]:
        found = self._groups.get((name, key, group))
        if found is None:
            found = {}
            for labels, value in self.series(name):
                if key in labels and group in labels:
                    found.setdefault(labels[group], {})[labels[key]] = value
            self._groups[(name, key, group)] = found
        return found


def select_samples(
    metrics: Iterable[Any], model: str | None, version: str | None, namespace: str
) -> tuple[str, str, Samples]:
    """One monitor's samples out of prometheus-client metric families.

    ``model`` and ``version`` may be None when the families hold a single monitor.
    Raises :class:`~modelmon.ConfigurationError` when none or several match.
    """
    info = f"{namespace}_{names.MODEL_INFO.name}"
    rows: list[tuple[str, dict[str, str], float]] = []
    found: set[tuple[str, str]] = set()
    for metric in metrics:
        for sample in metric.samples:
            labels = dict(sample.labels)
            if names.MODEL not in labels or names.VERSION not in labels:
                continue
            rows.append((sample.name, labels, float(sample.value)))
            if sample.name == info:
                found.add((labels[names.MODEL], labels[names.VERSION]))
    match = sorted(
        (m, v)
        for m, v in found
        if (model is None or m == model) and (version is None or v == version)
    )
    if len(match) != 1:
        seen = ", ".join(f"{m}/{v}" for m, v in sorted(found)) or "none"
        want = f"model={model!r} version={version!r}"
        problem = "no monitor matches" if not match else "several monitors match"
        raise ConfigurationError(
            f"{problem} {want} among the exported monitors ({seen}); "
            "name one with --model-name/--model-version"
        )
    m, v = match[0]
    values: dict[tuple[str, Labels], float] = {}
    for name, labels, value in rows:
        if labels[names.MODEL] == m and labels[names.VERSION] == v:
            rest = tuple(sorted((k, x) for k, x in labels.items() if k not in names.BASE_LABELS))
            values[(name, rest)] = value
    return m, v, Samples(namespace, values)


@dataclass(frozen=True)
class MemberView:
    """One feature or output: decision, scores, health, and both distributions."""

    name: str
    kind: str
    decision: str
    detected: float | None  # the exported test decision (1/0), None when not exported
    pvalues: dict[str, float]
    scores: dict[str, float]
    observations: float | None
    missing_share: float | None
    invalid_share: float | None
    bin_labels: tuple[str, ...]
    reference_shares: tuple[float, ...]
    current_counts: tuple[float, ...]
    reference_quantiles: dict[float, float]
    live_quantiles: dict[float, float]
    missing_detected: float | None = None  # the exported missing-share decision, if any

    @property
    def psi(self) -> float | None:
        return self.scores.get("psi")

    @property
    def min_pvalue(self) -> float | None:
        return min(self.pvalues.values()) if self.pvalues else None

    @property
    def current_total(self) -> float:
        return float(sum(self.current_counts))

    @property
    def severity(self) -> tuple[int, float, float]:
        """Sort key: drifted first, then by p-value (smallest first), then by PSI."""
        p = self.min_pvalue
        psi = self.psi
        return (
            _DECISION_RANK[self.decision],
            p if p is not None else 1.0,
            -(psi if psi is not None and not math.isnan(psi) else -1.0),
        )


@dataclass(frozen=True)
class Snapshot:
    """Everything the report shows about one monitor at one time."""

    model: str
    version: str
    namespace: str
    taken_at: float
    requests: float
    predictions: float
    errors: float
    internal_errors: dict[str, float]
    task: str
    features: tuple[MemberView, ...]
    outputs: tuple[MemberView, ...]
    confidence_bounds: tuple[float, ...]
    confidence_counts: tuple[float, ...]
    confidence_sum: float
    performance: dict[str, float]
    fingerprint: str | None
    reference_created: float | None
    decisions_exported: bool
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def drifted(self) -> tuple[MemberView, ...]:
        return tuple(f for f in self.features if f.decision == DRIFT)

    @property
    def confidence_count(self) -> float:
        return float(sum(self.confidence_counts))


def snapshot_from_samples(
    model: str,
    version: str,
    samples: Samples,
    profile: ReferenceProfile | None,
    taken_at: float | None = None,
) -> Snapshot:
    """Build a :class:`Snapshot` from one monitor's samples and its reference profile."""
    detected_name = names.FEATURE_DRIFT.name + "_detected"
    decisions = bool(samples.series(detected_name))
    feature_names = _member_names(samples, "feature_reference_ratio", names.FEATURE, profile, True)
    output_names = _member_names(
        samples, "prediction_reference_ratio", names.OUTPUT, profile, False
    )
    features = tuple(
        sorted(
            (
                _member(samples, "feature", names.FEATURE, n, _prof(profile, n, True), decisions)
                for n in feature_names
            ),
            key=lambda m: m.severity,
        )
    )
    outputs = tuple(
        _member(samples, "prediction", names.OUTPUT, n, _prof(profile, n, False), decisions)
        for n in output_names
    )
    bounds, counts, conf_sum = _histogram(samples, names.CONFIDENCE.name)
    info = samples.series(names.MODEL_INFO.name)
    notes: list[str] = []
    if not decisions:
        notes.append(
            f"No test decision is exported: a feature is called drifted at PSI >= "
            f"{FALLBACK_PSI_DRIFT}."
        )
    return Snapshot(
        model=model,
        version=version,
        namespace=samples.namespace,
        taken_at=time.time() if taken_at is None else taken_at,
        requests=samples.get(names.REQUESTS.name + "_total") or 0.0,
        predictions=samples.get(names.PREDICTIONS.name + "_total") or 0.0,
        errors=sum(samples.by(names.REQUEST_ERRORS.name + "_total", names.ERROR_TYPE).values()),
        internal_errors=samples.by(names.INTERNAL_ERRORS.name + "_total", names.STAGE),
        task=info[0][0].get("task", "unknown") if info else "unknown",
        features=features,
        outputs=outputs,
        confidence_bounds=bounds,
        confidence_counts=counts,
        confidence_sum=conf_sum,
        performance=samples.by(names.PERFORMANCE.name, names.METRIC),
        fingerprint=profile.fingerprint if profile is not None else None,
        reference_created=samples.get(names.REFERENCE_CREATED.name),
        decisions_exported=decisions,
        notes=tuple(notes),
    )


def monitor_snapshot(monitor: Monitor, now: float | None = None) -> Snapshot:
    """Snapshot a live monitor (it folds first, as a scrape does)."""
    from ..exporters.prometheus import to_prometheus

    metrics = list(to_prometheus(monitor.collect(now)))
    model, version, samples = select_samples(
        metrics, monitor.model, monitor.version, monitor.namespace
    )
    profile = monitor.drift.profile if monitor.drift is not None else monitor.profile
    return snapshot_from_samples(model, version, samples, profile, now)


# --- members --------------------------------------------------------------------------


def _member_names(
    samples: Samples, ratio: str, key: str, profile: ReferenceProfile | None, features: bool
) -> list[str]:
    exported = list(dict.fromkeys(lb[key] for lb, _ in samples.series(ratio) if key in lb))
    if profile is None:
        return exported
    ordered = list(profile.features if features else profile.outputs)
    return [n for n in ordered if n in exported] + [n for n in exported if n not in ordered]


def _prof(profile: ReferenceProfile | None, name: str, features: bool) -> FeatureProfile | None:
    if profile is None:
        return None
    return (profile.features if features else profile.outputs).get(name)


def _member(
    samples: Samples,
    prefix: str,
    key: str,
    name: str,
    prof: FeatureProfile | None,
    decisions: bool,
) -> MemberView:
    match = {key: name}
    shares = _by_bin(samples.by(f"{prefix}_reference_ratio", names.BIN, **match))
    counts = _by_bin(samples.by(f"{prefix}_bin_total", names.BIN, **match))
    if len(counts) < len(shares):
        counts = counts + (0.0,) * (len(shares) - len(counts))
    scores = samples.by(f"{prefix}_drift", names.METHOD, **match)
    pvalues = samples.by(f"{prefix}_drift_pvalue", names.METHOD, **match)
    detected = samples.get(f"{prefix}_drift_detected", **match)
    live = {
        float(q): v for q, v in samples.by(f"{prefix}_quantile", names.QUANTILE, **match).items()
    }
    observations = missing = invalid = missing_detected = None
    if prefix == "feature":
        missing_detected = samples.get("feature_missing_drift_detected", **match)
        observations = samples.get("feature_observations_total", **match)
        missing = _share(samples.get("feature_missing_total", **match), observations)
        invalid = _share(samples.get("feature_invalid_total", **match), observations)
    return MemberView(
        name=name,
        kind=prof.kind if prof is not None else ("numeric" if live else "categorical"),
        decision=_decision(scores, detected, decisions),
        detected=detected,
        pvalues=pvalues,
        scores=scores,
        observations=observations,
        missing_share=missing,
        invalid_share=invalid,
        bin_labels=bin_labels(prof, len(shares)),
        reference_shares=shares,
        current_counts=counts,
        reference_quantiles=_reference_quantiles(prof),
        live_quantiles=dict(sorted(live.items())),
        missing_detected=missing_detected,
    )


def _decision(scores: Mapping[str, float], detected: float | None, decisions: bool) -> str:
    if not scores:
        return NO_DATA
    if decisions:
        if detected is None:
            return NO_DATA
        return DRIFT if detected >= 0.5 else OK
    psi = scores.get("psi", math.nan)
    return DRIFT if psi >= FALLBACK_PSI_DRIFT else OK


def _by_bin(values: Mapping[str, float]) -> tuple[float, ...]:
    return tuple(v for _, v in sorted((int(b), v) for b, v in values.items()))


def _share(part: float | None, whole: float | None) -> float | None:
    if part is None or not whole:
        return None
    return part / whole


def _reference_quantiles(prof: FeatureProfile | None) -> dict[float, float]:
    if prof is None or not prof.quantiles:
        return {}
    return dict(zip(REFERENCE_QUANTILE_PROBS, prof.quantiles, strict=True))


def bin_labels(prof: FeatureProfile | None, n: int) -> tuple[str, ...]:
    """Readable bin names: ``≤ 1.2`` (the upper edge), ``> 3.4`` (the last), or the category."""
    if prof is None or prof.n_bins != n:
        return tuple(f"bin {i}" for i in range(n))
    if prof.kind == "categorical":
        return tuple("other" if c == names.POOLED else c for c in prof.categories)
    edges = [_num(e) for e in prof.edges]
    if not edges:
        return ("all",)
    return (*(f"≤ {e}" for e in edges), f"> {edges[-1]}")


def _num(x: float) -> str:
    return f"{x:.4g}"


def _histogram(samples: Samples, name: str) -> tuple[tuple[float, ...], tuple[float, ...], float]:
    """Bounds, per-bucket (not cumulative) counts and sum of an exported histogram."""
    cumulative = sorted(
        (math.inf if lb["le"] == "+Inf" else float(lb["le"]), v)
        for lb, v in samples.series(f"{name}_bucket")
        if set(lb) == {"le"}
    )
    if not cumulative:
        return (), (), 0.0
    counts, prev = [], 0.0
    for _, c in cumulative:
        counts.append(c - prev)
        prev = c
    bounds = tuple(b for b, _ in cumulative if b != math.inf)
    return bounds, tuple(counts), samples.get(f"{name}_sum") or 0.0
