"""The manual's generated parts match the code; the README stays a short front door.

The metric catalogue (docs/metrics.md) is generated from modelmon.names, the OTel name
mapping (docs/opentelemetry.md) from modelmon.otel, every alert has a runbook section on
docs/alerts.md (where its runbook_url points), and the README's quickstart runs.
"""

from __future__ import annotations

from pathlib import Path

from modelmon import names
from modelmon._internal.docs import catalogue_markdown

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
METRICS = ROOT / "docs" / "metrics.md"
OTEL = ROOT / "docs" / "opentelemetry.md"
ALERTS = ROOT / "docs" / "alerts.md"
README_MAX_LINES = 200


def test_catalogue_is_generated_from_names() -> None:
    assert catalogue_markdown() in METRICS.read_text(), (
        "docs/metrics.md is stale: paste `python -m modelmon._internal.docs` into it"
    )


def test_every_metric_is_in_the_catalogue_page() -> None:
    text = METRICS.read_text()
    for spec in (*names.CATALOGUE, *names.HTTP_CATALOGUE, *names.PROCESS_CATALOGUE):
        assert spec.prometheus_name() in text


def test_otel_mapping_is_generated() -> None:
    import modelmon.otel

    assert modelmon.otel.mapping_table().strip() in OTEL.read_text()


def test_every_alert_has_a_runbook_section() -> None:
    from modelmon.monitoring import MonitoringConfig, alert_names

    text = ALERTS.read_text()
    for alert in alert_names(MonitoringConfig()):
        assert f"#### {alert}\n" in text, alert


def test_runbook_urls_point_at_the_alerts_page_anchors() -> None:
    """The default runbook_url of every alert is docs/alerts.md#<its section's anchor>."""
    import re

    from modelmon.monitoring import MonitoringConfig, alert_names

    config = MonitoringConfig()
    # MkDocs' (and GitHub's) anchor of "#### ModelmonX" is the heading in lower case.
    anchors = {h.lower() for h in re.findall(r"^#### (\S+)$", ALERTS.read_text(), re.M)}
    for alert in alert_names(config):
        page, _, anchor = config.runbook_url(alert).partition("#")
        assert page.endswith("/docs/alerts.md"), page
        assert anchor in anchors, alert


def test_readme_is_a_short_front_door() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move sections to docs/"
    )
    for page in ("docs/metrics.md", "docs/alerts.md", "docs/index.md"):
        assert f"]({page})" in README.read_text(), page


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


def test_readme_links_resolve() -> None:
    """MkDocs checks the manual's links; the README's relative links are checked here."""
    import re

    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README.read_text())
    relative = [link for link in links if "://" not in link]
    assert relative, "the README links no page: the pattern broke"
    missing = [link for link in relative if not (ROOT / link).exists()]
    assert not missing, missing
