"""MLflow against a real tracking server (SQLite backend, local artifact root).

One server for the module (see ``_mlflow.py``); every test uses its own experiment,
runs and registered model names, so the tests are independent of their order.
"""

from __future__ import annotations

import runpy
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

import modelmon
import modelmon.mlflow
from modelmon.errors import ConfigurationError
from tests.conftest import free_port
from tests.integration._mlflow import (  # noqa: F401
    MlflowServer,
    mlflow_server,
    start_server,
    stop_server,
)
from tests.integration._prom import ROOT, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture()
def tracking(mlflow_server: MlflowServer) -> Iterator[Any]:  # noqa: F811
    import mlflow as mlflow_

    previous = mlflow_.get_tracking_uri()
    mlflow_.set_tracking_uri(mlflow_server.url)
    mlflow_.set_experiment(f"modelmon-{uuid.uuid4().hex[:8]}")
    try:
        yield mlflow_
    finally:
        if mlflow_.active_run() is not None:
            mlflow_.end_run()
        mlflow_.set_tracking_uri(previous)


def _trained() -> tuple[Any, Any, Any, modelmon.ReferenceProfile]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=5000).fit(X, y)
    profile = modelmon.ReferenceProfile.from_data(
        X, predictions=model.predict_proba(X), classes=["0", "1"]
    )
    return X, y, model, profile


def _register(mlf: Any, name: str, run_id: str) -> str:
    client = mlf.MlflowClient()
    if not client.search_registered_models(filter_string=f"name='{name}'"):
        client.create_registered_model(name)
    mv = client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id)
    return str(mv.version)


def test_profile_resolves_from_runs_and_registry_to_the_same_fingerprint(tracking: Any) -> None:
    _, _, _, profile = _trained()
    with tracking.start_run() as run:
        uri = modelmon.mlflow.log_reference(profile)
    run_id = run.info.run_id
    assert uri == f"runs:/{run_id}/modelmon/reference.json"
    params = tracking.MlflowClient().get_run(run_id).data.params
    assert params["modelmon.fingerprint"] == profile.fingerprint
    assert params["modelmon.features"] == str(len(profile.features))
    other = modelmon.ReferenceProfile.from_data(np.zeros((5, 1)), feature_names=["z"])
    with pytest.raises(ConfigurationError, match="one reference profile per run"):
        modelmon.mlflow.log_reference(other, run_id=run_id)

    name = f"cancer-{uuid.uuid4().hex[:6]}"
    version = _register(tracking, name, run_id)
    tracking.MlflowClient().set_registered_model_alias(name, "champion", version)

    resolved = [
        modelmon.mlflow.resolve_reference(u)
        for u in (uri, f"models:/{name}/{version}", f"models:/{name}@champion")
    ]
    assert {r.profile.fingerprint for r in resolved} == {profile.fingerprint}
    assert resolved[0].model_version is None
    assert [r.model_version for r in resolved[1:]] == [version, version]
    assert {r.run_id for r in resolved} == {run_id}


def test_version_label_is_the_registry_version(tracking: Any) -> None:
    _, _, _, profile = _trained()
    name = f"cancer-{uuid.uuid4().hex[:6]}"
    versions = []
    for _ in range(2):  # the alias points at version 2, so "1" would be a wrong guess
        with tracking.start_run() as run:
            modelmon.mlflow.log_reference(profile)
        versions.append(_register(tracking, name, run.info.run_id))
    assert versions == ["1", "2"]
    tracking.MlflowClient().set_registered_model_alias(name, "champion", "2")

    registry = CollectorRegistry()
    mon = modelmon.Monitor(name, reference=f"models:/{name}@champion", registry=registry)
    try:
        assert mon.version == "2"
        info = registry.get_sample_value(
            "modelmon_model_info",
            {"model": name, "version": "2", "task": "unknown",
             "sdk_version": "0.1.0", "reference": "profile"},
        )  # fmt: skip
        assert info == 1.0
        assert mon.profile is not None and mon.profile.fingerprint == profile.fingerprint
    finally:
        mon.close()


def test_log_to_mlflow_values_equal_the_exported_gauges(tracking: Any) -> None:
    registry = CollectorRegistry()
    X, y, model, profile = _trained()
    mon = modelmon.Monitor("cancer", "1", reference=profile, registry=registry)
    live = X.sample(600, replace=True, random_state=3).copy()
    live["mean radius"] *= 1.25
    live.iloc[:30, live.columns.get_loc("mean area")] = np.nan
    proba = model.predict_proba(live.fillna(X.mean()))
    truth = y.loc[live.index].to_numpy()
    for i in range(0, 600, 50):
        mon.observe(live.iloc[i : i + 50], proba[i : i + 50])
        mon.record_outcomes(modelmon.last_prediction_ids(), truth[i : i + 50].tolist())
    try:
        with tracking.start_run() as run:
            logged = mon.log_to_mlflow(step=3)
        stored = tracking.MlflowClient().get_run(run.info.run_id).data.metrics
        assert stored == logged

        def gauge(name: str, **labels: str) -> float | None:
            return registry.get_sample_value(name, {"model": "cancer", "version": "1", **labels})

        checked = 0
        for feature in profile.features:
            for method in ("psi", "js", "ks", "wasserstein"):
                value = gauge("modelmon_feature_drift", feature=feature, method=method)
                assert value is not None
                assert stored[f"drift.{feature}.{method}"] == value
                checked += 1
            missing = gauge("modelmon_feature_missing_total", feature=feature)
            seen = gauge("modelmon_feature_observations_total", feature=feature)
            assert missing is not None and seen
            assert stored[f"missing_share.{feature}"] == missing / seen
        assert stored["missing_share.mean area"] == 30 / 600
        for metric in ("accuracy", "f1"):
            value = gauge("modelmon_performance", metric=metric)
            assert value is not None and stored[f"performance.{metric}"] == value
        assert stored["requests"] == gauge("modelmon_requests_total") == 12
        assert stored["predictions"] == 600
        assert stored["drift.mean radius.detected"] == 1.0
        assert checked == 4 * len(profile.features)
        history = tracking.MlflowClient().get_metric_history(run.info.run_id, "requests")
        assert [m.step for m in history] == [3]
    finally:
        mon.close()


def test_periodic_logging_and_its_failures_are_counted(tracking: Any) -> None:
    from modelmon.integrations.mlflow import PeriodicLogger

    client = tracking.MlflowClient()
    with tracking.start_run() as run:
        pass
    registry = CollectorRegistry()
    mon = modelmon.Monitor(
        "svc", "1", registry=registry, log_every_s=0.2, mlflow_run_id=run.info.run_id
    )
    try:
        mon.observe({"x": 1.0}, 0.5)
        history = wait_until(
            lambda: list(client.get_metric_history(run.info.run_id, "requests"))[1:] or None,
            120.0,
            "two periodic snapshots",
        )
        assert history[-1].value == 1.0
    finally:
        mon.close()
    assert mon.health.internal_errors.get("mlflow", 0) == 0

    broken = modelmon.Monitor("svc", "2", registry=registry)
    logger = PeriodicLogger(broken, 0.1, run_id="no-such-run")
    try:
        wait_until(
            lambda: registry.get_sample_value(
                "modelmon_internal_errors_total",
                {"model": "svc", "version": "2", "stage": "mlflow"},
            ),
            120.0,
            "a counted MLflow failure",
        )
    finally:
        logger.stop()
        broken.close()


def test_missing_artifact_and_unknown_model_are_configuration_errors(tracking: Any) -> None:
    with tracking.start_run() as run:
        pass
    uri = f"runs:/{run.info.run_id}/modelmon/reference.json"
    with pytest.raises(ConfigurationError, match=f"cannot resolve reference '{uri}'"):
        modelmon.Monitor("m", "1", reference=uri, registry=False)
    with pytest.raises(ConfigurationError, match="models:/no-such-model@champion"):
        modelmon.Monitor("m", reference="models:/no-such-model@champion", registry=False)


def test_a_stopped_server_is_a_clear_error_at_start_up(tracking: Any, tmp_path: Path) -> None:
    """A second real server: the URI resolves while it runs, and fails clearly once stopped."""
    second = start_server(tmp_path / "second")
    try:
        tracking.set_tracking_uri(second.url)
        tracking.set_experiment("stopped")
        _, _, _, profile = _trained()
        with tracking.start_run() as run:
            modelmon.mlflow.log_reference(profile)
        _register(tracking, "stopped", run.info.run_id)
        tracking.MlflowClient().set_registered_model_alias("stopped", "champion", "1")
        alive = modelmon.Monitor("stopped", reference="models:/stopped@champion", registry=False)
        assert alive.version == "1"
        alive.close()
    finally:
        stop_server(second.process)
    with pytest.raises(ConfigurationError) as info:
        modelmon.Monitor("stopped", reference="models:/stopped@champion", registry=False)
    message = str(info.value)
    assert "models:/stopped@champion" in message and second.url in message
    assert "unreachable" in message


def test_no_server_listening_is_a_clear_error_at_start_up(tracking: Any) -> None:
    """A tracking server that is not running: the error names the URI, at construction."""
    down = f"http://127.0.0.1:{free_port()}"
    tracking.set_tracking_uri(down)
    with pytest.raises(ConfigurationError) as info:
        modelmon.Monitor("m", reference="models:/cancer@champion", registry=False)
    message = str(info.value)
    assert "models:/cancer@champion" in message and down in message and "unreachable" in message
    with pytest.raises(ConfigurationError, match="unreachable"):
        modelmon.Monitor("m", "1", registry=False, log_every_s=10)


def test_the_example_workflow(tracking: Any, tmp_path: Path) -> None:
    """examples/mlflow_workflow.py: train, register, serve from the alias, log a batch."""
    example = runpy.run_path(str(ROOT / "examples" / "mlflow_workflow.py"))
    name = f"example-{uuid.uuid4().hex[:6]}"
    assert example["train_and_register"](name) == "1"
    assert example["train_and_register"](name) == "2"
    monitor = example["serving_monitor"](name, registry=False)
    assert monitor.version == "2"
    monitor.close()

    from sklearn.datasets import load_breast_cancer
    from starlette.testclient import TestClient

    registry = CollectorRegistry()
    app = example["create_app"](name, registry=registry)
    rows = load_breast_cancer(as_frame=True).data.head(3).to_dict(orient="records")
    with TestClient(app) as client:
        answer = client.post("/predict", json=rows).json()
        assert answer["version"] == "2" and len(answer["probabilities"]) == 3
        metrics = client.get("/metrics/").text
    assert f'modelmon_predictions_total{{model="{name}",version="2"}} 3.0' in metrics
    app.state.monitor.close()
    run_id, logged = example["batch_job"](tmp_path, name)
    stored = tracking.MlflowClient().get_run(run_id).data.metrics
    assert stored == logged
    assert stored["drift.mean radius.detected"] == stored["drift.worst texture.detected"] == 1.0
    assert stored["predictions"] == 500
    artifacts = [a.path for a in tracking.MlflowClient().list_artifacts(run_id, "modelmon")]
    assert artifacts == ["modelmon/drift_report.html"]
