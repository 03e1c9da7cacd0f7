"""The examples under real servers on loopback: uvicorn (FastAPI) and gunicorn (Flask)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port
from tests.integration.test_gunicorn_workers import serve, venv_binary

pytestmark = pytest.mark.integration


def _wait_scrape(port: int, model: str) -> str:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert f'model="{model}"' in text
    return text


def test_fastapi_example_under_uvicorn(tmp_path: Path) -> None:
    port = free_port()
    argv = [venv_binary("uvicorn"), "examples.fastapi_app:app", "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning"]  # fmt: skip
    with serve(argv, port, tmp_path, ready_path="/example"):
        base = f"http://127.0.0.1:{port}"
        row = requests.get(f"{base}/example", timeout=10).json()
        out = requests.post(f"{base}/predict", json=row, timeout=10).json()
        fb = {"prediction_id": out["prediction_id"], "actual": out["prediction"]}
        assert requests.post(f"{base}/feedback", json=fb, timeout=10).ok
        text = _wait_scrape(port, "breast_cancer")
        assert 'modelmon_requests_total{model="breast_cancer",version="1.0"} 1.0' in text
        assert "modelmon_outcomes_total{" in text


def test_flask_example_under_gunicorn(tmp_path: Path) -> None:
    port = free_port()
    argv = [venv_binary("gunicorn"), "-w", "2", "-b", f"127.0.0.1:{port}",
            "-c", "tests/integration/apps/gunicorn_conf.py", "examples.flask_app:app"]  # fmt: skip
    with serve(argv, port, tmp_path, ready_path="/metrics"):
        base = f"http://127.0.0.1:{port}"
        row = dict.fromkeys(("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"), 0.01)
        for _ in range(10):
            assert requests.post(f"{base}/predict", json=row, timeout=10).ok
        time.sleep(1.5)  # the other worker's calls arrive with its next fold
        for _ in range(4):
            text = _wait_scrape(port, "diabetes")
            assert 'modelmon_requests_total{model="diabetes",version="1.0"} 10.0' in text
