"""A real MLflow tracking server (SQLite backend store, local artifact root) for tests.

One server per test session (it takes a while to start on a busy machine): started
on a free 127.0.0.1 port in its own process group, stopped (the whole group) at the
end of the session, also when a test fails.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_INTEGRATION, free_port
from tests.integration._prom import wait_until

START_TIMEOUT = 240.0


@dataclass(frozen=True)
class MlflowServer:
    url: str
    root: Path
    process: subprocess.Popen[bytes]


def require_mlflow_server() -> None:
    """Skip (or fail under MODELMON_REQUIRE_INTEGRATION=1) without MLflow's server parts."""
    missing = [
        m for m in ("mlflow", "sqlalchemy", "alembic") if importlib.util.find_spec(m) is None
    ]
    if missing:
        message = f"MLflow server needs {', '.join(missing)} (pip install -e '.[dev]')"
        if REQUIRE_INTEGRATION:
            pytest.fail(message + " and MODELMON_REQUIRE_INTEGRATION=1")
        pytest.skip(message)


def _healthy(url: str) -> bool:
    with urllib.request.urlopen(url + "/health", timeout=2.0) as resp:
        return resp.status == 200


def start_server(root: Path) -> MlflowServer:
    """Start ``mlflow server``; return once ``/health`` answers."""
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        # The job runner (huey) is an optional extra and spawns more processes.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--default-artifact-root", str(root / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    with (root / "server.log").open("wb") as log:  # the child keeps its own copy of the fd
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: proc.poll() is None and _healthy(url),
            START_TIMEOUT,
            "the MLflow tracking server",
            interval=0.5,
            details=lambda: (root / "server.log").read_text(errors="replace")[-3000:],
        )
    except BaseException:
        stop_server(proc)
        raise
    return MlflowServer(url, root, proc)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server and its uvicorn worker (the process group it leads)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pass
    except ProcessLookupError:
        return
    with contextlib.suppress(ProcessLookupError):  # a worker that ignored SIGTERM
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    require_mlflow_server()
    server = start_server(tmp_path_factory.mktemp("mlflow"))
    try:
        yield server
    finally:
        stop_server(server.process)
