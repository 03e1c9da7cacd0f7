"""Segments: resolution, the series budget, per-segment counts, drift and labels."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

import modelmon
from modelmon import ConfigurationError, ReferenceProfile
from modelmon.segments import (
    FIRST_VALUE_CODE,
    MISSING_CODE,
    OTHER_CODE,
    Segmenter,
    segment_values,
)
from tests.conftest import scrape, value

KEY = "k" * 32
COUNTRIES = ["fr", "de", "it", "es", "pt", "nl", "be", "at", "pl", "se", "dk", "fi", "ie"]


def _reference(rng: np.random.Generator, n: int = 4000) -> tuple[ReferenceProfile, list[dict]]:
    weights = np.arange(len(COUNTRIES), 0, -1, dtype=float)
    rows = [
        {"country": str(c), "x": float(x)}
        for c, x in zip(
            rng.choice(COUNTRIES, size=n, p=weights / weights.sum()),
            rng.normal(size=n),
            strict=True,
        )
    ]
    return ReferenceProfile.from_data(rows, categorical=["country"]), rows


def _segment_lines(registry: CollectorRegistry) -> list[str]:
    text = generate_latest(registry).decode()
    return [ln for ln in text.splitlines() if not ln.startswith("#") and 'segment="' in ln]


def test_codes_of_a_feature_and_of_a_callable() -> None:
    seg = Segmenter("country", ["fr", "de"])
    rows = [{"country": "de"}, {"country": "xx"}, {"country": None}, {}, {"country": "fr"}]
    got = [seg.label(c) for c in seg.codes_of_rows(rows)]
    assert got == ["de", "__other__", "__missing__", "__missing__", "fr"]
    binned = Segmenter(lambda r: "big" if r["x"] > 1 else "small", ["big", "small"])
    codes = binned.codes_of_rows([{"x": 2.0}, {"x": 0.0}, {"y": 1.0}])
    assert [binned.label(c) for c in codes] == ["big", "small", "__missing__"]
    assert isinstance(binned.take_error(), KeyError)  # counted by the fold, never raised
    assert binned.label(60000) == "__other__"  # a code of another configuration


def test_top_k_values_are_the_reference_most_frequent() -> None:
    profile, rows = _reference(np.random.default_rng(1))
    expected = [
        c
        for c, _ in sorted(
            Counter(r["country"] for r in rows).items(), key=lambda kv: (-kv[1], kv[0])
        )
    ]
    assert segment_values("country", None, profile, 10) == expected[:10]
    assert segment_values("country", None, profile, 3) == expected[:3]
    assert segment_values("country", ["b", "a"], profile) == ["b", "a"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"segment": "x"}, "numeric in the reference"),
        ({"segment": lambda r: "a"}, "callable needs segments"),
        ({"segment": "nope"}, "not among the monitored features"),
        ({"segment": "tier", "reference": None}, "reference profile with that feature"),
        ({"segment": "country", "max_series": 0}, "max_series"),
        ({"segment": "country", "segments": "fr"}, "list of values"),
        ({"segment": "country", "segments": ["__other__"]}, "must not contain"),
        ({"segment": 3, "segments": ["a"]}, "feature name or a callable"),
    ],
)
def test_configuration_errors_raise_early(options: dict, message: str) -> None:
    profile, _ = _reference(np.random.default_rng(2), 500)
    options = {"reference": profile, **options}
    with pytest.raises(ConfigurationError, match=message):
        modelmon.Monitor("m", "1", registry=False, **options)


def test_without_a_reference_kinds_are_still_guessed_from_the_first_input() -> None:
    registry = CollectorRegistry()
    mon = modelmon.Monitor("m", "1", registry=registry, segment="tier", segments=["a", "b"])

    @mon
    def predict(row: dict) -> int:
        return 1

    for tier, color in (("a", "red"), ("b", "blue"), ("z", "red")):
        predict({"tier": tier, "color": color, "x": 1.0})
    mon.fold()
    assert mon.schema.categorical == {"tier", "color"}
    samples = scrape(registry)
    for segment in ("a", "b", "__other__"):
        got = value(
            samples, "modelmon_segment_predictions_total", model="m", version="1", segment=segment
        )
        assert got == 1


def test_integer_segment_values() -> None:
    registry = CollectorRegistry()
    mon = modelmon.Monitor("m", "1", registry=registry, segment="tier", segments=[1, 2])

    @mon
    def predict(row: dict) -> int:
        return 1

    for tier in (1, 2, 2, 7, None):
        predict({"tier": tier, "x": 1.0})
    samples = scrape(registry)
    want = {"1": 1, "2": 2, "__other__": 1, "__missing__": 1}
    for segment, n in want.items():
        got = value(
            samples, "modelmon_segment_predictions_total", model="m", version="1", segment=segment
        )
        assert got == n


@pytest.mark.parametrize("budget", [400, 150])
def test_ten_thousand_random_segment_values_stay_within_the_budget(budget: int) -> None:
    rng = np.random.default_rng(3)
    profile, _ = _reference(rng, 2000)
    registry = CollectorRegistry()
    mon = modelmon.Monitor(
        "m", "1", reference=profile, registry=registry, segment="country", max_series=budget
    )

    @mon
    def predict(row: dict) -> float:
        return 1.0 if row["x"] > 0 else 0.0

    allowed = segment_values("country", None, profile, 10)
    # Known values, random junk (up to 10,000 distinct strings) and missing values.
    draws = rng.random(10_000)
    values = [
        str(rng.choice(COUNTRIES)) if d < 0.5 else None if d < 0.55 else f"junk-{rng.integers(1e9)}"
        for d in draws
    ]
    for v in values:
        predict({"country": v, "x": float(rng.normal())})
    lines = _segment_lines(registry)
    assert 0 < len(lines) <= budget
    expected = Counter(
        "__missing__" if v is None else v if v in allowed else "__other__" for v in values
    )
    # Segments are exported whole, in a fixed order: the allowed values, other, missing.
    order = [*allowed, "__other__", "__missing__"]
    seen = {ln.split('segment="')[1].split('"')[0] for ln in lines}
    assert seen == set(order[: len(seen)])
    samples = scrape(registry)
    labels = {"model": "m", "version": "1"}
    for segment in seen:
        got = value(samples, "modelmon_segment_predictions_total", segment=segment, **labels)
        assert got == expected[segment]
    dropped = sum(n for s, n in expected.items() if s not in seen)
    got_dropped = value(
        samples, "modelmon_dropped_observations_total", reason="series_budget", **labels
    )
    if budget == 400:  # room for every segment: unknown values are in __other__
        assert seen == set(order) and got_dropped is None
        assert expected["__other__"] > 4000
    else:
        assert len(seen) < len(allowed) and dropped > 0 and got_dropped == dropped
    assert value(samples, "modelmon_predictions_total", **labels) == 10_000


def test_unknown_values_land_in_other_when_the_budget_allows() -> None:
    registry = CollectorRegistry()
    mon = modelmon.Monitor("m", "1", registry=registry, segment="tier", segments=["gold", "free"])

    @mon
    def predict(row: dict) -> int:
        return 1

    rng = np.random.default_rng(4)
    tiers = [str(rng.choice(["gold", "free", "silver", "vip", None])) for _ in range(1000)]
    for t in tiers:
        predict({"tier": None if t == "None" else t, "x": 1.0})
    samples = scrape(registry)
    want = Counter(
        "__missing__" if t == "None" else t if t in ("gold", "free") else "__other__" for t in tiers
    )
    for segment, n in want.items():
        for metric in ("modelmon_segment_predictions_total", "modelmon_segment_requests_total"):
            assert value(samples, metric, model="m", version="1", segment=segment) == n


def test_labels_are_scored_per_segment_on_another_replica() -> None:
    """The id carries the segment: a second process with the same key scores it."""
    rng = np.random.default_rng(5)
    options = {"segment": "tier", "segments": ["a", "b", "c"], "id_key": KEY}
    serving = modelmon.Monitor("m", "1", registry=CollectorRegistry(), **options)
    other_registry = CollectorRegistry()
    scoring = modelmon.Monitor("m", "1", registry=other_registry, **options)

    @serving
    def predict(row: dict) -> int:
        return int(row["x"] > 0)

    rows = [
        {"tier": str(rng.choice(["a", "b", "c"])), "x": float(rng.normal())} for _ in range(600)
    ]
    ids, predicted = [], []
    for row in rows:
        predicted.append(predict(row))
        ids.append(modelmon.last_prediction_id())
    # Segment "c" is badly served: its truth is the opposite of the prediction.
    actuals = [
        1 - p if r["tier"] == "c" else (p if rng.random() < 0.9 else 1 - p)
        for r, p in zip(rows, predicted, strict=True)
    ]
    assert set(scoring.record_outcomes(ids, actuals)) == {"matched"}
    samples = scrape(other_registry)
    tiers = np.array([r["tier"] for r in rows])
    hits = np.array(predicted) == np.array(actuals)
    for tier in ("a", "b", "c"):
        mask = tiers == tier
        for result, n in (("correct", hits[mask].sum()), ("wrong", (~hits[mask]).sum())):
            got = value(
                samples,
                "modelmon_segment_outcomes_total",
                model="m",
                version="1",
                segment=tier,
                result=result,
            )
            assert got == n  # both results exported once labelled: 0, not absent
    assert hits[tiers == "c"].sum() == 0


def test_batch_rows_and_regression_errors_per_segment() -> None:
    registry = CollectorRegistry()
    mon = modelmon.Monitor(
        "r",
        "1",
        registry=registry,
        task="regression",
        segment="tier",
        segments=["a", "b"],
        feature_names=["tier", "x"],
    )

    @mon
    def predict(rows: list[dict]) -> list[float]:
        return [2.0 * r["x"] for r in rows]

    rng = np.random.default_rng(6)
    batch = [{"tier": str(rng.choice(["a", "b"])), "x": float(rng.normal())} for _ in range(50)]
    predict(batch)
    ids = modelmon.last_prediction_ids()
    truth = [r["x"] for r in batch]
    assert set(mon.record_outcomes(ids, truth)) == {"matched"}
    samples = scrape(registry)
    tiers = np.array([r["tier"] for r in batch])
    err = np.array([2.0 * r["x"] - r["x"] for r in batch])
    for tier in ("a", "b"):
        m = tiers == tier
        name = "modelmon_segment_regression_squared_error"
        labels = {"model": "r", "version": "1", "segment": tier}
        assert value(samples, name + "_count", **labels) == m.sum()
        assert value(samples, name + "_sum", **labels) == pytest.approx(float((err[m] ** 2).sum()))
        assert value(samples, "modelmon_segment_predictions_total", **labels) == m.sum()
    # One call, counted in the segment of its first row.
    first = {"model": "r", "version": "1", "segment": batch[0]["tier"]}
    assert value(samples, "modelmon_segment_requests_total", **first) == 1


def test_drift_in_one_segment_only() -> None:
    rng = np.random.default_rng(7)
    profile, _ = _reference(rng, 4000)
    registry = CollectorRegistry()
    mon = modelmon.Monitor(
        "m", "1", reference=profile, registry=registry, segment="country", segments=["fr", "de"]
    )

    @mon
    def predict(row: dict) -> float:
        return row["x"]

    for _ in range(3000):
        country = str(rng.choice(["fr", "de"]))
        shift = 1.5 if country == "de" else 0.0
        predict({"country": country, "x": float(rng.normal() + shift)})
    samples = scrape(registry)
    detected = {
        s: value(
            samples,
            "modelmon_segment_feature_drift_detected",
            model="m",
            version="1",
            segment=s,
            feature="x",
        )
        for s in ("fr", "de")
    }
    assert detected == {"fr": 0.0, "de": 1.0}
    # The segment feature is constant within a segment: its drift is not exported.
    assert not [k for k in samples if ("feature", "country") in k[1] and "segment" in str(k[1])]


def test_segment_code_values() -> None:
    seg = Segmenter("f", ["x"])
    assert (seg.code(None), seg.code("y"), seg.code("x")) == (
        MISSING_CODE,
        OTHER_CODE,
        FIRST_VALUE_CODE,
    )
    assert seg.code(float("nan")) == MISSING_CODE
    assert Segmenter("f", [1, 2]).code(2.0) == FIRST_VALUE_CODE + 1  # 2.0 reads as "2"


def _segment_child(mon: modelmon.Monitor, rows: list[dict], actual: list[int]) -> None:
    from modelmon.exporters import multiprocess as mpx

    ids = [mon.observe(r, int(r["x"] > 0)) for r in rows]
    mon.record_outcomes(ids, actual)
    mpx.flush()


def test_segments_merge_across_workers_like_one_process(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import multiprocessing as mp
    import os

    from modelmon.exporters import multiprocess as mpx

    mpx.install()
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setenv("MODELMON_MULTIPROC_DIR", str(tmp_path))
    rng = np.random.default_rng(8)
    profile, _ = _reference(rng, 3000)
    live = [
        {"country": str(rng.choice(COUNTRIES[:4])), "x": float(rng.normal(0.5))} for _ in range(900)
    ]
    actual = rng.integers(0, 2, size=900).tolist()
    options = {"reference": profile, "task": "classification", "segment": "country"}
    reg = CollectorRegistry()
    mon = modelmon.Monitor("m", "1", registry=reg, **options)
    fork = mp.get_context("fork")
    procs = [
        fork.Process(target=_segment_child, args=(mon, live[i : i + 300], actual[i : i + 300]))
        for i in (0, 300, 600)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    merged = scrape(reg)
    mon.close()
    os.environ.pop("MODELMON_MULTIPROC_DIR")
    ref_reg = CollectorRegistry()
    single = modelmon.Monitor("m", "1", registry=ref_reg, **options)
    _segment_child(single, live, actual)
    expected = scrape(ref_reg)
    segment_keys = [k for k in expected if k[0].startswith("modelmon_segment_")]
    # 4 segments x (requests, predictions, 2 outcome results, 4 drift scores + decision of x)
    assert len(segment_keys) == 4 * (4 + 5)
    for key in segment_keys:
        assert merged.get(key) == pytest.approx(expected[key], rel=1e-9, abs=1e-12), key
    errors = {k: v for k, v in merged.items() if k[0] == "modelmon_internal_errors_total"}
    assert not any(errors.values()), errors


def test_ids_of_numpy_batches_carry_the_segment_of_each_row() -> None:
    """Inputs that are not dicts: the id's segment comes from the extracted features."""
    registry = CollectorRegistry()
    mon = modelmon.Monitor(
        "g",
        "1",
        registry=registry,
        feature_names=["g", "x"],
        segment="g",
        segments=[0, 1],
        task="regression",
    )

    @mon
    def predict(x: np.ndarray) -> np.ndarray:
        return x[:, 1] * 2.0

    rng = np.random.default_rng(9)
    batch = np.column_stack([rng.integers(0, 3, size=40), rng.normal(size=40)]).astype(float)
    predict(batch)
    ids = modelmon.last_prediction_ids()
    assert set(mon.record_outcomes(ids, batch[:, 1].tolist())) == {"matched"}
    samples = scrape(registry)
    labels = {"model": "g", "version": "1"}
    for code, segment in ((0, "0"), (1, "1"), (2, "__other__")):
        n = int((batch[:, 0] == code).sum())
        name = "modelmon_segment_regression_squared_error_count"
        assert value(samples, name, segment=segment, **labels) == n
        assert value(samples, "modelmon_segment_predictions_total", segment=segment, **labels) == n


def test_outputs_not_aligned_with_inputs_count_as_missing_without_raising() -> None:
    registry = CollectorRegistry()
    mon = modelmon.Monitor(
        "s", "1", registry=registry, strict=True, segment="tier", segments=["a", "b"]
    )

    @mon
    def predict(rows: list[dict]) -> list[int]:
        return [1, 0]  # one row short

    predict([{"tier": "a", "x": 1.0}, {"tier": "b", "x": 2.0}, {"tier": "a", "x": 3.0}])
    samples = scrape(registry)
    labels = {"model": "s", "version": "1"}
    assert (
        value(samples, "modelmon_segment_predictions_total", segment="__missing__", **labels) == 2
    )
    assert value(samples, "modelmon_segment_predictions_total", segment="a", **labels) is None


def test_a_callable_segment_gives_the_same_segment_to_traffic_and_to_labels() -> None:
    registry = CollectorRegistry()
    mon = modelmon.Monitor(
        "c",
        "1",
        registry=registry,
        segment=lambda r: "big" if r["x"] > 1 else "small",
        segments=["big", "small"],
        task="classification",
    )

    @mon
    def predict(row: dict) -> int:
        return 1

    rng = np.random.default_rng(10)
    xs = rng.normal(1.0, 1.0, size=300)
    ids = []
    for x in xs:
        predict({"x": int(x) if x > 2 else float(x)})  # ints too: the callable sees numbers
        ids.append(modelmon.last_prediction_id())
    assert set(mon.record_outcomes(ids, [1] * len(ids))) == {"matched"}
    samples = scrape(registry)
    labels = {"model": "c", "version": "1"}
    for segment, n in (("big", int((xs > 1).sum())), ("small", int((xs <= 1).sum()))):
        assert value(samples, "modelmon_segment_predictions_total", segment=segment, **labels) == n
        got = value(
            samples, "modelmon_segment_outcomes_total", segment=segment, result="correct", **labels
        )
        assert got == n


def test_pydantic_inputs_carry_their_segment_in_the_id() -> None:
    pydantic = pytest.importorskip("pydantic")

    class Row(pydantic.BaseModel):
        tier: str
        x: float

    mon = modelmon.Monitor("p", "1", registry=False, segment="tier", segments=["a", "b"])

    @mon
    def predict(row: Row) -> int:
        return 1

    for tier in ("a", "b", "q"):
        predict(Row(tier=tier, x=1.0))
        decoded = mon.ids.codec.verify(modelmon.last_prediction_id())
        assert mon.segments is not None
        assert mon.segments.segment_label(decoded.segment) == (tier if tier != "q" else "__other__")
