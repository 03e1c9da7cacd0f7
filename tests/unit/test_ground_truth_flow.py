"""Ground truth end to end through a monitor: predict, take the id, record the label."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from sklearn import metrics

import modelmon
from modelmon import Monitor

from ..conftest import scrape, value

LABELS = {"model": "m", "version": "1"}


def test_classification_ids_join_and_match_sklearn(registry: CollectorRegistry) -> None:
    rng = np.random.default_rng(0)
    mon = Monitor("m", "1", registry=registry, classes=["neg", "pos"], buffer_size=64)
    predict = mon.wrap(lambda X: np.column_stack([1 - X[:, 0], X[:, 0]]))
    ids: list[str] = []
    preds: list[str] = []
    for _ in range(300):
        n = int(rng.integers(1, 4))
        p = rng.uniform(size=(n, 1))
        predict(p)
        row_ids = modelmon.last_prediction_ids()
        assert len(row_ids) == n
        ids += row_ids
        preds += ["pos" if v > 0.5 else "neg" for v in p[:, 0]]
    truth = [p if rng.uniform() < 0.8 else ("neg" if p == "pos" else "pos") for p in preds]
    mon.record_outcomes(ids, truth)
    samples = scrape(registry)
    cm = {
        (a, b): value(samples, "modelmon_outcomes_total", actual=a, predicted=b, **LABELS)
        for a in ("neg", "pos")
        for b in ("neg", "pos")
    }
    expected = metrics.confusion_matrix(truth, preds, labels=["neg", "pos"])
    assert cm == {("neg", "neg"): expected[0, 0], ("neg", "pos"): expected[0, 1],
                  ("pos", "neg"): expected[1, 0], ("pos", "pos"): expected[1, 1]}  # fmt: skip
    acc = value(samples, "modelmon_performance", metric="accuracy", **LABELS)
    assert acc == pytest.approx(metrics.accuracy_score(truth, preds), abs=1e-9)
    # a second label for the same prediction is a duplicate, an unknown id is unknown
    mon.record_outcome(ids[0], "pos")
    mon.record_outcome("nope", "pos")
    samples = scrape(registry)
    assert value(samples, "modelmon_outcomes_unmatched_total", reason="duplicate", **LABELS) == 1
    assert value(samples, "modelmon_outcomes_unmatched_total", reason="unknown", **LABELS) == 1


def test_regression_rmse_matches_sklearn(registry: CollectorRegistry) -> None:
    rng = np.random.default_rng(1)
    mon = Monitor("m", "1", registry=registry, task="regression")
    predict = mon.wrap(lambda X: X.sum(axis=1))
    ids, preds = [], []
    for _ in range(50):
        X = rng.normal(size=(int(rng.integers(1, 5)), 2))
        preds += list(predict(X))
        ids += modelmon.last_prediction_ids()
    actual = [p + rng.normal() for p in preds]
    mon.record_outcomes(ids, actual)
    samples = scrape(registry)
    rmse = value(samples, "modelmon_performance", metric="rmse", **LABELS)
    assert rmse == pytest.approx(metrics.root_mean_squared_error(actual, preds), abs=1e-9)
    assert value(samples, "modelmon_regression_squared_error_count", **LABELS) == len(ids)
    assert value(samples, "modelmon_regression_squared_error_sum", **LABELS) == pytest.approx(
        float(np.sum((np.array(actual) - np.array(preds)) ** 2)), rel=1e-12
    )


def test_bad_outcomes_never_raise(registry: CollectorRegistry) -> None:
    mon = Monitor("m", "1", registry=registry, task="regression")
    mon.wrap(lambda X: 1.0)([1.0])
    pid = modelmon.last_prediction_id()
    assert pid is not None
    mon.record_outcome(pid, "not a number")
    mon.record_outcome(pid, float("nan"))
    mon.record_outcomes([pid, "x"], [1.0])  # lengths differ
    samples = scrape(registry)
    assert value(samples, "modelmon_outcomes_unmatched_total", reason="invalid", **LABELS) == 3
    assert value(samples, "modelmon_internal_errors_total", stage="record_outcome", **LABELS) == 0


def test_caller_supplied_ids_join(registry: CollectorRegistry) -> None:
    mon = Monitor("m", "1", registry=registry)
    mon.observe({"a": 1.0}, ["cat"], prediction_id="order-1")
    mon.observe({"a": 2.0}, ["dog"])
    generated = modelmon.last_prediction_id()
    assert generated is not None
    mon.record_outcomes(["order-1", generated], ["cat", "cat"])
    samples = scrape(registry)
    assert value(samples, "modelmon_outcomes_total", actual="cat", predicted="cat", **LABELS) == 1
    assert value(samples, "modelmon_outcomes_total", actual="cat", predicted="dog", **LABELS) == 1
