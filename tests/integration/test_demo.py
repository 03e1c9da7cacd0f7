"""``modelmon demo`` end to end: a real uvicorn, real traffic, drift and an accuracy drop."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def test_demo_shows_traffic_drift_and_accuracy_drop() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "modelmon.cli", "demo", "--duration", "15", "--no-tty",
         "--port", str(free_port())],
        cwd=ROOT, capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "/metrics" in out and "grafana" in out
    requests = int(re.search(r"summary: requests=(\d+)", out).group(1))  # type: ignore[union-attr]
    assert requests > 300
    drifted = re.search(r"drift detected on: (.*)", out).group(1)  # type: ignore[union-attr]
    # The drift phase flags the shifted features and no other.
    assert set(drifted.split(", ")) == {"mean radius", "worst perimeter", "mean concavity"}
    # The normal phase (reference from the held-out rows the traffic resamples) is silent.
    normal = [line for line in out.splitlines() if "phase=normal" in line]
    assert normal and all("Drift" not in line.split("alerts:")[1] for line in normal), normal
    m = re.search(r"accuracy before=([\d.]+) after=([\d.]+)", out)
    assert m is not None
    before, after = float(m.group(1)), float(m.group(2))
    assert before > 0.85 and after < 0.8
    assert "ModelmonAccuracyBelowTarget" in out and "ModelmonFeatureDrift" in out
    assert "errors=" in out and "ModelmonErrorBudgetBurn" in out
