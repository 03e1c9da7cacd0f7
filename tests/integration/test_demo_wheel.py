"""``modelmon demo`` from a built wheel, in a fresh venv outside the checkout.

The wheel is built from this checkout (``pip wheel --no-deps``), installed into a new
virtual environment under the test's temporary directory, and run from that directory:
nothing of the working tree (``examples/``, ``grafana/``) is reachable. First without
its extras (a missing optional dependency: one line, non-zero exit), then with
``[examples]`` (the fixture does both steps, so test order does not matter): the demo
runs and prints its summary, ``modelmon grafana export`` writes the monitoring files,
a busy port is one line and a non-zero exit, and ``modelmon --version`` is the wheel's
own version. pip installs from its cache or the
configured index, as ``make dev`` does.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_INTEGRATION, free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]
INSTALL_TIMEOUT = 900


@dataclass(frozen=True)
class Venv:
    """A fresh virtual environment with the built wheel installed."""

    root: Path
    wheel: Path
    cwd: Path
    without_extras: subprocess.CompletedProcess[str] | None = None

    def bin(self, name: str) -> str:
        return str(self.root / "bin" / name)

    def run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, cwd=self.cwd, env=_clean_env(), capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip

    def pip_install(self, requirement: str) -> None:
        proc = self.run(self.bin("python"), "-m", "pip", "install", "--quiet", requirement,
                        timeout=INSTALL_TIMEOUT)  # fmt: skip
        _require_ok(proc, f"pip install {requirement}")


def _clean_env() -> dict[str, str]:
    """The environment without anything pointing into the checkout or its venv."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "MODELMON_MULTIPROC_DIR", "PROMETHEUS_MULTIPROC_DIR")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(ROOT))
    )
    return env


def _require_ok(proc: subprocess.CompletedProcess[str], what: str) -> None:
    if proc.returncode == 0:
        return
    message = f"{what} failed ({proc.returncode}): {proc.stderr[-3000:]}"
    if REQUIRE_INTEGRATION:
        pytest.fail(message)
    pytest.skip(message + " (packages unavailable offline?)")


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venv]:
    base = tmp_path_factory.mktemp("demo-wheel")
    dist, cwd = base / "dist", base / "elsewhere"
    cwd.mkdir()
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(dist),
         str(ROOT)],
        cwd=base, env=_clean_env(), capture_output=True, text=True, timeout=INSTALL_TIMEOUT,
        check=False,
    )  # fmt: skip
    _require_ok(build, "pip wheel")
    (wheel,) = dist.glob("modelmon-*.whl")
    created = subprocess.run(
        [sys.executable, "-m", "venv", str(base / "venv")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    _require_ok(created, "python -m venv")
    bare = Venv(base / "venv", wheel, cwd)
    bare.pip_install(str(wheel))
    # The demo before its extra is installed: a missing optional dependency.
    without_extras = bare.run(bare.bin("modelmon"), "demo", "--duration", "5", "--no-tty",
                              "--port", str(free_port()))  # fmt: skip
    imports_fastapi = bare.run(bare.bin("python"), "-c", "import fastapi").returncode == 0
    assert not imports_fastapi, "the fresh venv already has fastapi: not a fresh venv"
    bare.pip_install(f"{wheel}[examples]")
    yield Venv(bare.root, wheel, cwd, without_extras)


def test_the_wheel_ships_the_demo_app_and_no_checkout_paths(venv: Venv) -> None:
    names = zipfile.ZipFile(venv.wheel).namelist()
    assert "modelmon/_cli/demo_app/fastapi_app.py" in names
    assert not any(n.startswith(("examples/", "grafana/", "tests/")) for n in names)


def test_missing_extra_is_one_line_and_non_zero(venv: Venv) -> None:
    proc = venv.without_extras  # run by the fixture before it installed [examples]
    assert proc is not None
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "pip install 'modelmon[examples]'" in lines[0] and "Traceback" not in proc.stderr


def test_demo_runs_from_the_wheel_and_prints_its_summary(venv: Venv) -> None:
    proc = venv.run(venv.bin("modelmon"), "demo", "--duration", "20", "--no-tty",
                    "--port", str(free_port()), timeout=180)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]  # the error burst is on screen
    out = proc.stdout
    requests = re.search(r"summary: requests=(\d+)", out)
    assert requests is not None, out[-3000:]
    assert int(requests.group(1)) > 300
    drifted = re.search(r"summary: drift detected on: (.*)", out)
    assert drifted is not None
    assert set(drifted.group(1).split(", ")) == {"mean radius", "worst perimeter", "mean concavity"}
    accuracy = re.search(r"summary: accuracy before=([\d.]+) after=([\d.]+)", out)
    assert accuracy is not None
    assert float(accuracy.group(1)) > 0.85 and float(accuracy.group(2)) < 0.8
    assert "ModelmonFeatureDrift" in out.split("summary: alerts that fired:")[1]
    # The demo ran from the installed package, not from a working tree.
    assert "modelmon._cli.demo_app.fastapi_app" in out
    assert not (venv.cwd / "examples").exists()


def test_busy_port_is_one_line_and_non_zero(venv: Venv) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = venv.run(venv.bin("modelmon"), "demo", "--duration", "5", "--no-tty",
                        "--port", str(port))  # fmt: skip
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"modelmon demo: port {port} on 127.0.0.1 is busy; pass --port to use another"]
    assert proc.stdout == ""


def test_grafana_export_writes_the_bundled_files_anywhere(venv: Venv) -> None:
    proc = venv.run(venv.bin("modelmon"), "grafana", "export", "monitoring")
    assert proc.returncode == 0, proc.stderr
    out = venv.cwd / "monitoring"
    committed = ROOT / "grafana"
    for relative in (
        "dashboards/modelmon.json",
        "prometheus/alert_rules.yml",
        "prometheus/recording_rules.yml",
        "alertmanager/alertmanager.yml",
    ):
        written = (out / relative).read_text(encoding="utf-8")
        assert written == (committed / relative).read_text(encoding="utf-8"), relative


def test_version_is_the_wheels_metadata(venv: Venv) -> None:
    metadata = venv.run(venv.bin("python"), "-c",
                        "import importlib.metadata as m; print(m.version('modelmon'))")  # fmt: skip
    assert metadata.returncode == 0, metadata.stderr
    version = metadata.stdout.strip()
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", version)
    assert f"-{version}-" in venv.wheel.name
    cli = venv.run(venv.bin("modelmon"), "--version")
    assert cli.stdout.strip() == f"modelmon {version}"
