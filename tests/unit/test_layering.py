"""The core stays light: optional packages are imported only when used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


LAZY_SCRIPT = """
import sys
import modelmon
import modelmon.cli
loaded = [m for m in ("numpy", "prometheus_client", "modelmon.monitor", "modelmon.monitoring")
          if m in sys.modules]
print(",".join(loaded))
"""


def test_import_modelmon_and_its_cli_loads_no_monitor_numpy_or_exporter() -> None:
    out = subprocess.run(
        [sys.executable, "-c", LAZY_SCRIPT], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "", f"loaded at import: {out.stdout}"


PROFILE_SCRIPT = """
import sys
from modelmon.cli import main
main(["profile", sys.argv[1], "--prediction-column", "y", "-o", sys.argv[2]])
print("loaded:" + ",".join(m for m in ("prometheus_client", "modelmon.monitor",
                                       "modelmon.monitoring", "opentelemetry") if m in sys.modules))
"""


def test_modelmon_profile_loads_neither_the_monitor_nor_an_exporter(tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    data.write_text("a,b,y\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(200)))
    out = subprocess.run(
        [sys.executable, "-c", PROFILE_SCRIPT, str(data), str(tmp_path / "ref.json")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert (tmp_path / "ref.json").stat().st_size > 0
    assert out.stdout.strip().splitlines()[-1] == "loaded:", out.stdout


DIRECT_SCRIPT = """
from modelmon.monitor import Monitor  # not through modelmon.__getattr__
Monitor("direct", "1").observe({"a": 1.0}, 0.5)
from prometheus_client import REGISTRY, generate_latest
print(b'modelmon_requests_total{model="direct"' in generate_latest(REGISTRY))
"""


def test_a_monitor_imported_directly_is_still_exported() -> None:
    out = subprocess.run(
        [sys.executable, "-c", DIRECT_SCRIPT], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "True", out.stdout + out.stderr
