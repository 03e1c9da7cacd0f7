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
