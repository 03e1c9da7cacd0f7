"""OpenTelemetry: push modelmon's metrics over OTLP, or observe them from a MeterProvider.

modelmon never calls OTel SDK instruments per prediction (each costs several
microseconds); both paths read the aggregates the fold already keeps.

**OTLP push** (every monitor of the process, on a background thread)::

    import modelmon.otel
    handle = modelmon.otel.export_otel()          # OTEL_EXPORTER_OTLP_* from the environment
    ...
    handle.shutdown()                             # also done at interpreter exit

**An existing MeterProvider** (its readers and exporters decide where data goes)::

    modelmon.otel.register(meter_provider)

Names follow OTel conventions (``modelmon.request.duration`` in seconds,
``modelmon.requests``, ``modelmon.feature.drift``); :func:`name_mapping` gives the
Prometheus name of each.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import metrics as otel_metrics
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter
from opentelemetry.sdk.resources import Resource

from .exporters import otel as _otel
from .exporters import otel_config
from .exporters.otel import (
    DisabledExport,
    ObservableBridge,
    OtelExport,
    instance_id,
    make_resource,
)

OTLP_HTTP_PACKAGE = otel_config.OTLP_HTTP_PACKAGE
EXTRA = otel_config.OTLP_HTTP_EXTRA
GRPC_EXTRA = otel_config.OTLP_GRPC_EXTRA

__all__ = [
    "DisabledExport",
    "ObservableBridge",
    "OtelExport",
    "export_otel",
    "instance_id",
    "make_resource",
    "mapping_table",
    "name_mapping",
    "otlp_grpc_exporter",
    "otlp_http_exporter",
    "register",
]


def otlp_http_exporter() -> MetricExporter:
    """The OTLP/HTTP metric exporter, configured from ``OTEL_EXPORTER_OTLP_*`` variables.

    Raises :class:`~modelmon.MissingExtraError` (naming ``modelmon[otel-exporters]``)
    when the exporter package is not installed.
    """
    return otel_config.otlp_http_exporter()


def otlp_grpc_exporter() -> MetricExporter:
    """The OTLP/gRPC metric exporter, configured from ``OTEL_EXPORTER_OTLP_*`` variables.

    Raises :class:`~modelmon.MissingExtraError` (naming ``modelmon[otel-grpc]``)
    when the exporter package is not installed.
    """
    return otel_config.otlp_grpc_exporter()


def export_otel(
    exporter: MetricExporter | None = None,
    interval_s: float | None = None,
    resource: Resource | None = None,
    *,
    timeout_s: float | None = None,
) -> OtelExport:
    """Push every monitor's metrics to ``exporter`` every ``interval_s``, off the serving threads.

    Configured the standard way: the OpenTelemetry SDK's environment variables apply
    (arguments given here win over them), see :mod:`modelmon.exporters.otel_config`:
    ``OTEL_SDK_DISABLED``, ``OTEL_METRICS_EXPORTER`` (``otlp``, ``console``, ``none``),
    ``OTEL_EXPORTER_OTLP_PROTOCOL`` (``http/protobuf`` or ``grpc``),
    ``OTEL_METRIC_EXPORT_INTERVAL`` / ``_TIMEOUT`` (milliseconds) and every
    ``OTEL_EXPORTER_OTLP_*`` setting of the exporter itself.

    Args:
        exporter: any OTel ``MetricExporter``; by default the one the environment names
            (OTLP over HTTP/protobuf unless told otherwise: install
            ``modelmon[otel-exporters]``, or ``modelmon[otel-grpc]`` for gRPC).
        interval_s: seconds between exports (default ``OTEL_METRIC_EXPORT_INTERVAL``,
            else 15).
        resource: extra resource attributes; ``service.name`` comes from
            ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES`` and a per-process
            ``service.instance.id`` is added, so a collector merges replicas correctly.
        timeout_s: bounds every export and the shutdown, whatever the exporter does
            (default ``OTEL_METRIC_EXPORT_TIMEOUT``, else ``min(interval_s, 10)``).

    Every monitor and the HTTP middleware's metrics are exported. Data is cumulative:
    an export that fails (counted in
    ``modelmon_internal_errors_total{stage="otel_export"}``) loses nothing, the next
    successful one carries the totals. Exporters preferring delta temporality still
    receive cumulative data. The last export runs at interpreter exit (or at
    ``shutdown()``). With ``OTEL_SDK_DISABLED=true`` or ``OTEL_METRICS_EXPORTER=none``
    the returned :class:`DisabledExport` does nothing.

    >>> import io
    >>> from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
    >>> handle = export_otel(ConsoleMetricExporter(out=io.StringIO()), interval_s=30)
    >>> handle.shutdown()
    """
    settings = otel_config.settings_from_env(
        interval_s=interval_s, timeout_s=timeout_s, exporter_given=exporter is not None
    )
    if settings.disabled:
        return DisabledExport(f"{otel_config.SDK_DISABLED}=true", settings.interval_s)
    if not settings.enabled:
        return DisabledExport(f"{otel_config.METRICS_EXPORTER}=none", settings.interval_s)
    if exporter is None:
        exporter = otel_config.make_exporter(settings)
    return OtelExport(
        exporter, interval_s=settings.interval_s, resource=resource, timeout_s=settings.timeout_s
    )


def register(meter_provider: MeterProvider | None = None) -> ObservableBridge:
    """Add observable instruments for modelmon's metrics to ``meter_provider``.

    Uses the global provider when None. Every reader of the provider then sees every
    monitor of the process at each collection (which folds the pending calls first).
    Calling it twice for a provider returns the same bridge.

    What this path carries: counters (observable counters, e.g. ``modelmon.requests``),
    ``modelmon.requests.in_flight`` (observable up-down counter) and all gauges
    (observable gauges: drift, reference ratios, quantiles, performance, timestamps).

    What it cannot carry: histograms and their buckets. The OTel API has no observable
    histogram, so each histogram (latency, batch size, confidence, outcome delay) and
    each summary (regression errors) is exported as two observable counters,
    ``<name>.count`` and ``<name>.sum``: averages and rates work, bucket quantiles and
    exemplars do not. For those use :func:`export_otel` or the Prometheus exposition.
    The resource is the provider's: set ``service.instance.id`` on it yourself (see
    :func:`make_resource`). ``bridge.close()`` makes the instruments report nothing.

    >>> from opentelemetry.sdk.metrics import MeterProvider
    >>> from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    >>> reader = InMemoryMetricReader()
    >>> bridge = register(MeterProvider(metric_readers=[reader]))
    >>> bridge.closed
    False
    """
    provider = otel_metrics.get_meter_provider() if meter_provider is None else meter_provider
    return _otel.bridge_for(provider)


def mapping_table() -> str:
    """The name mapping as a Markdown table (the one on docs/opentelemetry.md)."""
    return _otel.mapping_table()


def name_mapping() -> Mapping[str, str]:
    """Prometheus name -> OTel name of every catalogue metric.

    >>> name_mapping()["modelmon_request_duration_seconds"]
    'modelmon.request.duration'
    """
    return _otel.name_mapping()
