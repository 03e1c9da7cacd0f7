"""The generated dashboard, rules, routing and rule tests: structure, names, determinism."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon

from modelmon import names
from modelmon._cli import grafana as grafana_cli
from modelmon.errors import ConfigurationError
from modelmon.monitoring import (
    MonitoringConfig,
    alert_names,
    dashboard_queries,
    render_alert_rules,
    render_alertmanager_config,
    render_dashboard,
    render_files,
    render_recording_rules,
    render_rule_tests,
)
from modelmon.monitoring._yaml import dump
from modelmon.monitoring.config import parse_selector
from modelmon.monitoring.rule_tests import js_distance, psi

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "grafana"
DEFAULT = MonitoringConfig()
CUSTOM = MonitoringConfig(
    namespace="shop",
    selector='job="api",env="prod"',
    group_labels=("cluster",),
    availability_slo=0.99,
    latency_slo_seconds=0.25,
    rmse_target=2.0,
)
SEVERITIES = {"page", "critical", "warning", "ticket"}


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def _alerts(config: MonitoringConfig) -> list[dict[str, Any]]:
    return [r for g in render_alert_rules(config)["groups"] for r in g["rules"]]


def _records(config: MonitoringConfig) -> list[dict[str, Any]]:
    return [r for g in render_recording_rules(config)["groups"] for r in g["rules"]]


def _exposed_names(namespace: str) -> set[str]:
    out = set()
    for spec in names.CATALOGUE:
        out.add(spec.prometheus_name(namespace))
        if spec.kind == "histogram":
            out |= {spec.family_name(namespace) + s for s in ("_bucket", "_sum", "_count")}
        if spec.kind == "summary":
            out |= {spec.family_name(namespace) + s for s in ("_sum", "_count")}
    return out


def _all_exprs(config: MonitoringConfig) -> list[str]:
    exprs = [r["expr"] for r in _records(config)] + [a["expr"] for a in _alerts(config)]
    exprs += [expr for _, expr in dashboard_queries(config)]
    exprs += [v["query"]["query"] for v in _variables(config)[1:]]
    return exprs


def _variables(config: MonitoringConfig) -> list[dict[str, Any]]:
    return list(render_dashboard(config)["templating"]["list"])


# --- dashboard ------------------------------------------------------------------------


def test_datasource_variable_is_a_prometheus_datasource() -> None:
    first = _variables(DEFAULT)[0]
    assert (first["name"], first["type"], first["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )


@pytest.mark.parametrize("config", [DEFAULT, CUSTOM])
def test_every_panel_and_target_uses_the_datasource_variable(config: MonitoringConfig) -> None:
    text = json.dumps(render_dashboard(config))
    assert "DS_PROMETHEUS" not in text and "__inputs" not in text
    for panel in _panels(render_dashboard(config)):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"


def test_model_version_instance_variables_come_from_label_values() -> None:
    variables = {v["name"]: v for v in _variables(DEFAULT)}
    for name in ("model", "version", "instance", "feature", "segment"):
        query = variables[name]["query"]["query"]
        assert re.fullmatch(
            rf"label_values\(modelmon_\w+\{{.*\}}, {name}\)|label_values\(modelmon_\w+, {name}\)",
            query,
        )
        assert variables[name]["datasource"]["uid"] == "${datasource}"
    assert variables["model"]["multi"] and variables["model"]["includeAll"]


def test_dashboard_identity_ids_and_layout() -> None:
    dash = render_dashboard(DEFAULT)
    assert (dash["uid"], dash["schemaVersion"], dash["id"]) == ("modelmon", 39, None)
    ids = [p["id"] for p in dash["panels"]]
    assert ids == list(range(1, len(ids) + 1))
    for panel in dash["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24
    rows = [p["title"] for p in dash["panels"] if p["type"] == "row"]
    assert rows == [
        "Traffic and latency",
        "Errors",
        "Confidence",
        "Data drift",
        "Prediction drift",
        "Outliers",
        "Performance",
        "Segments",
        "Staleness",
        "SDK health",
    ]
    kinds = {p["type"] for p in _panels(dash)}
    assert {"heatmap", "bargauge", "barchart", "table", "stat", "timeseries"} <= kinds


def test_dashboard_queries_cover_every_target() -> None:
    queries = dashboard_queries(DEFAULT)
    targets = [
        (p["title"], t["expr"]) for p in _panels(render_dashboard(DEFAULT)) for t in p["targets"]
    ]
    assert queries == targets
    assert any("topk(10" in e for _, e in queries)
    assert any('le="0.5"' in e for _, e in queries)  # the latency SLO bucket


def test_raw_panels_filter_by_variables_and_selector() -> None:
    for title, expr in dashboard_queries(CUSTOM):
        for selector in re.findall(r"\bshop_\w+\{[^}]*\}", expr):
            assert 'job="api"' in selector and 'env="prod"' in selector, (title, selector)
            assert 'model=~"$model"' in selector, (title, selector)


# --- names ----------------------------------------------------------------------------


@pytest.mark.parametrize("config", [DEFAULT, CUSTOM])
def test_every_metric_name_in_expressions_is_in_the_catalogue(config: MonitoringConfig) -> None:
    exposed = _exposed_names(config.namespace)
    records = {r["record"] for r in _records(config)}
    for expr in _all_exprs(config):
        for name in re.findall(rf"\b{config.namespace}_[a-z_]+\b", expr):
            assert name in exposed, (name, expr)
        for rule in re.findall(rf"\b{config.namespace}:[a-z0-9_]+:[a-z0-9]+\b", expr):
            assert rule in records, (rule, expr)


def test_recording_rules_are_fleet_wide_and_named_by_window() -> None:
    for rule in _records(DEFAULT):
        ns, what, window = rule["record"].split(":")
        assert ns == "modelmon" and what and window
        assert "instance" not in re.findall(r"by \(([^)]*)\)", rule["expr"]).__str__()


def test_rules_of_a_custom_config_carry_its_group_labels() -> None:
    psi_rule = next(r for r in _records(CUSTOM) if r["record"] == "shop:feature_psi:30m")
    assert "by (model, version, cluster, feature)" in psi_rule["expr"]


# --- alerts ---------------------------------------------------------------------------


@pytest.mark.parametrize("config", [DEFAULT, CUSTOM])
def test_every_alert_has_severity_and_annotations(config: MonitoringConfig) -> None:
    for alert in _alerts(config):
        assert alert["labels"]["severity"] in SEVERITIES
        notes = alert["annotations"]
        assert set(notes) == {"summary", "description", "runbook_url"}
        assert notes["summary"] and notes["description"]
        assert notes["runbook_url"] == f"{config.runbook_base_url}#{alert['alert'].lower()}"
        # Annotations only template labels, so the promtool tests can pin them exactly.
        assert "$value" not in notes["summary"] + notes["description"]


def test_alert_list_matches_the_issue() -> None:
    assert alert_names(DEFAULT) == [
        "ModelmonErrorBudgetBurn",
        "ModelmonLatencyBudgetBurn",
        "ModelmonFeatureDrift",
        "ModelmonPredictionDrift",
        "ModelmonFeatureMissingValues",
        "ModelmonFeatureMissingShift",
        "ModelmonConfidenceCollapse",
        "ModelmonFeatureOutliers",
        "ModelmonOutlierRows",
        "ModelmonAccuracyBelowTarget",
        "ModelmonRMSEAboveTarget",
        "ModelmonConceptDrift",
        "ModelmonSegmentFeatureDrift",
        "ModelmonSegmentAccuracyLow",
        "ModelmonNoPredictions",
        "ModelmonHeartbeatLost",
        "ModelmonTargetDown",
        "ModelmonMetricsAbsent",
        "ModelmonModelStale",
        "ModelmonInternalErrors",
        "ModelmonDroppedObservations",
    ]
    burn = [a for a in _alerts(DEFAULT) if a["alert"] == "ModelmonErrorBudgetBurn"]
    page, ticket = burn
    assert page["labels"]["severity"] == "page" and ticket["labels"]["severity"] == "ticket"
    for long, short in (("1h", "5m"), ("6h", "30m")):
        assert f"modelmon:error_ratio:{long}" in page["expr"]
        assert f"modelmon:error_ratio:{short}" in page["expr"]
    assert "(14.4 * (1 - 0.999))" in page["expr"] and "(6 * (1 - 0.999))" in page["expr"]
    assert "modelmon:error_ratio:3d > (1 * (1 - 0.999))" in ticket["expr"]


def test_latency_alert_uses_the_slo_bucket() -> None:
    record = next(r for r in _records(CUSTOM) if r["record"] == "shop:request_slow_ratio:1h")
    assert 'le="0.25"' in record["expr"]


def test_rmse_alert_is_absolute_with_a_target_and_relative_without() -> None:
    def rmse(config: MonitoringConfig) -> str:
        return next(a["expr"] for a in _alerts(config) if a["alert"] == "ModelmonRMSEAboveTarget")

    assert "modelmon:rmse:1h > 1.5 * modelmon:rmse:1w" in rmse(DEFAULT)
    assert "shop:rmse:1h > 2\n" in rmse(CUSTOM)


def test_every_alert_has_firing_healthy_and_quiet_rule_tests() -> None:
    groups = [g for doc in render_rule_tests(DEFAULT).values() for g in doc["tests"]]
    for alert in alert_names(DEFAULT):
        mine = [g for g in groups if g["name"].startswith(f"{alert}: ")]
        cases = {g["name"].split(": ", 1)[1].split(" ")[0]: g for g in mine}
        assert {"fires", "healthy", "quiet"} <= set(cases), alert
        for group in mine:
            fires = group["name"].split(": ", 1)[1].startswith("fires")
            for check in group["alert_rule_test"]:
                assert check["alertname"] == alert
                assert bool(check["exp_alerts"]) == fires, group["name"]
            assert group["interval"]


def test_rule_tests_need_equality_selectors() -> None:
    with pytest.raises(ConfigurationError, match="equality"):
        render_rule_tests(MonitoringConfig(selector='job=~"api.*"'))


# --- alertmanager ---------------------------------------------------------------------


def test_alertmanager_routes_by_severity_and_inhibits_twins() -> None:
    am = render_alertmanager_config(DEFAULT, webhook_url="http://127.0.0.1:1234/hook")
    assert am["route"]["group_by"] == ["alertname", "model", "version"]
    routes = {r["matchers"][0]: r["receiver"] for r in am["route"]["routes"]}
    assert routes == {
        'severity="page"': "modelmon-pager",
        'severity="ticket"': "modelmon-ticket",
        'severity=~"critical|warning"': "modelmon-chat",
    }
    urls = {c["url"] for r in am["receivers"] for c in r["webhook_configs"]}
    assert urls == {"http://127.0.0.1:1234/hook"}
    warning = next(i for i in am["inhibit_rules"] if i["target_matchers"] == ['severity="warning"'])
    assert {"alertname", "model", "version", "feature"} <= set(warning["equal"])


# --- config ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"latency_slo_seconds": 0.3}, "bucket boundary"),
        ({"availability_slo": 0.9}, "14.4x"),
        ({"drift_for": "30 minutes"}, "duration"),
        ({"psi_warning": 0.3}, "psi_warning < psi_critical"),
        ({"selector": "job=api"}, "matchers"),
        ({"namespace": "my-app"}, "namespace"),
        ({"low_confidence_threshold": 0.55}, "low_confidence_threshold"),
    ],
)
def test_configuration_errors_are_clear(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MonitoringConfig(**kwargs)


def test_selector_parsing() -> None:
    assert parse_selector(' job="api", env=~"prod|stage",x!="a\\"b" ') == (
        ("job", "=", "api"),
        ("env", "=~", "prod|stage"),
        ("x", "!=", 'a\\"b'),
    )


# --- maths of the numpy references used by the rule tests ------------------------------

_shares = st.lists(st.floats(0, 1000, allow_nan=False), min_size=2, max_size=12).filter(
    lambda xs: sum(xs) > 1e-3
)


@settings(max_examples=60, deadline=None)
@given(_shares, _shares)
def test_js_distance_equals_scipy(live: list[float], ref: list[float]) -> None:
    n = min(len(live), len(ref))
    live, ref = live[:n], ref[:n]
    if sum(live) <= 1e-3 or sum(ref) <= 1e-3:
        return
    assert js_distance(live, ref) == pytest.approx(float(jensenshannon(live, ref)), abs=1e-7)


def test_psi_floors_shares_without_renormalising() -> None:
    live, ref = [5.0, 5.0, 0.0], [0.5, 0.0, 0.5]
    cur, r = np.array([0.5, 0.5, 1e-4]), np.array([0.5, 1e-4, 0.5])
    assert psi(live, ref) == pytest.approx(float(np.sum((cur - r) * np.log(cur / r))), rel=1e-12)
    assert psi([1, 1], [0.5, 0.5]) == 0.0


# --- YAML and files -------------------------------------------------------------------

_scalars = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=30)
_keys = st.text(min_size=1, max_size=12)
_docs = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_keys, _docs, max_size=5))
def test_yaml_emitter_round_trips_through_pyyaml(doc: dict[str, Any]) -> None:
    assert yaml.safe_load(dump(doc)) == (doc or None)


@pytest.mark.parametrize("config", [DEFAULT, CUSTOM])
def test_yaml_files_parse_back_to_their_json_twins(config: MonitoringConfig) -> None:
    files = render_files(config)
    for stem in ("recording_rules", "alert_rules"):
        a = yaml.safe_load(files[f"prometheus/{stem}.yml"])
        assert a == json.loads(files[f"prometheus/{stem}.json"])
    for path, text in files.items():
        if path.endswith(".yml"):
            assert isinstance(yaml.safe_load(text), dict), path


def test_rendering_is_deterministic() -> None:
    assert render_files(CUSTOM) == render_files(CUSTOM)


def test_committed_files_equal_a_fresh_render() -> None:
    expected = render_files(DEFAULT)
    committed = {
        str(p.relative_to(COMMITTED)): p.read_text(encoding="utf-8")
        for p in COMMITTED.rglob("*")
        if p.is_file()
    }
    stale = sorted(set(committed) ^ set(expected))
    changed = sorted(k for k in expected if committed.get(k) != expected[k])
    assert not stale and not changed, (
        f"grafana/ is out of date ({stale + changed}): run `modelmon grafana export grafana`"
    )


def test_cli_exports_and_rejects_bad_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    grafana_cli.register(parser.add_subparsers())
    args = parser.parse_args(["grafana", "export", str(tmp_path / "out"), "--namespace", "shop"])
    assert args.func(args) == 0
    assert (tmp_path / "out/dashboards/modelmon.json").is_file()
    assert "shop_requests_total" in (tmp_path / "out/prometheus/recording_rules.yml").read_text()
    bad = parser.parse_args(["grafana", "export", str(tmp_path / "x"), "--slo-latency", "0.3"])
    assert bad.func(bad) == 2
    assert "bucket boundary" in capsys.readouterr().err
