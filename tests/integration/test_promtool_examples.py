"""`promtool check metrics` is clean on a scrape of every example app.

Each example runs in-process with enough traffic for every family to be present:
drift scores and live quantiles (past ``min_samples``), outcomes fed back, HTTP metrics.
"""

from __future__ import annotations

import io
import subprocess
from contextlib import redirect_stdout

import pytest

from ..conftest import require_binary

pytestmark = pytest.mark.integration

# Families whose presence shows the scrape covers drift, outcomes and HTTP traffic.
DRIFT = "modelmon_feature_drift{"
QUANTILES = "modelmon_feature_quantile{"


def promtool_check(text: str) -> str:
    promtool = require_binary("promtool")
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text.encode(), capture_output=True, check=False
    )
    return (done.stdout + done.stderr).decode().strip()


def test_fastapi_example_scrape_is_promtool_clean() -> None:
    from examples import fastapi_app as ex
    from fastapi.testclient import TestClient

    client = TestClient(ex.app)
    rows = [dict(zip(ex.MODEL.feature_names, r.tolist(), strict=True)) for r in ex.MODEL.X_test]
    results = client.post("/predict", json=rows[:-1]).json()["predictions"]
    results.append(client.post("/predict", json=rows[-1]).json())
    assert client.post("/predict", json={"mean radius": 1.0}).status_code == 400
    for r, y in zip(results, ex.MODEL.y_test, strict=False):
        item = {"prediction_id": r["prediction_id"], "actual": int(y)}
        assert client.post("/feedback", json=item).is_success
    text = client.get("/metrics").text
    for needed in (DRIFT, QUANTILES, "modelmon_outcomes_total{", "modelmon_http_requests_total{"):
        assert needed in text, needed
    assert promtool_check(text) == ""


def test_flask_example_scrape_is_promtool_clean() -> None:
    from examples import flask_app as ex

    client = ex.app.test_client()
    rows = [dict(zip(ex.MODEL.feature_names, r.tolist(), strict=True)) for r in ex.MODEL.X_test]
    out = client.post("/predict", json=rows[:120]).get_json()["predictions"]
    for o, y in zip(out, ex.MODEL.y_test, strict=False):
        client.post("/feedback", json={"prediction_id": o["prediction_id"], "actual": float(y)})
    assert client.post("/predict", json={"age": 1.0}).status_code == 400
    text = client.get("/metrics").get_data(as_text=True)
    for needed in (
        DRIFT,
        QUANTILES,
        "modelmon_regression_outcomes_total{",
        "modelmon_http_requests_total{",
    ):
        assert needed in text, needed
    assert promtool_check(text) == ""


def test_batch_job_exposition_is_promtool_clean() -> None:
    from examples import batch_job

    buf = io.StringIO()
    with redirect_stdout(buf):
        assert batch_job.main(["--rows", "700"]) == 0
    text = buf.getvalue()
    for needed in (DRIFT, QUANTILES):
        assert needed in text, needed
    assert promtool_check(text) == ""
