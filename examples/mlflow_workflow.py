"""The MLflow workflow end to end: train, log with its profile, register, serve, score a batch.

    python examples/mlflow_workflow.py                 # a local SQLite store in ./mlflow-demo
    MLFLOW_TRACKING_URI=http://127.0.0.1:5000 python examples/mlflow_workflow.py

1. ``train_and_register``: fit a scikit-learn model on the breast-cancer data, log it
   and its reference profile to one run, register it and point the ``champion`` alias
   at the new version.
2. ``serving_monitor`` / ``create_app``: what a service does at start-up: the monitor's
   reference is ``models:/<name>@champion`` and its ``version`` label is the registry's
   version (a FastAPI app: ``POST /predict``, ``GET /metrics``).
3. ``batch_job``: score a (drifted) batch in a run of its own and log the monitor's
   snapshot to it (``Monitor.log_to_mlflow``); write the HTML drift report beside it.

Needs ``pip install 'modelmon[mlflow]' scikit-learn``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import mlflow
from prometheus_client import CollectorRegistry
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import modelmon
import modelmon.mlflow

MODEL_NAME = "breast-cancer"


def train_and_register(name: str = MODEL_NAME) -> str:
    """Train, log the model and its reference profile, register; return the new version."""
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=5000).fit(X, y)
    profile = modelmon.ReferenceProfile.from_data(
        X, predictions=model.predict_proba(X), classes=["0", "1"]
    )
    with mlflow.start_run(run_name="train") as run:
        mlflow.log_metric("train_accuracy", float(model.score(X, y)))
        _log_model(model)
        modelmon.mlflow.log_reference(profile)  # -> modelmon/reference.json in this run
    client = mlflow.MlflowClient()
    if not client.search_registered_models(filter_string=f"name='{name}'"):
        client.create_registered_model(name)
    mv = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
    client.set_registered_model_alias(name, "champion", mv.version)
    return str(mv.version)


def _log_model(model: Any) -> None:
    """The model as a pickle artifact (``mlflow.sklearn.log_model`` works too)."""
    import pickle

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.pkl"
        path.write_bytes(pickle.dumps(model))
        mlflow.log_artifact(str(path), "model")


def load_champion(name: str = MODEL_NAME) -> Any:
    """The champion's model, as the service loads it."""
    import pickle

    local = mlflow.artifacts.download_artifacts(f"models:/{name}@champion/model.pkl")
    return pickle.loads(Path(local).read_bytes())


def serving_monitor(name: str = MODEL_NAME, registry: Any = None) -> modelmon.Monitor:
    """The service's monitor: profile and version label come from the registry, once."""
    return modelmon.Monitor(name, reference=f"models:/{name}@champion", registry=registry)


def create_app(name: str = MODEL_NAME, registry: Any = None) -> Any:
    """A FastAPI service of the champion: ``POST /predict`` (rows as JSON objects), ``/metrics``.

    ``uvicorn --factory examples.mlflow_workflow:create_app`` with ``MLFLOW_TRACKING_URI`` set.
    """
    import pandas as pd
    from fastapi import FastAPI

    registry = CollectorRegistry() if registry is None else registry
    model = load_champion(name)
    monitor = serving_monitor(name, registry=registry)  # fails here if MLflow is unreachable
    predict_proba = monitor(model.predict_proba)
    app = FastAPI(title=f"{name} (registry version {monitor.version})")

    @app.post("/predict")
    def predict(rows: list[dict[str, float]]) -> dict[str, Any]:
        proba = predict_proba(pd.DataFrame(rows))
        return {"version": monitor.version, "probabilities": proba.tolist()}

    app.mount("/metrics", modelmon.make_asgi_app(registry))
    app.state.monitor = monitor
    return app


def drifted_batch(n: int = 500, seed: int = 7) -> Any:
    """Tonight's rows: the training data resampled, with two features shifted."""
    X, _ = load_breast_cancer(return_X_y=True, as_frame=True)
    batch = X.sample(n, replace=True, random_state=seed).copy()
    batch["mean radius"] *= 1.3
    batch["worst texture"] += 6.0
    return batch


def batch_job(out_dir: Path, name: str = MODEL_NAME) -> tuple[str, dict[str, float]]:
    """Score a batch in its own run, log the drift snapshot and the report to it."""
    model = load_champion(name)
    monitor = serving_monitor(name, registry=CollectorRegistry())
    batch = drifted_batch()
    with mlflow.start_run(run_name=f"batch {name} v{monitor.version}") as run:
        for start in range(0, len(batch), 100):
            chunk = batch.iloc[start : start + 100]
            monitor.observe(chunk, model.predict_proba(chunk))
        logged = monitor.log_to_mlflow()
        report = out_dir / "drift_report.html"
        report.write_text(monitor.report(), encoding="utf-8")
        mlflow.log_artifact(str(report), "modelmon")
    monitor.close()
    return run.info.run_id, logged


def main() -> int:
    out_dir = Path("mlflow-demo").resolve()
    out_dir.mkdir(exist_ok=True)
    if "MLFLOW_TRACKING_URI" not in os.environ:  # a local store: no server needed
        mlflow.set_tracking_uri(f"sqlite:///{out_dir / 'mlflow.db'}")
        if mlflow.get_experiment_by_name("modelmon-demo") is None:
            artifacts = (out_dir / "artifacts").as_uri()
            mlflow.create_experiment("modelmon-demo", artifact_location=artifacts)
    mlflow.set_experiment("modelmon-demo")
    version = train_and_register()
    monitor = serving_monitor(registry=False)
    fingerprint = monitor.profile.fingerprint if monitor.profile is not None else None
    print(f"registered {MODEL_NAME} version {version}; the service monitors version "
          f"{monitor.version} against profile {fingerprint}")  # fmt: skip
    monitor.close()
    run_id, logged = batch_job(out_dir)
    drifted = sorted(k.split(".")[1] for k, v in logged.items() if k.endswith(".detected") and v)
    print(f"batch run {run_id}: {len(logged)} metrics logged; drifted: {', '.join(drifted)}")
    print(f"report: {out_dir / 'drift_report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
