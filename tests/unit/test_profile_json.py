"""The profile's JSON text: byte for byte what ``json.dumps(..., indent=2)`` writes."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelmon._profile_json import dumps_indented
from modelmon.profile_builder import build_profile


def reference(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, indent=2, allow_nan=False)


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=5)
        | st.lists(st.integers(), max_size=5)
        | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(values)
def test_any_json_value_gives_the_same_text(obj: Any) -> None:
    assert dumps_indented(obj) == reference(obj)


def test_real_profiles_give_the_same_text() -> None:
    rng = np.random.default_rng(3)
    n = 5_000
    table = pa.table(
        {
            "age": rng.normal(40, 12, n),
            "income": np.exp(rng.normal(10, 1, n)),
            "city": rng.choice(["a", "b", "é", 'q"x'], n),
            "y": rng.random(n),
        }
    )
    profile = build_profile(lambda: [table], prediction="y")
    obj = profile.to_json()
    assert dumps_indented(obj) == reference(obj)
    assert profile.dumps() == reference(obj) + "\n"


@pytest.mark.parametrize(
    "obj",
    [
        {"a": [1.0, 2, True]},  # mixed list: item by item
        {"b": (1.5, 2.5)},
        {1: "int key"},  # not a string key: json.dumps' own conversion
        {"c": [np.float64(0.5)]},  # a float subclass: json.dumps decides
        [[], {}, [[]], ""],
    ],
)
def test_values_off_the_fast_path_fall_back_to_json_dumps(obj: Any) -> None:
    assert dumps_indented(obj) == reference(obj)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_refused_like_json_dumps(bad: float) -> None:
    for obj in ({"x": bad}, {"x": [1.0, bad]}):
        with pytest.raises(ValueError):
            reference(obj)
        with pytest.raises(ValueError):
            dumps_indented(obj)
