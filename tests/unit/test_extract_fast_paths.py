"""The vectorised input paths give exactly the frame of the general per-call path."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from modelmon import Monitor
from modelmon.extract import FeatureSchema, features_frame, input_chunk, stacked_arrays


def _general(inputs: list[Any], names: list[str]) -> Any:
    return features_frame([input_chunk(x) for x in inputs], FeatureSchema(names))


def _same(a: Any, b: Any) -> None:
    assert a.names == b.names
    np.testing.assert_array_equal(a.numeric, b.numeric)
    np.testing.assert_array_equal(a.missing, b.missing)
    np.testing.assert_array_equal(a.invalid, b.invalid)
    assert a.not_exported == b.not_exported


@pytest.mark.parametrize("shape", [(5,), (3, 5), (1, 5), (0, 5)])
def test_stacked_numeric_arrays_match_the_general_path(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    names = [f"f{i}" for i in range(5)]
    inputs = [rng.normal(size=shape) for _ in range(40)]
    for x in inputs[::7] if shape[0] else []:
        x.reshape(-1)[:2] = [np.nan, np.inf]  # missing and invalid values survive
    ints = [np.arange(5 * int(np.prod(shape[:-1])), dtype=np.int64).reshape(shape)]
    inputs += ints
    stacked = stacked_arrays(inputs)
    if shape[0] == 0:
        assert stacked is None  # nothing to stack: the general path handles it
        return
    assert stacked is not None
    _same(features_frame([stacked], FeatureSchema(names)), _general(inputs, names))


@pytest.mark.parametrize(
    "inputs",
    [
        [np.zeros(5), np.zeros((2, 5))],  # mixed ranks
        [np.zeros(5), np.zeros(4)],  # mixed widths
        [np.zeros(3), np.zeros(5), np.zeros(4), np.zeros(4)],  # widths summing to 4 x 4
        [np.zeros(4), np.zeros(4), np.array(1.0)],  # a 0-D value among rows
        [np.array(["a", "b"], dtype=object), np.zeros(2)],  # object values
        [np.zeros((2, 2, 2))],  # rank 3
    ],
)
def test_stacking_refuses_what_only_the_general_path_reads(inputs: list[Any]) -> None:
    assert stacked_arrays(inputs) is None


def test_monitor_counts_numpy_rows_and_batches_exactly() -> None:
    mon = Monitor("np", "1", registry=False, feature_names=["a", "b", "c"], strict=True)
    predict = mon.wrap(lambda x: np.zeros(len(x)) if np.ndim(x) == 2 else 0.0)
    rng = np.random.default_rng(1)
    rows = 0
    for i in range(300):
        if i % 3:
            predict(rng.normal(size=3))
            rows += 1
        else:
            n = int(rng.integers(0, 5))
            predict(rng.normal(size=(n, 3)))
            rows += n
    predict(np.array([np.nan, 1.0, 2.0]))
    mon.fold()
    assert mon.traffic.requests == 301
    assert mon.traffic.predictions == rows + 1
    mon.close()


def test_max_features_truncation_is_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mon = Monitor("wide", "1", registry=False, max_features=3, strict=True)
    predict = mon.wrap(lambda x: 0.0)
    with caplog.at_level("WARNING", logger="modelmon"):
        for i in range(5):
            predict({f"f{j}": float(i + j) for j in range(8)})
            predict(np.arange(8.0))
            mon.fold()
    mon.close()
    assert mon.inputs.not_exported == 10 * 5  # 5 values beyond the 3 exported, per call
    warnings = [r for r in caplog.records if "max_features=3" in r.getMessage()]
    assert len(warnings) == 1
    assert "wide" in warnings[0].getMessage()


def _object_frame(dicts: list[dict[str, Any]], names: list[str], cats: list[str]) -> Any:
    """The per-value reference path, run directly on the same rows."""
    from modelmon.extract import _object_block

    rows = [tuple(d.get(n) for n in names) for d in dicts]
    return _object_block(rows, len(names), [names.index(c) for c in cats])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_columnar_dicts_with_categories_match_the_per_value_rules(seed: int) -> None:
    rng = np.random.default_rng(seed)
    names = ["a", "b", "c", "k", "z"]
    cats = ["k", "z"]
    odd_numbers: list[Any] = [None, float("nan"), float("inf"), "1.5", True, 10**400, 7]
    odd_categories: list[Any] = [None, float("nan"), 3, b"x", "v"]
    dicts = []
    for i in range(200):
        d: dict[str, Any] = {
            "a": float(rng.normal()),
            "b": int(rng.integers(0, 9)),
            "c": float(rng.normal()),
            "k": f"v{rng.integers(0, 4)}",
            "z": f"w{rng.integers(0, 3)}",
        }
        if seed and i % 17 == 0:
            d["c"] = odd_numbers[i % len(odd_numbers)]
        if seed == 2 and i % 13 == 0:
            d["z"] = odd_categories[i % len(odd_categories)]
        dicts.append(d)
    frame = features_frame([input_chunk(dicts)], FeatureSchema(names, cats))
    values, missing, invalid, categorical = _object_frame(dicts, names, cats)
    np.testing.assert_array_equal(frame.numeric, values)
    np.testing.assert_array_equal(frame.missing, missing)
    np.testing.assert_array_equal(frame.invalid, invalid)
    assert set(frame.categorical) == set(categorical)
    for j, col in categorical.items():
        assert frame.categorical[j].tolist() == col.tolist()


def test_category_bins_by_lookup_match_the_sorted_search() -> None:
    from modelmon.profile import ReferenceProfile

    rng = np.random.default_rng(0)
    data = [{"k": f"v{rng.integers(0, 30)}"} for _ in range(2000)]
    feature = ReferenceProfile.from_data(data, categorical=["k"], max_categories=10).features["k"]
    values = np.array([f"v{i}" for i in range(40)] + [None, "", "__other__"], dtype=object)
    got = feature.bin_index(values)
    # The same values as a str-typed array take the general (sorted search) path.
    mixed = np.array([*values.tolist(), 5], dtype=object)
    want = feature.bin_index(mixed)[:-1]
    np.testing.assert_array_equal(got, want)
    assert got[-3] == -1  # None is missing
    known = {c: i for i, c in enumerate(feature.categories[:-1])}
    for v, b in zip(values[:40], got[:40], strict=True):
        assert b == known.get(v, len(feature.categories) - 1)
