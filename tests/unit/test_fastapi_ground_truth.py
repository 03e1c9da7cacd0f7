"""Issue 4's flow through a FastAPI app: predict, take the id, post the label, scrape."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from sklearn import metrics

import modelmon
from modelmon.integrations.fastapi import feedback_router, instrument

LABELS = {"model": "churn", "version": "2"}


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def make_app(registry: CollectorRegistry, task: str) -> FastAPI:
    app = instrument(FastAPI(), registry=registry)

    @modelmon.monitored(model="churn", version="2", registry=registry, task=task)
    def model(rows: list[dict[str, float]]) -> np.ndarray:
        x = np.array([r["x"] for r in rows])
        return (x > 0.5).astype(int) if task == "classification" else 2.0 * x

    @app.post("/predict")
    def predict(row: dict[str, float]) -> dict[str, object]:
        y = model([row])
        return {"prediction": y[0].item(), "prediction_id": modelmon.last_prediction_id()}

    app.include_router(feedback_router(model.monitor))
    return app


def test_classification_labels_posted_later_match_sklearn() -> None:
    registry = CollectorRegistry()
    client = TestClient(make_app(registry, "classification"))
    rng = np.random.default_rng(3)
    ids, predicted, actual = [], [], []
    for x in rng.uniform(size=200):
        response = client.post("/predict", json={"x": float(x)})
        body = response.json()
        assert response.headers["x-prediction-id"] == body["prediction_id"]
        ids.append(body["prediction_id"])
        predicted.append(body["prediction"])
        actual.append(int(x > 0.5) if rng.uniform() < 0.85 else int(x <= 0.5))
    # labels arrive later, in another order, some in one batch
    order = rng.permutation(len(ids))
    single, batch = order[:50], order[50:]
    for i in single:
        assert (
            client.post(
                "/feedback", json={"prediction_id": ids[i], "actual": actual[i]}
            ).status_code
            == 202
        )
    payload = [{"prediction_id": ids[i], "actual": actual[i]} for i in batch]
    assert client.post("/feedback", json=payload).status_code == 202

    samples = parse(client.get("/metrics").text)
    cm = metrics.confusion_matrix(actual, predicted, labels=[0, 1])
    for a in (0, 1):
        for p in (0, 1):
            key = (
                "modelmon_outcomes_total",
                tuple(sorted({**LABELS, "actual": str(a), "predicted": str(p)}.items())),
            )
            assert samples.get(key, 0.0) == cm[a, p]
    accuracy = samples[
        ("modelmon_performance", tuple(sorted({**LABELS, "metric": "accuracy"}.items())))
    ]
    assert accuracy == pytest.approx(metrics.accuracy_score(actual, predicted), abs=1e-9)
    f1 = samples[("modelmon_performance", tuple(sorted({**LABELS, "metric": "f1"}.items())))]
    assert f1 == pytest.approx(metrics.f1_score(actual, predicted, average="macro"), abs=1e-9)


def test_regression_labels_posted_later_match_sklearn() -> None:
    registry = CollectorRegistry()
    client = TestClient(make_app(registry, "regression"))
    rng = np.random.default_rng(4)
    ids, predicted, actual = [], [], []
    for x in rng.uniform(size=120):
        body = client.post("/predict", json={"x": float(x)}).json()
        ids.append(body["prediction_id"])
        predicted.append(body["prediction"])
        actual.append(2.0 * x + rng.normal(scale=0.1))
    payload = [{"prediction_id": i, "actual": a} for i, a in zip(ids, actual, strict=True)]
    assert client.post("/feedback", json=payload).status_code == 202
    samples = parse(client.get("/metrics").text)
    rmse = samples[("modelmon_performance", tuple(sorted({**LABELS, "metric": "rmse"}.items())))]
    assert rmse == pytest.approx(metrics.root_mean_squared_error(actual, predicted), abs=1e-9)
    mae = samples[("modelmon_performance", tuple(sorted({**LABELS, "metric": "mae"}.items())))]
    assert mae == pytest.approx(metrics.mean_absolute_error(actual, predicted), abs=1e-9)
    count = samples[("modelmon_regression_outcomes_total", tuple(sorted(LABELS.items())))]
    assert count == len(ids)
