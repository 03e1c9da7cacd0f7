"""A fold part releases the GIL between its steps; counts stay exact whatever the pauses."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import numpy as np
import pytest

from modelmon import Monitor, ReferenceProfile, fold_parts, fold_steps
from modelmon.batch import Batch

NOW = time.time()
WIDTH = 6


class _Recorder:
    """Stands in for the ``time`` module in ``fold_steps``: logs every pause."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.perf_counter_ns = time.perf_counter_ns

    def sleep(self, seconds: float) -> None:
        assert seconds == 0
        self.log.append("pause")
        time.sleep(0)


class _Step:
    """An aggregate that logs its fold."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def fold(self, batch: Batch) -> None:
        self.log.append(self.name)


def _reference() -> ReferenceProfile:
    rows = np.random.default_rng(7).normal(size=(3000, WIDTH))
    return ReferenceProfile.from_data(rows, feature_names=[f"f{i}" for i in range(WIDTH)])


REFERENCE = _reference()


def test_pauses_are_spaced_by_pause_ns(monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[str] = []
    monkeypatch.setattr(fold_steps, "time", _Recorder(log))
    monkeypatch.setattr(fold_steps, "PAUSE_NS", 10**15)
    pauses = fold_steps.Pauses()
    for _ in range(5):
        pauses()
    assert log == [] and pauses.taken == 0  # no step is that long
    monkeypatch.setattr(fold_steps, "PAUSE_NS", 0)
    for _ in range(5):
        pauses()
    assert log == ["pause"] * 5 and pauses.taken == 5


def test_every_aggregate_of_every_part_folds_after_a_pause(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log: list[str] = []
    monkeypatch.setattr(fold_steps, "time", _Recorder(log))
    monkeypatch.setattr(fold_steps, "PAUSE_NS", 0)
    mon = Monitor("steps", "1", registry=False, buffer_size=100_000, strict=True)
    mon.observe(np.ones((10, WIDTH)), np.zeros(10))
    mon.fold(NOW)  # schema learnt
    mon.aggregates["first"] = _Step("first", log)
    mon.aggregates["second"] = _Step("second", log)
    rng = np.random.default_rng(1)
    with mon.folding.lock:  # the background folder waits: one fold here
        for _ in range(3 * 64):  # three parts of 64 calls of 64 rows (4,096 rows a part)
            mon.observe(rng.normal(size=(64, WIDTH)), np.zeros(64))
        log.clear()
        mon.fold(NOW)
    parts = [i for i, step in enumerate(log) if step == "first"]
    assert len(parts) == 3
    for i in parts:
        assert log[i - 1] == "pause"  # the GIL was released right before it
        assert log[i + 1] == "pause"
        assert log[i + 2] == "second"
    # Within each part's extraction too (stacking, feature frame, output frame), not
    # only between aggregates: more pauses than aggregates per part.
    first_part = log[: parts[0]]
    assert first_part.count("pause") >= len(mon.aggregates) - 2 + 3
    assert mon.traffic.predictions == 10 + 3 * 64 * 64
    mon.close()


def _serve(mon: Monitor, seed: int, calls: int) -> None:
    rng = np.random.default_rng(seed)

    @mon
    def predict(x: Any) -> Any:
        return np.full(len(x), 0.5)

    for i in range(calls):
        rows = 1 + i % 64
        predict(rng.normal(size=(rows, WIDTH)))


def test_counts_stay_exact_with_callers_running_between_steps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Four serving threads while the background folder folds (a pause at every step),
    against the same calls folded whole in one thread."""
    monkeypatch.setattr(fold_steps, "PAUSE_NS", 0)
    threads_mon = Monitor("steps-live", "1", registry=False, reference=REFERENCE, buffer_size=32)
    workers = [threading.Thread(target=_serve, args=(threads_mon, seed, 400)) for seed in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    threads_mon.fold(NOW)

    monkeypatch.setattr(fold_steps, "PAUSE_NS", 10**15)
    whole = Monitor("steps-whole", "1", registry=False, reference=REFERENCE, buffer_size=10**6)
    with whole.folding.lock:
        for seed in range(4):
            _serve(whole, seed, 400)
        whole.fold(NOW)
    try:
        rows = 4 * sum(1 + i % 64 for i in range(400))
        assert threads_mon.traffic.requests == whole.traffic.requests == 1600
        assert threads_mon.traffic.predictions == whole.traffic.predictions == rows
        np.testing.assert_array_equal(
            threads_mon.traffic.batch_size.counts, whole.traffic.batch_size.counts
        )
        assert threads_mon.drift is not None and whole.drift is not None
        np.testing.assert_array_equal(threads_mon.drift.cum_features, whole.drift.cum_features)
        assert int(whole.drift.cum_features.sum()) == rows * WIDTH
        live_out, whole_out = threads_mon.aggregates["outliers"], whole.aggregates["outliers"]
        np.testing.assert_array_equal(live_out.out_of_range, whole_out.out_of_range)
        np.testing.assert_array_equal(live_out.feature_outliers, whole_out.feature_outliers)
        assert threads_mon.health.internal_errors == whole.health.internal_errors
    finally:
        threads_mon.close()
        whole.close()


def test_a_library_leaves_the_switch_interval_alone() -> None:
    before = sys.getswitchinterval()
    mon = Monitor("steps-switch", "1", registry=False, buffer_size=4)
    for _ in range(50):
        mon.observe(np.ones((8, WIDTH)), np.zeros(8))
    mon.fold(NOW)
    assert sys.getswitchinterval() == before
    mon.close()


class _LabelProbe:
    """Folded first in each part: at the first, a label for a call of that very part
    arrives from another thread (while the fold pauses between steps)."""

    def __init__(self, mon: Monitor) -> None:
        self.mon = mon
        self.parts = 0
        self.statuses: list[str] = []
        self.thread: threading.Thread | None = None

    def fold(self, batch: Batch) -> None:
        self.parts += 1
        if self.parts != 1:
            return
        self.thread = threading.Thread(target=self._label)
        self.thread.start()
        folding = self.mon.folding
        deadline = time.monotonic() + 60
        with folding.handoff:  # until it waits for the fold lock, or has answered
            while not folding.readers and self.thread.is_alive():
                folding.handoff.wait(0.01)
                if time.monotonic() > deadline:
                    break

    def _label(self) -> None:
        self.statuses = self.mon.record_outcomes(["order-1.3"], [1])


def test_a_label_for_a_call_in_the_part_being_folded_waits_for_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fold_parts, "MAX_PART_ROWS", 1000)
    mon = Monitor("steps-labels", "1", registry=False, buffer_size=100_000, strict=True)
    probe = _LabelProbe(mon)
    rest = dict(mon.aggregates)
    mon.aggregates.clear()
    mon.aggregates["probe"] = probe  # before the outcomes: the part's ids are not kept yet
    mon.aggregates.update(rest)
    p = np.linspace(0.1, 0.9, 10)
    with mon.folding.lock:  # the background folder waits: one fold here, in parts
        mon.observe(np.ones((10, 2)), np.column_stack([p, 1 - p]), prediction_id="order-1")
        for i in range(3000):
            mon.observe({"a": float(i), "b": 1.0}, np.array([[0.3, 0.7]]))
        mon.fold(NOW)
    assert probe.thread is not None
    probe.thread.join(60)
    assert probe.parts >= 4
    assert probe.statuses == ["matched"]
    mon.close()
