"""One replica of a fleet serving two scikit-learn models, with feedback routes.

Both replicas of ``tests/integration/test_fleet_labels.py`` run this app (one under
gunicorn with 4 uvicorn workers, one under plain uvicorn), each with its own
``MODELMON_MULTIPROC_DIR`` and the same ``MODELMON_ID_KEY``: a label posted to any
worker of any replica scores the prediction another worker made.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from fastapi import Body, FastAPI
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import modelmon
from modelmon.exporters import multiprocess
from modelmon.integrations.fastapi import feedback_router, instrument

multiprocess.install()

_Xc, _yc = load_breast_cancer(return_X_y=True)
_Xr, _yr = load_diabetes(return_X_y=True)
# Trained on the even rows; the test predicts the odd ones (deterministic fits).
CLASSIFIER = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(
    _Xc[::2], _yc[::2]
)
REGRESSOR = Ridge(alpha=0.1).fit(_Xr[::2], _yr[::2])

app = instrument(FastAPI())
clf = modelmon.instrument(CLASSIFIER, "fleet_clf", "1", methods=("predict_proba",))
reg = modelmon.Monitor("fleet_reg", "1", task="regression")


@reg
def predict_value(rows: np.ndarray) -> np.ndarray:
    return REGRESSOR.predict(rows)


@app.post("/predict/clf")
def predict_clf(rows: list[list[float]] = Body(...)) -> dict[str, Any]:  # noqa: B008
    proba = CLASSIFIER.predict_proba(np.asarray(rows, dtype=np.float64))
    predicted = proba.argmax(axis=1).tolist()
    return {"ids": modelmon.last_prediction_ids(), "predicted": predicted, "pid": os.getpid()}


@app.post("/predict/reg")
def predict_reg(rows: list[list[float]] = Body(...)) -> dict[str, Any]:  # noqa: B008
    values = predict_value(np.asarray(rows, dtype=np.float64))
    ids = modelmon.last_prediction_ids()
    return {"ids": ids, "predicted": values.tolist(), "pid": os.getpid()}


@app.get("/pid")
def pid() -> int:
    return os.getpid()


app.include_router(feedback_router(clf, "/feedback/clf"))
app.include_router(feedback_router(reg, "/feedback/reg"))
