"""Prometheus exposition: one prometheus-client ``Collector`` per registry.

Every monitor attached to a registry is rendered by the same collector, which folds
each monitor before reading it: a scrape sees every call that returned before it.

>>> from prometheus_client import CollectorRegistry, generate_latest
>>> import modelmon
>>> reg = CollectorRegistry()
>>> mon = modelmon.Monitor("doc", "1", registry=reg)
>>> _ = mon.observe({"x": 1.0}, 0.5, latency_s=0.01)
>>> reg.get_sample_value("modelmon_requests_total", {"model": "doc", "version": "1"})
1.0
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Exemplar as PromExemplar
from prometheus_client.utils import floatToGoString

from .. import names
from .._internal import registry as monitor_registry
from .._internal.health import logger
from .._internal.identity import REGISTRY_TARGET
from ..monitor import DEFAULT_REGISTRY
from ..points import Family, HistogramPoint, ScalarPoint, SummaryPoint
from .exposition import PreRendered, TextRenderer, fast_mode

if TYPE_CHECKING:
    from ..monitor import Monitor

# How a collector gathers its monitors' families: ``registry.provided(FAMILY_SOURCE)``,
# :func:`live_families` unless multi-process mode provides its merge.
FamilySource = Callable[[list["Monitor"]], list[Family]]
FAMILY_SOURCE = "prometheus.family_source"


def live_families(monitors: list[Monitor]) -> list[Family]:
    """Every monitor's families from this process only (each monitor folds first)."""
    families: list[Family] = []
    for monitor in monitors:
        families.extend(monitor.collect())
    return families


class UndeclaredCollector:
    """A collector whose metric names are known only when it collects.

    ``describe()`` declares nothing, so a registry neither checks the names for
    duplicates nor calls ``collect()`` at registration.
    """

    def describe(self) -> list[Metric]:
        return []


class ModelmonCollector(UndeclaredCollector):
    """Renders all monitors attached to one registry.

    Holds its monitors weakly: a monitor nobody references any more (a model version
    replaced by the next one) stops being exported and is freed, as after ``close()``.
    When a new version of a model attaches, the older versions' pending calls are
    folded, so a replaced monitor whose last calls are still buffered (a reference
    cycle: records name their monitor) is freed at once rather than by the garbage
    collector. ``{namespace}_monitors`` counts the monitors exported.
    """

    def __init__(self) -> None:
        self._monitors: weakref.WeakValueDictionary[tuple[str, str, str], Monitor] = (
            weakref.WeakValueDictionary()
        )
        self._namespaces: set[str] = set()
        self._lock = threading.Lock()
        self._renderers = (TextRenderer(), TextRenderer(openmetrics=True))
        self._render_lock = threading.Lock()
        # The monitors as weak references, rebuilt on attach/detach or when one is gone:
        # a scrape does not walk the WeakValueDictionary.
        self._snapshot: list[weakref.ref[Monitor]] | None = None

    def attach(self, monitor: Monitor) -> None:
        key = (monitor.namespace, monitor.model, monitor.version)
        with self._lock:
            previous = self._monitors.get(key)
            if previous is not None and previous is not monitor:
                logger.warning(
                    "modelmon: a new monitor for model=%r version=%r replaces the previous one "
                    "in this registry",
                    monitor.model,
                    monitor.version,
                )
            self._monitors[key] = monitor
            self._namespaces.add(monitor.namespace)
            self._snapshot = None
            siblings = [
                m for k, m in self._monitors.items() if k[:2] == key[:2] and m is not monitor
            ]
        del previous
        _release_pending(siblings)

    def detach(self, monitor: Monitor) -> None:
        key = (monitor.namespace, monitor.model, monitor.version)
        with self._lock:
            if self._monitors.get(key) is monitor:
                del self._monitors[key]
            self._snapshot = None

    @property
    def monitors(self) -> list[Monitor]:
        snapshot = self._snapshot
        if snapshot is not None:
            alive = [ref() for ref in snapshot]
            if None not in alive:
                return alive  # type: ignore[return-value]  # None is not in it
        with self._lock:
            monitors = list(self._monitors.values())
            self._snapshot = [weakref.ref(m) for m in monitors]
        return monitors

    def collect(self) -> Iterator[Any]:
        monitors = self.monitors
        source: FamilySource = monitor_registry.provided(FAMILY_SOURCE, live_families)
        families = [*source(monitors), *self._count_families(monitors)]
        if fast_mode():  # generate_text is collecting: hand over the families to render
            yield PreRendered(families, self._renderers, self._render_lock, to_prometheus)
        else:
            yield from to_prometheus(families)

    def _count_families(self, monitors: list[Monitor]) -> list[Family]:
        with self._lock:
            namespaces = sorted(self._namespaces)
        return [
            Family(
                names.MONITORS,
                ns,
                (ScalarPoint(_NO_LABELS, sum(m.namespace == ns for m in monitors)),),
            )
            for ns in namespaces
        ]


_NO_LABELS: dict[str, str] = {}  # one mapping: its text is kept by the renderer


def _release_pending(monitors: list[Monitor]) -> None:
    """Fold ``monitors`` (breaking the buffer's reference cycle); never raises."""
    for monitor in monitors:
        try:
            monitor.fold()
        except Exception as exc:
            monitor.health.error("fold", exc)


_collectors_lock = threading.Lock()
_ATTR = "_modelmon_collector"


def collector_for(registry: CollectorRegistry) -> ModelmonCollector:
    """The modelmon collector of ``registry`` (created and registered on first use).

    Kept as an attribute of the registry (not in a module-level table), so a registry,
    its collector and its monitors are freed together.
    """
    with _collectors_lock:
        collector: ModelmonCollector | None = getattr(registry, _ATTR, None)
        if collector is None:
            collector = ModelmonCollector()
            registry.register(collector)
            setattr(registry, _ATTR, collector)
        return collector


def target_registry(registry: Any) -> CollectorRegistry | None:
    """The registry a ``registry=`` argument names: ``DEFAULT_REGISTRY`` is the global
    ``REGISTRY``, ``None`` (or the deprecated ``False``) none."""
    if registry is None or registry is False:
        return None
    return REGISTRY if registry is DEFAULT_REGISTRY else registry


def _attach(monitor: Monitor) -> None:
    target = target_registry(monitor.registry)
    if target is not None:
        collector_for(target).attach(monitor)


def _detach(monitor: Monitor) -> None:
    target = target_registry(monitor.registry)
    collector = getattr(target, _ATTR, None) if target is not None else None
    if collector is not None:
        collector.detach(monitor)


def install() -> None:
    """Attach every monitor (existing and future) to its registry's collector."""
    monitor_registry.provide(REGISTRY_TARGET, target_registry)
    monitor_registry.on(monitor_registry.MONITOR_ADDED, _attach)
    monitor_registry.on(monitor_registry.MONITOR_CLOSED, _detach)


# --- translation ----------------------------------------------------------------------


def to_prometheus(families: Iterable[Family]) -> Iterator[Metric]:
    """Translate families into prometheus-client metrics, one per name (monitors merged)."""
    merged: dict[str, Metric] = {}
    for family in families:
        if family.spec.kind == "exponential_histogram":
            continue  # no text-format equivalent: these reach Prometheus over OTLP
        metric = merged.get(family.name)
        if metric is None:
            kind = "gauge" if family.spec.kind == "gauge" else family.spec.kind
            metric = Metric(family.name, family.spec.help, kind)
            merged[family.name] = metric
        _add_points(metric, family)
    yield from merged.values()


def _add_points(metric: Metric, family: Family) -> None:
    name = family.name
    for point in family.points:
        labels = dict(point.labels)
        if isinstance(point, ScalarPoint):
            suffix = "_total" if family.spec.kind == "counter" else ""
            metric.add_sample(name + suffix, labels, float(point.value))
        elif isinstance(point, HistogramPoint):
            _add_histogram(metric, name, labels, point)
        elif isinstance(point, SummaryPoint):
            metric.add_sample(name + "_count", labels, float(point.count))
            metric.add_sample(name + "_sum", labels, float(point.sum))


def le_value(bound: float) -> str:
    """A bucket bound as prometheus-client writes ``le`` (``0.5``, ``2.592e+06``, ``+Inf``).

    >>> le_value(0.25), le_value(2592000.0), le_value(float("inf"))
    ('0.25', '2.592e+06', '+Inf')
    """
    return str(floatToGoString(bound))  # type: ignore[no-untyped-call]  # untyped upstream


def _add_histogram(
    metric: Metric, name: str, labels: dict[str, str], point: HistogramPoint
) -> None:
    cumulative = 0
    bounds = (*point.bounds, float("inf"))
    for i, (bound, count) in enumerate(zip(bounds, point.counts, strict=True)):
        cumulative += count
        exemplar = None
        if point.exemplars and point.exemplars[i] is not None:
            ex = point.exemplars[i]
            assert ex is not None
            exemplar = PromExemplar(dict(ex.labels), ex.value, ex.timestamp)
        metric.add_sample(
            name + "_bucket",
            {**labels, "le": le_value(bound)},
            float(cumulative),
            None,
            exemplar,
        )
    metric.add_sample(name + "_count", labels, float(cumulative))
    metric.add_sample(name + "_sum", labels, float(point.sum))


# --- endpoints for users without one --------------------------------------------------


def start_http_server(
    port: int,
    addr: str = "127.0.0.1",
    registry: CollectorRegistry = REGISTRY,
    min_interval: float = 0.25,
) -> Any:
    """Serve ``/metrics`` on ``addr:port`` from a background thread (prometheus-client's server).

    Binds the loopback interface unless ``addr`` says otherwise (``"0.0.0.0"`` for
    every interface: see ``docs/security.md`` before exposing metrics). Concurrent
    scrapes share one collection, at most one every ``min_interval`` seconds.
    """
    from . import serve
    from .gate import GatedRegistry

    return serve.start_http_server(port, addr, GatedRegistry(registry, min_interval))


def make_wsgi_app(registry: CollectorRegistry = REGISTRY) -> Callable[..., Any]:
    """A WSGI app serving the exposition (OpenMetrics negotiated from ``Accept``).

    Text 0.0.4 and OpenMetrics come from modelmon's cached renderer (prometheus-client's bytes).
    """
    from . import serve

    return serve.make_wsgi_app(registry)


def make_asgi_app(registry: CollectorRegistry = REGISTRY) -> Callable[..., Any]:
    """An ASGI app serving the exposition (OpenMetrics negotiated from ``Accept``).

    Text and OpenMetrics from modelmon's cached renderer; collection runs off the loop.
    """
    from . import serve

    return serve.make_asgi_app(registry)
