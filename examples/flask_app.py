"""A diabetes-progression regressor served by Flask and monitored by modelmon.

Run it with ``flask --app examples.flask_app run`` or, with several workers,
``MODELMON_MULTIPROC_DIR=$(mktemp -d) gunicorn -w 4 examples.flask_app:app``. Routes:
``POST /predict`` (a JSON object of the 10 features, or a list of them), ``POST
/feedback`` (``{"prediction_id": ..., "actual": ...}``) and ``GET /metrics``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from flask import Flask, Response, jsonify, request
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.model_selection import train_test_split

import modelmon
from modelmon.profile import ReferenceProfile


@dataclass(frozen=True)
class TrainedModel:
    regressor: Ridge
    feature_names: tuple[str, ...]
    X_test: np.ndarray
    y_test: np.ndarray
    profile: ReferenceProfile


def train(seed: int = 0) -> TrainedModel:
    """Ridge regression on 75% of scikit-learn's diabetes dataset."""
    data = load_diabetes()
    X_train, X_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.25, random_state=seed
    )
    regressor = Ridge(alpha=0.1).fit(X_train, y_train)
    names = tuple(str(n) for n in data.feature_names)
    # The reference comes from held-out rows (predictions on training rows fit too well).
    profile = ReferenceProfile.from_data(
        X_test,
        predictions=regressor.predict(X_test),
        feature_names=list(names),
        task="regression",
    )
    return TrainedModel(regressor, names, X_test, y_test, profile)


MODEL = train()


@modelmon.monitored(
    model="diabetes",
    version="1.0",
    reference=MODEL.profile,
    feature_names=list(MODEL.feature_names),
    task="regression",
)
def predict_progression(rows: list[dict[str, float]]) -> np.ndarray:
    """Disease progression one year ahead; a row missing a feature raises KeyError."""
    X = np.array([[float(row[f]) for f in MODEL.feature_names] for row in rows])
    return np.asarray(MODEL.regressor.predict(X))


app = Flask(__name__)
monitor: modelmon.Monitor = predict_progression.monitor


@app.post("/predict")
def predict() -> Any:
    payload = request.get_json(force=True)
    rows = payload if isinstance(payload, list) else [payload]
    try:
        y = predict_progression(rows)
    except (KeyError, TypeError, ValueError) as exc:
        return jsonify(error=f"{type(exc).__name__}: {exc}"), 400
    results = [
        {"prediction": float(v), "prediction_id": pid}
        for v, pid in zip(y, modelmon.last_prediction_ids(), strict=True)
    ]
    return jsonify(results[0] if not isinstance(payload, list) else {"predictions": results})


@app.post("/feedback")
def feedback() -> Any:
    item = request.get_json(force=True)
    monitor.record_outcome(str(item["prediction_id"]), float(item["actual"]))
    return jsonify(status="recorded")


def _add_metrics(app: Flask) -> None:
    try:
        from modelmon.integrations import flask as mm_flask
    except ImportError:  # the integration is optional: a plain route does the same
        from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

        app.add_url_rule(
            "/metrics",
            "metrics",
            lambda: Response(generate_latest(REGISTRY), mimetype=CONTENT_TYPE_LATEST),
        )
        return
    mm_flask.instrument(app)


_add_metrics(app)
