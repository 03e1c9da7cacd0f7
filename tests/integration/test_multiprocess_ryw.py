"""Read-your-writes and nothing lost at exit, with real gunicorn workers (issues 12 and 13).

* A scrape taken immediately after a load, whichever worker serves it, equals the number
  of completed calls: the scraping worker asks every other live worker to fold and
  write, and waits for their answers (at most ``FLUSH_WAIT_S``).
* Workers recycled by ``--max-requests`` write their last calls at exit (``atexit`` and
  gunicorn's ``worker_exit``), and ``child_exit`` archives them: every request counts.
* A SIGKILLed worker never makes a counter go back.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.integration._gunicorn import venv_binary
from tests.integration.test_gunicorn_workers import (
    assert_never_decreases,
    kill_a_worker_under_load,
    load,
    requests_total,
    scrape,
    serve,
)

pytestmark = pytest.mark.integration
CONF = "tests/integration/apps/gunicorn_conf.py"


def gunicorn(port: int, *extra: str, worker: str = "sync") -> list[str]:
    argv = [venv_binary("gunicorn"), "-w", "4", "-b", f"127.0.0.1:{port}", "-c", CONF, *extra]
    if worker != "sync":
        argv += ["-k", worker]
    return [*argv, "tests.integration.apps.workers_app:wsgi" if worker == "sync"
            else "tests.integration.apps.workers_app:asgi"]  # fmt: skip


@pytest.mark.parametrize("worker", ["sync", "uvicorn.workers.UvicornWorker"])
def test_every_scrape_right_after_the_load_sees_every_call(tmp_path: Path, worker: str) -> None:
    port = free_port()
    done = 0
    seen = []
    with serve(gunicorn(port, worker=worker), port, tmp_path):
        for _ in range(8):  # 8 rounds of 250 calls, each followed at once by a scrape
            done += load(port, 250)
            seen.append(requests_total(scrape(port)))
    assert done == 2000
    assert seen == [250 * (i + 1) for i in range(8)]


def test_max_requests_recycling_loses_no_call(tmp_path: Path) -> None:
    port = free_port()
    argv = gunicorn(port, "--max-requests", "150", "--max-requests-jitter", "0")
    with serve(argv, port, tmp_path):
        ok = load(port, 5999)
        time.sleep(0.5)  # let the master reap and archive the last recycled workers
        totals = [requests_total(scrape(port)) for _ in range(4)]
    assert ok == 5999
    assert totals == [5999] * 4
    assert not list(tmp_path.glob("*.tmp"))
    # 40 recycled workers, folded into one archive: the directory does not grow with them.
    dead = sorted(p.name for p in tmp_path.glob("modelmon_dead_*.state"))
    assert (tmp_path / "modelmon_archive.state").exists()
    assert len(dead) <= 8, sorted(p.name for p in tmp_path.iterdir())


def test_sigkilled_worker_never_makes_a_counter_go_back(tmp_path: Path) -> None:
    port = free_port()
    with serve(gunicorn(port, worker="uvicorn.workers.UvicornWorker"), port, tmp_path) as master:
        assert load(port, 1000) == 1000
        history, ok = kill_a_worker_under_load(port, master.pid, 1000)
    assert requests_total(history[0]) == 1000  # scraped before the kill, no sleep: read-your-writes
    assert_never_decreases(history)
    final = requests_total(history[-1])
    # The victim's calls since its last write die with it; all the others count.
    assert 1000 + 0.75 * ok <= final <= 2000
