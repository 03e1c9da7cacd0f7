"""One call, one request: estimators whose ``predict`` calls ``predict_proba`` count once.

RandomForest, ExtraTrees, Bagging, CalibratedClassifierCV and soft voting call
``predict_proba`` inside ``predict``; with both methods instrumented the inner call is
nested in the outer one (same monitor, same context) and must not count again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.ensemble import (
    BaggingClassifier,
    ExtraTreesClassifier,
    RandomForestClassifier,
    VotingClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

import modelmon
from modelmon import Monitor

ESTIMATORS: dict[str, Callable[[], Any]] = {
    "random_forest": lambda: RandomForestClassifier(n_estimators=5, random_state=0),
    "extra_trees": lambda: ExtraTreesClassifier(n_estimators=5, random_state=0),
    "bagging": lambda: BaggingClassifier(
        DecisionTreeClassifier(random_state=0), n_estimators=4, random_state=0
    ),
    "calibrated": lambda: CalibratedClassifierCV(
        LogisticRegression(max_iter=2000), cv=3, method="sigmoid"
    ),
    "soft_voting": lambda: VotingClassifier(
        [
            ("lr", LogisticRegression(max_iter=2000)),
            ("tree", DecisionTreeClassifier(random_state=0)),
        ],
        voting="soft",
    ),
    "pipeline_forest": lambda: make_pipeline(
        StandardScaler(), RandomForestClassifier(n_estimators=5, random_state=0)
    ),
    "pipeline_soft_voting": lambda: make_pipeline(
        StandardScaler(),
        VotingClassifier(
            [
                ("lr", LogisticRegression(max_iter=2000)),
                ("tree", DecisionTreeClassifier(random_state=0)),
            ],
            voting="soft",
        ),
    ),
}


def _counts(registry: CollectorRegistry, model: str) -> tuple[float, float]:
    labels = {"model": model, "version": "1"}
    requests = registry.get_sample_value("modelmon_requests_total", labels)
    predictions = registry.get_sample_value("modelmon_predictions_total", labels)
    assert requests is not None and predictions is not None
    return requests, predictions


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
@pytest.mark.parametrize("method", ["predict", "predict_proba"])
def test_one_call_is_one_request_and_n_predictions(name: str, method: str) -> None:
    X, y = load_iris(return_X_y=True)
    estimator = ESTIMATORS[name]().fit(X, y)
    registry = CollectorRegistry()
    modelmon.instrument(estimator, name, "1", registry=registry, strict=True)
    rows = X[::3]  # 50 rows
    getattr(estimator, method)(rows)
    assert _counts(registry, name) == (1.0, float(len(rows)))
    getattr(estimator, method)(rows[:7])
    assert _counts(registry, name) == (2.0, float(len(rows) + 7))


def test_predict_of_a_forest_labels_like_sklearn_once() -> None:
    """The outer call's output is the one recorded: labels join to ``predict``'s rows."""
    X, y = load_breast_cancer(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    mon = modelmon.instrument(forest, "rf", "1", registry=False, strict=True)
    predicted = forest.predict(X[:40])
    ids = modelmon.last_prediction_ids()
    assert len(ids) == 40
    assert mon.record_outcomes(ids, y[:40].tolist()) == ["matched"] * 40
    mon.fold()
    confusion = mon.outcomes.confusion
    expected = int(np.sum(predicted == y[:40]))
    assert sum(c for (a, p), c in confusion.items() if a == p) == expected


def test_nested_calls_count_once_per_context_and_separately_across_tasks() -> None:
    mon = Monitor("nest", "1", registry=False, strict=True)

    @mon
    def inner(x: float) -> float:
        return x

    @mon
    def outer(x: float) -> float:
        return inner(x) + inner(x)

    @mon
    async def outer_async(x: float) -> float:
        await asyncio.sleep(0)
        return inner(x)

    outer(1.0)

    async def many() -> None:
        await asyncio.gather(*(outer_async(float(i)) for i in range(20)))

    asyncio.run(many())
    inner(3.0)  # not nested: counts
    mon.fold()
    assert mon.traffic.requests == 1 + 20 + 1


def test_a_failing_outer_call_leaves_the_guard_clear() -> None:
    mon = Monitor("nest2", "1", registry=False)

    @mon
    def boom(x: float) -> float:
        raise ValueError("no")

    @mon
    def fine(x: float) -> float:
        return x

    with pytest.raises(ValueError):
        boom(1.0)
    fine(1.0)
    mon.fold()
    assert mon.traffic.requests == 2


def test_two_endpoints_of_one_model_share_a_monitor_and_add_up() -> None:
    registry = CollectorRegistry()

    @modelmon.monitored(model="twice", version="1", registry=registry)
    def predict_one(row: dict[str, float]) -> float:
        return 0.5

    @modelmon.monitored(model="twice", version="1", registry=registry)
    def predict_many(rows: list[dict[str, float]]) -> list[float]:
        return [predict_one(r) for r in rows]  # nested: counted once, as predict_many

    assert predict_one.monitor is predict_many.monitor  # type: ignore[attr-defined]
    predict_one({"x": 1.0})
    predict_many([{"x": 1.0}, {"x": 2.0}])
    assert _counts(registry, "twice") == (2.0, 3.0)


def test_the_same_model_with_other_arguments_is_a_configuration_error() -> None:
    from modelmon.errors import ConfigurationError

    registry = CollectorRegistry()
    first = modelmon.monitored(model="clash", version="1", registry=registry)(lambda x: x)
    with pytest.raises(ConfigurationError, match=r"\.monitor\.wrap\(second_function\)"):
        modelmon.monitored(model="clash", version="1", registry=registry, task="regression")(
            lambda x: x
        )
    assert first.monitor.task != "regression"  # the first one is kept, not replaced
