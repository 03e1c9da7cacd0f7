"""Large folds run in parts of bounded rows: same counts as one pass, readers interleave."""

from __future__ import annotations

import threading
import time
import tracemalloc
from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np
import pytest

from modelmon import Monitor, ReferenceProfile, fold_parts
from modelmon.batch import Batch
from modelmon.fold import fold_for_scrape

NOW = time.time()


def _reference(rng: np.random.Generator) -> ReferenceProfile:
    rows = [[float(a), float(b), str(c)] for a, b, c in zip(
        rng.normal(0, 1, 2000), rng.exponential(2.0, 2000), rng.choice(["n", "s", "e"], 2000),
        strict=True)]  # fmt: skip
    return ReferenceProfile.from_data(rows, feature_names=["a", "b", "site"], categorical=["site"])


REFERENCE = _reference(np.random.default_rng(1))


def _traffic(mon: Monitor, seed: int) -> None:
    """Mixed calls: single rows, big numpy / list-of-dict batches, failures, caller ids."""
    rng = np.random.default_rng(seed)

    @mon
    def predict(x: Any) -> Any:
        n = len(x) if isinstance(x, list) else x.shape[0]
        p = rng.uniform(0, 1, n)
        return np.column_stack([p, 1 - p])

    @mon
    def fails(x: Any) -> Any:
        raise ValueError("model error")

    for _ in range(50):
        predict([{"a": float(rng.normal()), "b": float(rng.exponential()), "site": "n"}])
    predict(rng.normal(0, 1, (2500, 3)))  # numeric matrix, the third column is not a str
    big = [
        {"a": float(v), "b": None if i % 7 == 0 else float(i % 5), "site": "x" * (i % 300)}
        for i, v in enumerate(rng.normal(0.5, 1, 3001))
    ]
    predict(big)
    with pytest.raises(ValueError):
        fails([{"a": 1.0}])
    p = rng.uniform(0, 1, 1234)
    mon.observe(
        [{"a": 1.0, "b": 2.0, "site": "s"}] * 1234,
        np.column_stack([p, 1 - p]),
        latency_s=0.25,
        prediction_id="order-9",
    )
    for i in range(40):
        mon.observe({"a": float(i), "b": 1.0, "site": "e"}, float(i % 2), latency_s=0.001)


def _same(a: Any, b: Any, path: str = "") -> None:
    if path.startswith("traffic.duration"):  # wrapped calls' measured latencies differ
        return
    if path.endswith(".sketches"):  # padding depends on growth order: compared rendered
        return
    if isinstance(a, Mapping):
        assert set(a) == set(b), path
        for k in a:
            _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)) and not (a and isinstance(a[0], (int, float, str))):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, np.ndarray) and a.dtype.kind == "f":
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=path)
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12), path
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=path)
    else:
        assert a == b, path


def _points(mon: Monitor, skip: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for family in mon.collect(NOW):
        name = family.name
        if name in skip:
            continue
        for point in family.points:
            key = f"{name} {sorted(point.labels.items())}"
            out[key] = getattr(point, "value", point)
    return out


def _fold_with(monkeypatch: pytest.MonkeyPatch, part_rows: int) -> Monitor:
    monkeypatch.setattr(fold_parts, "MAX_PART_ROWS", part_rows)
    mon = Monitor(
        "parts",
        "1",
        registry=False,
        reference=REFERENCE,
        buffer_size=100_000,
        strict=True,
    )
    with mon.folding.lock:  # the background folder waits: one fold, at NOW, in parts
        _traffic(mon, seed=2)
        mon.fold(NOW)
    return mon


def test_folding_in_parts_counts_exactly_like_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    parted = _fold_with(monkeypatch, 97)  # 3,001 rows -> 31 parts, 2,500 rows -> 26...
    whole = _fold_with(monkeypatch, 10**9)
    try:
        assert parted.traffic.requests == whole.traffic.requests == 94
        assert (
            parted.traffic.predictions == whole.traffic.predictions == 50 + 2500 + 3001 + 1234 + 40
        )
        np.testing.assert_array_equal(
            parted.traffic.batch_size.counts, whole.traffic.batch_size.counts
        )
        assert parted.traffic.batch_size.sum == whole.traffic.batch_size.sum
        assert parted.traffic.errors == whole.traffic.errors == {"ValueError": 1}
        assert int(parted.traffic.duration.counts.sum()) == 94
        for name in whole.aggregates:
            _same(parted.aggregates[name].state(), whole.aggregates[name].state(), name)
        # Rendered: bins, counts, quantiles, PSI/JS, decisions equal; the KS statistic,
        # read from the quantile sketch's grid, within the sketch's accuracy.
        skip = {"modelmon_request_duration_seconds", "modelmon_model_loaded_timestamp_seconds"}
        rendered = [_points(m, skip) for m in (parted, whole)]
        assert rendered[0].keys() == rendered[1].keys()
        for key, value in rendered[0].items():
            if "'ks'" in key:
                assert value == pytest.approx(rendered[1][key], abs=1e-3) or "pvalue" in key
            else:
                assert value == rendered[1][key], key
        assert any("quantile" in key for key in rendered[0])
        assert parted.drift is not None and whole.drift is not None
        assert int(parted.drift.cum_features.sum()) > 0
        # The caller-id batch's rows were kept under id.0 ... id.1233 across 13 parts.
        statuses = parted.record_outcomes(["order-9.0", "order-9.1000", "order-9.1233"], [0, 1, 0])
        assert statuses == ["matched"] * 3
    finally:
        parted.close()
        whole.close()


def test_a_prediction_callable_runs_once_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fold_parts, "MAX_PART_ROWS", 10)
    seen: list[int] = []

    def prediction(result: dict[str, Any]) -> Any:
        seen.append(len(result["y"]))
        return result["y"]

    mon = Monitor("parts-cb", "1", registry=False, prediction=prediction, buffer_size=10_000)

    @mon
    def predict(rows: list[list[float]]) -> dict[str, Any]:
        return {"y": [float(r[0]) for r in rows]}

    predict([[float(i), 1.0] for i in range(95)])
    predict([[1.0, 2.0]])
    mon.fold(NOW)
    assert seen == [95, 1]
    assert (mon.traffic.requests, mon.traffic.predictions) == (2, 96)
    mon.close()


class _Probe:
    """An aggregate that, at the first part, starts a scrape and a caller in other
    threads and then lets the fold go on: both must finish before the last part."""

    def __init__(self, mon: Monitor) -> None:
        self.mon = mon
        self.parts = 0
        self.scraped = threading.Event()
        self.called = threading.Event()
        self.done_before_last_part = False
        self.scrape_saw: int | None = None
        self.fold_seen_at = 10**9  # parts folded when the scrape's fold returned

    def fold(self, batch: Batch) -> None:
        self.parts += 1
        if self.parts == 1:
            threading.Thread(target=self._scrape).start()
            threading.Thread(target=self._call).start()
            # Callers never need the fold lock: the calls finish while we hold it.
            assert self.called.wait(60), "a call waited for the fold"
            with self.mon.folding.handoff:  # the scrape is now waiting for the fold lock
                while not self.mon.folding.readers and not self.scraped.is_set():
                    self.mon.folding.handoff.wait(0.01)
        elif batch.row_offset + int(batch.rows.sum()) == batch.call_rows:  # the last part
            # The scrape's render reads in-flight calls under the fold lock too: hand the
            # lock over as between parts until it is done (or give up after a minute).
            deadline = time.monotonic() + 60
            while not self.scraped.wait(0.01) and time.monotonic() < deadline:
                self.mon.folding.let_readers_in()
            self.done_before_last_part = self.scraped.is_set()

    def _scrape(self) -> None:
        fold_for_scrape(self.mon)  # what collect() folds with
        self.fold_seen_at = self.parts
        self.mon.collect()
        self.scrape_saw = self.mon.traffic.predictions
        self.scraped.set()

    def _call(self) -> None:
        for i in range(20):
            self.mon.observe({"a": float(i)}, 0.5)
        self.called.set()

    def families(self, ctx: Any) -> list[Any]:
        return []

    def merge(self, other: Any) -> None:  # pragma: no cover - not merged
        pass

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: Mapping[str, Any]) -> None:  # pragma: no cover
        pass


P = TypeVar("P", bound=_Probe)


def _probed(monkeypatch: pytest.MonkeyPatch, name: str, kind: type[P]) -> tuple[Monitor, P]:
    """A monitor folding in parts of 1,000 rows, with ``kind`` folded after traffic."""
    monkeypatch.setattr(fold_parts, "MAX_PART_ROWS", 1000)
    mon = Monitor(name, "1", registry=False, buffer_size=100_000, strict=True)
    probe = kind(mon)
    mon.aggregates["probe"] = probe  # after traffic: its counts are in when it runs
    return mon, probe


def test_a_scrape_and_other_callers_get_through_while_a_huge_batch_folds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mon, probe = _probed(monkeypatch, "parts-live", _Probe)
    rows = 20_000
    with mon.folding.lock:  # the background folder waits: this thread folds, in parts
        mon.observe(np.ones((rows, 4)), np.zeros(rows), latency_s=0.1)
        mon.fold(NOW)
    assert probe.parts >= 20
    assert probe.done_before_last_part, dict(mon.health.internal_errors)
    assert probe.fold_seen_at < probe.parts, "the scrape's fold waited for the whole batch"
    # Its render saw the batch's first parts at least (all of them if it came late).
    assert probe.scrape_saw is not None and probe.scrape_saw >= 1000
    mon.fold(NOW)
    assert mon.traffic.requests == 21
    assert mon.traffic.predictions == rows + 20
    mon.close()


def test_fold_memory_is_bounded_by_the_part_not_the_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows, width = 200_000, 20
    batch = np.random.default_rng(3).normal(size=(rows, width))
    peaks = {}
    for part_rows in (2_000, 10**9):
        monkeypatch.setattr(fold_parts, "MAX_PART_ROWS", part_rows)
        monkeypatch.setattr(fold_parts, "MAX_PART_VALUES", part_rows * width)
        mon = Monitor("parts-mem", "1", registry=False, buffer_size=10)
        mon.observe(batch[:10], np.zeros(10))
        mon.fold(NOW)  # schema and sketches set up
        mon.observe(batch, np.zeros(rows))
        tracemalloc.start()
        try:
            mon.fold(NOW)
            peaks[part_rows] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert mon.traffic.predictions == rows + 10
        mon.close()
    # One pass builds several rows x features arrays (the input is 32 MB); parts of
    # 2,000 rows build them 2,000 rows at a time.
    assert peaks[10**9] > batch.nbytes
    assert peaks[2_000] < batch.nbytes / 8


class _Reader(_Probe):
    """At the first part, an explicit ``fold()`` from another thread, then a read."""

    def fold(self, batch: Batch) -> None:
        self.parts += 1
        if self.parts == 1:
            self.thread = threading.Thread(target=self._read)
            self.thread.start()
            with self.mon.folding.handoff:  # the reader is now waiting for the fold lock
                while not self.mon.folding.readers and not self.scraped.is_set():
                    self.mon.folding.handoff.wait(0.01)

    def _read(self) -> None:
        self.mon.fold()
        self.scrape_saw = self.mon.traffic.requests
        self.scraped.set()


def test_a_reader_let_in_between_parts_sees_every_call_already_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mon, reader = _probed(monkeypatch, "parts-ryw", _Reader)
    with mon.folding.lock:  # the background folder waits: this thread folds, in parts
        for i in range(10_000):
            mon.observe({"a": float(i)}, 1.0)
        mon.fold(NOW)
    reader.thread.join(60)
    assert reader.scraped.is_set()
    assert reader.scrape_saw == 10_000  # it folded the owner's remaining parts itself
    assert mon.traffic.requests == 10_000
    mon.close()


def test_a_scrape_folds_one_part_of_a_huge_call_and_the_folder_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fold_parts, "MAX_PART_ROWS", 1000)
    mon = Monitor("parts-scrape", "1", registry=False, buffer_size=10_000, strict=True)
    mon.observe({"a": 1.0}, 0.5)
    mon.observe(np.ones((20_000, 4)), np.zeros(20_000))
    mon.collect()  # the scrape: every whole call, and the huge call's first part only
    assert mon.traffic.requests == 2
    assert 1001 <= mon.traffic.predictions <= 20_001
    deadline = time.monotonic() + 60  # the background folder folds the rest
    while mon.traffic.predictions < 20_001 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert mon.traffic.predictions == 20_001
    mon.fold()
    assert mon.traffic.predictions == 20_001 and not mon.folding.parts.todo
    mon.close()
