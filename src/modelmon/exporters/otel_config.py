"""The OpenTelemetry SDK's environment variables, read the way the SDK reads them.

:func:`modelmon.otel.export_otel` configures itself from the variables every
OpenTelemetry SDK documents, so a deployment configured for OTel needs nothing
modelmon-specific. Arguments given in code win over the environment (as in the SDK).

=================================== ==========================================================
``OTEL_SDK_DISABLED``               ``true``: nothing is exported, no thread is started
``OTEL_METRICS_EXPORTER``           ``otlp`` (default), ``console`` or ``none``
``OTEL_EXPORTER_OTLP_PROTOCOL``     ``http/protobuf`` (default) or ``grpc`` (extra ``otel-grpc``)
``OTEL_EXPORTER_OTLP_METRICS_PROTOCOL`` the same, for metrics only (wins over the above)
``OTEL_METRIC_EXPORT_INTERVAL``     milliseconds between exports (modelmon's default: 15000)
``OTEL_METRIC_EXPORT_TIMEOUT``      milliseconds an export may take (default: the smaller of
                                    the interval and 10000)
``OTEL_EXPORTER_OTLP_*``            endpoint, headers, compression, certificates: read by the
                                    OTLP exporter itself
``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES`` the resource (see ``make_resource``)
=================================== ==========================================================

A value the SDK would not understand raises :class:`~modelmon.ConfigurationError` when
``export_otel`` is called, instead of being ignored.

>>> s = settings_from_env({"OTEL_METRIC_EXPORT_INTERVAL": "5000", "OTEL_METRICS_EXPORTER": "none"})
>>> s.interval_s, s.exporter, s.enabled
(5.0, 'none', False)
>>> settings_from_env({"OTEL_METRIC_EXPORT_INTERVAL": "5000"}, interval_s=30).interval_s
30.0
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry.sdk.metrics.export import MetricExporter

from ..errors import ConfigurationError, MissingExtraError

SDK_DISABLED = "OTEL_SDK_DISABLED"
METRICS_EXPORTER = "OTEL_METRICS_EXPORTER"
PROTOCOL = "OTEL_EXPORTER_OTLP_PROTOCOL"
METRICS_PROTOCOL = "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"
EXPORT_INTERVAL = "OTEL_METRIC_EXPORT_INTERVAL"
EXPORT_TIMEOUT = "OTEL_METRIC_EXPORT_TIMEOUT"

HTTP_PROTOBUF = "http/protobuf"
GRPC = "grpc"
EXPORTERS = ("otlp", "console", "none")
PROTOCOLS = (HTTP_PROTOBUF, GRPC)
DEFAULT_INTERVAL_S = 15.0

OTLP_HTTP_PACKAGE = "opentelemetry-exporter-otlp-proto-http"
OTLP_HTTP_EXTRA = "otel-exporters"
OTLP_GRPC_PACKAGE = "opentelemetry-exporter-otlp-proto-grpc"
OTLP_GRPC_EXTRA = "otel-grpc"


@dataclass(frozen=True)
class OtelSettings:
    """What ``export_otel`` does, after arguments and environment are combined."""

    disabled: bool  # OTEL_SDK_DISABLED=true
    exporter: str  # one of EXPORTERS ("custom" when an exporter object was given)
    protocol: str  # one of PROTOCOLS
    interval_s: float
    timeout_s: float | None  # None: the exporter's default rule (min(interval, 10 s))

    @property
    def enabled(self) -> bool:
        """False when nothing is to be exported (SDK disabled, or exporter ``none``)."""
        return not self.disabled and self.exporter != "none"


def settings_from_env(
    environ: Mapping[str, str] | None = None,
    *,
    interval_s: float | None = None,
    timeout_s: float | None = None,
    exporter_given: bool = False,
) -> OtelSettings:
    """Combine arguments (which win) with the ``OTEL_*`` variables of ``environ``."""
    env = os.environ if environ is None else environ
    disabled = env.get(SDK_DISABLED, "").strip().lower() == "true"
    exporter = "custom" if exporter_given else _exporter_name(env)
    protocol = _protocol(env)
    if interval_s is None:
        interval_s = _millis(env, EXPORT_INTERVAL)
    if timeout_s is None:
        timeout_s = _millis(env, EXPORT_TIMEOUT)
    return OtelSettings(
        disabled=disabled,
        exporter=exporter,
        protocol=protocol,
        interval_s=DEFAULT_INTERVAL_S if interval_s is None else float(interval_s),
        timeout_s=timeout_s,
    )


def _exporter_name(env: Mapping[str, str]) -> str:
    raw = env.get(METRICS_EXPORTER, "").strip().lower() or "otlp"
    chosen = [v.strip() for v in raw.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in EXPORTERS]
    if unknown:
        hint = " (modelmon serves Prometheus itself: see modelmon.exporters.prometheus)"
        raise ConfigurationError(
            f"{METRICS_EXPORTER}={raw!r}: modelmon supports {', '.join(EXPORTERS)}"
            + (hint if "prometheus" in unknown else "")
        )
    kept = [v for v in dict.fromkeys(chosen) if v != "none"]
    if len(kept) > 1:
        raise ConfigurationError(
            f"{METRICS_EXPORTER}={raw!r}: modelmon exports to one exporter; "
            "pass your own MetricExporter to export_otel to fan out"
        )
    return kept[0] if kept else "none"


def _protocol(env: Mapping[str, str]) -> str:
    for key in (METRICS_PROTOCOL, PROTOCOL):
        raw = env.get(key, "").strip().lower()
        if raw:
            if raw not in PROTOCOLS:
                raise ConfigurationError(
                    f"{key}={raw!r}: modelmon supports {' and '.join(PROTOCOLS)} "
                    "(the Python OTLP exporters have no http/json)"
                )
            return raw
    return HTTP_PROTOBUF


def _millis(env: Mapping[str, str], key: str) -> float | None:
    raw = env.get(key, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ConfigurationError(f"{key}={raw!r}: expected a positive number of milliseconds")
    return value / 1000.0


def make_exporter(settings: OtelSettings) -> MetricExporter:
    """The exporter ``settings`` names (OTLP over HTTP or gRPC, or the console)."""
    if settings.exporter == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return ConsoleMetricExporter()
    if settings.exporter != "otlp":
        raise ConfigurationError(f"no exporter to build for {settings.exporter!r}")
    if settings.protocol == GRPC:
        return otlp_grpc_exporter()
    return otlp_http_exporter()


def otlp_http_exporter() -> MetricExporter:
    """The OTLP/HTTP (protobuf) metric exporter, configured from ``OTEL_EXPORTER_OTLP_*``."""
    return _otlp_exporter("http", OTLP_HTTP_PACKAGE, OTLP_HTTP_EXTRA)


def otlp_grpc_exporter() -> MetricExporter:
    """The OTLP/gRPC metric exporter, configured from ``OTEL_EXPORTER_OTLP_*``."""
    return _otlp_exporter("grpc", OTLP_GRPC_PACKAGE, OTLP_GRPC_EXTRA)


def _otlp_exporter(transport: str, package: str, extra: str) -> MetricExporter:
    import importlib

    try:
        module = importlib.import_module(
            f"opentelemetry.exporter.otlp.proto.{transport}.metric_exporter"
        )
    except ImportError as exc:
        raise MissingExtraError(package, extra) from exc
    exporter: MetricExporter = module.OTLPMetricExporter()
    return exporter
