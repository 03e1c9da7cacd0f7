"""The examples, started in-process (TestClient, Flask's test client) and scraped."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.metrics import accuracy_score, mean_squared_error

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str, model: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.labels.get("model") == model:
                labels = {k: v for k, v in s.labels.items() if k not in ("model", "version")}
                out[(s.name, tuple(sorted(labels.items())))] = s.value
    return out


def test_fastapi_example_predict_feedback_scrape() -> None:
    from examples import fastapi_app as ex
    from fastapi.testclient import TestClient

    client = TestClient(ex.app)
    before = parse(client.get("/metrics").text, "breast_cancer")
    rows = [dict(zip(ex.MODEL.feature_names, r.tolist(), strict=True)) for r in ex.MODEL.X_test]
    single = client.post("/predict", json=rows[0]).json()
    assert set(single) == {"prediction", "probability", "prediction_id"}
    batch = client.post("/predict", json=rows[1:41]).json()["predictions"]
    assert len(batch) == 40
    assert client.post("/predict", json={"mean radius": 1.0}).status_code == 400
    results = [single, *batch]
    actual = ex.MODEL.y_test[:41]
    for r, y in zip(results, actual, strict=True):
        item = {"prediction_id": r["prediction_id"], "actual": int(y)}
        assert client.post("/feedback", json=item).is_success
    after = parse(client.get("/metrics").text, "breast_cancer")

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("modelmon_requests_total") == 3
    assert delta("modelmon_predictions_total") == 41
    assert delta("modelmon_request_errors_total", error_type="KeyError") == 1
    predicted = [r["prediction"] for r in results]
    expected = ex.MODEL.pipeline.predict(ex.MODEL.X_test[:41])
    np.testing.assert_array_equal(predicted, expected)
    matches = sum(
        delta("modelmon_outcomes_total", actual=str(a), predicted=str(p))
        for a in (0, 1)
        for p in (0, 1)
        if a == p
    )
    assert matches == round(accuracy_score(actual, predicted) * 41)


def test_flask_example_predict_feedback_scrape() -> None:
    from examples import flask_app as ex

    client = ex.app.test_client()
    rows = [dict(zip(ex.MODEL.feature_names, r.tolist(), strict=True)) for r in ex.MODEL.X_test]
    before = parse(client.get("/metrics").get_data(as_text=True), "diabetes")
    out = client.post("/predict", json=rows[:20]).get_json()["predictions"]
    np.testing.assert_allclose(
        [o["prediction"] for o in out], ex.MODEL.regressor.predict(ex.MODEL.X_test[:20])
    )
    for o, y in zip(out, ex.MODEL.y_test[:20], strict=True):
        client.post("/feedback", json={"prediction_id": o["prediction_id"], "actual": float(y)})
    assert client.post("/predict", json={"age": 1.0}).status_code == 400
    after = parse(client.get("/metrics").get_data(as_text=True), "diabetes")
    key = ("modelmon_regression_squared_error_sum_total", ())
    squared = after.get(key, 0.0) - before.get(key, 0.0)
    if key not in after:  # the catalogue may render it as a summary
        key = ("modelmon_regression_squared_error_sum", ())
        squared = after[key] - before.get(key, 0.0)
    mse = mean_squared_error(ex.MODEL.y_test[:20], [o["prediction"] for o in out])
    assert squared == pytest.approx(mse * 20, rel=1e-9)
    assert (
        after[("modelmon_requests_total", ())] - before.get(("modelmon_requests_total", ()), 0) == 2
    )


def test_batch_job_prints_the_exposition(tmp_path: Path) -> None:
    from examples import batch_job

    buf = io.StringIO()
    with redirect_stdout(buf):
        assert batch_job.main(["--rows", "700"]) == 0
    samples = parse(buf.getvalue(), "diabetes_batch")
    assert samples[("modelmon_predictions_total", ())] == 700
    assert samples[("modelmon_requests_total", ())] == 3  # chunks of 256 rows
    psi = [
        v
        for (name, labels), v in samples.items()
        if name == "modelmon_feature_drift" and ("method", "psi") in labels
    ]
    assert len(psi) == 10 and max(psi) < 0.1  # resampled held-out data: no drift
    detected = [v for (name, _), v in samples.items() if name == "modelmon_feature_drift_detected"]
    assert len(detected) == 10 and not any(detected)

    csv_path = tmp_path / "batch.csv"
    data = np.arange(30, dtype=float).reshape(3, 10) / 100
    header = ",".join(batch_job.load_diabetes().feature_names)
    csv_path.write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in data) + "\n")
    buf = io.StringIO()
    with redirect_stdout(buf):
        batch_job.main(["--input", str(csv_path)])
    assert parse(buf.getvalue(), "diabetes_batch")[("modelmon_predictions_total", ())] == 3
