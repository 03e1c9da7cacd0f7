"""@monitored and Monitor.wrap: what is wrapped, what is counted, what is preserved."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import sys
import threading
import time
import traceback

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

import modelmon
from modelmon import ConfigurationError, Monitor
from modelmon.buffer import RECORD_WIDTH

from ..conftest import scrape, value

LABELS = {"model": "m", "version": "1"}


def requests(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("modelmon_requests_total", LABELS)


def test_sync_function_counts_requests_and_rows(registry: CollectorRegistry) -> None:
    @modelmon.monitored(model="m", version="1", registry=registry, strict=True)
    def predict(X: np.ndarray) -> np.ndarray:
        return X.sum(axis=1)

    predict(np.ones((5, 3)))
    predict(np.ones((1, 3)))
    assert requests(registry) == 2
    assert registry.get_sample_value("modelmon_predictions_total", LABELS) == 6
    assert registry.get_sample_value("modelmon_batch_size_sum", LABELS) == 6
    assert registry.get_sample_value("modelmon_batch_size_count", LABELS) == 2


def test_wrapper_preserves_signature_doc_and_wrapped(registry: CollectorRegistry) -> None:
    def predict(X: list[float], threshold: float = 0.5) -> list[int]:
        """Classify."""
        return [int(x > threshold) for x in X]

    wrapped = modelmon.monitored(model="m", version="1", registry=registry)(predict)
    assert inspect.signature(wrapped) == inspect.signature(predict)
    assert wrapped.__doc__ == "Classify."
    assert wrapped.__name__ == "predict"
    assert wrapped.__wrapped__ is predict
    assert wrapped.monitor.model == "m"


def test_return_value_is_the_same_object(registry: CollectorRegistry) -> None:
    out = np.array([1.0, 2.0])

    @modelmon.monitored(model="m", version="1", registry=registry)
    def predict(X: object) -> np.ndarray:
        return out

    assert predict([[1.0], [2.0]]) is out


def test_exception_is_the_same_object_with_original_frames(registry: CollectorRegistry) -> None:
    err = KeyError("boom")

    @modelmon.monitored(model="m", version="1", registry=registry)
    def predict(X: object) -> None:
        raise err

    with pytest.raises(KeyError) as info:
        predict([1.0])
    assert info.value is err
    frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert frames[-1] == "predict"
    assert (
        registry.get_sample_value(
            "modelmon_request_errors_total", {**LABELS, "error_type": "KeyError"}
        )
        == 1
    )
    assert requests(registry) == 1
    assert registry.get_sample_value("modelmon_predictions_total", LABELS) == 0


def test_async_times_the_awaited_execution(registry: CollectorRegistry) -> None:
    @modelmon.monitored(model="m", version="1", registry=registry)
    async def predict(X: object) -> float:
        await asyncio.sleep(0.05)
        return 1.0

    assert inspect.iscoroutinefunction(predict)
    assert asyncio.run(predict([1.0])) == 1.0
    # A wrapper that timed the call (coroutine creation) would see microseconds.
    assert (
        registry.get_sample_value(
            "modelmon_request_duration_seconds_bucket", {**LABELS, "le": "0.025"}
        )
        == 0
    )
    total = registry.get_sample_value("modelmon_request_duration_seconds_sum", LABELS)
    assert total is not None and total >= 0.05


def test_async_does_not_block_the_loop(registry: CollectorRegistry) -> None:
    running = 0
    peak = 0

    @modelmon.monitored(model="m", version="1", registry=registry)
    async def predict(X: object) -> float:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return 1.0

    async def main() -> None:
        await asyncio.gather(*(predict([float(i)]) for i in range(50)))

    asyncio.run(main())
    assert requests(registry) == 50
    assert peak == 50  # every call was in flight at once: the wrapper never blocked the loop


def test_methods_classmethods_staticmethods(registry: CollectorRegistry) -> None:
    mon = Monitor("m", "1", registry=registry)

    class Model:
        factor = 2.0

        @mon
        def predict(self, X: list[float]) -> list[float]:
            return [x * self.factor for x in X]

        @mon
        @classmethod
        def predict_cls(cls, X: list[float]) -> list[float]:
            return [x * cls.factor for x in X]

        @mon
        @staticmethod
        def predict_static(X: list[float]) -> list[float]:
            return [x + 1 for x in X]

    m = Model()
    assert m.predict([1.0]) == [2.0]
    assert Model.predict_cls([1.0]) == [2.0]
    assert m.predict_static([1.0]) == [2.0]
    assert Model.predict_static([1.0]) == [2.0]
    assert requests(registry) == 4
    # The input is the first argument after self/cls, not the instance.
    samples = scrape(registry)
    assert value(samples, "modelmon_feature_observations_total", feature="f0", **LABELS) == 4


def test_instrument_sklearn_estimator(registry: CollectorRegistry) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    est = LogisticRegression(max_iter=500).fit(X, y)
    expected = est.predict_proba(X[:10])
    mon = modelmon.instrument(est, model="m", version="1", registry=registry)
    np.testing.assert_array_equal(est.predict_proba(X[:10]), expected)
    est.predict(X[:7])
    assert requests(registry) == 2
    assert registry.get_sample_value("modelmon_predictions_total", LABELS) == 17
    # Confidence comes from the probability matrix of predict_proba (10 rows).
    assert registry.get_sample_value("modelmon_prediction_confidence_count", LABELS) == 10
    assert mon.classes == ("0", "1", "2")
    modelmon.uninstrument(est)
    est.predict(X[:3])
    assert requests(registry) == 2


def test_eight_threads_give_exact_counts(registry: CollectorRegistry) -> None:
    @modelmon.monitored(model="m", version="1", registry=registry, buffer_size=256)
    def predict(row: dict[str, float]) -> float:
        return row["a"]

    def worker() -> None:
        for i in range(10_000):
            predict({"a": float(i)})

    threads = [threading.Thread(target=worker) for _ in range(8)]
    scrapes: list[float] = []

    def scraper() -> None:
        while any(t.is_alive() for t in threads):
            v = requests(registry)
            if v is not None:
                scrapes.append(v)
            time.sleep(0.01)

    for t in threads:
        t.start()
    s = threading.Thread(target=scraper)
    s.start()
    for t in threads:
        t.join()
    s.join()
    assert requests(registry) == 80_000
    assert registry.get_sample_value("modelmon_predictions_total", LABELS) == 80_000
    assert scrapes == sorted(scrapes)  # never goes backwards
    samples = scrape(registry)
    assert value(samples, "modelmon_feature_observations_total", feature="a", **LABELS) == 80_000
    assert value(samples, "modelmon_requests_in_flight", **LABELS) == 0


def test_in_flight_counts_running_calls(registry: CollectorRegistry) -> None:
    release = threading.Event()
    entered = threading.Barrier(4)

    @modelmon.monitored(model="m", version="1", registry=registry)
    def predict(X: object) -> float:
        entered.wait()
        release.wait(5)
        return 1.0

    threads = [threading.Thread(target=predict, args=([1.0],)) for _ in range(3)]
    for t in threads:
        t.start()
    entered.wait()
    assert registry.get_sample_value("modelmon_requests_in_flight", LABELS) == 3
    release.set()
    for t in threads:
        t.join()
    assert registry.get_sample_value("modelmon_requests_in_flight", LABELS) == 0


def test_memory_stays_bounded_under_many_calls() -> None:
    mon = Monitor("m", "1", registry=False, buffer_size=512)

    @mon
    def predict(row: dict[str, float]) -> float:
        return 1.0

    # Past buffer_size the caller folds unless another thread is folding already; past
    # the hard limit (16x) it waits for the lock: the buffer never grows beyond that.
    for i in range(200_000):
        predict({"a": float(i), "b": 1.0})
        assert len(mon.buffer.items) <= 512 * 16 * RECORD_WIDTH
    mon.fold()
    assert mon.traffic.requests == 200_000


def test_last_prediction_id_per_call_and_rows() -> None:
    mon = Monitor("m", "1", registry=False)

    @mon
    def predict(X: np.ndarray) -> np.ndarray:
        return X[:, 0]

    predict(np.ones((1, 2)))
    first = modelmon.last_prediction_id()
    predict(np.ones((3, 2)))
    second = modelmon.last_prediction_id()
    assert first and second and first != second
    rows = modelmon.last_prediction_ids()
    assert len(rows) == 3 and len(set(rows)) == 3 and second not in rows
    assert all(len(r) <= 64 for r in [first, second, *rows])
    assert mon.record_outcome(second, 1.0) == "batch_id"  # a batch's call id: use the rows
    assert [mon.record_outcome(r, 1.0) for r in rows] == ["matched"] * 3


@pytest.mark.parametrize("buffer_size", [1, 4])
def test_tiny_buffers_and_constant_thread_switches_lose_nothing(buffer_size: int) -> None:
    """Every call folds or waits at the hard limit, and the GIL changes hands between
    almost every bytecode: the buffer's extend and the fold's prefix cut must not tear."""
    registry = CollectorRegistry()
    mon = Monitor("m", "1", registry=registry, buffer_size=buffer_size, strict=True)

    @mon
    def predict(row: dict[str, float]) -> float:
        if row["a"] < 0:
            raise ValueError("negative")
        return row["a"]

    def worker() -> None:
        for i in range(2_000):
            with contextlib.suppress(ValueError):
                predict({"a": -1.0 if i % 50 == 0 else float(i), "b": 1.0})
            if i % 500 == 0:
                scrape(registry)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    samples = scrape(registry)
    assert value(samples, "modelmon_requests_total", **LABELS) == 16_000
    assert value(samples, "modelmon_request_errors_total", error_type="ValueError", **LABELS) == 320
    assert value(samples, "modelmon_feature_observations_total", feature="a", **LABELS) == 15_680
    assert mon.in_flight == 0


@pytest.mark.parametrize("buffer_size", [1, 4])
def test_async_tasks_with_tiny_buffers_count_exactly_and_keep_their_own_ids(
    buffer_size: int,
) -> None:
    """Hundreds of tasks interleaved on one loop (each awaits mid-call), every call past
    a tiny buffer's limit: counts exact, and each task's last id is its own call's."""
    registry = CollectorRegistry()
    mon = Monitor("m", "1", registry=registry, buffer_size=buffer_size, strict=True)

    @mon
    async def predict(row: dict[str, float]) -> float:
        await asyncio.sleep(0)
        if row["a"] < 0:
            raise ValueError("negative")
        return row["a"]

    async def task(i: int) -> tuple[str | None, float]:
        got = 0.0
        for j in range(20):
            with contextlib.suppress(ValueError):
                got = await predict({"a": -1.0 if (i + j) % 10 == 0 else float(i), "b": 1.0})
        return modelmon.last_prediction_id(), got

    async def main() -> list[tuple[str | None, float]]:
        return await asyncio.gather(*(task(i) for i in range(1, 201)))

    results = asyncio.run(main())
    samples = scrape(registry)
    assert value(samples, "modelmon_requests_total", **LABELS) == 4_000
    assert value(samples, "modelmon_request_errors_total", error_type="ValueError", **LABELS) == 400
    assert value(samples, "modelmon_feature_observations_total", feature="a", **LABELS) == 3_600
    assert mon.in_flight == 0
    ids = [i for i, _ in results]
    assert len(set(ids)) == 200 and None not in ids  # one last call per task, its own


def test_last_prediction_id_is_per_thread() -> None:
    mon = Monitor("m", "1", registry=False)
    predict = mon.wrap(lambda x: 1.0)
    predict([1.0])
    mine = modelmon.last_prediction_id()
    seen: list[str | None] = []
    t = threading.Thread(target=lambda: seen.append(modelmon.last_prediction_id()))
    t.start()
    t.join()
    assert seen == [None]
    assert modelmon.last_prediction_id() == mine


def test_ids_are_unique_across_monitors() -> None:
    a = Monitor("a", "1", registry=False).wrap(lambda x: 1.0)
    b = Monitor("b", "1", registry=False).wrap(lambda x: 1.0)
    a([1.0])
    ida = modelmon.last_prediction_id()
    b([1.0])
    assert modelmon.last_prediction_id() != ida


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": ""}, "model"),
        ({"version": 3}, "version"),
        ({"namespace": "bad-name"}, "namespace"),
        ({"confidence": "max"}, "confidence"),
        ({"task": "ranking"}, "task"),
        ({"features": 3}, "features"),
        ({"duration_buckets": [1.0, 0.5]}, "duration_buckets"),
        ({"buffer_size": 0}, "buffer_size"),
        ({"reference": "/nonexistent/ref.json"}, "reference"),
        ({"reference": 42}, "reference"),
    ],
)
def test_configuration_errors_raise_early(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"model": "m", "version": "1", "registry": False, **kwargs}
    with pytest.raises(ConfigurationError, match=message):
        modelmon.monitored(**args)  # type: ignore[arg-type]


def test_generators_are_refused() -> None:
    def gen(X: object) -> object:
        yield 1

    with pytest.raises(ConfigurationError, match="generator"):
        Monitor("m", "1", registry=False).wrap(gen)


def test_features_and_prediction_callables(registry: CollectorRegistry) -> None:
    @modelmon.monitored(
        model="m",
        version="1",
        registry=registry,
        features=lambda request, X: X,
        prediction=lambda out: out["scores"],
        strict=True,
    )
    def predict(request: object, X: np.ndarray) -> dict[str, np.ndarray]:
        return {"scores": X[:, 0]}

    predict("req", np.ones((4, 2)))
    assert registry.get_sample_value("modelmon_predictions_total", LABELS) == 4
    samples = scrape(registry)
    assert value(samples, "modelmon_feature_observations_total", feature="f1", **LABELS) == 4


def test_every_record_form_is_read_in_one_fold(registry: CollectorRegistry) -> None:
    """Direct inputs, keyword-only calls, methods, failed calls and observe() mix in a fold."""
    mon = Monitor("m", "1", registry=registry, prediction=lambda out: out["y"], strict=True)

    @mon
    def predict(row: dict[str, float]) -> dict[str, float]:
        return {"y": row["a"] * 2}

    class Model:
        @mon
        def predict(self, row: dict[str, float]) -> dict[str, float]:
            return {"y": row["a"]}

    @mon
    async def predict_async(row: dict[str, float]) -> dict[str, float]:
        return {"y": row["b"]}

    predict({"a": 1.0, "b": 2.0})  # positional: the input itself is buffered
    predict(row={"a": 3.0, "b": 4.0})  # keywords only: the whole call is buffered
    Model().predict({"a": 5.0, "b": 6.0})  # a method: through wrapt, the instance left out
    asyncio.run(predict_async({"a": 9.0, "b": 10.0}))  # a coroutine: the input itself
    with pytest.raises(KeyError):
        predict({"b": 1.0})  # failed: counted as an error, no features
    mon.observe({"a": 7.0, "b": 8.0}, [0.25])  # observe: prediction= is not applied
    assert len(mon.buffer.pending()) == 6
    samples = scrape(registry)
    assert value(samples, "modelmon_requests_total", **LABELS) == 6
    assert value(samples, "modelmon_request_errors_total", error_type="KeyError", **LABELS) == 1
    for feature in ("a", "b"):
        assert value(samples, "modelmon_feature_observations_total", feature=feature, **LABELS) == 5
    assert mon.inputs.missing.sum() == 0
    assert value(samples, "modelmon_predictions_total", **LABELS) == 5


def test_buffered_calls_keep_no_tuple_of_their_own(registry: CollectorRegistry) -> None:
    """The hot path extends the buffer with the record's fields: until the fold, a call
    keeps alive only the caller's own input and result, so the collector has nothing
    of modelmon's to traverse or promote (it used to be two tuples a call)."""

    @modelmon.monitored(model="m", version="1", registry=registry, strict=True)
    def predict(row: dict[str, float]) -> float:
        return 0.5

    for i in range(100):
        predict({"a": float(i)})
    buffered = list(predict.monitor.buffer.items)
    assert len(buffered) == 100 * RECORD_WIDTH
    assert buffered[1::RECORD_WIDTH] == [None] * 100  # the direct form: the input itself
    assert {type(x) for x in buffered} <= {dict, float, int, type(None), modelmon.Monitor}


def test_confidence_callable_and_disabled(registry: CollectorRegistry) -> None:
    @modelmon.monitored(
        model="m", version="1", registry=registry, confidence=lambda out: [0.3] * len(out)
    )
    def predict(X: list[float]) -> list[float]:
        return X

    predict([1.0, 2.0])
    assert (
        registry.get_sample_value("modelmon_prediction_confidence_bucket", {**LABELS, "le": "0.3"})
        == 2
    )

    reg2 = CollectorRegistry()
    p2 = modelmon.monitored(model="m", version="1", registry=reg2, confidence=None)(
        lambda X: np.array([[0.1, 0.9]])
    )
    p2([1.0])
    assert reg2.get_sample_value("modelmon_prediction_confidence_count", LABELS) == 0


def test_monitored_takes_reference_by_position_and_compares_defaults_as_given() -> None:
    from modelmon import ReferenceProfile

    reg = CollectorRegistry()
    ref = ReferenceProfile.from_data(np.arange(40.0).reshape(-1, 2), feature_names=["a", "b"])

    @modelmon.monitored("pos", "1", ref, registry=reg)
    def first(x: object) -> float:
        return 1.0

    # The same arguments with Monitor's defaults spelt out: one shared monitor.
    @modelmon.monitored("pos", "1", ref, registry=reg, confidence="auto", task=None)
    def second(x: object) -> float:
        return 2.0

    assert first.monitor is second.monitor
    assert first.monitor.reference is ref
    with pytest.raises(ConfigurationError, match="other arguments"):
        modelmon.monitored("pos", "1", ref, registry=reg, task="regression")
    first.monitor.close()
