"""Hostile request payloads: the cost of a call is bounded whatever it carries."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest

import modelmon

MAX_CATEGORY_CHARS = 128  # the documented bound (docs/security.md)


def _fold_peak_bytes(mon: modelmon.Monitor) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        mon.fold()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_one_long_category_value_does_not_blow_up_the_fold() -> None:
    # 1,024 rows and one 200 kB value: a fixed-width unicode array over the fold would
    # take 1,024 x 200k x 4 bytes = 800 MB. Bounded values keep the fold's peak small.
    mon = modelmon.Monitor(
        "longcat", "1", registry=False, reference="warmup", warmup_size=500,
        feature_names=["colour", "x"], categorical=["colour"], buffer_size=100_000,
    )  # fmt: skip
    rng = np.random.default_rng(7)
    colours = ["red", "green", "blue"]
    for i in range(1024):
        value = "z" * 200_000 if i == 3 else colours[int(rng.integers(3))]
        mon.observe({"colour": value, "x": float(rng.normal())}, 0.5)
    peak = _fold_peak_bytes(mon)
    assert peak < 50_000_000, peak
    assert mon.drift is not None and mon.drift.profile is not None
    categories = mon.drift.profile.features["colour"].categories
    assert max(len(c) for c in categories) <= MAX_CATEGORY_CHARS


def test_distinct_long_values_stay_distinct_and_bounded() -> None:
    from modelmon.extract import MAX_CATEGORY_CHARS as limit
    from modelmon.extract import bounded_category

    assert limit == MAX_CATEGORY_CHARS

    a, b = "q" * 10_000 + "a", "q" * 10_000 + "b"
    assert bounded_category(a) != bounded_category(b)
    assert len(bounded_category(a)) == len(bounded_category(b)) == MAX_CATEGORY_CHARS
    assert bounded_category("short") == "short"


def test_a_reused_input_buffer_is_read_at_call_time() -> None:
    # A caller that fills one array for every call: the fold must see each call's values,
    # not the buffer's last content (PSI was 8.28 on reference-identical data).
    rng = np.random.default_rng(11)
    data = rng.normal(size=(3000, 3))
    from modelmon.profile import ReferenceProfile

    reference = ReferenceProfile.from_data(data[:2000], feature_names=["a", "b", "c"])
    mon = modelmon.Monitor("reuse", "1", registry=False, reference=reference, min_samples=100)

    @mon
    def predict(x: np.ndarray) -> float:
        return float(x.sum())

    buf = np.empty((1, 3))
    for row in data[2000:]:
        buf[0] = row
        predict(buf)
    for row in data[2000:]:
        buf[0] = row
        mon.observe(buf, 0.5)
    mon.fold()
    assert mon.drift is not None
    ctx = mon.render_context()
    values = {
        (p.labels["feature"], p.labels.get("method")): p.value
        for f in mon.drift.families(ctx)
        if f.spec.name == "feature_drift"
        for p in f.points
    }
    assert all(values[(name, "psi")] < 0.05 for name in "abc"), values


class _FloatFails(float):
    def __float__(self) -> float:
        raise RuntimeError("hostile __float__")


class _StrFails:
    def __str__(self) -> str:
        raise RuntimeError("hostile __str__")


def test_a_pathological_value_costs_that_value_not_the_fold() -> None:
    mon = modelmon.Monitor(
        "patho", "1", registry=False, feature_names=["a", "b", "c"], categorical=["c"]
    )
    for i in range(10):
        b = _FloatFails(1.0) if i == 3 else 1.0
        c = _StrFails() if i == 5 else "x"
        mon.observe({"a": float(i), "b": b, "c": c}, 0.5)
    mon.fold()
    assert mon.inputs.observations.tolist() == [10, 10, 10]
    assert mon.inputs.invalid.tolist() == [0, 1, 0]
    assert mon.inputs.missing.tolist() == [0, 0, 1]


def test_integer_dict_keys_are_read_not_counted_missing() -> None:
    # JSON objects decoded by some clients, or dicts built by code, can have int keys:
    # they were 100% missing (names are str, lookups used the str).
    rows = [{0: float(i), 1: 2.0 * i, "b": 3.0} for i in range(200)]
    ref = modelmon.ReferenceProfile.from_data(rows)
    assert ref.features["0"].kind == "numeric"
    assert ref.features["0"].missing_share == 0.0
    mon = modelmon.Monitor("intkeys", "1", registry=False, reference=ref)
    for row in rows[:50]:
        mon.observe(row, 0.5)
    mon.fold()
    assert mon.schema.names == ("0", "1", "b")
    assert mon.inputs.missing.tolist() == [0, 0, 0]
    assert mon.inputs.observations.tolist() == [50, 50, 50]
    assert mon.drift is not None and int(mon.drift.cum_features.sum()) == 150
    mon.close()


def _drift_lines(mon: modelmon.Monitor, feature: str) -> list[str]:
    from modelmon.exporters.exposition import TextRenderer

    text = TextRenderer().render(mon.collect())
    return sorted(
        ln for ln in text.splitlines()
        if f'feature="{feature}"' in ln and not ln.startswith("#")
    )  # fmt: skip


def _series(lines: list[str]) -> dict[str, float]:
    return {ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1]) for ln in lines}


def test_values_near_the_largest_double_warn_nothing_and_leave_other_features_alone() -> None:
    # A bucket holding 1.7e308 has a representative past the largest double, and the gap
    # between -1.7e308 and 1.7e308 overflows: the scrape must neither warn nor fail, and
    # the features that carried no such value report what they report without them.
    rng = np.random.default_rng(11)
    x = rng.normal(size=(3000, 3))
    profile = modelmon.ReferenceProfile.from_data(x[:2000], feature_names=["a", "b", "c"])
    honest, hostile = (
        modelmon.Monitor("big", "1", registry=False, reference=profile, min_samples=10)
        for _ in range(2)
    )
    live = x[2000:]
    huge = live.copy()
    huge[::3, 1] = 1.7e308
    huge[1::3, 1] = -1.7e308
    huge[2::7, 1] = 5e-324
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for mon, rows in ((honest, live), (hostile, huge)):
            for start in range(0, len(rows), 50):
                mon.observe(rows[start : start + 50], np.full(50, 0.5))
            mon.fold()
        wild = _drift_lines(hostile, "b")
    assert wild and not any(ln.endswith(" NaN") for ln in wild), wild
    assert sum(hostile.health.internal_errors.values()) == 0
    for feature in ("a", "c"):
        # Equal to the last bits: the Wasserstein rows of all features are summed in
        # merged chunks, so another feature's points can move a rounding (1e-16).
        mine, theirs = (_series(_drift_lines(m, feature)) for m in (hostile, honest))
        assert mine == pytest.approx(theirs, rel=1e-12, abs=0.0)
    for mon in (honest, hostile):
        mon.close()
