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
    for spec in (*names.CATALOGUE, *names.HTTP_CATALOGUE, *names.PROCESS_CATALOGUE):
        assert spec.prometheus_name() in text


def test_readme_otel_mapping_is_generated() -> None:
    import modelmon.otel

    assert modelmon.otel.mapping_table().strip() in README.read_text()


def test_every_alert_has_a_runbook_section() -> None:
    from modelmon.monitoring import MonitoringConfig, alert_names

    text = README.read_text()
    for alert in alert_names(MonitoringConfig()):
        assert f"#### {alert}\n" in text, alert


def test_readme_quickstart_runs(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import re
    import urllib.request

    from prometheus_client import REGISTRY
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    from ..conftest import free_port

    text = README.read_text()
    block = re.search(r"## Quickstart\n\n```python\n(.*?)```", text, re.S)
    assert block is not None
    port = free_port()
    code = block.group(1).replace(
        "start_http_server(9100)", f"start_http_server({port}, '127.0.0.1')"
    )
    X, y = load_breast_cancer(return_X_y=True)
    model = LogisticRegression(max_iter=5000).fit(X[:400], y[:400])
    monkeypatch.chdir(tmp_path)
    namespace = {"model": model, "X_valid": X[400:], "X_new": X[400:]}
    exec(compile(code, "README quickstart", "exec"), namespace)
    assert namespace["pid"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
        body = response.read().decode()
    assert 'modelmon_predictions_total{model="credit",version="1.3.0"} 169.0' in body
    assert "modelmon_feature_bin_total" in body
    namespace["predict"].monitor.close()  # leave the global registry as we found it
    assert (
        REGISTRY.get_sample_value(
            "modelmon_requests_total", {"model": "credit", "version": "1.3.0"}
        )
        is None
    )
