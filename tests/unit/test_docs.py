"""The README's metric catalogue is the one generated from modelmon.names."""

from __future__ import annotations

from pathlib import Path

from modelmon import names
from modelmon._internal.docs import catalogue_markdown

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_catalogue_is_generated_from_names() -> None:
    assert catalogue_markdown() in README.read_text(), (
        "README catalogue is stale: paste `python -m modelmon._internal.docs` into README.md"
    )


def test_every_metric_is_in_the_readme() -> None:
    text = README.read_text()
    for spec in (*names.CATALOGUE, *names.HTTP_CATALOGUE):
        assert spec.prometheus_name() in text


def test_readme_otel_mapping_is_generated() -> None:
    import modelmon.otel

    assert modelmon.otel.mapping_table().strip() in README.read_text()


def test_every_alert_has_a_runbook_section() -> None:
    from modelmon.grafana import MonitoringConfig, alert_names

    text = README.read_text()
    for alert in alert_names(MonitoringConfig()):
        assert f"#### {alert}\n" in text, alert
