"""The fold runs off the request path: past the soft limit the caller only wakes the folder."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from modelmon import Monitor, fold
from modelmon._internal import registry
from modelmon._internal.folder import FOLDER
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


def test_one_call_per_fold_wakes_the_folder_the_others_only_append(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past the soft limit one call wakes the folder; until the fold takes the records,
    the others do not call into the fold module at all (only the hard limit would)."""
    calls: list[int] = []
    wakes: list[Monitor] = []
    real_full = fold.buffer_full

    def counting_full(monitor: Monitor) -> None:
        calls.append(len(monitor.buffer.items) // RECORD_WIDTH)
        real_full(monitor)

    monkeypatch.setattr(fold, "buffer_full", counting_full)  # bound at wrap time
    monkeypatch.setattr(FOLDER, "wake", wakes.append)  # the folder sleeps meanwhile
    mon = Monitor("wake-once", "1", registry=False, buffer_size=4, strict=True)
    predict = mon.wrap(lambda row: row["a"])
    for i in range(40):  # 10x the soft limit, below the hard one (4 x 16)
        predict({"a": float(i)})
    assert calls == [4] and wakes == [mon] and mon.buffer.wake_sent
    mon.fold()  # the fold takes the records: the soft limit is back
    assert not mon.buffer.wake_sent and mon.buffer.limit == [mon.buffer.soft_items]
    for i in range(4):
        predict({"a": float(i)})
    assert calls == [4, 4] and wakes == [mon, mon]
    for i in range(4, 100):  # to the hard limit: that caller folds itself, nothing dropped
        predict({"a": float(i)})
    assert calls[:3] == [4, 4, 64] and mon.buffer.folded >= 64
    mon.fold()
    assert mon.traffic.requests == 140
    mon.close()


def test_a_scrape_renders_every_aggregate_holding_the_fold_lock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No fold (background, or a caller at the hard limit) changes a window while a
    scrape computes its statistics from it: another thread cannot take the fold lock
    while any aggregate renders."""
    from modelmon.profile import ReferenceProfile

    rng = np.random.default_rng(3)
    names = [f"x{i}" for i in range(4)]
    ref = ReferenceProfile.from_data(rng.normal(size=(500, 4)), feature_names=names)
    mon = Monitor("lock_render", "1", registry=False, reference=ref, feature_names=names)
    predict = mon.wrap(lambda x: 0.5)
    for row in rng.normal(size=(300, 4)):
        predict(row)
    seen: dict[str, bool] = {}

    def other_thread_can_take_the_lock() -> bool:
        got: list[bool] = []

        def attempt() -> None:
            ok = mon.folding.lock.acquire(timeout=0.05)
            got.append(ok)
            if ok:
                mon.folding.lock.release()

        t = threading.Thread(target=attempt)
        t.start()
        t.join()
        return got[0]

    for name, aggregate in mon.aggregates.items():

        def spy(ctx: object, _name: str = name, _render: object = aggregate.families) -> object:
            seen[_name] = other_thread_can_take_the_lock()
            return _render(ctx)  # type: ignore[operator]

        monkeypatch.setattr(aggregate, "families", spy)
    families = mon.collect()
    assert "drift" in seen and families
    assert not any(seen.values()), seen
    assert other_thread_can_take_the_lock()  # released after the scrape
    mon.close()
