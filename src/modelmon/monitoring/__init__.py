"""Monitoring as code: Grafana dashboard, Prometheus rules and Alertmanager routing.

Everything is generated from :mod:`modelmon.names` and one :class:`MonitoringConfig`:

>>> from modelmon.monitoring import MonitoringConfig, render_files
>>> files = render_files(MonitoringConfig(namespace="modelmon", availability_slo=0.995))
>>> sorted(files)[0]
'alertmanager/alertmanager.yml'
"""

from __future__ import annotations

from modelmon.monitoring.alertmanager import render_alertmanager_config
from modelmon.monitoring.config import MonitoringConfig
from modelmon.monitoring.dashboard import dashboard_queries, render_dashboard
from modelmon.monitoring.export import (
    export,
    render_files,
    render_grafana_provisioning,
    render_prometheus_config,
)
from modelmon.monitoring.rule_tests import render_rule_tests
from modelmon.monitoring.rules import alert_names, render_alert_rules, render_recording_rules

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
