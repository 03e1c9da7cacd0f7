"""The core stays light: optional packages are imported only when used."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
import numpy as np
import modelmon
predict = modelmon.monitored(model="m", version="1")(lambda X: X.sum(axis=1))
predict(np.ones((3, 2)))
modelmon.Monitor("n", "1").observe({"a": 1.0}, 0.5)
from prometheus_client import REGISTRY, generate_latest
assert b"modelmon_requests_total" in generate_latest(REGISTRY)
heavy = ["pandas", "fastapi", "starlette", "flask", "sklearn", "scipy", "pydantic",
         "opentelemetry.sdk.metrics", "yaml"]
print(",".join(m for m in heavy if m in sys.modules))
"""


def test_import_and_use_without_optional_packages() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported without need: {out.stdout}"


def test_cli_help_needs_no_extra() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "modelmon", "--help"], capture_output=True, text=True, check=True
    )
    assert "demo" in out.stdout and "profile" in out.stdout and "grafana" in out.stdout
