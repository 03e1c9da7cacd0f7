"""OpenTelemetry export: modelmon's families as OTel metrics, off the serving threads.

Three parts, like :mod:`modelmon.exporters.prometheus`:

* **translation** (:func:`families_to_metrics_data`): exporter-neutral families become
  an OTel ``MetricsData`` with cumulative temporality. Counters are monotonic sums;
  ``requests_in_flight`` (additive across processes) is a non-monotonic sum; other
  gauges are gauges; histograms are explicit-bucket histograms; summaries (count and
  sum, no quantiles) are histograms without bounds, i.e. one ``(-Inf, +Inf)`` bucket,
  so an OTel Collector's Prometheus exporter renders them with the same
  ``_count``/``_sum`` names the Prometheus exposition uses. modelmon keeps buckets, not
  extremes: a histogram's ``min``/``max`` are ``None``, which the OTLP encoder leaves
  unset (the protocol's "unknown") rather than sending made-up values.
* **push** (:class:`OtelExport`): a daemon thread collects every live monitor each
  ``interval_s`` and hands the data to an OTel ``MetricExporter``. Failures are counted
  in ``internal_errors_total{stage="otel_export"}`` of every monitor whose data was lost
  and logged at most once a minute; values are cumulative, so the next successful
  export carries everything.
* **observe** (:class:`ObservableBridge`): observable instruments on a user's
  ``MeterProvider``, backed by the same families.

Names are ``spec.otel_name`` (``modelmon.request.duration``); a monitor with another
namespace replaces the leading ``modelmon``. Units come from ``spec.unit``.

>>> from opentelemetry.sdk.resources import Resource
>>> from modelmon import names
>>> from modelmon.points import Family, ScalarPoint
>>> fam = Family(names.REQUESTS, "modelmon", (ScalarPoint({"model": "m", "version": "1"}, 3),))
>>> data = families_to_metrics_data([fam], Resource({}), 0, 1)
>>> metric = data.resource_metrics[0].scope_metrics[0].metrics[0]
>>> metric.name, metric.data.is_monotonic, metric.data.data_points[0].value
('modelmon.requests', True, 3)
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk import resources as sdk_resources
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.resources import Resource

from .._internal import registry as monitor_registry
from .._internal.health import logger
from ..errors import ConfigurationError
from ..points import (
    Family,
)
from .otel_observe import (
    ObservableBridge,
    Snapshot,
    bridge_for,
    mapping_table,
    name_mapping,
    otel_type,
)

# private: the error count is shared by the push (here) and the observe part
from .otel_translate import (
    ADDITIVE_GAUGES,
    CUMULATIVE,
    OBSERVE_STAGE,
    SCOPE,
    SCOPE_NAME,
    SERVICE_INSTANCE_ID,
    SPAN_ID_LABEL,
    STAGE,
    TRACE_ID_LABEL,
    FamilySource,
    MonitorSource,
    _count_error,
    families_to_metrics_data,
    otel_name,
    to_otel_metrics,
)

if TYPE_CHECKING:
    from ..monitor import Monitor

__all__ = [
    "ADDITIVE_GAUGES",
    "CUMULATIVE",
    "OBSERVE_STAGE",
    "SCOPE",
    "SCOPE_NAME",
    "SERVICE_INSTANCE_ID",
    "SPAN_ID_LABEL",
    "STAGE",
    "TRACE_ID_LABEL",
    "DisabledExport",
    "FamilySource",
    "MonitorSource",
    "ObservableBridge",
    "OtelExport",
    "OtelExportFailed",
    "Snapshot",
    "bridge_for",
    "families_to_metrics_data",
    "instance_id",
    "make_resource",
    "mapping_table",
    "name_mapping",
    "otel_name",
    "otel_type",
    "to_otel_metrics",
]

# --- resource ---------------------------------------------------------------------------

_instance_id = str(uuid.uuid4())


def _new_instance_id() -> None:
    global _instance_id
    _instance_id = str(uuid.uuid4())


# A forked worker is a new OTel instance: its cumulative series must not be merged with
# the parent's (nor with its siblings') by a collector.
monitor_registry.on(monitor_registry.AFTER_FORK, _new_instance_id)


def instance_id() -> str:
    """This process's ``service.instance.id``: a uuid4, new in every forked child.

    Recent OTel SDKs make one per process themselves (``ServiceInstanceIdResourceDetector``);
    it is used then, so modelmon's data and the application's own OTel data agree.
    """
    detector = getattr(sdk_resources, "ServiceInstanceIdResourceDetector", None)
    if detector is not None:
        return str(detector().detect().attributes[SERVICE_INSTANCE_ID])
    return _instance_id


def make_resource(resource: Resource | None = None) -> Resource:
    """The OTel resource: environment, then ``resource``, then ``service.instance.id``.

    ``Resource.create`` reads ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``;
    attributes of ``resource`` take precedence over them. A ``service.instance.id``
    given by either is kept (then it is the user's job to make it unique per process);
    otherwise this process's :func:`instance_id` is set.

    >>> make_resource(Resource({"service.name": "scoring"})).attributes["service.name"]
    'scoring'
    """
    merged = Resource.create()
    if resource is not None:
        merged = merged.merge(resource)
    if not _user_instance_id(resource):
        merged = merged.merge(Resource({SERVICE_INSTANCE_ID: instance_id()}))
    return merged


def _user_instance_id(resource: Resource | None) -> bool:
    if resource is not None and SERVICE_INSTANCE_ID in resource.attributes:
        return True
    return SERVICE_INSTANCE_ID in sdk_resources.OTELResourceDetector().detect().attributes


# --- push -------------------------------------------------------------------------------


class OtelExportFailed(RuntimeError):
    """The exporter answered ``MetricExportResult.FAILURE``."""


class OtelExport:
    """A running push of every monitor's aggregates to an OTel ``MetricExporter``.

    Made by :func:`modelmon.otel.export_otel`. A daemon thread exports every
    ``interval_s``; :meth:`shutdown` (also run at interpreter exit) stops it after a
    last export. A forked child restarts the thread with a new ``service.instance.id``.

    >>> import io
    >>> from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
    >>> handle = OtelExport(ConsoleMetricExporter(out=io.StringIO()), interval_s=60)
    >>> handle.force_flush()
    True
    >>> handle.shutdown()
    """

    def __init__(
        self,
        exporter: MetricExporter,
        interval_s: float = 15.0,
        resource: Resource | None = None,
        timeout_s: float | None = None,
        source: MonitorSource = monitor_registry.monitors,
        extra_sources: FamilySource = monitor_registry.sources,
    ) -> None:
        if not interval_s > 0:
            raise ConfigurationError(f"interval_s must be positive, got {interval_s!r}")
        if timeout_s is not None and not timeout_s > 0:
            raise ConfigurationError(f"timeout_s must be positive or None, got {timeout_s!r}")
        if not callable(getattr(exporter, "export", None)):
            raise ConfigurationError(
                f"exporter must be an OpenTelemetry MetricExporter, got {type(exporter).__name__}"
            )
        self.exporter = exporter
        self.interval_s = float(interval_s)
        self.timeout_millis = 1000.0 * (timeout_s if timeout_s else min(self.interval_s, 10.0))
        self._user_resource = resource
        self._resource: tuple[str, Resource] | None = None
        self._source = source
        self._extra_sources = extra_sources
        self._start_ns: int | None = None
        self._created_ns = time.time_ns()
        self._is_shutdown = False
        # Built now, not at the first export: the SDK's resource detection starts a
        # thread pool, which Python refuses once it is shutting down (the last export
        # of a short script runs at interpreter exit).
        self.resource()
        self._init_threading()
        atexit.register(self.shutdown)
        method = weakref.WeakMethod(self._after_fork_in_child)
        monitor_registry.on(monitor_registry.AFTER_FORK, lambda: _call_weak(method))

    def _init_threading(self) -> None:
        self._export_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="modelmon-otel-export", daemon=True)
        self._thread.start()

    def _after_fork_in_child(self) -> None:
        # Locks held by the parent's export thread at fork time would never be released
        # here, and the thread itself did not survive: start afresh.
        if not self._is_shutdown:
            self._init_threading()

    def _run(self) -> None:
        # A forked child has its own service.instance.id: build its resource now, on this
        # thread (not in the at-fork hook, not at interpreter exit, see __init__).
        with contextlib.suppress(Exception):
            self.resource()
        while not self._stop.wait(self.interval_s):
            self._export_safely()

    def _export_safely(self, seconds: float | None = None) -> bool:
        try:
            return self._export(seconds)
        except Exception as exc:  # the export thread must survive anything
            logger.warning("modelmon: OpenTelemetry export crashed: %r", exc, exc_info=exc)
            return False

    # --- one export -----------------------------------------------------------------
    def _export(self, seconds: float | None = None) -> bool:
        with self._export_lock:
            monitors = self._source()
            families, included = self._collect(monitors)
            extra, sources = self._collect(self._extra_sources())
            families.extend(extra)
            # HTTP metrics only: a failure is counted where they keep their health.
            counted: Sequence[Any] = included or sources
            if not families:
                return True
            try:
                data = families_to_metrics_data(
                    families, self.resource(), self._start_time_ns(included), time.time_ns()
                )
                result = self._bounded(
                    lambda: self.exporter.export(data, timeout_millis=self.timeout_millis),
                    self.timeout_millis / 1000.0 if seconds is None else seconds,
                )
            except Exception as exc:
                self._failed(counted, exc)
                return False
            if result is not MetricExportResult.SUCCESS:
                self._failed(counted, OtelExportFailed(f"exporter returned {result!r}"))
                return False
            return True

    def _bounded(self, call: Callable[[], Any], seconds: float, concurrent: bool = False) -> Any:
        """``call()`` on a helper thread, waiting at most ``seconds``.

        Exporters may retry well past the ``timeout_millis`` they are given (the OTLP
        HTTP exporter backs off for up to its own 10 s): the wait, not the exporter,
        bounds an export. While a timed-out call is still running no other is started
        (raises TimeoutError at once), so slow collectors never pile up threads.
        """
        running = getattr(self, "_in_call", None)
        if not concurrent and running is not None and running.is_alive():
            raise TimeoutError("the previous export is still running")
        box: list[Any] = []

        def run() -> None:
            try:
                box.append((True, call()))
            except BaseException as exc:
                box.append((False, exc))

        thread = threading.Thread(target=run, name="modelmon-otel-call", daemon=True)
        if not concurrent:
            self._in_call = thread
        thread.start()
        thread.join(max(seconds, 0.0))
        if not box:
            raise TimeoutError(f"export did not finish within {seconds:g} s")
        ok, value = box[0]
        if not ok:
            raise value
        return value

    @staticmethod
    def _collect(sources: Iterable[Any]) -> tuple[list[Family], list[Any]]:
        """Families of every source that collects; a failing one is counted and left out."""
        families: list[Family] = []
        included: list[Any] = []
        for source in sources:
            try:
                families.extend(source.collect())
            except Exception as exc:
                _count_error(source, STAGE, exc)
                continue
            included.append(source)
        return families, included

    def _failed(self, monitors: Sequence[Monitor], exc: BaseException) -> None:
        for monitor in monitors:
            _count_error(monitor, STAGE, exc)

    def _start_time_ns(self, monitors: Sequence[Monitor]) -> int:
        """Fixed at the first export: the earliest load of a monitor (or of this handle)."""
        if self._start_ns is None:
            loaded = [int(m.loaded_at * 1e9) for m in monitors]
            self._start_ns = min([self._created_ns, *loaded])
        return self._start_ns

    def resource(self) -> Resource:
        """The resource sent with every export (rebuilt when the process forked)."""
        current = instance_id()
        if self._resource is None or self._resource[0] != current:
            self._resource = (current, make_resource(self._user_resource))
        return self._resource[1]

    # --- public ---------------------------------------------------------------------
    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Export now (on the calling thread); True when the exporter accepted the data."""
        if self._is_shutdown:
            return False
        return self._export_safely() and bool(self.exporter.force_flush(timeout_millis))

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        """Stop the thread, export one last time and shut the exporter down (idempotent).

        Takes at most ``min(timeout_millis, timeout_s)`` in all (the configured export
        timeout also bounds the exit of the process, through ``atexit``).
        """
        with self._state_lock:
            if self._is_shutdown:
                return
            self._is_shutdown = True
        deadline = time.monotonic() + min(timeout_millis, self.timeout_millis) / 1000.0
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(max(deadline - time.monotonic(), 0.0))
        if not self._thread.is_alive() or self._thread is threading.current_thread():
            self._export_safely(max(deadline - time.monotonic(), 0.0))  # the last export
        try:
            remaining = max(deadline - time.monotonic(), 0.0)
            self._bounded(
                lambda: self.exporter.shutdown(timeout_millis=1000.0 * remaining),
                remaining,
                concurrent=True,  # also (and above all) when a stuck export still runs
            )
        except Exception as exc:
            logger.warning("modelmon: OpenTelemetry exporter shutdown failed: %r", exc)
        atexit.unregister(self.shutdown)

    @property
    def is_shutdown(self) -> bool:
        return self._is_shutdown

    def __repr__(self) -> str:
        state = "shut down" if self._is_shutdown else f"every {self.interval_s:g}s"
        return f"OtelExport({type(self.exporter).__name__}, {state})"


class DisabledExport(OtelExport):
    """What ``export_otel`` returns when the environment turns exporting off.

    ``OTEL_SDK_DISABLED=true`` or ``OTEL_METRICS_EXPORTER=none``: no thread, no
    collection, no exporter; :meth:`force_flush` succeeds with nothing to do.
    ``reason`` names the variable.
    """

    def __init__(self, reason: str, interval_s: float = 15.0) -> None:
        self.reason = reason
        self.exporter = _NoExporter()
        self.interval_s = float(interval_s)
        self.timeout_millis = 0.0
        self._is_shutdown = False

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return not self._is_shutdown

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        self._is_shutdown = True

    def resource(self) -> Resource:
        return Resource({})

    def __repr__(self) -> str:
        return f"OtelExport(disabled: {self.reason})"


class _NoExporter(MetricExporter):
    """Accepts and drops everything (the exporter of a :class:`DisabledExport`)."""

    def __init__(self) -> None:
        super().__init__()

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None


def _call_weak(method: weakref.WeakMethod[Callable[[], None]]) -> None:
    bound = method()
    if bound is not None:
        bound()
