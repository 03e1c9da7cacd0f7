"""The generated rules, routing and dashboard queries, checked by the real promtool/amtool."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from modelmon.monitoring import MonitoringConfig, dashboard_queries, export
from modelmon.monitoring._yaml import dump
from tests.conftest import require_binary

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "grafana" / "prometheus"
ALERTMANAGER = ROOT / "grafana" / "alertmanager" / "alertmanager.yml"
RULE_FILES = ["recording_rules.yml", "alert_rules.yml", "recording_rules.json", "alert_rules.json"]
TEST_FILES = sorted(p.name for p in (PROMETHEUS / "tests").glob("*.yml"))
TIMEOUT = 300  # promtool test rules is CPU-bound; generous for shared CI machines
CUSTOM = MonitoringConfig(
    namespace="shop",
    selector='job="api"',
    group_labels=("cluster",),
    availability_slo=0.99,
    latency_slo_seconds=0.25,
    latency_slo_target=0.95,
    psi_warning=0.2,
    psi_critical=0.4,
    drift_for="15m",
    rmse_target=2.0,
    staleness_days=7,
    min_outcomes=500,
)


def _run(*cmd: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def _ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout + result.stderr


def test_test_files_exist() -> None:
    assert TEST_FILES == [
        "availability.yml",
        "confidence.yml",
        "drift.yml",
        "outliers.yml",
        "performance.yml",
        "segments.yml",
        "slo.yml",
        "staleness.yml",
    ]


@pytest.mark.parametrize("lint", [[], ["--lint-fatal"]], ids=["plain", "lint-fatal"])
def test_promtool_check_rules(lint: list[str]) -> None:
    promtool = require_binary("promtool")
    _ok(_run(promtool, "check", "rules", *lint, *RULE_FILES, cwd=PROMETHEUS))


def test_promtool_check_config() -> None:
    promtool = require_binary("promtool")
    _ok(_run(promtool, "check", "config", "prometheus.yml", cwd=PROMETHEUS))


def test_amtool_check_config() -> None:
    amtool = require_binary("amtool")
    _ok(_run(amtool, "check-config", str(ALERTMANAGER)))


@pytest.mark.parametrize(
    "severity, receiver",
    [
        ("page", "modelmon-pager"),
        ("ticket", "modelmon-ticket"),
        ("critical", "modelmon-chat"),
        ("warning", "modelmon-chat"),
    ],
)
def test_amtool_routes_by_severity(severity: str, receiver: str) -> None:
    amtool = require_binary("amtool")
    result = _run(
        amtool,
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER}",
        f"--verify.receivers={receiver}",
        "alertname=ModelmonFeatureDrift",
        "model=m",
        "version=1",
        f"severity={severity}",
    )
    _ok(result)
    assert result.stdout.strip() == receiver


@pytest.mark.parametrize("name", TEST_FILES)
def test_promtool_test_rules(name: str) -> None:
    promtool = require_binary("promtool")
    _ok(_run(promtool, "test", "rules", f"tests/{name}", cwd=PROMETHEUS))


def test_rule_tests_catch_a_broken_threshold(tmp_path: Path) -> None:
    """The drift tests fail when the rule's critical PSI threshold is wrong."""
    promtool = require_binary("promtool")
    shutil.copytree(PROMETHEUS, tmp_path / "prometheus")
    rules = tmp_path / "prometheus" / "alert_rules.yml"
    text = rules.read_text()
    assert "modelmon:feature_psi:30m > 0.25" in text
    rules.write_text(
        text.replace("modelmon:feature_psi:30m > 0.25", "modelmon:feature_psi:30m > 100")
    )
    result = _run(promtool, "test", "rules", "tests/drift.yml", cwd=tmp_path / "prometheus")
    assert result.returncode != 0
    assert "ModelmonFeatureDrift: fires (critical) on major drift" in result.stdout + result.stderr


def test_custom_config_exports_rules_that_pass_their_own_tests(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    amtool = require_binary("amtool")
    export(CUSTOM, tmp_path)
    prom = tmp_path / "prometheus"
    _ok(_run(promtool, "check", "rules", "--lint-fatal", *RULE_FILES, cwd=prom))
    _ok(_run(promtool, "check", "config", "prometheus.yml", cwd=prom))
    _ok(_run(amtool, "check-config", str(tmp_path / "alertmanager" / "alertmanager.yml")))
    files = sorted(str(p.relative_to(prom)) for p in (prom / "tests").glob("*.yml"))
    # Two at a time: the files are independent and promtool uses one core each.
    procs = [
        subprocess.Popen(
            [promtool, "test", "rules", *files[i::2]],
            cwd=prom,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, out


def _concrete(expr: str) -> str:
    """A Grafana query made plain PromQL: variables become regexes, intervals durations."""
    expr = expr.replace("$__rate_interval", "5m").replace("$__range", "1h")
    return re.sub(r"\$\{?(\w+)\}?", ".+", expr)


@pytest.mark.parametrize("config", [MonitoringConfig(), CUSTOM], ids=["default", "custom"])
def test_every_dashboard_query_parses(config: MonitoringConfig, tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    queries = dashboard_queries(config)
    rules = [
        {"record": f"dashboard:query_{i}:check", "expr": _concrete(expr)}
        for i, (_, expr) in enumerate(queries)
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = _run(promtool, "check", "rules", "--lint-fatal", str(path))
    _ok(result)
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout


def test_no_flapping_case_needs_keep_firing_for(tmp_path: Path) -> None:
    """The 'does not flap' drift tests fail when the alerts lose their hysteresis."""
    promtool = require_binary("promtool")
    export(MonitoringConfig(drift_keep_firing_for="0s", outlier_keep_firing_for="0s"), tmp_path)
    prom = tmp_path / "prometheus"
    assert "keep_firing_for" not in (prom / "alert_rules.yml").read_text()
    result = _run(promtool, "test", "rules", "tests/drift.yml", cwd=prom)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "ModelmonFeatureDrift: fires and does not flap" in out
    assert "ModelmonFeatureMissingShift" not in out  # the other drift cases still pass
    result = _run(promtool, "test", "rules", "tests/outliers.yml", cwd=prom)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "ModelmonFeatureOutliers: fires and stays firing" in out
    assert "ModelmonOutlierRows" not in out  # the other outlier cases still pass
