"""DistributionAggregate: exact merges, state round trips, opt-in selection, caps."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import modelmon
from modelmon import names
from modelmon.aggregates.distributions import DistributionAggregate
from modelmon.batch import RenderContext
from modelmon.exporters.multiprocess import build, describe
from modelmon.points import ExponentialHistogramPoint

CTX = RenderContext("modelmon", {"model": "m", "version": "1"}, 0.0)


def _monitor_batches(rows: np.ndarray, distributions: object) -> DistributionAggregate:
    mon = modelmon.Monitor(
        "d", "1", registry=False, feature_names=["a", "b", "c"], distributions=distributions
    )
    for start in range(0, len(rows), 64):
        chunk = rows[start : start + 64]
        mon.observe([dict(zip("abc", r, strict=True)) for r in chunk.tolist()], chunk[:, 0])
    mon.fold()
    agg = mon.aggregates["distributions"]
    mon.close()
    assert isinstance(agg, DistributionAggregate)
    return agg


def _points(agg: DistributionAggregate) -> dict[str, ExponentialHistogramPoint]:
    out = {}
    for fam in agg.families(CTX):
        for p in fam.points:
            assert isinstance(p, ExponentialHistogramPoint)
            out[fam.spec.name + ":" + (p.labels.get("feature") or p.labels["output"])] = p
    return out


def _data(seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.lognormal(size=600), rng.normal(size=600), rng.exponential(size=600)])
    x[::9, 1] = 0.0
    return x


def test_merge_of_parts_equals_the_whole() -> None:
    x = _data()
    whole = _monitor_batches(x, True)
    parts = [_monitor_batches(x[i::3], True) for i in range(3)]
    merged = parts[0]
    for p in parts[1:]:
        merged.merge(p)
    got, want = _points(merged), _points(whole)
    assert (
        set(got)
        == set(want)
        == {
            "feature_distribution:a",
            "feature_distribution:b",
            "feature_distribution:c",
            "prediction_distribution:prediction",
        }
    )
    for key, point in want.items():
        other = got[key]
        assert (other.scale, other.zero_count, other.count) == (
            point.scale,
            point.zero_count,
            point.count,
        )
        assert other.positive_offset == point.positive_offset
        assert other.positive_counts == point.positive_counts
        assert other.negative_offset == point.negative_offset
        assert other.negative_counts == point.negative_counts
        assert other.sum == pytest.approx(point.sum, rel=1e-12)
    assert want["feature_distribution:b"].zero_count == np.count_nonzero(x[:, 1] == 0.0)
    assert want["feature_distribution:a"].count == 600


def test_state_survives_the_multiprocess_file_codec() -> None:
    agg = _monitor_batches(_data(), ["b"])
    entry = describe(agg)
    assert entry is not None
    rebuilt = build(entry, None)  # type: ignore[arg-type]
    assert _points(rebuilt) == _points(agg)
    assert set(_points(agg)) == {"feature_distribution:b", "prediction_distribution:prediction"}


def test_max_features_caps_the_kept_features() -> None:
    agg = DistributionAggregate(max_features=2)
    mon = modelmon.Monitor("cap", "1", registry=False, feature_names=["a", "b", "c"])
    mon.aggregates["distributions"] = agg
    mon.observe({"a": 1.0, "b": 2.0, "c": 3.0}, 0.5)
    mon.fold()
    mon.close()
    assert sorted(agg.sketches) == ["a", "b"]


@pytest.mark.parametrize("bad", ["a", [1, 2]])
def test_feature_selection_must_be_names(bad: object) -> None:
    with pytest.raises(modelmon.ConfigurationError):
        DistributionAggregate(features=bad)  # type: ignore[arg-type]


def test_sums_of_values_near_the_largest_double_are_finite_where_they_fit() -> None:
    # Column a: +-1.7e308 cancel (a plain float sum overflows to inf - inf = NaN); column b:
    # a sum past the largest double is +inf; column c: plain values. No warning either way.
    # (A float sum: the 3.0s are lost in rounding next to 1.7e308 partial sums.)
    x = _data()
    x[:, 0] = np.tile([1.7e308, -1.7e308, 3.0], 200)
    x[:, 1] = 1.7e308
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        points = _points(_monitor_batches(x, True))
    cancelled = points[f"{names.FEATURE_DISTRIBUTION.name}:a"].sum
    assert np.isfinite(cancelled) and 0.0 <= cancelled <= 600.0
    assert points[f"{names.FEATURE_DISTRIBUTION.name}:b"].sum == np.inf
    assert points[f"{names.FEATURE_DISTRIBUTION.name}:c"].sum == pytest.approx(x[:, 2].sum())
