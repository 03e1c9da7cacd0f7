"""OpenTelemetry observe: observable instruments on a user's ``MeterProvider``.

Split by job from :mod:`modelmon.exporters.otel` (which re-exports the public names):
:class:`ObservableBridge`, one per meter provider, backed by the same families as the
push export; the name mapping table of the docs.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation

from .. import names
from .._internal import registry as monitor_registry
from .._version import __version__ as _SDK_VERSION
from ..names import MetricSpec
from ..points import Point, ScalarPoint

if TYPE_CHECKING:
    pass


# private: the shared error count and number coercion of the translation (one owner)
from .otel_translate import (
    ADDITIVE_GAUGES,
    OBSERVE_STAGE,
    SCOPE_NAME,
    MonitorSource,
    _count_error,
    _number,
    otel_name,
)

# --- observe ----------------------------------------------------------------------------

Snapshot = dict[tuple[str, str], list[Point]]


class ObservableBridge:
    """Observable instruments on one ``MeterProvider``, backed by the monitors' families.

    One instrument per catalogue metric and namespace: counters become observable
    counters, ``requests_in_flight`` an observable up-down counter, other gauges
    observable gauges. The OTel API has no observable histogram, so histograms and
    summaries become two observable counters, ``<name>.count`` and ``<name>.sum``.

    The SDK calls the callbacks in instrument creation order on every collection; the
    first instrument's callback collects all monitors once (folding them), the others
    read that snapshot.
    """

    def __init__(self, meter: Meter, source: MonitorSource = monitor_registry.monitors) -> None:
        self._meter = meter
        self._source = source
        self._lock = threading.Lock()
        self._namespaces: set[str] = set()
        self._snapshot: Snapshot = {}
        self._leader_made = False
        self.closed = False
        self.ensure_namespace(names.DEFAULT_NAMESPACE)
        ref = weakref.ref(self)
        monitor_registry.on(
            monitor_registry.MONITOR_ADDED, lambda monitor: _ensure_weak(ref, monitor.namespace)
        )

    def ensure_namespace(self, namespace: str) -> None:
        """Create the instruments of ``namespace`` (once)."""
        with self._lock:
            if namespace in self._namespaces:
                return
            self._namespaces.add(namespace)
        for spec in names.CATALOGUE:
            self._create(namespace, spec)

    def close(self) -> None:
        """Stop observing: the instruments stay (the API cannot remove them), reporting nothing."""
        self.closed = True
        self._snapshot = {}

    # --- instruments ----------------------------------------------------------------
    def _create(self, namespace: str, spec: MetricSpec) -> None:
        name = otel_name(spec, namespace)
        key = (namespace, spec.name)
        meter = self._meter
        if spec.kind == "exponential_histogram":
            return  # the OTel API has no observable histogram: use export_otel
        if spec.kind in ("histogram", "summary"):
            meter.create_observable_counter(
                name + ".count",
                callbacks=[self._callback(key, _count_of)],
                unit="",
                description=f"Count of {spec.help}",
            )
            meter.create_observable_counter(
                name + ".sum",
                callbacks=[self._callback(key, _sum_of)],
                unit=spec.unit,
                description=f"Sum of {spec.help}",
            )
            return
        if spec.kind == "counter":
            create: Callable[..., Any] = meter.create_observable_counter
        elif spec.name in ADDITIVE_GAUGES:
            create = meter.create_observable_up_down_counter
        else:
            create = meter.create_observable_gauge
        create(
            name, callbacks=[self._callback(key, _value_of)], unit=spec.unit, description=spec.help
        )

    def _callback(
        self, key: tuple[str, str], value_of: Callable[[Point], float | None]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        leader = not self._leader_made
        self._leader_made = True

        def callback(options: CallbackOptions) -> Iterator[Observation]:
            if self.closed:
                return
            if leader:
                self._refresh()
            for point in self._snapshot.get(key, ()):
                value = value_of(point)
                if value is not None:
                    yield Observation(value, dict(point.labels))

        return callback

    def _refresh(self) -> None:
        snapshot: Snapshot = {}
        for monitor in self._source():
            try:
                families = monitor.collect()
            except Exception as exc:
                _count_error(monitor, OBSERVE_STAGE, exc)
                continue
            for family in families:
                snapshot.setdefault((family.namespace, family.spec.name), []).extend(family.points)
        self._snapshot = snapshot


def _ensure_weak(ref: weakref.ref[ObservableBridge], namespace: str) -> None:
    bridge = ref()
    if bridge is not None and not bridge.closed:
        bridge.ensure_namespace(namespace)


def _value_of(point: Point) -> float | None:
    return _number(point.value) if isinstance(point, ScalarPoint) else None


def _count_of(point: Point) -> float | None:
    return None if isinstance(point, ScalarPoint) else int(point.count)


def _sum_of(point: Point) -> float | None:
    return None if isinstance(point, ScalarPoint) else float(point.sum)


_bridges: weakref.WeakKeyDictionary[Any, ObservableBridge] = weakref.WeakKeyDictionary()
_bridges_lock = threading.Lock()


def bridge_for(meter_provider: MeterProvider, version: str = _SDK_VERSION) -> ObservableBridge:
    """The bridge of ``meter_provider`` (made on first use, so instruments are not doubled)."""
    with _bridges_lock:
        bridge = _bridges.get(meter_provider)
        if bridge is None:
            bridge = ObservableBridge(meter_provider.get_meter(SCOPE_NAME, version))
            _bridges[meter_provider] = bridge
        # A provider keeps the first instrument of a name: reopen rather than recreate.
        bridge.closed = False
        return bridge


def name_mapping() -> Mapping[str, str]:
    """Prometheus name -> OTel name for every catalogue metric (default namespace)."""
    return {
        spec.prometheus_name(): spec.otel_name for spec in (*names.CATALOGUE, *names.HTTP_CATALOGUE)
    }


def otel_type(spec: MetricSpec) -> str:
    """How :func:`families_to_metrics_data` exports ``spec``, in words."""
    if spec.kind == "counter":
        return "Sum (monotonic)"
    if spec.name in ADDITIVE_GAUGES:
        return "Sum (non-monotonic)"
    if spec.kind == "gauge":
        return "Gauge"
    if spec.kind == "histogram":
        return "Histogram"
    if spec.kind == "exponential_histogram":
        return "ExponentialHistogram (export_otel only)"
    return "Histogram without bounds (count, sum)"


def mapping_table() -> str:
    """docs/opentelemetry.md's Markdown table: Prometheus name, OTel name, OTel type, unit."""
    lines = ["| Prometheus | OpenTelemetry | OTel type | Unit |", "|---|---|---|---|"]
    for spec in (*names.CATALOGUE, *names.HTTP_CATALOGUE):
        prom = f"`{spec.prometheus_name()}`"
        if spec.kind == "histogram":
            prom += " (`_bucket`, `_count`, `_sum`)"
        elif spec.kind == "summary":
            prom += " (`_count`, `_sum`)"
        unit = f"`{spec.unit}`" if spec.unit else ""
        lines.append(f"| {prom} | `{spec.otel_name}` | {otel_type(spec)} | {unit} |")
    return "\n".join(lines) + "\n"
