"""Several worker processes: any worker's scrape returns the exact totals of all workers.

Real gunicorn (sync workers, and uvicorn workers) and ``uvicorn --workers`` on loopback,
with ``MODELMON_MULTIPROC_DIR`` set. Guarantee checked: once every worker has folded and
written (the background fold runs every second, writes follow within 0.1 s), every
scrape, whichever worker serves it, shows every call; counters never decrease, even
when a worker is SIGKILLed and archived by gunicorn's ``child_exit`` hook.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port

from ._gunicorn import Samples, multiproc_env, serve_app, venv_binary
from ._gunicorn import scrape as scrape_app

LABELS = {"model": "workers", "version": "1"}
pytestmark = pytest.mark.integration


@contextmanager
def serve(
    argv: list[str], port: int, tmp: Path, ready_path: str = "/pid", **env: str
) -> Iterator[subprocess.Popen[bytes]]:
    with serve_app(argv, port, tmp, multiproc_env(tmp, **env), ready_path=ready_path) as proc:
        yield proc


def load(port: int, n: int, threads: int = 8) -> int:
    """``n`` predictions from ``threads`` clients; returns how many succeeded."""

    def one(i: int) -> bool:
        try:
            r = requests.post(
                f"http://127.0.0.1:{port}/predict", json={"x": float(i), "y": 1.0}, timeout=10
            )
        except requests.RequestException:  # a worker killed under our feet
            return False
        return r.status_code == 200

    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(one, range(n)))


def scrape(port: int) -> Samples:
    return scrape_app(port, model="workers")


def requests_total(samples: Samples) -> float:
    return samples[("modelmon_requests_total", tuple(sorted(LABELS.items())))]


def monotonic_samples(samples: Samples) -> Samples:
    suffixes = ("_total", "_count", "_sum", "_bucket")
    return {k: v for k, v in samples.items() if k[0].endswith(suffixes)}


def assert_exact_after_fold(port: int, expected: int, scrapes: int = 8) -> None:
    time.sleep(1.5)  # one background fold (1 s) and its write (<= 0.1 s) in every worker
    for _ in range(scrapes):
        assert requests_total(scrape(port)) == expected


def worker_pids(master: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                pids.append(int(entry.name))
    return pids


def kill_a_worker_under_load(
    port: int, master: int, n: int, settle_s: float = 0.0
) -> tuple[list[Samples], int]:
    """SIGKILL one worker while ``n`` calls run, scraping all along (and 5 times after
    ``settle_s``); returns the monotonic samples of every scrape and the calls served."""
    history = [monotonic_samples(scrape(port))]
    victim = worker_pids(master)[0]
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(load, port, n)
        time.sleep(0.3)
        os.kill(victim, signal.SIGKILL)
        while not pending.done():
            history.append(monotonic_samples(scrape(port)))
        ok = pending.result()
    time.sleep(settle_s)
    history += [monotonic_samples(scrape(port)) for _ in range(5)]
    return history, ok


def assert_never_decreases(history: list[Samples]) -> None:
    for before, after in itertools.pairwise(history):
        for key, value in before.items():
            assert after.get(key, 0.0) >= value, key


def test_gunicorn_sync_workers_with_preload(tmp_path: Path) -> None:
    port = free_port()
    argv = [venv_binary("gunicorn"), "-w", "4", "--preload", "-b", f"127.0.0.1:{port}",
            "-c", "tests/integration/apps/gunicorn_conf.py",
            "tests.integration.apps.workers_app:wsgi"]  # fmt: skip
    with serve(argv, port, tmp_path, WORKERS_APP_WARMUP="5"):
        assert load(port, 2000) == 2000
        assert_exact_after_fold(port, 2005)  # the master's 5 warm-up calls count once
        assert len(list(tmp_path.glob("modelmon_*.state"))) >= 4


def test_gunicorn_uvicorn_workers_survive_sigkill(tmp_path: Path) -> None:
    port = free_port()
    argv = [venv_binary("gunicorn"), "-w", "4", "-k", "uvicorn.workers.UvicornWorker",
            "-b", f"127.0.0.1:{port}", "-c", "tests/integration/apps/gunicorn_conf.py",
            "tests.integration.apps.workers_app:asgi"]  # fmt: skip
    with serve(argv, port, tmp_path) as master:
        assert load(port, 2000) == 2000
        assert_exact_after_fold(port, 2000)
        history, ok = kill_a_worker_under_load(port, master.pid, 1000, settle_s=1.5)
    assert_never_decreases(history)
    final = requests_total(history[-1])
    # Never more than was served; the victim's calls of its last ~1.1 s (folded or
    # written after the last write) die with it: at most a quarter of the 1,000 here.
    assert 2000 + 0.75 * ok <= final <= 3000
    # child_exit archived the victim (a dead-worker file, or folded into the archive)
    assert (
        list(tmp_path.glob("modelmon_dead_*.state"))
        or (tmp_path / "modelmon_archive.state").exists()
    )


def test_uvicorn_workers(tmp_path: Path) -> None:
    port = free_port()
    argv = [venv_binary("uvicorn"), "--workers", "2", "--port", str(port), "--host", "127.0.0.1",
            "--log-level", "warning", "tests.integration.apps.workers_app:asgi"]  # fmt: skip
    with serve(argv, port, tmp_path):
        assert load(port, 600, threads=4) == 600
        assert_exact_after_fold(port, 600, scrapes=4)
        for _ in range(4):  # the middleware's HTTP counters merge across workers too
            assert http_posts(port) == 600


def http_posts(port: int) -> float:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "modelmon_http_requests_total" and s.labels.get("method") == "POST"
    )
