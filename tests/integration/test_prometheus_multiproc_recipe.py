"""gunicorn with prometheus-client's multiprocess recipe: modelmon's series with one line.

Real gunicorn (3 sync workers) on loopback, only ``PROMETHEUS_MULTIPROC_DIR`` set, and
``/metrics`` built on a fresh ``CollectorRegistry`` with prometheus-client's
``MultiProcessCollector`` (``tests/integration/apps/prom_multiproc_app.py``). Without
modelmon's line the scrape has the app's own counter and no modelmon series; with it,
every scrape (whichever worker serves it) has modelmon's exact totals of all workers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port

from ._gunicorn import ROOT, scrape, serve_app, venv_binary

pytestmark = pytest.mark.integration
LABELS = (("model", "recipe"), ("version", "1"))


@contextmanager
def serve(port: int, tmp: Path, **extra_env: str) -> Iterator[Path]:
    mpdir = tmp / "prometheus_multiproc"
    mpdir.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "MODELMON_MULTIPROC_DIR"}
    env.update(PROMETHEUS_MULTIPROC_DIR=str(mpdir), PYTHONPATH=str(ROOT), **extra_env)
    argv = [venv_binary("gunicorn"), "-w", "3", "-b", f"127.0.0.1:{port}",
            "-c", "tests/integration/apps/prom_multiproc_conf.py",
            "tests.integration.apps.prom_multiproc_app:wsgi"]  # fmt: skip
    with serve_app(argv, port, tmp, env):
        yield mpdir


def wait_for(port: int, name: str, labels: tuple[tuple[str, str], ...], expected: float) -> float:
    """Scrape until ``name`` reaches ``expected`` (workers fold each second) or 20 s pass."""
    deadline = time.monotonic() + 20
    value = -1.0
    while time.monotonic() < deadline:
        value = scrape(port).get((name, labels), -1.0)
        if value == expected:
            break
        time.sleep(0.2)
    return value


def test_gunicorn_prometheus_multiproc_recipe_plus_one_line(tmp_path: Path) -> None:
    port = free_port()
    n = 300
    with serve(port, tmp_path) as mpdir:

        def one(i: int) -> int:
            url = f"http://127.0.0.1:{port}/predict"
            return requests.post(url, json={"x": float(i)}, timeout=10).status_code

        with ThreadPoolExecutor(6) as pool:
            assert list(pool.map(one, range(n))) == [200] * n
        pids = {requests.get(f"http://127.0.0.1:{port}/pid", timeout=5).text for _ in range(30)}
        assert wait_for(port, "modelmon_requests_total", LABELS, n) == n
        assert len(pids) >= 2  # the load really spread over several workers
        for _ in range(6):  # any worker's scrape: exact totals, next to the app's own counter
            samples = scrape(port)
            assert samples[("modelmon_requests_total", LABELS)] == n
            assert samples[("modelmon_predictions_total", LABELS)] == n
            assert samples[("app_predictions_total", ())] == n
            http = [
                v
                for (name, labels), v in samples.items()
                if name == "modelmon_http_requests_total" and ("status", "200") in labels
            ]
            assert sum(http) >= n  # every /predict (and the scrapes and /pid calls so far)
        plain = scrape(port, plain=True)  # the recipe alone: the trap the line fixes
        assert plain[("app_predictions_total", ())] == n
        assert not any(name.startswith("modelmon_") for name, _ in plain)
        assert list(mpdir.glob("*.db")) and list(mpdir.glob("modelmon_*.state"))


def test_a_worker_warns_when_the_recipe_never_reads_modelmon(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "server.log"
    with serve(port, tmp_path, MODELMON_UNREAD_WARNING_S="1"):
        deadline = time.monotonic() + 30
        i = 0
        while "no scrape has read modelmon" not in log.read_text() and time.monotonic() < deadline:
            url = f"http://127.0.0.1:{port}/predict"
            assert requests.post(url, json={"x": float(i)}, timeout=10).status_code == 200
            assert ("app_predictions_total", ()) in scrape(port, plain=True)  # the recipe alone
            i += 1
            time.sleep(0.1)
    text = log.read_text()
    assert "modelmon.multiprocess.MultiprocessCollector(registry)" in text, text[-3000:]
    assert "PROMETHEUS_MULTIPROC_DIR=" in text
