"""The Kubernetes PrometheusRule and the compose Prometheus config, checked by promtool."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from modelmon.monitoring import MonitoringConfig
from modelmon.monitoring.export import export

from ..conftest import require_binary

pytestmark = pytest.mark.integration


def promtool(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        [require_binary("promtool"), *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_prometheus_rule_passes_check_and_every_rule_test(tmp_path: Path) -> None:
    export(MonitoringConfig(), tmp_path)
    rule = yaml.safe_load((tmp_path / "kubernetes/prometheus-rule.yml").read_text())
    spec = tmp_path / "prometheus" / "operator_rules.yml"
    spec.write_text(yaml.safe_dump(rule["spec"]))
    promtool("check", "rules", str(spec), cwd=tmp_path)
    tests = sorted((tmp_path / "prometheus/tests").glob("*.yml"))
    assert tests
    for test in tests:  # the same tests, run against the PrometheusRule's groups
        doc = yaml.safe_load(test.read_text())
        doc["rule_files"] = ["../operator_rules.yml"]
        test.write_text(yaml.safe_dump(doc, sort_keys=False))
    out = promtool("test", "rules", *(t.name for t in tests), cwd=tmp_path / "prometheus/tests")
    assert out.count("SUCCESS") == len(tests)


def test_compose_prometheus_config_passes_check_config(tmp_path: Path) -> None:
    export(MonitoringConfig(), tmp_path)
    out = promtool("check", "config", "prometheus/prometheus-compose.yml", cwd=tmp_path)
    assert "SUCCESS: 2 rule files found" in out
