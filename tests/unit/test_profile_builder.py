"""ProfileBuilder: partition independence, its relation to from_data, exact sums, states."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_breast_cancer

from modelmon import ReferenceProfile
from modelmon.drift import REFERENCE_QUANTILE_PROBS
from modelmon.errors import ConfigurationError
from modelmon.jobs import decode_state, encode_state
from modelmon.profile_builder import ProfileBuilder, build_profile, exact_sum, merge_all

ACCURACY = 0.01
GAMMA = (1 + ACCURACY) / (1 - ACCURACY)  # one sketch bucket spans a factor GAMMA


def training_frame() -> pd.DataFrame:
    """Breast cancer features with missing values, a categorical and an integer column."""
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.drop(columns=["target"]).iloc[:, :8].copy()
    rng = np.random.default_rng(0)
    frame.loc[rng.random(len(frame)) < 0.1, "mean texture"] = np.nan
    frame["size"] = pd.cut(frame["mean area"], [0, 400, 700, 1000, 5000], labels=list("SMLX"))
    frame["size"] = frame["size"].astype(object)
    frame.loc[::13, "size"] = None
    frame["visits"] = rng.poisson(3, len(frame))
    frame["label"] = data.target
    return frame


def build_split(frame: pd.DataFrame, cuts: list[int]) -> str:
    """Fingerprint of a profile built from the partitions cut at ``cuts``."""
    bounds = [0, *sorted(cuts), len(frame)]
    parts = [frame.iloc[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    firsts = []
    for part in parts:
        b = ProfileBuilder(prediction="label", exclude=["mean area"])
        b.update(part)
        firsts.append(b)
    plan = merge_all(firsts)
    seconds = []
    for part in reversed(parts):  # pass 2 in another order than pass 1
        b = plan.second_pass()
        b.update(part)
        seconds.append(b)
    return merge_all(seconds).finish(created_at=0.0).fingerprint


FRAME = training_frame()


def test_same_fingerprint_over_1_3_and_7_partitions() -> None:
    n = len(FRAME)
    prints = {
        k: build_split(FRAME, [int(c) for c in np.linspace(0, n, k + 1)[1:-1]]) for k in (1, 3, 7)
    }
    assert len(set(prints.values())) == 1, prints


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, len(FRAME)), max_size=12))
def test_any_partitioning_gives_the_same_profile(cuts: list[int]) -> None:
    assert build_split(FRAME, cuts) == build_split(FRAME, [])


def test_arrow_batches_and_pandas_give_the_same_profile() -> None:
    table = pa.Table.from_pandas(FRAME, preserve_index=False)

    def batches() -> list[pa.RecordBatch]:
        return table.to_batches(max_chunksize=100)

    from_arrow = build_profile(batches, prediction="label", exclude=["mean area"], created_at=0.0)
    from_pandas = build_profile(
        lambda: [FRAME], prediction="label", exclude=["mean area"], created_at=0.0
    )
    assert from_arrow.dumps() == from_pandas.dumps()


def test_relation_to_from_data() -> None:
    """Identical where exact; edges in the same sketch bucket; shares exact for its edges."""
    X = FRAME.drop(columns=["label", "mean area"])
    ref = ReferenceProfile.from_data(X, predictions=FRAME["label"].to_numpy(), created_at=0.0)
    built = build_profile(
        lambda: [FRAME], prediction="label", exclude=["mean area"], created_at=0.0
    )
    assert list(built.features) == list(ref.features)
    assert built.outputs == ref.outputs  # class labels: categorical, identical
    for name, r in ref.features.items():
        b = built.features[name]
        assert (b.kind, b.count, b.missing_share) == (r.kind, r.count, r.missing_share), name
        if r.kind == "categorical":
            assert b == r, name
            continue
        assert (b.min, b.max) == (r.min, r.max), name
        assert b.mean == pytest.approx(r.mean, rel=1e-12), name
        assert b.std == pytest.approx(r.std, rel=1e-12), name
        values = X[name].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        assert len(b.edges) == len(r.edges), name
        for eb, er in zip(b.edges, r.edges, strict=True):
            assert abs(eb - er) <= (GAMMA - 1) * abs(er) + 1e-12, (name, eb, er)
            assert eb in values  # every edge is a data value
        exact = np.bincount(np.searchsorted(b.edges_array, values, side="left"), minlength=b.n_bins)
        assert b.shares == tuple(float(c) for c in exact / values.size), name
        # The sketch's guarantee: within ACCURACY of the exact value of rank floor(q (n-1)).
        lower = np.quantile(values, REFERENCE_QUANTILE_PROBS, method="lower")
        assert np.allclose(b.quantiles, lower, rtol=ACCURACY * 1.0001, atol=0.0), name


def test_small_integer_features_get_from_datas_exact_edges_and_shares() -> None:
    X = FRAME[["visits"]]
    ref = ReferenceProfile.from_data(X, created_at=0.0)
    built = build_profile(lambda: [X], created_at=0.0)
    assert built.features["visits"].edges == ref.features["visits"].edges
    assert built.features["visits"].shares == ref.features["visits"].shares


def test_long_categories_are_bounded_as_from_data_and_live_traffic_bound_them() -> None:
    long_value = "x" * 10_000
    frame = pd.DataFrame({"c": [long_value, "a", long_value, None, "b"]})
    ref = ReferenceProfile.from_data(frame, categorical=["c"], created_at=0.0)
    for batch in (frame, pa.Table.from_pandas(frame)):
        built = build_profile(lambda b=batch: [b], categorical=["c"], created_at=0.0)
        assert built.features["c"].categories == ref.features["c"].categories
        assert built.features["c"].shares == ref.features["c"].shares
    assert max(len(c) for c in ref.features["c"].categories) <= 128


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300)
        | st.sampled_from([5e-324, -5e-324, 2.2250738585072014e-308, 0.0, -0.0]),
        max_size=200,
    )
)
def test_exact_sum_is_the_correctly_rounded_sum(values: list[float]) -> None:
    v = np.asarray(values, dtype=np.float64)
    assert exact_sum(v) / 2**1074 == math.fsum(values)
    assert exact_sum(v[::-1]) == exact_sum(v)


def test_state_round_trip_through_the_codec() -> None:
    first = ProfileBuilder(prediction="label")
    first.update(FRAME)
    moved = ProfileBuilder.from_state(decode_state(encode_state(first.state())))
    assert moved.plan_digest() == first.plan_digest()
    a, b = first.second_pass(), moved.second_pass()
    a.update(FRAME)
    b_state = ProfileBuilder.from_state(decode_state(encode_state(b.state())))
    b_state.update(FRAME)
    assert a.finish(0.0).dumps() == b_state.finish(0.0).dumps()


def test_all_missing_batches_adopt_the_later_kind() -> None:
    nulls = pd.DataFrame({"x": pd.Series([None, None], dtype=object)})
    nums = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    p = build_profile(lambda: [nulls, nums], created_at=0.0)
    q = build_profile(lambda: [nums, nulls], created_at=0.0)
    assert p.features["x"].kind == "numeric"
    assert p.features["x"].missing_share == pytest.approx(0.4)
    assert p.dumps() == q.dumps()


def test_configuration_errors() -> None:
    b = ProfileBuilder()
    b.update({"x": np.array([1.0, 2.0])})
    with pytest.raises(ConfigurationError, match="numeric in some batches"):
        b.update({"x": np.array(["a", "b"], dtype=object)})
    with pytest.raises(ConfigurationError, match="second_pass"):
        ProfileBuilder().finish()
    with pytest.raises(ConfigurationError, match=r"column 'y' not found"):
        ProfileBuilder(prediction="y").update({"x": np.array([1.0])})
    with pytest.raises(ConfigurationError, match="list of column names"):
        ProfileBuilder(exclude="id")
    second = b.second_pass()
    with pytest.raises(ConfigurationError, match="pass 2 sees columns"):
        second.update({"x": np.array([1.0]), "z": np.array([2.0])})
    other = ProfileBuilder()
    other.update({"x": np.array([5.0, 6.0])})
    with pytest.raises(ConfigurationError, match="different pass 1s"):
        second.merge(other.second_pass())
