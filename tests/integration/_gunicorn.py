"""Serving processes for the multi-worker tests: start one, wait until it answers, scrape it.

Shared by the gunicorn / uvicorn tests (workers, read-your-writes, fleet labels, the
prometheus-client multiprocess recipe). Everything binds 127.0.0.1 on a free port; the
process is stopped (SIGTERM, then SIGKILL) when the block ends, also when the test fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REQUIRE_INTEGRATION

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def venv_binary(name: str) -> str:
    path = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if path is None:
        message = f"{name} is not installed in the project venv (pip install -e '.[dev]')"
        if REQUIRE_INTEGRATION:
            pytest.fail(message)
        pytest.skip(message)
    return path


def multiproc_env(state_dir: Path, **env: str) -> dict[str, str]:
    """This environment plus ``MODELMON_MULTIPROC_DIR=state_dir`` and the repository on the path."""
    return {**os.environ, "MODELMON_MULTIPROC_DIR": str(state_dir), "PYTHONPATH": str(ROOT), **env}


@contextmanager
def serve_app(
    argv: list[str],
    port: int,
    log_dir: Path,
    env: Mapping[str, str],
    *,
    ready_path: str = "/pid",
    boot_seconds: float = 30.0,
    stop_seconds: float = 15.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` (cwd = the repository) until the block ends; wait (bounded) until it
    answers ``ready_path``. Its output goes to ``log_dir/server.log``, shown on failure."""
    log_path = log_dir / "server.log"
    log = open(log_path, "wb")  # noqa: SIM115
    proc = subprocess.Popen(argv, cwd=ROOT, env=dict(env), stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + boot_seconds
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}{ready_path}", timeout=5)
                break
            except requests.RequestException:  # not listening, or workers still booting
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(log_path.read_text()[-3000:]) from None
                time.sleep(0.1)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(stop_seconds)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def scrape(port: int, *, model: str | None = None, plain: bool = False) -> Samples:
    """The samples of ``/metrics`` (of ``model`` only, when given), parsed by prometheus-client."""
    url = f"http://127.0.0.1:{port}/metrics" + ("?plain" if plain else "")
    out: Samples = {}
    for family in text_string_to_metric_families(requests.get(url, timeout=30).text):
        for s in family.samples:
            if model is None or s.labels.get("model") == model:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out
