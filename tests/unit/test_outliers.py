"""Outliers: counts equal numpy's, reference ratios hold on held-out data, joint outliers."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np
import pytest

import modelmon
from modelmon.aggregates.outliers import OutlierAggregate
from modelmon.batch import RenderContext
from modelmon.exporters.multiprocess import build, describe, fresh_like
from modelmon.outliers import ROW_ALPHA, chi2_quantile, chi2_sf, fences_of
from modelmon.profile import ProfileFormatError, ReferenceProfile

CTX = RenderContext("modelmon", {"model": "m", "version": "1"}, 0.0)


def _numpy_fences(ref: np.ndarray) -> tuple[float, float]:
    """The documented rule, computed by numpy on the raw reference column."""
    q001, q25, q75, q999 = np.quantile(ref, (0.001, 0.25, 0.75, 0.999))
    return q001 - 0.5 * (q75 - q25), q999 + 0.5 * (q75 - q25)


def _feed(profile: ReferenceProfile, live: np.ndarray, names: list[str]) -> OutlierAggregate:
    mon = modelmon.Monitor("o", "1", reference=profile, registry=False, feature_names=names)
    predict = mon(lambda x: x[:, 0] * 2.0)
    for start in range(0, len(live), 250):
        predict(live[start : start + 250])
    mon.fold()
    agg = mon.aggregates["outliers"]
    mon.close()
    assert isinstance(agg, OutlierAggregate)
    return agg


def _cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(16)
    n = 20_000
    return {
        "normal": (rng.normal(5, 2, n), rng.normal(5, 2, n)),
        "skewed": (rng.lognormal(0, 1, n), rng.lognormal(0, 1.3, n)),
        "discrete": (rng.poisson(3, n).astype(float), rng.poisson(4, n).astype(float)),
        "shifted": (rng.normal(0, 1, n), rng.normal(1.5, 1, n)),
    }


@pytest.mark.parametrize("case", ["normal", "skewed", "discrete", "shifted"])
def test_counts_equal_numpy(case: str) -> None:
    ref, live = _cases()[case]
    live = live.copy()
    live[::97] = np.nan  # missing values are in no outlier count
    other = np.random.default_rng(1).normal(size=ref.size)
    profile = ReferenceProfile.from_data(
        np.column_stack([ref, other]), predictions=ref * 2.0, feature_names=["x", "y"]
    )
    agg = _feed(profile, np.column_stack([live, other]), ["x", "y"])

    low, high = _numpy_fences(ref)
    assert agg.out_of_range[0].tolist() == [
        int(np.sum(live < ref.min())),
        int(np.sum(live > ref.max())),
    ]
    assert agg.feature_outliers[0] == int(np.sum((live < low) | (live > high)))
    plow, phigh = _numpy_fences(ref * 2.0)
    pred = live * 2.0
    assert agg.output_outliers.tolist() == [int(np.sum((pred < plow) | (pred > phigh)))]
    if case == "shifted":
        assert agg.feature_outliers[0] > 100  # the shift shows


@pytest.mark.parametrize("dist", ["normal", "lognormal", "exponential"])
def test_reference_ratio_matches_its_definition_and_held_out_data(dist: str) -> None:
    rng = np.random.default_rng(161)
    n = 200_000
    draw = {
        "normal": lambda: rng.normal(size=n),
        "lognormal": lambda: rng.lognormal(size=n),
        "exponential": lambda: rng.exponential(size=n),
    }[dist]
    ref, held = draw(), draw()
    fence = ReferenceProfile.from_data(ref.reshape(-1, 1)).features["f0"].fence
    assert fence is not None and fence.ratio is not None
    low, high = _numpy_fences(ref)
    assert (fence.low, fence.high) == (low, high)
    assert fence.ratio == np.sum((ref < low) | (ref > high)) / n
    held_share = np.sum((held < low) | (held > high)) / n
    # Both shares are binomial estimates of the same tail probability.
    p = max(fence.ratio, 1 / n)
    assert abs(held_share - fence.ratio) <= 4 * math.sqrt(2 * p * (1 - p) / n)
    assert 0 < fence.ratio < 0.002


def _correlated(rng: np.random.Generator, rho: float, n: int) -> np.ndarray:
    return rng.multivariate_normal([10.0, -3.0], [[4.0, rho * 2.0], [rho * 2.0, 1.0]], size=n)


def test_a_correlation_flip_is_caught_by_rows_not_by_features() -> None:
    rng = np.random.default_rng(17)
    ref, live = _correlated(rng, 0.9, 20_000), _correlated(rng, -0.9, 5_000)
    profile = ReferenceProfile.from_data(ref, feature_names=["a", "b"])
    agg = _feed(profile, live, ["a", "b"])
    n = live.shape[0]
    for j, name in enumerate(("a", "b")):
        fence = profile.features[name].fence
        assert fence is not None and fence.ratio is not None
        expected = n * max(fence.ratio, 1 / ref.shape[0])
        assert agg.feature_outliers[j] <= expected + 4 * math.sqrt(expected) + 1
    assert agg.rows_checked == n
    joint = profile.outliers.joint if profile.outliers else None
    assert joint is not None and joint.ratio is not None
    assert agg.rows / n > 0.3 > 100 * joint.ratio  # a third of the rows, not 0.1 %


def test_reference_like_rows_stay_within_the_expected_rate() -> None:
    rng = np.random.default_rng(18)
    cov = np.array([[1.0, 0.6, 0.2], [0.6, 2.0, -0.5], [0.2, -0.5, 1.5]])
    ref = rng.multivariate_normal([0, 1, 2], cov, size=50_000)
    live = rng.multivariate_normal([0, 1, 2], cov, size=50_000)
    profile = ReferenceProfile.from_data(ref, feature_names=["a", "b", "c"])
    agg = _feed(profile, live, ["a", "b", "c"])
    joint = profile.outliers.joint if profile.outliers else None
    assert joint is not None and joint.ratio is not None
    n, p = agg.rows_checked, joint.ratio
    assert abs(joint.ratio - ROW_ALPHA) <= 4 * math.sqrt(ROW_ALPHA / ref.shape[0])
    assert abs(agg.rows / n - p) <= 4 * math.sqrt(2 * p / n)


def test_rows_with_missing_tested_features_are_not_checked() -> None:
    rng = np.random.default_rng(19)
    profile = ReferenceProfile.from_data(rng.normal(size=(2000, 2)), feature_names=["a", "b"])
    live = rng.normal(size=(300, 2))
    live[:40, 1] = np.nan
    live[40:50, 0] = np.inf  # invalid
    agg = _feed(profile, live, ["a", "b"])
    assert agg.rows_checked == 250
    assert agg.out_of_range[0].sum() == 0  # +inf is invalid, counted elsewhere


def test_a_singular_covariance_is_regularised_and_breaking_the_relation_is_caught() -> None:
    rng = np.random.default_rng(20)
    x = rng.normal(size=5000)
    ref = np.column_stack([x, 2 * x + 1, rng.normal(size=5000)])
    profile = ReferenceProfile.from_data(ref, feature_names=["a", "b", "c"])
    joint = profile.outliers.joint if profile.outliers else None
    assert joint is not None and joint.ratio is not None and joint.ratio < 0.01
    on = np.column_stack([x[:100], 2 * x[:100] + 1, np.zeros(100)])
    off = on.copy()
    off[:, 1] += 0.5  # each value in range, the relation broken
    assert not joint.outliers(on).any()
    assert joint.outliers(off).all()


def test_profiles_without_the_outlier_fields_still_load_and_count() -> None:
    rng = np.random.default_rng(21)
    ref = rng.normal(size=(3000, 2))
    d = json.loads(ReferenceProfile.from_data(ref, feature_names=["a", "b"]).dumps())
    del d["outliers"]
    for member in d["features"].values():
        del member["fence"]
    old = ReferenceProfile.loads(json.dumps(d))
    assert old.outliers is None
    agg = OutlierAggregate.of(old)
    low, high = _numpy_fences(ref[:, 0])
    assert agg.feature_spec[0][3:] == (low, high, None)  # fences from the quantiles
    fams = {f.spec.name for f in agg.families(CTX)}
    assert "feature_outliers" in fams and "feature_reference_outlier_ratio" not in fams
    assert "outlier_rows" not in fams


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("features", "a", "fence"), [1.0, 0.0, 0.1], "fence"),
        (("features", "a", "fence"), [0.0, 1.0, 1.5], "fence"),
        (("outliers", "fence_rule"), [0.01, 0.99, 1.5], "fence_rule"),
        (("outliers", "joint", "covariance"), [[1.0, 0.5], [0.4, 1.0]], "joint.covariance"),
        (("outliers", "joint", "features"), ["a", "zz"], "joint.features"),
        (("outliers", "joint", "mean"), [0.0], "joint.mean"),
        (("outliers", "joint", "count"), -1, "joint.count"),
    ],
)
def test_invalid_outlier_fields_are_refused_at_load(
    path: tuple[str, ...], value: Any, field: str
) -> None:
    rng = np.random.default_rng(22)
    d = json.loads(
        ReferenceProfile.from_data(rng.normal(size=(500, 2)), feature_names=["a", "b"]).dumps()
    )
    node = d
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ProfileFormatError, match=field.replace(".", r"\.")):
        ReferenceProfile.loads(json.dumps(d))


def test_state_round_trip_merge_and_fork() -> None:
    rng = np.random.default_rng(23)
    profile = ReferenceProfile.from_data(rng.normal(size=(3000, 2)), feature_names=["a", "b"])
    live = rng.normal(0.5, 2.0, size=(1000, 2))
    one, two = _feed(profile, live[:500], ["a", "b"]), _feed(profile, live[500:], ["a", "b"])
    whole = _feed(profile, live, ["a", "b"])
    entry = describe(one)
    assert entry is not None
    copy = build(json.loads(json.dumps(entry, default=lambda a: a.tolist())), None)  # type: ignore[arg-type]
    copy.merge(two)
    assert copy.out_of_range.tolist() == whole.out_of_range.tolist()
    assert copy.feature_outliers.tolist() == whole.feature_outliers.tolist()
    assert (copy.rows, copy.rows_checked) == (whole.rows, whole.rows_checked)
    empty = fresh_like(whole)
    assert empty.rows_checked == 0 and empty.names == whole.names and empty.joint == whole.joint


@pytest.mark.parametrize("df", [1, 2, 3, 7, 20, 50])
def test_chi_square_tail_and_quantile_match_scipy(df: int) -> None:
    stats = pytest.importorskip("scipy.stats")
    for p in (0.9, 0.99, 0.999, 0.99999):
        assert chi2_quantile(p, df) == pytest.approx(stats.chi2.ppf(p, df), rel=1e-9)
    for x in (0.1, 1.0, df, 3.0 * df + 10):
        assert chi2_sf(x, df) == pytest.approx(stats.chi2.sf(x, df), rel=1e-9, abs=1e-300)


def test_outliers_off_and_warmup_have_no_aggregate() -> None:
    rng = np.random.default_rng(24)
    profile = ReferenceProfile.from_data(rng.normal(size=(300, 2)))
    off = modelmon.Monitor("o", "1", reference=profile, registry=False, outliers=False)
    warm = modelmon.Monitor("w", "1", reference="warmup", registry=False)
    assert "outliers" not in off.aggregates and "outliers" not in warm.aggregates
    off.close()
    warm.close()


def _builder_profile(data: dict[str, np.ndarray], sizes: list[int]) -> ReferenceProfile:
    from modelmon.profile_builder import build_profile

    n = len(next(iter(data.values())))
    cuts = np.cumsum([0, *sizes])
    assert cuts[-1] == n
    batches = [{k: v[a:b] for k, v in data.items()} for a, b in itertools.pairwise(cuts)]
    return build_profile(lambda: batches, created_at=0.0)


def test_the_builder_gives_the_same_outlier_fields_however_the_rows_are_split() -> None:
    rng = np.random.default_rng(25)
    n = 12_000
    x = rng.multivariate_normal([100.0, -5.0, 0.0], [[4, 1.5, 0], [1.5, 1, 0.2], [0, 0.2, 9]], n)
    data = {"a": x[:, 0], "b": x[:, 1].copy(), "c": x[:, 2], "k": rng.choice(["u", "v"], n)}
    data["b"][::50] = np.nan  # rows with a missing joint feature are left out
    one = _builder_profile(data, [n])
    many = _builder_profile(data, [1000, 5000, 17, 5983])
    assert one.dumps() == many.dumps()
    joint = one.outliers.joint if one.outliers else None
    assert joint is not None and joint.features == ("a", "b", "c") and joint.ratio is None
    complete = x[np.isfinite(data["b"])]
    assert joint.count == complete.shape[0]
    np.testing.assert_allclose(joint.mean, complete.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(joint.covariance, np.cov(complete.T, ddof=0), rtol=1e-9)
    for name in ("a", "b", "c"):
        member = one.features[name]
        fence = member.fence
        assert fence is not None and fence.ratio is not None
        # The fences are fixed from pass 1's sketch quantiles (the ratio is counted in pass 2
        # against them); the profile's quantile summary of a column binned around its median
        # comes from pass 2's finer sketch: the two agree within the sketch's accuracy.
        assert (fence.low, fence.high) == pytest.approx(fences_of(member.quantiles), rel=0.01)
        v = data[name][np.isfinite(data[name])]
        assert fence.ratio == np.sum((v < fence.low) | (v > fence.high)) / v.size


def test_the_alert_decision_holds_its_false_alarm_rate_and_sees_a_real_excess() -> None:
    from modelmon.drift_decision import z_upper
    from modelmon.outliers import rate_flagged

    rng = np.random.default_rng(26)
    alpha, big_n, p = 0.01, 20_000, 0.027  # a heavy-tailed joint test: a large ratio
    z_crit = z_upper(alpha)
    alarms = hits = trials = 0
    for _ in range(200):
        ratio = rng.binomial(big_n, p) / big_n  # the reference's own estimate
        for k in rng.binomial(100_000, p, size=20).tolist():
            alarms += rate_flagged(k, 100_000, ratio, big_n, z_crit, 10, 0.001)
            trials += 1
        hits += rate_flagged(
            rng.binomial(100_000, p + 0.01), 100_000, ratio, big_n, z_crit, 10, 0.001
        )
    assert alarms / trials <= 2 * alpha
    assert hits / 200 >= 0.9


def test_real_data_a_shuffled_column_is_caught_by_rows_only() -> None:
    """Breast cancer data: live rows whose 'mean perimeter' is shuffled across rows keep
    every marginal (same values) but break its relation to 'mean radius' (r = 0.998)."""
    datasets = pytest.importorskip("sklearn.datasets")
    data = datasets.load_breast_cancer()
    names = [str(n) for n in data.feature_names[:10]]
    x = np.asarray(data.data[:, :10], dtype=np.float64)
    rng = np.random.default_rng(27)
    order = rng.permutation(x.shape[0])
    ref, live = x[order[:380]], x[order[380:]].copy()
    profile = ReferenceProfile.from_data(ref, feature_names=names)
    clean = _feed(profile, live, names)
    j = names.index("mean perimeter")
    live[:, j] = rng.permutation(live[:, j])
    broken = _feed(profile, live, names)
    assert broken.feature_outliers.tolist() == clean.feature_outliers.tolist()
    assert broken.out_of_range.tolist() == clean.out_of_range.tolist()
    n = live.shape[0]
    assert clean.rows / n < 0.1
    assert broken.rows / n > 0.8
