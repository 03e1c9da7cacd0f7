"""First-request schema capture, huge batches, and a wall clock that steps back."""

from __future__ import annotations

import threading
import time
import tracemalloc
from collections.abc import Mapping
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import modelmon
from modelmon.batch import Batch


def _feature_labels(registry: CollectorRegistry) -> set[str]:
    text = generate_latest(registry).decode()
    return {
        s.labels["feature"]
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if "feature" in s.labels
    }


def test_a_hostile_first_request_cannot_choose_the_feature_labels() -> None:
    # No reference, no feature_names: before, the first request fixed the schema and a
    # hostile one exported 100 attacker-chosen feature names.
    registry = CollectorRegistry()
    mon = modelmon.Monitor("schema", "1", registry=registry)

    @mon
    def predict(row: dict[str, Any]) -> float:
        return 0.5

    hostile = {f"attacker_{i}": 1.0 for i in range(100)}
    hostile["x" * 5000] = 1.0  # a huge key
    hostile["bad\nname"] = 1.0  # a control character
    predict({**hostile, "age": 30.0, "income": 1.0})
    for i in range(50):
        predict({"age": float(i), "income": float(2 * i)})
    # Junk keys repeated by a second hostile request stay out when they are not names.
    predict({"x" * 5000: 1.0, "bad\nname": 2.0, "age": 1.0, "income": 1.0})
    mon.fold()
    assert _feature_labels(registry) == {"age", "income"}
    assert mon.schema.names == ("age", "income")
    # Nothing honest was lost while the names were being learned: 52 rows of "age".
    assert mon.traffic.requests == 52
    observed = {
        s.labels["feature"]: s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
        if s.name == "modelmon_feature_observations_total"
    }
    assert observed == {"age": 52.0, "income": 52.0}
    mon.close()


def test_a_hostile_stream_of_junk_keys_keeps_learning_bounded() -> None:
    # Every request a new set of junk keys: no key is confirmed, the waiting rows stay
    # bounded (counted as dropped), and the learner's key table stays bounded.
    from modelmon import schema_learning

    mon = modelmon.Monitor("schema-junk", "1", registry=False, buffer_size=100_000)
    for i in range(3000):
        mon.observe({f"junk{i}_{j}": 1.0 for j in range(5)}, 0.5)
    mon.fold()
    learner = mon.learner
    assert learner is not None and not mon.schema.fixed
    assert learner.pending_rows <= schema_learning.PENDING_ROWS
    assert len(learner.order) <= schema_learning.MAX_KEYS + 5
    assert mon.health.dropped["schema_learning"] == 3000 - schema_learning.PENDING_ROWS
    mon.close()


class _ScrapeBetweenParts:
    """Folded after the traffic aggregate: at the first part, a scrape starts in another
    thread; the last part records whether it had finished by then."""

    def __init__(self, mon: modelmon.Monitor) -> None:
        self.mon = mon
        self.parts = 0
        self.scraped = threading.Event()
        self.scrape_done_before_the_end = False
        self.fold_seen_at = 10**9  # parts folded when the scrape's fold returned

    def fold(self, batch: Batch) -> None:
        self.parts += 1
        if self.parts == 1:
            threading.Thread(target=self._scrape, daemon=True).start()
            with self.mon.folding.handoff:
                while not self.mon.folding.readers:
                    self.mon.folding.handoff.wait(0.01)
        elif getattr(batch, "call_rows", None) == batch.row_offset + batch.rows[0]:
            # Waits for the scrape (its render reads in-flight calls under the fold lock:
            # the lock is handed over as between parts). Before, the scrape needed the
            # lock for its fold, held by this one-pass fold: a failure after the timeout.
            deadline = time.monotonic() + 120
            while not self.scraped.wait(0.01) and time.monotonic() < deadline:
                self.mon.folding.let_readers_in()
            self.scrape_done_before_the_end = self.scraped.is_set()

    def _scrape(self) -> None:
        from modelmon.fold import fold_for_scrape  # (absent before the fix)

        fold_for_scrape(self.mon)  # what collect() folds with
        self.fold_seen_at = self.parts
        self.mon.collect()
        self.scraped.set()

    def families(self, ctx: Any) -> list[Any]:
        return []

    def merge(self, other: Any) -> None:  # pragma: no cover
        pass

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: Mapping[str, Any]) -> None:  # pragma: no cover
        pass


def test_a_huge_batch_folds_in_bounded_memory_and_lets_a_scrape_in() -> None:
    # A 1e6 x 8 batch (64 MB): before, one fold pass built several arrays of that size
    # and held the fold lock throughout (a 1e7-row call blocked others 6.8 s).
    rows, width = 1_000_000, 8
    batch = np.random.default_rng(5).normal(size=(rows, width))
    mon = modelmon.Monitor("huge", "1", registry=False, buffer_size=10, strict=True)

    @mon
    def predict(x: np.ndarray) -> np.ndarray:
        return x[:, 0] > 0

    predict(batch[:10])
    mon.fold()
    probe = _ScrapeBetweenParts(mon)
    mon.aggregates["probe"] = probe
    with mon.folding.lock:  # the background folder waits: this thread folds it
        predict(batch)
        tracemalloc.start()
        try:
            mon.fold()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < batch.nbytes / 8, peak
    assert probe.parts >= 100  # parts of at most 4,096 rows (modelmon.fold_parts)
    assert probe.scrape_done_before_the_end
    assert probe.fold_seen_at < probe.parts  # the scrape got in between two parts
    assert (mon.traffic.requests, mon.traffic.predictions) == (2, rows + 10)
    assert mon.inputs.observations.tolist() == [rows + 10] * width
    mon.close()


def _window_rows(mon: modelmon.Monitor, now: float) -> int:
    assert mon.drift is not None
    merged = mon.drift.window.merged(now)
    return 0 if merged is None else int(merged.features.counts.sum())


def test_a_wall_clock_step_back_never_resurrects_old_drift_slots() -> None:
    rng = np.random.default_rng(9)
    ref = modelmon.ReferenceProfile.from_data(rng.normal(size=(2000, 1)), feature_names=["x"])
    mon = modelmon.Monitor("clock", "1", registry=False, reference=ref, window_seconds=900)
    t0 = 1_800_000_000.0
    for v in rng.normal(5.0, 1.0, 300):  # drifted traffic at t0
        mon.observe({"x": float(v)}, 0.5)
    mon.fold(now=t0)
    assert _window_rows(mon, t0) == 300
    # NTP steps the clock back one hour; honest traffic goes on for an hour.
    for step in range(0, 3600, 300):
        for v in rng.normal(0.0, 1.0, 10):
            mon.observe({"x": float(v)}, 0.5)
        mon.fold(now=t0 - 3600 + step)
    # An hour of real time later, the clock reads t0 again: the drifted rows are an hour
    # old and must not come back into the 15-minute window.
    mon.fold(now=t0 + 1)
    assert _window_rows(mon, t0 + 1) <= 40  # the last 15 min of honest rows only
    mon.close()


def test_a_small_step_back_keeps_the_window_in_order() -> None:
    # A step back smaller than the window: the window stands still (new rows join the
    # newest slot) and the old rows leave it once the clock passes them.
    rng = np.random.default_rng(10)
    ref = modelmon.ReferenceProfile.from_data(rng.normal(size=(2000, 1)), feature_names=["x"])
    mon = modelmon.Monitor("clock2", "1", registry=False, reference=ref, window_seconds=900)
    t0 = 1_800_000_000.0
    for v in rng.normal(0.0, 1.0, 100):
        mon.observe({"x": float(v)}, 0.5)
    mon.fold(now=t0)
    for v in rng.normal(0.0, 1.0, 50):
        mon.observe({"x": float(v)}, 0.5)
    mon.fold(now=t0 - 120)  # two minutes back
    assert mon.drift is not None
    assert max(mon.drift.window.slots) == mon.drift.window.index(t0)
    assert _window_rows(mon, t0 - 120) == 150
    assert _window_rows(mon, t0 + 1000) == 0
    mon.close()
