"""Ready-made deployment files, rendered from the same source as the rules and dashboard.

* ``otel/collector.yml``: an OpenTelemetry Collector taking OTLP (gRPC 4317, HTTP 4318)
  and writing to Prometheus with remote write (exponential histograms become native
  histograms), or serving a Prometheus endpoint (``exporter="prometheus"``).
* ``kubernetes/prometheus-rule.yml``: a ``PrometheusRule`` (Prometheus Operator) holding
  the recording and alerting rules; ``kubernetes/dashboard-configmap.yml``: the
  dashboard in a ``ConfigMap`` labelled for Grafana's dashboard sidecar.
* ``docker-compose.yml`` (+ ``prometheus/prometheus-compose.yml``): Prometheus,
  Alertmanager, Grafana and the Collector for a local stack, ports on 127.0.0.1.
* ``mixin/mixin.libsonnet``: a monitoring mixin (``prometheusRules``,
  ``prometheusAlerts``, ``grafanaDashboards``) with a ``_config`` to override.

>>> files = render_deploy_files(MonitoringConfig())
>>> "docker-compose.yml" in files and "mixin/mixin.libsonnet" in files
True
"""

from __future__ import annotations

import json
from typing import Any, Literal

from modelmon.monitoring import _yaml
from modelmon.monitoring.config import MonitoringConfig
from modelmon.monitoring.dashboard import render_dashboard
from modelmon.monitoring.rules import render_alert_rules, render_recording_rules

OTLP_GRPC_PORT, OTLP_HTTP_PORT, COLLECTOR_METRICS_PORT = 4317, 4318, 8889
IMAGES = {
    "prometheus": "prom/prometheus:v2.53.0",
    "alertmanager": "prom/alertmanager:v0.27.0",
    "grafana": "grafana/grafana:11.1.0",
    "otel-collector": "otel/opentelemetry-collector-contrib:0.104.0",
}
# Inside a container a listener must take every interface to be reachable from the
# other containers; docker-compose publishes each port on the host's 127.0.0.1 only.
_ANY = "0.0.0.0"


def render_collector_config(
    prometheus_url: str = "http://prometheus:9090",
    exporter: Literal["remote_write", "prometheus"] = "remote_write",
) -> dict[str, Any]:
    """An OTel Collector configuration: OTLP in, Prometheus out.

    ``remote_write`` pushes to ``prometheus_url`` (Prometheus started with
    ``--web.enable-remote-write-receiver``; ``--enable-feature=native-histograms`` keeps
    exponential histograms). ``prometheus`` serves ``:8889/metrics`` for Prometheus to
    scrape with ``honor_labels: true`` (``job`` from ``service.name``, ``instance`` from
    ``service.instance.id``); series of a source that stopped pushing expire after 5m.
    """
    exporters: dict[str, Any]
    if exporter == "remote_write":
        name = "prometheusremotewrite"
        exporters = {
            name: {
                "endpoint": prometheus_url.rstrip("/") + "/api/v1/write",
                "resource_to_telemetry_conversion": {"enabled": False},
                "target_info": {"enabled": True},
            }
        }
    else:
        name = "prometheus"
        exporters = {
            name: {
                "endpoint": f"{_ANY}:{COLLECTOR_METRICS_PORT}",
                "metric_expiration": "5m",
                "resource_to_telemetry_conversion": {"enabled": False},
            }
        }
    return {
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": f"{_ANY}:{OTLP_GRPC_PORT}"},
                    "http": {"endpoint": f"{_ANY}:{OTLP_HTTP_PORT}"},
                }
            }
        },
        "processors": {"batch": {}},
        "exporters": exporters,
        "service": {
            "pipelines": {
                "metrics": {"receivers": ["otlp"], "processors": ["batch"], "exporters": [name]}
            }
        },
    }


def render_prometheus_rule(config: MonitoringConfig, name: str = "modelmon") -> dict[str, Any]:
    """The recording and alerting rules as a Prometheus Operator ``PrometheusRule``."""
    groups = render_recording_rules(config)["groups"] + render_alert_rules(config)["groups"]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": f"{name}-rules", "labels": {"app.kubernetes.io/name": name}},
        "spec": {"groups": groups},
    }


def render_dashboard_configmap(config: MonitoringConfig, name: str = "modelmon") -> dict[str, Any]:
    """The dashboard in a ``ConfigMap`` that Grafana's sidecar picks up (``grafana_dashboard``)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"{name}-dashboard",
            "labels": {"grafana_dashboard": "1", "app.kubernetes.io/name": name},
        },
        "data": {f"{name}.json": json.dumps(render_dashboard(config), indent=2, sort_keys=True)},
    }


def render_compose_prometheus(scrape_interval: str = "15s") -> dict[str, Any]:
    """Prometheus for docker-compose: the rules beside it, Alertmanager by service name.

    It scrapes an app on the host (``host.docker.internal:8000``) and receives pushed
    data from the Collector by remote write.
    """
    return {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "rule_files": ["recording_rules.yml", "alert_rules.yml"],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": ["alertmanager:9093"]}]}]},
        "scrape_configs": [
            {
                "job_name": "modelmon",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": ["host.docker.internal:8000"]}],
            }
        ],
    }


def render_compose() -> dict[str, Any]:
    """A docker-compose file for the local stack, reading the exported files in place."""
    local = "127.0.0.1"
    return {
        "services": {
            "prometheus": {
                "image": IMAGES["prometheus"],
                "command": [
                    "--config.file=/etc/prometheus/prometheus-compose.yml",
                    "--web.enable-remote-write-receiver",
                    "--enable-feature=native-histograms",
                ],
                "volumes": ["./prometheus:/etc/prometheus:ro"],
                "ports": [f"{local}:9090:9090"],
                "extra_hosts": ["host.docker.internal:host-gateway"],
            },
            "alertmanager": {
                "image": IMAGES["alertmanager"],
                "command": ["--config.file=/etc/alertmanager/alertmanager.yml"],
                "volumes": ["./alertmanager:/etc/alertmanager:ro"],
                "ports": [f"{local}:9093:9093"],
            },
            "grafana": {
                "image": IMAGES["grafana"],
                "environment": {"GF_AUTH_ANONYMOUS_ENABLED": "true"},
                "volumes": [
                    # The datasource by service name (provisioning/ points at 127.0.0.1).
                    "./compose/grafana-datasources:/etc/grafana/provisioning/datasources:ro",
                    "./provisioning/dashboards:/etc/grafana/provisioning/dashboards:ro",
                    "./dashboards:/var/lib/grafana/dashboards/modelmon:ro",
                ],
                "ports": [f"{local}:3000:3000"],
            },
            "otel-collector": {
                "image": IMAGES["otel-collector"],
                "command": ["--config=/etc/otelcol/collector.yml"],
                "volumes": ["./otel:/etc/otelcol:ro"],
                "ports": [
                    f"{local}:{OTLP_GRPC_PORT}:{OTLP_GRPC_PORT}",
                    f"{local}:{OTLP_HTTP_PORT}:{OTLP_HTTP_PORT}",
                ],
                "depends_on": ["prometheus"],
            },
        }
    }


MIXIN_TEMPLATE = """// Generated by `modelmon grafana export`; do not edit by hand.
// A monitoring mixin: import it and override _config, e.g.
//   (import 'mixin.libsonnet') + { _config+:: { runbookBaseUrl: 'https://wiki/runbooks' } }
local rendered = {
  recording: %(recording)s,
  alerts: %(alerts)s,
  dashboard: %(dashboard)s,
  runbookBaseUrl: %(runbook)s,
};
{
  _config+:: {
    // Where each alert's runbook_url points (the alert name in lower case is the anchor).
    runbookBaseUrl: rendered.runbookBaseUrl,
    // Labels added to every alert (e.g. { team: 'ml-platform' }).
    extraAlertLabels: {},
    // Alert rules to leave out, by name.
    disabledAlerts: [],
    dashboardUid: rendered.dashboard.uid,
    dashboardTitle: rendered.dashboard.title,
  },

  local config = self._config,
  local withConfig(rule) = rule {
    labels+: config.extraAlertLabels,
    annotations+: {
      runbook_url: std.strReplace(rule.annotations.runbook_url, rendered.runbookBaseUrl,
                                  config.runbookBaseUrl),
    },
  },

  prometheusRules+:: rendered.recording,
  prometheusAlerts+:: {
    groups: [
      group { rules: [withConfig(r) for r in group.rules
                      if !std.member(config.disabledAlerts, r.alert)] }
      for group in rendered.alerts.groups
    ],
  },
  grafanaDashboards+:: {
    'modelmon.json': rendered.dashboard { uid: config.dashboardUid, title: config.dashboardTitle },
  },
}
"""


def render_mixin(config: MonitoringConfig) -> str:
    """The jsonnet mixin: the rendered rules and dashboard (JSON is jsonnet) and ``_config``."""

    def js(data: Any) -> str:
        return json.dumps(data, indent=2, sort_keys=True).replace("\n", "\n  ")

    return MIXIN_TEMPLATE % {
        "recording": js(render_recording_rules(config)),
        "alerts": js(render_alert_rules(config)),
        "dashboard": js(render_dashboard(config)),
        "runbook": json.dumps(config.runbook_base_url),
    }


def render_deploy_files(config: MonitoringConfig) -> dict[str, str]:
    """Every deployment file's text by path relative to the export directory."""

    def yml(data: dict[str, Any]) -> str:
        return _yaml.HEADER + _yaml.dump(data)

    from modelmon.monitoring.export import render_grafana_provisioning  # (imports this module)

    datasource = render_grafana_provisioning(prometheus_url="http://prometheus:9090")
    return {
        "compose/grafana-datasources/prometheus.yml": yml(datasource["datasources/prometheus.yml"]),
        "docker-compose.yml": yml(render_compose()),
        "kubernetes/dashboard-configmap.yml": yml(render_dashboard_configmap(config)),
        "kubernetes/prometheus-rule.yml": yml(render_prometheus_rule(config)),
        "mixin/mixin.libsonnet": render_mixin(config),
        "otel/collector.yml": yml(render_collector_config()),
        "otel/collector-prometheus-exporter.yml": yml(
            render_collector_config(exporter="prometheus")
        ),
        "prometheus/prometheus-compose.yml": yml(render_compose_prometheus()),
    }
