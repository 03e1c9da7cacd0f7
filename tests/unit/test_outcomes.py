"""OutcomeAggregate: joining labels, metrics against scikit-learn, windows, merge, state."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn import metrics

from modelmon import names
from modelmon.aggregates.outcome_store import MemoryStore, SqliteStore, class_label
from modelmon.aggregates.outcomes import REASONS, OutcomeAggregate, OutcomeError
from modelmon.batch import Batch, OutputFrame, RenderContext
from modelmon.points import Family, HistogramPoint, ScalarPoint, SummaryPoint

LABELS = {"model": "m", "version": "1"}
T0 = 60.0 * 16_667  # a slot boundary for 60 s slots


def make_batch(
    outputs: OutputFrame,
    rows: Sequence[int],
    *,
    now: float = T0,
    errors: Sequence[str | None] | None = None,
    prefix: str = "c",
) -> Batch:
    """A batch of len(rows) calls; failed calls must have 0 rows."""
    n = len(rows)
    errs = tuple(errors) if errors is not None else (None,) * n
    rows_arr = np.asarray(rows, dtype=np.int64)
    ok = np.flatnonzero([e is None for e in errs])
    return Batch(
        now=now,
        latencies=np.full(n, 0.01),
        rows=rows_arr,
        errors=errs,
        ended_at=np.full(n, now) - np.arange(n)[::-1] * 0.001,
        call_ids=tuple(f"{prefix}{i}" for i in range(n)),
        outputs=outputs,
        row_call=np.repeat(ok, rows_arr[ok]).astype(np.int64),
    )


def ids_of(batch: Batch) -> list[str]:
    out: list[str] = []
    for c, n in enumerate(batch.rows.tolist()):
        if batch.errors[c] is None:
            out += [batch.call_ids[c]] if n == 1 else [f"{batch.call_ids[c]}.{i}" for i in range(n)]
    return out


def families_by_name(agg: OutcomeAggregate, now: float) -> dict[str, Family]:
    return {f.name: f for f in agg.families(RenderContext("modelmon", LABELS, now))}


def scalar(family: Family, **labels: str) -> float:
    for point in family.points:
        assert isinstance(point, ScalarPoint)
        if all(point.labels.get(k) == v for k, v in labels.items()):
            return point.value
    raise KeyError(labels)


def proba_frame(proba: np.ndarray, classes: tuple[str, ...]) -> OutputFrame:
    labels = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    values = proba[:, 1] if len(classes) == 2 else None
    return OutputFrame(len(proba), values, labels, proba, classes, proba.max(axis=1))


# --- classification against scikit-learn -----------------------------------------------
def test_multiclass_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    classes = ("a", "b", "c", "d")
    proba = rng.dirichlet(np.ones(4), size=300)
    proba[:, 3] *= 0.01  # class d is (almost) never predicted: zero_division matters
    proba /= proba.sum(axis=1, keepdims=True)
    batch = make_batch(proba_frame(proba, classes), [100, 1, 99, 100])
    actual = rng.choice(np.array(classes), size=300)
    agg = OutcomeAggregate("classification", detector=None)
    agg.fold(batch)
    assert agg.record(ids_of(batch), list(actual), now=T0 + 30) == 300

    predicted = np.asarray(classes)[proba.argmax(axis=1)]
    perf = agg.performance(T0 + 30)
    assert perf["accuracy"] == pytest.approx(metrics.accuracy_score(actual, predicted), abs=1e-9)
    for name, fn in (
        ("precision", metrics.precision_score),
        ("recall", metrics.recall_score),
        ("f1", metrics.f1_score),
    ):
        expected = fn(actual, predicted, average="macro", zero_division=0)
        assert perf[name] == pytest.approx(expected, abs=1e-9), name
    assert perf["log_loss"] == pytest.approx(
        metrics.log_loss(actual, proba, labels=list(classes)), abs=1e-9
    )
    assert perf["brier"] == pytest.approx(
        metrics.brier_score_loss(actual, proba, labels=list(classes)), abs=1e-9
    )
    assert "precision_positive" not in perf  # not binary

    fams = families_by_name(agg, T0 + 30)
    confusion = metrics.confusion_matrix(actual, predicted, labels=list(classes))
    for i, a in enumerate(classes):
        for j, p in enumerate(classes):
            if confusion[i, j]:
                assert scalar(fams["modelmon_outcomes"], actual=a, predicted=p) == confusion[i, j]
    points = fams["modelmon_outcomes"].points
    assert sum(p.value for p in points if isinstance(p, ScalarPoint)) == 300 == len(actual)
    assert scalar(fams["modelmon_performance"], metric="accuracy") == perf["accuracy"]


def test_binary_metrics_with_positive_class_match_sklearn() -> None:
    rng = np.random.default_rng(1)
    p1 = rng.beta(2, 2, size=500)
    proba = np.c_[1 - p1, p1]
    batch = make_batch(proba_frame(proba, ("0", "1")), [250, 250])
    actual = (rng.random(500) < p1).astype(int)  # ints, joined to the "0"/"1" labels
    agg = OutcomeAggregate(None, detector=None)
    agg.fold(batch)
    assert agg.task == "classification"
    agg.record(ids_of(batch), actual.tolist(), now=T0 + 1)

    predicted = (p1 > 0.5).astype(int)
    perf = agg.performance(T0 + 1)
    assert perf["precision_positive"] == pytest.approx(
        metrics.precision_score(actual, predicted), abs=1e-9
    )
    assert perf["recall_positive"] == pytest.approx(
        metrics.recall_score(actual, predicted), abs=1e-9
    )
    assert perf["f1_positive"] == pytest.approx(metrics.f1_score(actual, predicted), abs=1e-9)
    assert perf["f1"] == pytest.approx(
        metrics.f1_score(actual, predicted, average="macro"), abs=1e-9
    )
    assert perf["log_loss"] == pytest.approx(metrics.log_loss(actual, proba), abs=1e-9)
    assert perf["brier"] == pytest.approx(metrics.brier_score_loss(actual, p1), abs=1e-9)


def test_explicit_positive_class_and_labels_without_probabilities() -> None:
    labels = np.array(["spam", "ham", "spam", "spam", "ham"], dtype=object)
    actual = ["spam", "spam", "ham", "spam", "ham"]
    batch = make_batch(OutputFrame(5, labels=labels), [5])
    agg = OutcomeAggregate(None, positive_class="spam", detector=None)
    agg.fold(batch)
    agg.record(ids_of(batch), actual, now=T0)
    perf = agg.performance(T0)
    for name, fn in (
        ("precision_positive", metrics.precision_score),
        ("recall_positive", metrics.recall_score),
        ("f1_positive", metrics.f1_score),
    ):
        assert perf[name] == pytest.approx(fn(actual, list(labels), pos_label="spam"), abs=1e-9)
    assert "log_loss" not in perf and "brier" not in perf


def test_classes_beyond_max_classes_are_pooled() -> None:
    labels = np.array([f"k{i}" for i in range(6)], dtype=object)
    batch = make_batch(OutputFrame(6, labels=labels), [6])
    agg = OutcomeAggregate("classification", max_classes=3, detector=None)
    agg.fold(batch)
    agg.record(ids_of(batch), [f"k{i}" for i in range(6)], now=T0)
    assert agg.classes == ["k0", "k1", "k2"]
    assert agg.confusion == {
        ("k0", "k0"): 1,
        ("k1", "k1"): 1,
        ("k2", "k2"): 1,
        (names.POOLED, names.POOLED): 3,
    }


# --- regression -----------------------------------------------------------------------
def test_regression_metrics_and_counters_match_sklearn() -> None:
    rng = np.random.default_rng(2)
    pred = rng.normal(10, 3, size=400)
    actual = pred + rng.normal(0.5, 2, size=400)
    batch = make_batch(OutputFrame(400, values=pred), [1] * 100 + [300])
    agg = OutcomeAggregate(None, detector=None)
    agg.fold(batch)
    assert agg.task == "regression"
    assert agg.record(ids_of(batch), actual.tolist(), now=T0 + 5) == 400
    perf = agg.performance(T0 + 5)
    assert perf["rmse"] == pytest.approx(
        math.sqrt(metrics.mean_squared_error(actual, pred)), abs=1e-9
    )
    assert perf["mae"] == pytest.approx(metrics.mean_absolute_error(actual, pred), abs=1e-9)
    assert perf["bias"] == pytest.approx(float(np.mean(pred - actual)), abs=1e-9)

    fams = families_by_name(agg, T0 + 5)
    sq = fams["modelmon_regression_squared_error"].points[0]
    ab = fams["modelmon_regression_absolute_error"].points[0]
    assert isinstance(sq, SummaryPoint) and isinstance(ab, SummaryPoint)
    assert sq.count == ab.count == 400
    assert sq.sum == pytest.approx(float(((pred - actual) ** 2).sum()), rel=1e-12)
    assert ab.sum == pytest.approx(float(np.abs(pred - actual).sum()), rel=1e-12)
    assert scalar(fams["modelmon_regression_outcomes"]) == 400
    assert "modelmon_outcomes" not in fams


def test_regression_rejects_non_numeric_actuals() -> None:
    batch = make_batch(OutputFrame(6, values=np.arange(6.0)), [6])
    agg = OutcomeAggregate("regression", detector=None)
    agg.fold(batch)
    ids = ids_of(batch)
    bad: list[object] = ["3.0", None, math.nan, math.inf, True, [1.0]]
    assert agg.record(ids, bad, now=T0) == 0
    assert agg.unmatched["invalid"] == 6
    # an invalid outcome never consumed the prediction: a corrected label still joins
    assert agg.record(ids, [np.float32(1), np.int64(2), Fraction(1, 2), 3, 4.0, 5], now=T0) == 6
    assert agg.regression_absolute == pytest.approx(1 + 1 + 1.5)


# --- unmatched outcomes ---------------------------------------------------------------
def test_unmatched_reasons_are_counted_and_always_rendered(caplog: Any) -> None:
    agg = OutcomeAggregate(
        "classification", store=MemoryStore(capacity=2, ttl_seconds=100.0), detector=None
    )
    fams = families_by_name(agg, T0)
    assert [scalar(fams["modelmon_outcomes_unmatched"], reason=r) for r in REASONS] == [0] * len(
        REASONS
    )
    assert "modelmon_performance" not in fams  # no outcome in the window yet

    batch = make_batch(OutputFrame(3, labels=np.array(["a", "b", "a"], dtype=object)), [3])
    agg.fold(batch)  # capacity 2: c0.0 is evicted
    ids = ids_of(batch)
    with caplog.at_level(logging.WARNING, logger="modelmon"):
        matched = agg.record(
            [ids[0], ids[1], ids[1], "never", ids[2], 7],  # type: ignore[list-item]
            ["a", "b", "b", "a", None, "a"],
            now=T0 + 1,
        )
        agg.record(["never"], ["a"], now=T0 + 2)
    assert matched == 1
    assert dict(agg.unmatched) == {
        "expired": 1,
        "unknown": 3,
        "duplicate": 1,
        "invalid": 1,
        "invalid_id": 0,
    }
    unknown_logs = [r for r in caplog.records if "reason=unknown" in r.getMessage()]
    assert len(unknown_logs) == 1  # rate-limited: once per reason per minute
    fams = families_by_name(agg, T0 + 2)
    assert scalar(fams["modelmon_outcomes_unmatched"], reason="unknown") == 3


def test_ttl_expiry_and_length_mismatch() -> None:
    agg = OutcomeAggregate(
        "regression", store=MemoryStore(capacity=100, ttl_seconds=60.0), detector=None
    )
    batch = make_batch(OutputFrame(2, values=np.array([1.0, 2.0])), [2])
    agg.fold(batch)
    assert agg.record(ids_of(batch), [1.0, 2.0, 3.0], now=T0 + 61) == 0
    assert agg.unmatched["expired"] == 2 and agg.unmatched["invalid"] == 1


def test_strict_raises_after_counting() -> None:
    agg = OutcomeAggregate("regression", detector=None)
    batch = make_batch(OutputFrame(1, values=np.array([1.0])), [1])
    agg.fold(batch)
    with pytest.raises(OutcomeError, match="unknown"):
        agg.record(["c0", "nope"], [1.5, 2.0], now=T0, strict=True)
    assert agg.regression_count == 1 and agg.unmatched["unknown"] == 1
    assert agg.record(["c0"], [1.0], now=T0, strict=False) == 0  # duplicate, no raise


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    task=st.sampled_from(["classification", "regression", None]),
    actuals=st.lists(
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(min_value=-(10**400), max_value=10**400),
            st.floats(allow_nan=True, allow_infinity=True),
            st.text(max_size=5),
            st.binary(max_size=5),
            st.fractions(),
            st.decimals(allow_nan=True),
            st.complex_numbers(),
            st.lists(st.integers(), max_size=2),
            st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
            st.builds(object),
        ),
        max_size=8,
    ),
    ids=st.lists(st.one_of(st.sampled_from(["c0", "c1", "zz"]), st.none(), st.integers())),
)
def test_record_never_raises_on_arbitrary_actuals(
    task: Any, actuals: list[object], ids: list[object]
) -> None:
    agg = OutcomeAggregate(task)
    outputs = (
        OutputFrame(2, values=np.array([0.5, 2.0]))
        if task == "regression"
        else OutputFrame(2, labels=np.array(["1", "x"], dtype=object))
    )
    agg.fold(make_batch(outputs, [1, 1]))
    matched = agg.record(ids, actuals, now=T0)  # type: ignore[arg-type]
    assert matched + sum(agg.unmatched.values()) == max(len(ids), len(actuals))
    agg.families(RenderContext("modelmon", LABELS, T0))


# --- task inference, persistence, delays, windows ---------------------------------------
def test_task_inferred_from_persisted_predictions(tmp_path: Path) -> None:
    path = tmp_path / "pending.db"
    first = OutcomeAggregate(None, store=SqliteStore(path), detector=None)
    batch = make_batch(OutputFrame(2, labels=np.array(["1", "0"], dtype=object)), [2])
    first.fold(batch)
    first.store.close()
    # A restarted process: no prediction folded yet, the task comes from the stored ones.
    second = OutcomeAggregate(None, store=SqliteStore(path), detector=None)
    assert second.record(ids_of(batch), [True, 1.0], now=T0 + 10) == 2
    assert second.task == "classification"
    assert second.confusion == {("1", "1"): 1, ("1", "0"): 1}
    second.store.close()


def test_failed_calls_get_no_rows_and_delays_are_histogrammed() -> None:
    out = OutputFrame(3, values=np.array([1.0, 2.0, 3.0]))
    batch = make_batch(out, [1, 0, 2], errors=[None, "ValueError", None], now=T0)
    agg = OutcomeAggregate("regression", detector=None)
    agg.fold(batch)
    ids = ids_of(batch)
    assert ids == ["c0", "c2.0", "c2.1"]
    agg.record(ids[:1], [1.0], now=T0 + 5)
    agg.record(ids[1:], [2.0, 3.0], now=T0 + 4000)
    point = families_by_name(agg, T0 + 4000)["modelmon_outcome_delay_seconds"].points[0]
    assert isinstance(point, HistogramPoint)
    ended = batch.ended_at
    delays = np.array([T0 + 5 - ended[0], T0 + 4000 - ended[2], T0 + 4000 - ended[2]])
    bounds = np.asarray(names.OUTCOME_DELAY_BUCKETS)
    expected = np.bincount(np.searchsorted(bounds, delays, side="left"), minlength=len(bounds) + 1)
    assert point.counts == tuple(expected.tolist())
    assert point.sum == pytest.approx(delays.sum())


def test_window_keeps_only_recent_outcomes() -> None:
    agg = OutcomeAggregate("regression", window_seconds=900.0, slots=15, detector=None)
    batch = make_batch(OutputFrame(2, values=np.array([0.0, 0.0])), [2])
    agg.fold(batch)
    agg.record(["c0.0"], [1.0], now=T0)  # slot T0/60
    agg.record(["c0.1"], [3.0], now=T0 + 600)
    assert agg.performance(T0 + 600)["mae"] == pytest.approx(2.0)
    assert agg.performance(T0 + 899)["mae"] == pytest.approx(2.0)
    assert agg.performance(T0 + 900)["mae"] == pytest.approx(3.0)  # first slot left
    assert agg.performance(T0 + 1500) == {}
    assert agg.regression_count == 2  # the counters are cumulative


# --- merge, state, concept drift ------------------------------------------------------
def _classification_pair(seed: int, prefix: str) -> tuple[Batch, list[str], list[str]]:
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.ones(3), size=50)
    batch = make_batch(proba_frame(proba, ("x", "y", "z")), [50], prefix=prefix)
    return batch, ids_of(batch), list(rng.choice(["x", "y", "z"], size=50))


def _strip_detector(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in state.items() if k not in ("detections", "in_drift", "delay")}


def test_merge_equals_one_aggregate_fed_both() -> None:
    (b1, i1, a1), (b2, i2, a2) = _classification_pair(1, "p"), _classification_pair(2, "q")
    one, left, right = (OutcomeAggregate("classification") for _ in range(3))
    for agg, parts in ((one, [(b1, i1, a1), (b2, i2, a2)]), (left, [(b1, i1, a1)])):
        for batch, ids, actual in parts:
            agg.fold(batch)
            agg.record(ids[:30], actual[:30], now=T0 + 10)
            agg.record(ids[30:], actual[30:], now=T0 + 200)
    right.fold(b2)
    right.record(i2[:30], a2[:30], now=T0 + 10)
    right.record(i2[30:], a2[30:], now=T0 + 200)
    right.record(["nope"], ["x"], now=T0 + 200)
    one.record(["nope"], ["x"], now=T0 + 200)
    left.merge(right)
    assert left.confusion == one.confusion
    assert left.unmatched == one.unmatched
    assert np.array_equal(left.delay.counts, one.delay.counts)
    assert left.window.keys() == one.window.keys()
    for key, slot in one.window.items():
        mine = left.window[key]
        assert mine.confusion == slot.confusion and mine.n == slot.n
        assert (mine.log_loss, mine.brier) == pytest.approx((slot.log_loss, slot.brier))
    lp, op = left.performance(T0 + 200), one.performance(T0 + 200)
    assert lp.keys() == op.keys()
    for k in op:
        assert lp[k] == pytest.approx(op[k], abs=1e-12)


def test_regression_merge_and_state_round_trip() -> None:
    aggs = []
    for seed in (3, 4):
        rng = np.random.default_rng(seed)
        agg = OutcomeAggregate("regression")
        batch = make_batch(OutputFrame(20, values=rng.normal(size=20)), [20], prefix=f"s{seed}")
        agg.fold(batch)
        agg.record(ids_of(batch), rng.normal(size=20).tolist(), now=T0 + 30)
        aggs.append(agg)
    merged = OutcomeAggregate("regression")
    merged.load_state(aggs[0].state())
    merged.merge(aggs[1])
    assert merged.regression_count == 40
    assert merged.regression_squared == pytest.approx(
        aggs[0].regression_squared + aggs[1].regression_squared
    )
    restored = OutcomeAggregate("regression")
    restored.load_state(merged.state())
    assert _strip_detector(restored.state()) == _strip_detector(merged.state())
    assert restored.performance(T0 + 30) == merged.performance(T0 + 30)


def test_concept_drift_through_the_aggregate() -> None:
    rng = np.random.default_rng(5)
    n = 8_000
    labels = np.where(rng.random(n) < 0.5, "a", "b").astype(object)
    batch = make_batch(OutputFrame(n, labels=labels), [n])
    wrong = np.r_[rng.random(4_000) < 0.1, rng.random(4_000) < 0.4]
    actual = np.where(wrong, np.where(labels == "a", "b", "a"), labels).tolist()
    agg = OutcomeAggregate("classification", detector="adwin")
    agg.fold(batch)
    ids = ids_of(batch)
    agg.record(ids[:4_000], actual[:4_000], now=T0)
    fams = families_by_name(agg, T0)
    assert scalar(fams["modelmon_concept_drift_detected"], detector="adwin") == 0
    assert scalar(fams["modelmon_concept_drift"], detector="adwin") == 0.0
    agg.record(ids[4_000:4_500], actual[4_000:4_500], now=T0 + 1)
    fams = families_by_name(agg, T0 + 1)
    assert scalar(fams["modelmon_concept_drift_detected"], detector="adwin") >= 1
    assert scalar(fams["modelmon_concept_drift"], detector="adwin") == 1.0

    other = OutcomeAggregate("classification", detector="adwin")
    other.load_state(agg.state())  # detector state does not travel: counts and flag do
    assert other.detections == agg.detections and other.in_drift
    other.merge(agg)
    assert other.detections == 2 * agg.detections


def test_page_hinkley_detector_is_named() -> None:
    agg = OutcomeAggregate("regression", detector="page_hinkley")
    fams = families_by_name(agg, T0)
    assert scalar(fams["modelmon_concept_drift_detected"], detector="page_hinkley") == 0


def test_class_label_normalisation() -> None:
    assert [class_label(v) for v in (np.int64(2), np.bool_(False), 2.0, np.str_("k"))] == [
        "2",
        "0",
        "2",
        "k",
    ]
    assert class_label(b"cat") == "cat"
    assert class_label(object()) is None
