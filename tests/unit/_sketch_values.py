"""The values the sketch property tests draw (``test_ddsketch``, ``test_columns``)."""

from __future__ import annotations

from hypothesis import strategies as st

# Zeros and both signs, within the dynamic range of 2048 buckets (nothing collapses).
SKETCH_VALUES = st.lists(
    st.one_of(st.just(0.0), st.floats(1e-6, 1e6), st.floats(-1e6, -1e-6)),
    min_size=1,
    max_size=300,
)
