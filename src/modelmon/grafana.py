"""Public façade for ``modelmon.grafana.*`` imports; the code lives in :mod:`modelmon.monitoring`.

The package renders more than Grafana (Prometheus rules, rule tests, Alertmanager routing), so it
was renamed; this module re-exports its public names (see CHANGELOG).
"""

from __future__ import annotations

from modelmon.monitoring import (
    MonitoringConfig,
    alert_names,
    dashboard_queries,
    export,
    render_alert_rules,
    render_alertmanager_config,
    render_dashboard,
    render_files,
    render_grafana_provisioning,
    render_prometheus_config,
    render_recording_rules,
    render_rule_tests,
)

__all__ = [
    "MonitoringConfig",
    "alert_names",
    "dashboard_queries",
    "export",
    "render_alert_rules",
    "render_alertmanager_config",
    "render_dashboard",
    "render_files",
    "render_grafana_provisioning",
    "render_prometheus_config",
    "render_recording_rules",
    "render_rule_tests",
]
