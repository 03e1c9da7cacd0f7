"""``modelmon report --current http://.../metrics``: a real HTTP endpoint on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

import modelmon
from modelmon.cli import main
from tests._report_data import cancer_data, drifted_monitor, elements, feature_rows
from tests.conftest import free_port

pytestmark = pytest.mark.integration


def test_report_from_a_metrics_url_equals_the_gauges(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    mon = drifted_monitor(registry)
    other = modelmon.Monitor("other", "1", registry=registry)  # the CLI must pick one
    _, _, _, profile = cancer_data()
    profile.save(tmp_path / "reference.json")
    port = free_port()
    server, thread = modelmon.start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        out = tmp_path / "report.html"
        argv = ["report", "--reference", str(tmp_path / "reference.json"),
                "--current", f"http://127.0.0.1:{port}/metrics", "-o", str(out)]  # fmt: skip
        assert main(argv) == 2  # two monitors exported, none named
        assert main([*argv, "--model-name", "cancer"]) == 0
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    page = out.read_text()
    rows = feature_rows(page)
    assert len(rows) == 30
    labels = {"model": "cancer", "version": "1.4.0"}
    for row in rows:
        psi = registry.get_sample_value(
            "modelmon_feature_drift", {**labels, "feature": row["feature"], "method": "psi"}
        )
        assert float(row["psi"]) == psi  # the text exposition round-trips floats exactly
    perf = {d["metric"]: float(d["value"]) for _, d in elements(page).found if "metric" in d}
    assert perf["accuracy"] == registry.get_sample_value(
        "modelmon_performance", {**labels, "metric": "accuracy"}
    )
    mon.close()
    other.close()
