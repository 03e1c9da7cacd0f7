"""The fold runs off the request path: past the soft limit the caller only wakes the folder."""

from __future__ import annotations

import threading
import time

import numpy as np

from modelmon import Monitor
from modelmon._internal import registry
from modelmon.buffer import RECORD_WIDTH


def _wait_until_folded(mon: Monitor, calls: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while mon.buffer.folded < calls and time.monotonic() < deadline:
        time.sleep(0.01)


def test_callers_below_the_hard_limit_never_fold() -> None:
    mon = Monitor("off-path", "1", registry=False, buffer_size=16, strict=True)
    folders: list[str] = []

    def hook(m: Monitor) -> None:
        if m is mon:
            folders.append(threading.current_thread().name)

    @mon
    def predict(row: dict[str, float]) -> float:
        return row["a"]

    registry.on(registry.AFTER_FOLD, hook)
    try:
        for i in range(64):
            predict({"a": float(i), "b": 1.0})
            time.sleep(0.0005)  # a server's pace: the folder keeps up, no hard limit reached
            assert len(mon.buffer.items) < mon.buffer.hard_items
        _wait_until_folded(mon, 64)
        assert mon.buffer.folded == 64
        assert folders, "the soft limit was passed 4 times: the folder must have folded"
        assert set(folders) == {"modelmon-fold"}  # never the calling (main) thread
    finally:
        registry.off(registry.AFTER_FOLD, hook)
    # `folded` counts calls taken by a fold; the folder may still be adding them to the
    # aggregates. An explicit fold waits for that fold (and any queued part), as a read does.
    mon.fold()
    assert mon.traffic.requests == 64
    mon.close()


def test_hard_limit_folds_in_the_caller_and_drops_nothing() -> None:
    mon = Monitor("hard", "1", registry=False, buffer_size=2, strict=True)

    @mon
    def predict(x: np.ndarray) -> float:
        return float(x[0])

    # A thread holding the fold lock keeps the background folder out: callers pass the
    # soft limit without blocking until the hard limit (2 x 16 records).
    hold, release = threading.Event(), threading.Event()

    def holder() -> None:
        with mon.folding.lock:
            hold.set()
            release.wait(30)

    t = threading.Thread(target=holder)
    t.start()
    hold.wait(30)
    for i in range(31):  # one short of the hard limit: none of these may block
        predict(np.array([float(i), 1.0]))
    assert len(mon.buffer.items) == 31 * RECORD_WIDTH
    release.set()
    t.join()
    for i in range(31, 100):
        predict(np.array([float(i), 1.0]))
        assert len(mon.buffer.items) <= mon.buffer.hard_items
    mon.fold()
    assert mon.traffic.requests == 100
    mon.close()
