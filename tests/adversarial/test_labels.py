"""Hostile labels: one test per label-poisoning or label-cost defect (issues 12, 13, 15).

Each test drives the public API as an attacker (or an unlucky fleet) would and fails on
the release before authenticated ids: guessable ids, junk classes, unbounded labels,
non-finite regression labels, lookups that scan under the fold lock, a store bounded in
blocks rather than rows and allocated up front, batch call ids accepted and dropped,
and a feedback route with no guard.
"""

from __future__ import annotations

import contextvars
import cProfile
import gc
import math
import pstats
import threading
import tracemalloc
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest

import modelmon
from modelmon import Monitor

LABELS = {"model": "victim", "version": "1"}
HEX = "0123456789abcdef"


def _accuracy(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("modelmon_performance", {**LABELS, "metric": "accuracy"})


def _guesses(token: str) -> list[str]:
    """Ids an attacker derives from one id he saw: neighbours of every hex counter form."""
    out = []
    for cut in range(len(token) - 6, len(token) + 1):
        head = token[:cut]
        for step in range(-40, 41):
            try:
                value = int(token[cut:] or "0", 16) + step
            except ValueError:
                continue
            if value >= 0:
                out.append(f"{head}{value:x}")
    return [g for g in dict.fromkeys(out) if g != token]


def test_ids_seen_in_one_response_do_not_let_an_attacker_label_other_predictions() -> None:
    registry = CollectorRegistry()
    mon = Monitor("victim", "1", registry=registry, task="classification")
    mon.observe({"x": 0.0}, 1)  # the attacker's own request
    seen = modelmon.last_prediction_id()
    assert seen is not None
    victims = []
    for i in range(200):
        mon.observe({"x": float(i)}, 1)
        victims.append(modelmon.last_prediction_id())
    mon.record_outcomes(_guesses(seen), ["0"] * len(_guesses(seen)))  # pre-label as wrong
    statuses = mon.record_outcomes(victims, ["1"] * len(victims))  # the genuine labels
    if statuses is not None:  # releases before per-item statuses returned None
        assert statuses == ["matched"] * len(victims)
    assert _accuracy(registry) == 1.0
    assert (
        registry.get_sample_value(
            "modelmon_outcomes_unmatched_total", {**LABELS, "reason": "duplicate"}
        )
        == 0
    )


def test_junk_actual_values_cannot_take_class_slots() -> None:
    """An always-wrong model must score 0, however many junk classes are posted first."""
    registry = CollectorRegistry()
    mon = Monitor("victim", "1", registry=registry, task="classification")
    ids = []
    for i in range(120):
        mon.observe({"x": float(i)}, "cat" if i % 2 else "dog")
        ids.append(modelmon.last_prediction_id())
    junk = [f"junk-{i}" for i in range(19)]
    mon.record_outcomes(ids[:19], junk)
    truth = ["dog" if i % 2 else "cat" for i in range(19, 120)]  # always the other class
    mon.record_outcomes(ids[19:], truth)
    assert _accuracy(registry) == 0.0
    assert (
        registry.get_sample_value(
            "modelmon_outcomes_unmatched_total", {**LABELS, "reason": "invalid"}
        )
        == 19
    )


def test_long_labels_are_refused_and_never_reach_metrics() -> None:
    registry = CollectorRegistry()
    mon = Monitor("victim", "1", registry=registry, task="classification", max_classes=50)
    ids = []
    for i in range(25):
        mon.observe({"x": float(i)}, "ok")
        ids.append(modelmon.last_prediction_id())
    mon.record_outcomes(ids, ["x" * 200_000 + str(i) for i in range(25)])
    assert len(generate_latest(registry)) < 100_000


def test_one_huge_regression_label_does_not_make_rmse_infinite() -> None:
    registry = CollectorRegistry()
    mon = Monitor("victim", "1", registry=registry, task="regression")
    ids = []
    for i in range(10):
        mon.observe({"x": float(i)}, float(i))
        ids.append(modelmon.last_prediction_id())
    mon.record_outcomes(ids[:1], [1e200])
    mon.record_outcomes(ids[1:], [float(i) + 1.0 for i in range(1, 10)])
    rmse = registry.get_sample_value("modelmon_performance", {**LABELS, "metric": "rmse"})
    assert rmse is not None and math.isfinite(rmse) and rmse == pytest.approx(1.0)
    assert (
        registry.get_sample_value(
            "modelmon_outcomes_unmatched_total", {**LABELS, "reason": "invalid"}
        )
        == 1
    )


def _calls_to_record_one_unknown(folds: int) -> int:
    mon = Monitor(f"scan{folds}", "1", registry=False, task="regression")
    token = ""
    for i in range(folds):
        mon.observe({"x": float(i)}, float(i))
        token = modelmon.last_prediction_id() or ""
        mon.fold()
    forged = token[:-1] + next(c for c in HEX if c != token[-1])  # a plausible unknown id
    mon.record_outcome(forged, 1.0)  # warm up (first-time logging)
    profiler = cProfile.Profile()
    profiler.enable()
    mon.record_outcome(forged, 1.0)
    profiler.disable()
    mon.close()
    return sum(s[1] for s in pstats.Stats(profiler).stats.values())  # type: ignore[attr-defined]


def test_a_label_lookup_costs_the_same_with_20_or_2000_stored_folds() -> None:
    small, large = _calls_to_record_one_unknown(20), _calls_to_record_one_unknown(2000)
    assert large <= small + 5, (small, large)


class _BlockingStore:
    """Wraps a pending store; ``take`` waits until released (a slow or locked backend)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def take(self, ids: Any, now: float) -> Any:
        self.entered.set()
        self.release.wait(60)
        return self.inner.take(ids, now)


def test_a_slow_label_lookup_never_blocks_a_scrape() -> None:
    registry = CollectorRegistry()
    mon = Monitor("victim", "1", registry=registry, task="regression")
    mon.observe({"x": 1.0}, 1.0, prediction_id="order-1")
    mon.fold()
    store = _BlockingStore(mon.outcomes.store)
    mon.outcomes.store = store
    labeller = threading.Thread(target=mon.record_outcome, args=("order-1", 1.0), daemon=True)
    labeller.start()
    assert store.entered.wait(30)
    scraped = threading.Event()

    def scrape() -> None:
        generate_latest(registry)
        scraped.set()

    scraper = threading.Thread(target=scrape, daemon=True)
    scraper.start()
    finished = scraped.wait(20)  # a hang detector, not a speed check
    store.release.set()
    labeller.join(30)
    assert finished, "the scrape waited for a label lookup"


def _retained_after(fn: Any) -> int:
    """Bytes still allocated after ``fn`` ran (its result kept alive, its context not:
    the context's last prediction legitimately holds the last call's arrays)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    keep = contextvars.copy_context().run(fn)
    gc.collect()
    retained = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del keep
    return retained


def test_one_huge_batch_leaves_a_store_bounded_in_rows() -> None:
    def run() -> Monitor:
        mon = Monitor("huge", "1", registry=False, task="regression", outcome_capacity=1000)
        mon.observe(np.zeros((1_000_000, 1)), np.zeros(1_000_000))
        mon.fold()
        return mon

    assert _retained_after(run) < 2_000_000  # 1M rows of predictions would be >= 8 MB


def test_a_monitor_without_feedback_keeps_almost_nothing_for_labels() -> None:
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(3), size=1000)

    def run() -> Monitor:
        mon = Monitor("lazy", "1", registry=False, classes=["a", "b", "c"])
        for _ in range(150):  # 150,000 predicted rows, never labelled
            mon.observe(np.zeros((1000, 1)), proba)
            mon.fold()
        return mon

    assert _retained_after(run) < 1_500_000


def test_a_batch_call_id_is_refused_with_a_clear_error() -> None:
    mon = Monitor("victim", "1", registry=False)
    app = FastAPI()
    from modelmon.integrations.fastapi import feedback_router

    app.include_router(feedback_router(mon))
    mon.observe([[1.0], [2.0], [3.0]], [1, 0, 1])
    call_id = modelmon.last_prediction_id()
    response = TestClient(app).post("/feedback", json={"prediction_id": call_id, "actual": 1})
    assert response.status_code == 422
    assert response.json()["error"] == "batch_id"
    assert "last_prediction_ids" in response.json()["detail"]


def test_the_feedback_route_can_require_a_token() -> None:
    mon = Monitor("victim", "1", registry=False)
    from modelmon.integrations.fastapi import feedback_router

    app = FastAPI()
    app.include_router(feedback_router(mon, token="s3cret-token-0123456789"))
    mon.observe({"x": 1.0}, 1)
    body = {"prediction_id": modelmon.last_prediction_id(), "actual": 1}
    client = TestClient(app)
    assert client.post("/feedback", json=body).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.post("/feedback", json=body, headers=wrong).status_code == 401
    right = {"Authorization": "Bearer s3cret-token-0123456789"}
    assert client.post("/feedback", json=body, headers=right).status_code == 202
