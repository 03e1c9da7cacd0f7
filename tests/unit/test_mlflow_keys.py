"""MLflow pieces that need no server: URI forms, metric keys, option checks.

The server-backed behaviour is in ``tests/integration/test_mlflow.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import modelmon
from modelmon.errors import ConfigurationError
from modelmon.integrations.mlflow import is_mlflow_uri, resolve_reference, snapshot_metrics
from modelmon.report.snapshot import monitor_snapshot

pytest.importorskip("mlflow")


def test_mlflow_uris_are_recognised() -> None:
    assert is_mlflow_uri("runs:/abc/modelmon/reference.json")
    assert is_mlflow_uri("models:/credit@champion")
    assert not is_mlflow_uri("reference.json") and not is_mlflow_uri(None)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("runs:/abc", "expected runs:/<run_id>/<path"),
        ("models:/credit", "expected models:/<name>/<version>"),
        ("models:/credit/1/extra", "expected models:/<name>/<version>"),
    ],
)
def test_malformed_uris_are_configuration_errors(uri: str, expected: str, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"  # a local store: no server involved
    with pytest.raises(ConfigurationError, match=expected):
        resolve_reference(uri, tracking_uri=store)


def test_metric_keys_are_sanitised_and_nan_is_left_out() -> None:
    rng = np.random.default_rng(0)
    ref = modelmon.ReferenceProfile.from_data(
        rng.normal(size=(500, 2)), feature_names=["weird|name", "ok"]
    )
    mon = modelmon.Monitor("k", "1", reference=ref, registry=False, min_samples=10)
    mon.observe(rng.normal(2.0, 1.0, size=(300, 2)), np.zeros(300))
    metrics = snapshot_metrics(monitor_snapshot(mon))
    assert "drift.weird_name.psi" in metrics and "drift.ok.ks" in metrics
    assert metrics["drift.weird_name.detected"] == 1.0
    assert metrics["requests"] == 1.0 and metrics["predictions"] == 300.0
    assert all(v == v for v in metrics.values())  # no NaN
    mon.close()


def test_log_every_s_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="log_every_s must be a positive number"):
        modelmon.Monitor("k", "1", registry=False, log_every_s=0)


def test_version_is_required_without_a_registry_reference() -> None:
    with pytest.raises(ConfigurationError, match="version must be a non-empty string"):
        modelmon.Monitor("k", registry=False)
