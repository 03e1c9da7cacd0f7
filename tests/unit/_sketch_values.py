"""The values the sketch property tests draw (``test_ddsketch``, ``test_columns``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

# Zeros and both signs, within the dynamic range of 2048 buckets (nothing collapses).
SKETCH_VALUES = st.lists(
    st.one_of(st.just(0.0), st.floats(1e-6, 1e6), st.floats(-1e6, -1e-6)),
    min_size=1,
    max_size=300,
)


def quantile_property(test: Callable[[list[float], float], None]) -> Callable[..., Any]:
    """Run ``test(values, q)`` on 60 drawn value lists and quantiles ``q`` in [0, 1]."""
    drawn = given(SKETCH_VALUES, st.floats(min_value=0.0, max_value=1.0))(test)
    return settings(max_examples=60, deadline=None)(drawn)
