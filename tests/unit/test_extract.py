"""Input/output extraction: every input shape users pass, and bad input never raising."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelmon.extract import (
    FeatureSchema,
    UnsupportedInput,
    features_frame,
    input_chunk,
    output_rows,
    outputs_frame,
)


def frame(inputs: list[Any], **schema: Any) -> Any:
    return features_frame(inputs, FeatureSchema(**schema))


def test_numpy_2d_and_1d() -> None:
    f = frame([np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([5.0, 6.0])])
    assert f.names == ("f0", "f1")
    np.testing.assert_array_equal(f.numeric, [[1, 2], [3, 4], [5, 6]])
    assert not f.missing.any() and not f.invalid.any()


def test_zero_d_array_and_scalars() -> None:
    f = frame([np.array(3.5), 2, 1.5])
    np.testing.assert_array_equal(f.numeric[:, 0], [3.5, 2, 1.5])


def test_dicts_list_of_dicts_and_key_order() -> None:
    f = frame([{"a": 1, "b": 2.5}, [{"b": 4.0, "a": 3}, {"a": 5, "b": 6}]])
    assert f.names == ("a", "b")
    np.testing.assert_array_equal(f.numeric, [[1, 2.5], [3, 4], [5, 6]])


def test_pandas_dataframe_and_series() -> None:
    df = pd.DataFrame({"x": [1.0, 2.0], "y": [3.0, np.nan]})
    f = frame([df, df.iloc[0]])
    assert f.names == ("x", "y")
    np.testing.assert_array_equal(f.missing, [[False, False], [False, True], [False, False]])
    assert f.numeric[2, 1] == 3.0


def test_dataframe_columns_are_matched_by_name() -> None:
    f = frame([pd.DataFrame({"b": [2.0], "a": [1.0]})], names=["a", "b"])
    np.testing.assert_array_equal(f.numeric, [[1.0, 2.0]])


def test_pydantic_model() -> None:
    class Row(pydantic.BaseModel):
        age: float
        income: float | None

    f = frame([Row(age=30, income=None), [Row(age=40, income=1.0)]])
    assert f.names == ("age", "income")
    assert f.missing.sum() == 1
    np.testing.assert_array_equal(f.numeric[:, 0], [30, 40])


def test_list_of_lists_ragged_rows_are_padded_as_missing() -> None:
    f = frame([[[1.0, 2.0, 3.0], [4.0], [5.0, 6.0, 7.0, 8.0]]])
    assert f.names == ("f0", "f1", "f2")
    assert f.missing.sum() == 2
    assert f.not_exported == 1  # the 4th value of the last row


def test_nan_inf_none_and_strings_are_counted() -> None:
    f = frame([np.array([[np.nan, np.inf, 1.0]]), [[None, "abc", -np.inf]]])
    np.testing.assert_array_equal(f.missing, [[True, False, False], [True, False, False]])
    np.testing.assert_array_equal(f.invalid, [[False, True, False], [False, True, True]])
    # invalid values never reach the numeric matrix
    assert np.isnan(f.numeric[f.invalid]).all()


def test_numeric_strings_in_numeric_features_are_invalid() -> None:
    f = frame([[{"a": 1.0}, {"a": "2.5"}]])
    assert f.invalid[:, 0].tolist() == [False, True]


def test_categorical_features_are_guessed_from_strings_and_bools() -> None:
    schema = FeatureSchema()
    f = features_frame(
        [[{"city": "paris", "vip": True, "age": 3.0}, {"city": None, "vip": False, "age": 4}]],
        schema,
    )
    assert schema.categorical == frozenset({"city", "vip"})
    assert list(f.categorical[0]) == ["paris", None]
    assert list(f.categorical[1]) == ["True", "False"]
    assert f.missing[:, 0].tolist() == [False, True]
    np.testing.assert_array_equal(f.numeric[:, 2], [3.0, 4.0])


def test_max_features_caps_labels_and_counts_the_rest() -> None:
    f = frame([np.ones((2, 5))], max_features=3)
    assert f.names == ("f0", "f1", "f2")
    assert f.not_exported == 4


def test_unknown_keys_never_become_features() -> None:
    schema = FeatureSchema(names=["a"])
    f = features_frame([{"a": 1.0, "injected": 2.0}], schema)
    assert f.names == ("a",)
    assert f.not_exported == 1


def test_empty_inputs() -> None:
    f = frame([np.zeros((0, 3)), [], None])
    assert f.n_rows == 0


def test_unsupported_input_type_raises_for_the_caller_to_count() -> None:
    with pytest.raises(UnsupportedInput):
        input_chunk(object())


# --- outputs ----------------------------------------------------------------------------


def test_float_outputs_are_numeric_predictions() -> None:
    out = outputs_frame([np.array([0.1, 0.2]), 0.3, [0.4]])
    assert out.n_rows == 4
    np.testing.assert_allclose(out.values, [0.1, 0.2, 0.3, 0.4])
    assert out.labels is None


def test_integer_and_string_outputs_are_labels() -> None:
    out = outputs_frame([np.array([0, 1, 1]), ["cat"]])
    assert out.labels is not None and list(out.labels) == ["0", "1", "1", "cat"]


def test_probability_matrix_gives_labels_confidence_and_positive_share() -> None:
    p = np.array([[0.2, 0.8], [0.9, 0.1]])
    out = outputs_frame([p], classes=["no", "yes"])
    assert list(out.labels) == ["yes", "no"]  # type: ignore[arg-type]
    np.testing.assert_allclose(out.confidence, [0.8, 0.9])  # type: ignore[arg-type]
    np.testing.assert_allclose(out.values, [0.8, 0.1])  # type: ignore[arg-type]
    assert out.classes == ("no", "yes")


def test_a_non_probability_matrix_gives_no_confidence() -> None:
    out = outputs_frame([np.array([[3.0, 5.0]])])
    assert out.confidence is None and out.n_rows == 1


def test_regression_task_keeps_integers_numeric() -> None:
    out = outputs_frame([np.array([1, 2])], task="regression")
    assert out.labels is None
    np.testing.assert_array_equal(out.values, [1.0, 2.0])  # type: ignore[arg-type]


def test_output_rows() -> None:
    assert output_rows(np.zeros((7, 2))) == 7
    assert output_rows(np.float64(1.0)) == 1
    assert output_rows([1, 2, 3]) == 3
    assert output_rows(pd.Series([1.0, 2.0])) == 2


# --- property-based: extraction never raises on arbitrary junk ----------------------------

scalars = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=5),
    st.booleans(),
    st.binary(max_size=3),
)
rows = st.one_of(
    st.dictionaries(st.sampled_from(["a", "b", "c"]), scalars, max_size=3),
    st.lists(scalars, max_size=4),
    scalars,
)
inputs = st.one_of(rows, st.lists(rows, max_size=4))


@settings(max_examples=300, deadline=None)
@given(st.lists(inputs, min_size=1, max_size=5))
def test_features_frame_never_raises_and_is_consistent(batch: list[Any]) -> None:
    chunks = []
    for x in batch:
        try:
            chunks.append(input_chunk(x))
        except UnsupportedInput:
            continue
    f = features_frame(chunks, FeatureSchema())
    assert f.numeric.shape == f.missing.shape == f.invalid.shape
    # a value is never both missing and invalid, and numeric holds only finite values
    assert not (f.missing & f.invalid).any()
    finite = ~np.isnan(f.numeric)
    assert np.isfinite(f.numeric[finite]).all()
    assert not (finite & (f.missing | f.invalid)).any()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(scalars, st.lists(scalars, max_size=3)), min_size=1, max_size=4))
def test_outputs_frame_never_raises_unexpectedly(outputs: list[Any]) -> None:
    try:
        out = outputs_frame(outputs)
    except UnsupportedInput:
        return
    for arr in (out.values, out.labels, out.confidence):
        if arr is not None:
            assert len(arr) == out.n_rows
