"""Monitor.observe, the fold, and the failure policy (never break the model)."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

import modelmon
from modelmon import Monitor
from modelmon.errors import ConfigurationError

from ..conftest import scrape, value

LABELS = {"model": "m", "version": "1"}


def test_observe_counts_like_a_call(registry: CollectorRegistry) -> None:
    mon = Monitor("m", "1", registry=registry)
    pid = mon.observe(np.ones((4, 2)), np.array([0.1, 0.2, 0.3, 0.4]), latency_s=0.02)
    assert pid and modelmon.last_prediction_id() == pid
    mon.observe([1.0, 2.0], None, latency_s=0.3, error=RuntimeError("x"))
    assert registry.get_sample_value("modelmon_requests_total", LABELS) == 2
    assert registry.get_sample_value("modelmon_predictions_total", LABELS) == 4
    assert (
        registry.get_sample_value(
            "modelmon_request_errors_total", {**LABELS, "error_type": "RuntimeError"}
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "modelmon_request_duration_seconds_bucket", {**LABELS, "le": "0.025"}
        )
        == 1
    )


def test_observe_keeps_a_caller_supplied_id(registry: CollectorRegistry) -> None:
    mon = Monitor("m", "1", registry=registry)
    assert mon.observe({"a": 1.0}, 1.0, prediction_id="req-42") == "req-42"
    assert modelmon.last_prediction_id() == "req-42"


def test_scrape_right_after_a_call_sees_it(registry: CollectorRegistry) -> None:
    predict = modelmon.monitored(model="m", version="1", registry=registry, buffer_size=10_000)(
        lambda x: 1.0
    )
    for i in range(1, 50):
        predict({"a": float(i)})
        assert registry.get_sample_value("modelmon_requests_total", LABELS) == i


def test_error_types_are_capped(registry: CollectorRegistry) -> None:
    mon = Monitor("m", "1", registry=registry)
    for i in range(30):
        mon.observe(None, None, error=type(f"Error{i}", (Exception,), {})())
    samples = scrape(registry)
    types = {
        dict(labels)["error_type"]
        for (name, labels) in samples
        if name == "modelmon_request_errors_total"
    }
    assert len(types) == 21 and "other" in types
    assert value(samples, "modelmon_request_errors_total", error_type="other", **LABELS) == 10


def test_a_failing_features_callable_is_counted_not_raised(registry: CollectorRegistry) -> None:
    def bad(x: object) -> object:
        raise ZeroDivisionError

    predict = modelmon.monitored(model="m", version="1", registry=registry, features=bad)(
        lambda x: 2.0
    )
    assert predict([1.0]) == 2.0
    samples = scrape(registry)
    assert value(samples, "modelmon_internal_errors_total", stage="extract_features", **LABELS) == 1
    # the call itself is still counted: failures never lose other data
    assert value(samples, "modelmon_requests_total", **LABELS) == 1
    assert value(samples, "modelmon_predictions_total", **LABELS) == 1


def test_strict_reraises_internal_errors() -> None:
    def bad(x: object) -> object:
        raise ZeroDivisionError

    mon = Monitor("m", "1", registry=False, features=bad, strict=True)
    mon.wrap(lambda x: 1.0)([1.0])
    with pytest.raises(ZeroDivisionError):
        mon.fold()


@pytest.mark.parametrize(
    "bad_input",
    [
        [[np.nan, np.inf, None]],
        [["a", "b", "c"]],
        [[1.0], [2.0, 3.0, 4.0, 5.0]],
        np.zeros((0, 3)),
        np.array(7.0),
        object(),
        [],
        {"x": [1, 2]},
    ],
)
def test_bad_input_never_crashes_the_caller(registry: CollectorRegistry, bad_input: object) -> None:
    mon = Monitor("m", "1", registry=registry)
    predict = mon.wrap(lambda x: 0.5)
    predict([[1.0, 2.0, 3.0]])
    assert predict(bad_input) == 0.5
    samples = scrape(registry)
    assert value(samples, "modelmon_requests_total", **LABELS) == 2
    assert value(samples, "modelmon_internal_errors_total", stage="extract_features", **LABELS) == 0


def test_missing_and_invalid_counts(registry: CollectorRegistry) -> None:
    mon = Monitor("m", "1", registry=registry, feature_names=["a", "b"])
    predict = mon.wrap(lambda x: 0.5)
    predict({"a": 1.0, "b": None})
    predict({"a": "oops", "b": float("nan")})
    predict({"a": float("inf"), "b": 2.0})
    samples = scrape(registry)
    assert value(samples, "modelmon_feature_missing_total", feature="b", **LABELS) == 2
    assert value(samples, "modelmon_feature_invalid_total", feature="a", **LABELS) == 2
    assert value(samples, "modelmon_feature_observations_total", feature="a", **LABELS) == 3


def test_unsupported_input_is_counted_as_dropped(registry: CollectorRegistry) -> None:
    mon = Monitor("m", "1", registry=registry)
    mon.wrap(lambda x: 0.5)(object())
    samples = scrape(registry)
    assert (
        value(samples, "modelmon_dropped_observations_total", reason="unsupported_input", **LABELS)
        == 1
    )


def test_two_monitors_share_a_registry(registry: CollectorRegistry) -> None:
    a = Monitor("a", "1", registry=registry)
    b = Monitor("b", "2", registry=registry)
    a.observe([1.0], 1.0)
    b.observe([1.0], 1.0)
    b.observe([1.0], 1.0)
    assert registry.get_sample_value("modelmon_requests_total", {"model": "a", "version": "1"}) == 1
    assert registry.get_sample_value("modelmon_requests_total", {"model": "b", "version": "2"}) == 2


def test_a_second_monitor_of_one_model_version_is_refused_until_the_first_closes(
    registry: CollectorRegistry,
) -> None:
    first = Monitor("m", "1", registry=registry)
    first.observe([1.0], 1.0)
    with pytest.raises(ConfigurationError, match=r"existing_monitor.wrap\(fn\)"):
        Monitor("m", "1", registry=registry)
    assert registry.get_sample_value("modelmon_requests_total", LABELS) == 1  # nothing lost
    first.close()
    current = Monitor("m", "1", registry=registry)  # replacing a closed monitor is fine
    assert registry.get_sample_value("modelmon_requests_total", LABELS) == 0
    assert current.traffic.requests == 0


def test_namespace(registry: CollectorRegistry) -> None:
    mon = Monitor("m", "1", registry=registry, namespace="fraud")
    mon.observe([1.0], 1.0)
    assert registry.get_sample_value("fraud_requests_total", LABELS) == 1


def test_model_info_and_loaded_timestamp(registry: CollectorRegistry) -> None:
    mon = Monitor("m", "1", registry=registry, task="regression")
    assert mon.task == "regression"
    assert (
        registry.get_sample_value(
            "modelmon_model_info",
            {
                **LABELS,
                "task": "regression",
                "sdk_version": modelmon.__version__,
                "reference": "none",
            },
        )
        == 1
    )
    loaded = registry.get_sample_value("modelmon_model_loaded_timestamp_seconds", LABELS)
    assert loaded is not None and loaded > 1.7e9


def test_close_stops_exporting(registry: CollectorRegistry) -> None:
    mon = Monitor("m", "1", registry=registry)
    mon.observe([1.0], 1.0)
    mon.close()
    assert registry.get_sample_value("modelmon_requests_total", LABELS) is None
