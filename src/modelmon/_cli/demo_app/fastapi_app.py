"""A breast-cancer classifier served by FastAPI and monitored by modelmon.

``modelmon demo`` serves it (it ships in the package, so the demo runs from a wheel); in
a checkout it is also ``examples/fastapi_app.py``. Run it with
``uvicorn examples.fastapi_app:app`` (or ``modelmon._cli.demo_app.fastapi_app:app`` from an
installed package; add ``--workers 4`` and set ``MODELMON_MULTIPROC_DIR`` to an empty
directory for several workers), then::

    curl -s localhost:8000/predict -H 'content-type: application/json' \\
        -d "$(curl -s localhost:8000/example)"
    curl -s localhost:8000/feedback -H 'content-type: application/json' \\
        -d '{"prediction_id": "<id from /predict>", "actual": 1}'
    curl -s localhost:8000/metrics

The model is trained at start-up on scikit-learn's bundled dataset; the reference
profile (for drift) comes from its held-out split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

import modelmon
from modelmon.profile import ReferenceProfile

MODEL_NAME = "breast_cancer"
MODEL_VERSION = "1.0"


@dataclass(frozen=True)
class TrainedModel:
    """The fitted pipeline, its feature names, the held-out split and the reference."""

    pipeline: Pipeline
    feature_names: tuple[str, ...]
    classes: tuple[str, ...]
    X_test: np.ndarray
    y_test: np.ndarray
    profile: ReferenceProfile


def train(seed: int = 0) -> TrainedModel:
    """Fit a scaled logistic regression on 75% of the data (about 50 ms)."""
    data = load_breast_cancer()
    X_train, X_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.25, random_state=seed, stratify=data.target
    )
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    pipeline.fit(X_train, y_train)
    names = tuple(str(n) for n in data.feature_names)
    # The reference comes from held-out rows: predictions on training rows are
    # overconfident, so a training-rows reference reports drift on healthy traffic.
    profile = ReferenceProfile.from_data(
        X_test, predictions=pipeline.predict_proba(X_test), feature_names=list(names)
    )
    classes = tuple(str(c) for c in pipeline.classes_)
    return TrainedModel(pipeline, names, classes, X_test, y_test, profile)


MODEL = train()


@modelmon.monitored(
    model=MODEL_NAME,
    version=MODEL_VERSION,
    reference=MODEL.profile,
    feature_names=list(MODEL.feature_names),
    task="classification",
)
def predict_proba(rows: list[dict[str, float]]) -> np.ndarray:
    """Class probabilities of feature dicts; a row missing a feature raises KeyError."""
    X = np.array([[float(row[f]) for f in MODEL.feature_names] for row in rows])
    return np.asarray(MODEL.pipeline.predict_proba(X))


class Feedback(BaseModel):
    prediction_id: str
    actual: int


app = FastAPI(title="modelmon example: breast cancer classifier")


@app.get("/example")
def example(i: int = 0) -> dict[str, float]:
    """A held-out row as the JSON object ``/predict`` expects."""
    row = MODEL.X_test[i % len(MODEL.X_test)]
    return dict(zip(MODEL.feature_names, row.tolist(), strict=True))


@app.post("/predict")
def predict(payload: dict[str, Any] | list[dict[str, Any]]) -> dict[str, Any]:
    """One row (a JSON object of the 30 features) or a list of rows."""
    rows = payload if isinstance(payload, list) else [payload]
    try:
        proba = predict_proba(rows)
    except (KeyError, TypeError) as exc:  # a missing or ill-typed feature: the client's fault
        raise HTTPException(400, f"bad input: {type(exc).__name__}: {exc}") from exc
    labels = proba.argmax(axis=1)
    ids = modelmon.last_prediction_ids()
    results = [
        {"prediction": int(y), "probability": float(p[y]), "prediction_id": pid}
        for y, p, pid in zip(labels, proba, ids, strict=True)
    ]
    return results[0] if not isinstance(payload, list) else {"predictions": results}


def _add_feedback_and_metrics(app: FastAPI) -> None:
    monitor = predict_proba.monitor
    try:
        from modelmon.integrations import fastapi as mm_fastapi
    except ImportError:  # the integration is optional: plain routes do the same
        _plain_routes(app, monitor)
        return
    app.include_router(mm_fastapi.feedback_router(monitor))
    mm_fastapi.instrument(app)


def _plain_routes(app: FastAPI, monitor: modelmon.Monitor) -> None:
    from fastapi.responses import Response
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    @app.post("/feedback")
    def feedback(item: Feedback) -> dict[str, str]:
        monitor.record_outcome(item.prediction_id, item.actual)
        return {"status": "recorded"}

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


_add_feedback_and_metrics(app)
