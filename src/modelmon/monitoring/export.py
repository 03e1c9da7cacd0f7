"""Render every monitoring file for a config and write them under one directory.

>>> files = render_files(MonitoringConfig())
>>> "prometheus/alert_rules.yml" in files and "dashboards/modelmon.json" in files
True
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modelmon.monitoring import _yaml
from modelmon.monitoring.alertmanager import render_alertmanager_config
from modelmon.monitoring.config import MonitoringConfig
from modelmon.monitoring.dashboard import render_dashboard
from modelmon.monitoring.deploy import render_deploy_files
from modelmon.monitoring.rule_tests import render_rule_tests
from modelmon.monitoring.rules import render_alert_rules, render_recording_rules

_AM_NOTE = (
    "# The receivers are webhook placeholders on 127.0.0.1: replace them with your pager,\n"
    "# chat and ticket integrations.\n"
)


def to_yaml(data: dict[str, Any], note: str = "") -> str:
    """Block YAML with the generated-file header."""
    return _yaml.HEADER + note + _yaml.dump(data)


def to_json(data: Any) -> str:
    """Indented JSON with sorted keys (stable diffs)."""
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def render_prometheus_config(
    config: MonitoringConfig,
    targets: Sequence[str] = ("127.0.0.1:8000",),
    alertmanager: str = "127.0.0.1:9093",
    scrape_interval: str = "15s",
    evaluation_interval: str = "15s",
    rule_files: Sequence[str] = ("recording_rules.yml", "alert_rules.yml"),
) -> dict[str, Any]:
    """A Prometheus configuration scraping ``targets`` with the generated rules (demo)."""
    job = next((v for k, op, v in config.matchers if k == "job" and op == "="), config.namespace)
    return {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
        "rule_files": list(rule_files),
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [
            {
                "job_name": job,
                "metrics_path": "/metrics",
                "static_configs": [{"targets": list(targets)}],
            }
        ],
    }


def render_grafana_provisioning(
    prometheus_url: str = "http://127.0.0.1:9090",
    dashboards_path: str = "/var/lib/grafana/dashboards/modelmon",
) -> dict[str, dict[str, Any]]:
    """Grafana file provisioning: the Prometheus datasource and the dashboard provider."""
    return {
        "datasources/prometheus.yml": {
            "apiVersion": 1,
            "datasources": [
                {
                    "name": "Prometheus",
                    "type": "prometheus",
                    "uid": "prometheus",
                    "access": "proxy",
                    "url": prometheus_url,
                    "isDefault": True,
                    "jsonData": {"timeInterval": "15s"},
                }
            ],
        },
        "dashboards/modelmon.yml": {
            "apiVersion": 1,
            "providers": [
                {
                    "name": "modelmon",
                    "folder": "modelmon",
                    "type": "file",
                    "disableDeletion": False,
                    "allowUiUpdates": True,
                    "options": {"path": dashboards_path, "foldersFromFilesStructure": False},
                }
            ],
        },
    }


def render_files(config: MonitoringConfig, include_tests: bool = True) -> dict[str, str]:
    """Every file's text by path relative to the export directory, in a stable order."""
    recording, alerts = render_recording_rules(config), render_alert_rules(config)
    files = {
        "dashboards/modelmon.json": to_json(render_dashboard(config)),
        "prometheus/recording_rules.yml": to_yaml(recording),
        "prometheus/recording_rules.json": to_json(recording),
        "prometheus/alert_rules.yml": to_yaml(alerts),
        "prometheus/alert_rules.json": to_json(alerts),
        "prometheus/prometheus.yml": to_yaml(render_prometheus_config(config)),
        "alertmanager/alertmanager.yml": to_yaml(render_alertmanager_config(config), _AM_NOTE),
    }
    for path, doc in render_grafana_provisioning().items():
        files[f"provisioning/{path}"] = to_yaml(doc)
    files.update(render_deploy_files(config))
    if include_tests:
        for name, doc in render_rule_tests(config).items():
            files[f"prometheus/tests/{name}"] = to_yaml(doc)
    return dict(sorted(files.items()))


def export(
    config: MonitoringConfig, directory: str | Path, include_tests: bool = True
) -> list[Path]:
    """Write every file under ``directory`` (created if needed); returns the paths written."""
    root = Path(directory)
    written = []
    for relative, text in render_files(config, include_tests).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
