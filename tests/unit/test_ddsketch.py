from __future__ import annotations

import warnings

import numpy as np
import pytest

from modelmon.sketches import mapping
from modelmon.sketches.ddsketch import LogSketch, add_columns

from ._sketch_values import quantile_property

QS = np.linspace(0.0, 1.0, 101)


def _datasets() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "normal": rng.normal(3.0, 2.0, 50_000),
        "lognormal": rng.lognormal(0.0, 2.0, 50_000),
        "pareto": rng.pareto(1.2, 50_000) + 1e-3,
        "mixed_sign": np.concatenate(
            [-rng.lognormal(1.0, 1.0, 20_000), np.zeros(500), rng.lognormal(0.0, 1.5, 20_000)]
        ),
    }


@pytest.mark.parametrize("name", list(_datasets()))
def test_relative_accuracy_against_exact_quantiles(name: str) -> None:
    x = _datasets()[name]
    sketch = LogSketch(0.01)
    assert sketch.add(x) == 0
    exact = np.quantile(x, QS, method="lower")
    est = sketch.quantiles(QS)
    assert np.all(np.abs(est - exact) <= 0.01 * (1 + 1e-9) * np.abs(exact) + 1e-12)
    assert sketch.count == x.size


def test_nan_and_inf_are_rejected() -> None:
    sketch = LogSketch()
    assert sketch.add(np.array([1.0, np.nan, np.inf, -np.inf, 2.0])) == 3
    assert sketch.count == 2
    assert sketch.quantile(1.0) == pytest.approx(2.0, rel=0.01)


def test_merge_equals_sketch_of_concatenation() -> None:
    x = _datasets()["mixed_sign"]
    a, b, whole = LogSketch(), LogSketch(), LogSketch()
    a.add(x[:15_000])
    b.add(x[15_000:])
    whole.add(x)
    a.merge(b)
    assert a.state()["zero_count"] == whole.state()["zero_count"]
    for store in ("pos", "neg"):
        assert a.state()[store]["offset"] == whole.state()[store]["offset"]
        np.testing.assert_array_equal(a.state()[store]["counts"], whole.state()[store]["counts"])


def test_merge_refuses_different_parameters() -> None:
    with pytest.raises(ValueError, match="different parameters"):
        LogSketch(0.01).merge(LogSketch(0.02))


def test_state_round_trip() -> None:
    s = LogSketch()
    s.add(_datasets()["normal"])
    t = LogSketch.from_state(s.state())
    np.testing.assert_array_equal(s.quantiles(QS), t.quantiles(QS))


def test_collapse_keeps_high_quantiles_accurate() -> None:
    x = np.concatenate([np.full(100, 1e-30), np.geomspace(1.0, 1e6, 10_000)])
    # 1024 buckets at scale 6 span 2**16, as 512 spanned with the former 1%-gamma mapping
    # (buckets are 1.85x finer): values below 1e6 / 2**16 collapse, the median does not.
    s = LogSketch(0.01, max_buckets=1024)
    s.add(x)
    assert s.count == x.size
    assert len(s.state()["pos"]["counts"]) <= 1024
    hi = np.quantile(x, [0.5, 0.9, 1.0], method="lower")
    np.testing.assert_allclose(s.quantiles([0.5, 0.9, 1.0]), hi, rtol=0.0101)


def test_cdf_matches_empirical_at_bucket_resolution() -> None:
    x = _datasets()["normal"]
    s = LogSketch()
    s.add(x)
    points = np.array([-1.0, 0.5, 3.0, 6.0])
    exact = (x[:, None] <= points).mean(axis=0)
    assert np.max(np.abs(s.cdf(points) - exact)) < 0.01


def test_add_columns_equals_per_column_add() -> None:
    rng = np.random.default_rng(1)
    m = rng.normal(size=(5000, 3)) * [1.0, 100.0, 0.01]
    m[::7, 1] = np.nan
    shifts = np.array([0.5, -3.0, 0.0])
    bulk = [LogSketch() for _ in range(3)]
    add_columns(bulk, m, shifts)
    for j in range(3):
        one = LogSketch()
        one.add(m[:, j] - shifts[j])
        np.testing.assert_array_equal(bulk[j].quantiles(QS), one.quantiles(QS))
        assert bulk[j].count == one.count


@quantile_property
def test_property_quantile_within_relative_accuracy(values: list[float], q: float) -> None:
    x = np.asarray(values)
    s = LogSketch(0.01)
    s.add(x)
    exact = float(np.quantile(x, q, method="lower"))
    assert abs(s.quantile(q) - exact) <= 0.01 * (1 + 1e-9) * abs(exact) + 1e-300


@pytest.mark.parametrize("scale", [0, 3, 6, 10, mapping.MAX_SCALE])
def test_representatives_at_and_past_the_largest_doubles_bucket_are_finite(scale: int) -> None:
    # A layout spans spare keys past the largest double's (a column holding 1e308 and a
    # span shared with other columns): their values are capped, never inf.
    largest = float(np.finfo(np.float64).max)
    top = mapping.keys(np.array([largest]), scale)[0]
    key = top + np.array([-1.0, 0.0, 1.0, 50.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rep = mapping.values(key, scale)
    assert np.isfinite(rep).all() and (rep <= largest).all()
    assert (np.diff(rep) >= 0).all()  # still ordered as the keys
    assert rep[0] > mapping.lower_bound(key[:1], scale)[0]  # a real bucket's stays inside
