"""Calls a fold has taken from the buffer stay pending for label lookups until folded."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from modelmon import Monitor, fold_parts
from modelmon.batch import Batch

NOW = time.time()


class _LabelProbe:
    """Folded first in each part: at the first, a label for a call of that very part
    arrives from another thread (the folding thread can lose the GIL anywhere in a
    part: at the switch interval, or while numpy releases it)."""

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
    mon = Monitor("pending-labels", "1", registry=False, buffer_size=100_000, strict=True)
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


def test_pending_holds_the_calls_being_planned_and_the_part_being_folded() -> None:
    queue = fold_parts.PartQueue()
    records = [object()] * 7
    seen: list[list[list[object]]] = []

    def planned() -> fold_parts.Part:
        seen.append(queue.pending())  # while the planner runs
        return fold_parts.Part(records)

    queue.add(records, (planned() for _ in range(2)), NOW)
    assert seen[0][0] is records  # being planned: in sight before it is queued
    assert queue.planning == [] and len(queue.pending()) == 3

    during: list[int] = []

    def fold(part: fold_parts.Part, now: float) -> None:
        during.append(sum(r is records for r in queue.pending()))

    assert queue.run(fold, lambda: None) == 2
    assert during == [2, 1]  # the part in progress still counts, then leaves
    assert queue.pending() == [[]]
