"""`promtool check metrics` finds no problem in the exposition."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

import modelmon
from modelmon.errors import ConfigurationError
from modelmon.profile import ReferenceProfile

from ..conftest import require_binary

pytestmark = pytest.mark.integration


def test_promtool_check_metrics_is_clean() -> None:
    promtool = require_binary("promtool")
    registry = CollectorRegistry()
    predict = modelmon.monitored(model="m", version="1", registry=registry)(
        lambda X: np.tile([0.3, 0.7], (len(X), 1))
    )
    for i in range(10):
        predict(np.full((2, 3), float(i)))
    # The same model version again shares the monitor (no duplicate series), and a
    # second Monitor of it is refused rather than replacing the first.
    again = modelmon.monitored(model="m", version="1", registry=registry)(lambda X: X)
    assert again.monitor is predict.monitor  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError):
        modelmon.Monitor("m", "1", registry=registry)
    other = modelmon.Monitor("other", "2", registry=registry)  # exported while referenced
    other.observe([[1.0, None]], [3.0])
    # Drift gauges, live quantiles and the opt-in bin edges (once labelled quantile / le).
    rng = np.random.default_rng(11)
    reference = ReferenceProfile.from_data(
        [{"a": float(a), "b": float(b)} for a, b in rng.normal(size=(500, 2))],
        feature_names=["a", "b"],
    )
    drifting = modelmon.Monitor(
        "drift", "1", registry=registry, reference=reference, export_bin_edges=True
    )
    for a, b in rng.normal(0.5, 1.0, size=(300, 2)):
        drifting.observe({"a": float(a), "b": float(b)}, 1.0)
    text = generate_latest(registry)
    families = ("feature_drift{", "feature_quantile{", "feature_bin_edges_info{")
    outliers = ("feature_outliers_total{", "outlier_rows_total{", "feature_out_of_range_total{")
    for family in families + outliers:
        assert b"modelmon_" + family.encode() in text, family
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, check=False
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.strip() == b"", result.stdout.decode()
