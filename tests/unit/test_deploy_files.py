"""Deployment files: YAML round trips, jsonnet evaluation, references that must exist.

promtool checks of the PrometheusRule and the compose Prometheus config live in
``tests/integration/test_deploy_promtool.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelmon.monitoring import MonitoringConfig
from modelmon.monitoring.dashboard import render_dashboard
from modelmon.monitoring.deploy import (
    render_collector_config,
    render_compose,
    render_compose_prometheus,
    render_dashboard_configmap,
    render_prometheus_rule,
)
from modelmon.monitoring.export import export
from modelmon.monitoring.rules import render_alert_rules, render_recording_rules

CONFIGS = [
    MonitoringConfig(),
    MonitoringConfig(namespace="shop", selector='job="api"', runbook_base_url="https://rb.test"),
]


@pytest.fixture(params=CONFIGS, ids=["default", "custom"])
def exported(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[MonitoringConfig, Path]:
    config: MonitoringConfig = request.param
    export(config, tmp_path)
    return config, tmp_path


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_yaml_files_round_trip_to_what_was_rendered(
    exported: tuple[MonitoringConfig, Path],
) -> None:
    config, root = exported
    assert load(root / "kubernetes/prometheus-rule.yml") == render_prometheus_rule(config)
    assert load(root / "kubernetes/dashboard-configmap.yml") == render_dashboard_configmap(config)
    assert load(root / "otel/collector.yml") == render_collector_config()
    assert load(root / "docker-compose.yml") == render_compose()
    assert load(root / "prometheus/prometheus-compose.yml") == render_compose_prometheus()


def test_prometheus_rule_holds_exactly_the_rule_files(
    exported: tuple[MonitoringConfig, Path],
) -> None:
    _, root = exported
    rule = load(root / "kubernetes/prometheus-rule.yml")
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    recording = load(root / "prometheus/recording_rules.yml")["groups"]
    alerts = load(root / "prometheus/alert_rules.yml")["groups"]
    assert rule["spec"]["groups"] == recording + alerts


def test_dashboard_configmap_carries_the_dashboard(exported: tuple[MonitoringConfig, Path]) -> None:
    config, root = exported
    cm = load(root / "kubernetes/dashboard-configmap.yml")
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    (text,) = cm["data"].values()
    assert json.loads(text) == render_dashboard(config)
    assert json.loads(text) == json.loads((root / "dashboards/modelmon.json").read_text())


def _mixin(root: Path, overrides: str = "{}") -> Any:
    jsonnet = pytest.importorskip("_jsonnet", reason="pip install jsonnet")
    snippet = (
        f"local m = (import 'mixin.libsonnet') + {{ _config+:: {overrides} }};"
        "{ rules: m.prometheusRules, alerts: m.prometheusAlerts, dashboards: m.grafanaDashboards }"
    )
    out = jsonnet.evaluate_snippet("test", snippet, jpathdir=[str(root / "mixin")])
    return json.loads(out)


def test_mixin_evaluates_to_the_rendered_rules_and_dashboard(
    exported: tuple[MonitoringConfig, Path],
) -> None:
    config, root = exported
    out = _mixin(root)
    assert out["rules"] == render_recording_rules(config)
    assert out["alerts"] == render_alert_rules(config)
    assert out["dashboards"] == {"modelmon.json": render_dashboard(config)}


def test_mixin_config_changes_what_it_names(exported: tuple[MonitoringConfig, Path]) -> None:
    config, root = exported
    overrides = (
        "{ runbookBaseUrl: 'https://wiki.test/rb', extraAlertLabels: { team: 'ml' },"
        " disabledAlerts: ['ModelmonModelStale'], dashboardUid: 'mm-uid', dashboardTitle: 'MM' }"
    )
    out = _mixin(root, overrides)
    rules = [r for g in out["alerts"]["groups"] for r in g["rules"]]
    expected = [r for g in render_alert_rules(config)["groups"] for r in g["rules"]]
    assert [r["alert"] for r in rules] == [
        r["alert"] for r in expected if r["alert"] != "ModelmonModelStale"
    ]
    for rule in rules:
        assert rule["labels"]["team"] == "ml"
        assert rule["annotations"]["runbook_url"] == (
            f"https://wiki.test/rb#{rule['alert'].lower()}"
        )
    dashboard = out["dashboards"]["modelmon.json"]
    assert (dashboard["uid"], dashboard["title"]) == ("mm-uid", "MM")


@pytest.mark.parametrize("exporter", ["remote_write", "prometheus"])
def test_collector_pipeline_references_defined_components(exporter: str) -> None:
    doc = render_collector_config(exporter=exporter)  # type: ignore[arg-type]
    pipeline = doc["service"]["pipelines"]["metrics"]
    for kind in ("receivers", "processors", "exporters"):
        assert pipeline[kind] and set(pipeline[kind]) <= set(doc[kind]), kind
    protocols = doc["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"].endswith(":4317")
    assert protocols["http"]["endpoint"].endswith(":4318")


def test_compose_mounts_exported_files_and_publishes_on_loopback(
    exported: tuple[MonitoringConfig, Path],
) -> None:
    _, root = exported
    compose = load(root / "docker-compose.yml")
    mounts: dict[str, Path] = {}
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            host, container, _mode = volume.split(":")
            assert (root / host).is_dir(), host
            mounts[container] = root / host
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), port
    # Every file a container is told to read is one the export wrote.
    for service in compose["services"].values():
        for arg in service.get("command", []):
            if "=/etc/" in arg:
                path = arg.split("=", 1)[1]
                folder, name = path.rsplit("/", 1)
                assert (mounts[folder] / name).is_file(), path
    assert set(compose["services"]) == {"prometheus", "alertmanager", "grafana", "otel-collector"}
    # Containers reach each other by service name, not 127.0.0.1.
    (source,) = load(root / "compose/grafana-datasources/prometheus.yml")["datasources"]
    assert source["url"] == "http://prometheus:9090"
    assert "alertmanager:9093" in str(load(root / "prometheus/prometheus-compose.yml"))
    collector = load(root / "otel/collector.yml")
    assert collector["exporters"]["prometheusremotewrite"]["endpoint"].startswith(
        "http://prometheus:9090/"
    )
