"""A scrape answers while every serving thread keeps the buffer past its hard limit."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import modelmon
from modelmon._internal import registry
from modelmon.profile import ReferenceProfile

THREADS = 8
GIVE_UP = 400  # hammer folds while the scrape waits, before the hammers are stopped


@pytest.mark.timeout(300)
def test_scrape_waits_for_at_most_one_fold_per_serving_thread() -> None:
    rng = np.random.default_rng(3)
    names = [f"f{i}" for i in range(100)]
    reference = ReferenceProfile.from_data(rng.normal(size=(2000, 100)), feature_names=names)
    mon = modelmon.Monitor("load", "1", registry=False, reference=reference, buffer_size=16)
    rows = [dict(zip(names, rng.normal(size=100).tolist(), strict=True)) for _ in range(64)]

    @mon
    def predict(row: dict[str, float]) -> float:
        return 0.5

    stop = threading.Event()
    waiting = threading.Event()
    scraper: list[int] = []
    folds_while_waiting = [0]

    def count(m: modelmon.Monitor) -> None:
        if m is mon and waiting.is_set() and threading.get_ident() not in scraper:
            folds_while_waiting[0] += 1
            if folds_while_waiting[0] >= GIVE_UP:
                stop.set()  # starved: stop the load so the test ends (and fails)

    def hammer(k: int) -> None:
        i = k
        while not stop.is_set():
            predict(rows[i % len(rows)])
            i += 1

    registry.on(registry.AFTER_FOLD, count)
    threads = [threading.Thread(target=hammer, args=(k,)) for k in range(THREADS)]
    try:
        for t in threads:
            t.start()
        while mon.traffic.requests < 5000:  # the load is on: folds past the hard limit
            threading.Event().wait(0.01)
        scraper.append(threading.get_ident())
        waiting.set()
        mon.fold()  # what a scrape does first
        waiting.clear()
    finally:
        stop.set()
        for t in threads:
            t.join(60)
        registry.off(registry.AFTER_FOLD, count)
        mon.close()
    # The fold in progress, plus at most one by each thread already blocked on the lock.
    assert folds_while_waiting[0] <= THREADS
