"""Label lookups fold first only when the fold can change their answers (issue 13 soak).

A POST of junk labels (unknown, caller-style ids) must not fold, nor wait for the fold
lock, while the pending calls carry only generated ids; nor must a binary model's labels
(their ids carry the prediction). A label for a pending call made under a
caller-supplied id, or of a model with more than two classes, still sees it folded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from modelmon import Monitor


@contextmanager
def _fold_lock_held(mon: Monitor) -> Iterator[None]:
    """Another thread holds the fold lock (the background folder cannot fold meanwhile)."""
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with mon.folding.lock:
            held.set()
            release.wait(60)

    thread = threading.Thread(target=holder, daemon=True)
    thread.start()
    assert held.wait(30)
    try:
        yield
    finally:
        release.set()
        thread.join(30)


def _label_in_thread(mon: Monitor, ids: list[str], actuals: list[float]) -> tuple[
    threading.Thread, list[list[str]]
]:  # fmt: skip
    out: list[list[str]] = []
    thread = threading.Thread(
        target=lambda: out.append(mon.record_outcomes(ids, actuals)), daemon=True
    )
    thread.start()
    return thread, out


def test_junk_labels_never_fold_nor_wait_for_the_fold_lock() -> None:
    mon = Monitor("junk", "1", registry=False, task="regression", buffer_size=4096)
    junk = [f"{i:016x}" for i in range(300)]
    with _fold_lock_held(mon):  # first: the background folder cannot fold the calls
        for i in range(50):
            mon.observe({"x": float(i)}, float(i))  # generated ids only
        assert mon.buffer.pending_calls() == 50
        thread, out = _label_in_thread(mon, junk, [1.0] * 300)
        thread.join(20)  # a hang detector, not a speed check
        finished = not thread.is_alive()
        assert mon.buffer.pending_calls() == 50  # nothing was folded for the junk
    assert finished, "junk labels waited for the fold lock"
    assert out == [["unknown"] * 300]
    assert mon.outcomes.unmatched["unknown"] == 300
    mon.close()


def test_a_label_for_a_pending_caller_supplied_id_sees_its_call_folded() -> None:
    mon = Monitor("caller", "1", registry=False, task="regression", buffer_size=4096)
    with _fold_lock_held(mon):
        mon.observe({"x": 1.0}, 2.0, prediction_id="order-1")
        mon.observe({"x": 2.0}, 3.0)
        thread, out = _label_in_thread(mon, ["order-1", "order-404"], [2.5, 1.0])
    thread.join(30)
    assert not thread.is_alive()
    assert out == [["matched", "unknown"]]
    assert mon.buffer.pending_calls() == 0
    mon.close()


def test_a_binary_models_labels_are_scored_without_folding() -> None:
    mon = Monitor("binary", "1", registry=False, task="classification", buffer_size=4096)
    with _fold_lock_held(mon):
        ids = [mon.observe({"x": float(i)}, "a" if i % 2 else "b") for i in range(4)]
        thread, out = _label_in_thread(mon, ids, ["b", "a", "a", "a"])  # type: ignore[list-item]
        thread.join(20)  # a hang detector, not a speed check
        finished = not thread.is_alive()
        assert mon.buffer.pending_calls() == 4  # the ids carried the predictions
    assert finished, "labels of a binary model waited for the fold lock"
    assert out == [["matched"] * 4]
    mon.fold()
    assert mon.traffic.requests == 4
    assert mon.outcomes.performance(time.time())["accuracy"] == 0.75  # b a b a vs b a a a
    mon.close()


def test_labels_of_a_pending_multiclass_call_see_it_folded() -> None:
    mon = Monitor("multi", "1", registry=False, task="classification", buffer_size=4096)
    with _fold_lock_held(mon):
        ids = [mon.observe({"x": float(i)}, "abc"[i % 3]) for i in range(6)]
        thread, out = _label_in_thread(mon, ids, list("abcabc"))  # type: ignore[arg-type]
    thread.join(30)
    assert not thread.is_alive()
    assert out == [["matched"] * 6]
    assert mon.buffer.pending_calls() == 0  # three classes: folded first, as before
    mon.close()
