"""Drift decisions: the tests against scipy, their false-alarm rate and power, the exports."""

from __future__ import annotations

import math

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from scipy import stats

import modelmon
from modelmon import drift_decision as decision
from modelmon.aggregates.drift import DriftAggregate
from modelmon.batch import Batch, FeatureFrame
from modelmon.profile import ReferenceProfile

from ..conftest import scrape, value

# --- the statistics against scipy ------------------------------------------------------


def test_binned_statistic_equals_scipy_contingency_chi2() -> None:
    rng = np.random.default_rng(3)
    ref = rng.multinomial(10_000, np.full(10, 0.1)).astype(float)
    live = rng.multinomial(300, np.linspace(0.05, 0.15, 10)).astype(float)
    t = decision.binned_test(live, ref / ref.sum(), ref.sum())
    expected = stats.chi2_contingency(np.vstack([live, ref]), correction=False)
    assert t.statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert t.df == expected.dof == 9


@pytest.mark.parametrize("p", [0.05, 0.01, 0.05 / 30, 1e-4, 1e-6])
def test_normal_quantile_matches_scipy(p: float) -> None:
    assert decision.z_upper(p) == pytest.approx(stats.norm.isf(p), abs=5e-4)


@pytest.mark.parametrize("df", [1, 2, 4, 9, 30, 400])
def test_wilson_hilferty_tail_is_close_and_conservative_in_the_tail(df: int) -> None:
    for p in (0.05, 0.05 / 30, 1e-4):
        x = stats.chi2.isf(p, df)
        approx = decision.normal_sf(decision.wilson_hilferty_z(x, df))
        assert 0.8 * p < approx < 2.0 * p, (df, p, approx)  # over-states p at df 1
        # At the decision's critical score the true tail is at most the nominal level.
        z_crit = decision.z_upper(p)
        a = 2 / (9 * df)
        critical = df * (1 - a + z_crit * math.sqrt(a)) ** 3
        assert stats.chi2.sf(critical, df) <= p * 1.06, (df, p)


def test_ks_pvalue_matches_scipy_two_sample() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=5000), rng.normal(0.05, 1.0, size=400)
    res = stats.ks_2samp(a, b, method="asymp")
    assert decision.ks_pvalue(res.statistic, 400, 5000) == pytest.approx(res.pvalue, abs=0.02)


def test_missing_test_flags_28_to_70_and_not_28_to_28() -> None:
    cfg = decision.DecisionConfig()
    z = cfg.z_critical(30, two_sided=True)
    shifted = decision.missing_test(70, 100, 0.28, 10_000)
    same = decision.missing_test(29, 100, 0.28, 10_000)
    assert decision.missing_flagged(shifted, z, cfg.missing_floor)
    assert not decision.missing_flagged(same, z, cfg.missing_floor)
    # The classical pooled two-proportion z-test, with Yates' continuity correction.
    pooled = (70 + 2800) / 10_100
    se = math.sqrt(pooled * (1 - pooled) * (1 / 100 + 1 / 10_000))
    assert shifted.z == pytest.approx((0.7 - 0.28 - 0.5 / 100) / se, rel=1e-9)


def test_new_categories_count_toward_drift_but_one_row_does_not_page() -> None:
    ref = np.array([0.5, 0.3, 0.2, 0.0])  # the last cell: never seen in the reference
    one = decision.binned_test([50, 30, 19, 1], ref, 10_000)
    many = decision.binned_test([35, 20, 15, 30], ref, 10_000)
    z = decision.DecisionConfig().z_critical(30)
    assert not decision.flagged(one, z, 0.1)
    assert decision.flagged(many, z, 0.1)


# --- false alarms and power (fixed seeds) ----------------------------------------------

N_REF = 10_000


def _columns(rng: np.random.Generator, n: int, shift: float = 0.0) -> dict[str, np.ndarray]:
    cols: dict[str, np.ndarray] = {}
    for i in range(10):
        cols[f"normal{i}"] = rng.normal(shift if i == 0 else 0.0, 1.0, n)
    for i in range(5):
        cols[f"lognormal{i}"] = rng.lognormal(0.0, 0.5 + 0.4 * i, n)
    for i in range(5):
        cols[f"count{i}"] = rng.poisson(0.5 + i, n).astype(float)
    for i in range(8):
        k = (2, 3, 5, 8, 12, 60, 150, 300)[i]
        w = 1.0 / np.arange(1, k + 1) ** 1.1
        cols[f"cat{i}"] = np.array([f"v{j}" for j in rng.choice(k, n, p=w / w.sum())], object)
    return cols


CATEGORICAL = [f"cat{i}" for i in range(8)]


def _frame(cols: dict[str, np.ndarray]) -> FeatureFrame:
    names = list(cols)
    n = len(cols[names[0]])
    numeric = np.full((n, len(names)), np.nan)
    cats = {}
    for j, name in enumerate(names):
        if name in CATEGORICAL:
            cats[j] = cols[name]
        else:
            numeric[:, j] = cols[name]
    missing = np.isnan(numeric)
    for j in cats:
        missing[:, j] = False
    return FeatureFrame(tuple(names), numeric, missing, np.zeros_like(missing), cats)


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    cols = _columns(np.random.default_rng(11), N_REF)
    rows = [{k: v[i] for k, v in cols.items()} for i in range(N_REF)]
    return ReferenceProfile.from_data(rows, categorical=CATEGORICAL, created_at=0.0)


def _flags(profile: ReferenceProfile, cols: dict[str, np.ndarray]) -> set[str]:
    agg = DriftAggregate(profile, min_samples=1)
    empty = np.zeros(0)
    agg.fold(Batch(1.0, empty, np.zeros(0, dtype=np.int64), (), empty, (), _frame(cols)))
    return {k for k, d in agg.decisions(1.0)["features"].items() if d.detected}


@pytest.mark.parametrize("n", [100, 1000])
def test_family_wise_false_alarms_stay_near_alpha(profile: ReferenceProfile, n: int) -> None:
    """28 features, no drift: at most ~5% of windows flag any feature.

    The old rule (PSI > 0.1) flagged some feature in 100% of 100-row windows.
    200 windows; the bound 16 (8%) has a binomial tail below 1e-3 at a true rate of 5%.
    """
    rng = np.random.default_rng(1000 + n)
    flagged = sum(bool(_flags(profile, _columns(rng, n))) for _ in range(200))
    assert flagged <= 16, flagged


@pytest.mark.parametrize(("n", "shift"), [(500, 0.5), (100, 1.0)])
def test_power_on_one_shifted_feature(profile: ReferenceProfile, n: int, shift: float) -> None:
    rng = np.random.default_rng(2000 + n)
    hits = sum("normal0" in _flags(profile, _columns(rng, n, shift)) for _ in range(60))
    assert hits >= 57, hits  # >= 95%


def test_a_huge_window_does_not_flag_a_trivial_shift(profile: ReferenceProfile) -> None:
    """0.15 sd at 50,000 rows: significant, but PSI (~0.02) is far below the 0.1 floor."""
    rng = np.random.default_rng(7)
    cols = _columns(rng, 50_000, shift=0.15)
    assert "normal0" not in _flags(profile, cols)
    cfg_no_floor = decision.DecisionConfig(psi_floor=0.0)
    agg = DriftAggregate(profile, min_samples=1, decisions=cfg_no_floor)
    empty = np.zeros(0)
    agg.fold(Batch(1.0, empty, np.zeros(0, dtype=np.int64), (), empty, (), _frame(cols)))
    assert agg.decisions(1.0)["features"]["normal0"].detected  # the floor is what spared it


def test_mass_moving_among_rare_categories_is_flagged(profile: ReferenceProfile) -> None:
    """cat7 (300 categories): ranks 21..300 swap shares end for end (the pooled share of
    the exported ``__other__`` bin stays the same)."""
    rng = np.random.default_rng(8)
    cols = _columns(rng, 5000)
    k = 300
    w = 1.0 / np.arange(1, k + 1) ** 1.1
    w[20:] = w[20:][::-1]
    cols["cat7"] = np.array([f"v{j}" for j in rng.choice(k, 5000, p=w / w.sum())], object)
    agg = DriftAggregate(profile, min_samples=1)
    empty = np.zeros(0)
    agg.fold(Batch(1.0, empty, np.zeros(0, dtype=np.int64), (), empty, (), _frame(cols)))
    assert agg.decisions(1.0)["features"]["cat7"].detected
    # On the exported top-20 + __other__ bins the old PSI > 0.1 rule saw nothing.
    assert agg.drift_scores(1.0)["features"]["cat7"]["psi"] < 0.1


# --- the exported contract --------------------------------------------------------------


def test_decision_metrics_are_exported(profile: ReferenceProfile) -> None:
    registry = CollectorRegistry()
    monitor = modelmon.Monitor("m", "1", reference=profile, registry=registry, strict=True)
    rng = np.random.default_rng(9)
    cols = _columns(rng, 2000, shift=1.0)
    cols["normal1"][rng.random(2000) < 0.7] = np.nan
    rows = [{k: v[i] for k, v in cols.items()} for i in range(2000)]
    for i in range(0, 2000, 100):
        monitor.observe(inputs=rows[i : i + 100])
    samples = scrape(registry)
    base = {"model": "m", "version": "1"}
    det = "modelmon_feature_drift_detected"
    assert value(samples, det, feature="normal0", **base) == 1.0
    assert value(samples, det, feature="normal2", **base) == 0.0
    p = value(samples, "modelmon_feature_drift_pvalue", feature="normal0", method="chi2", **base)
    assert p is not None and p < 1e-6
    ks = value(samples, "modelmon_feature_drift_pvalue", feature="normal0", method="ks", **base)
    assert ks is not None and ks < 1e-6
    assert value(samples, "modelmon_feature_reference_rows", feature="normal0", **base) == N_REF
    assert (
        value(samples, "modelmon_feature_reference_missing_ratio", feature="normal1", **base) == 0
    )
    miss = "modelmon_feature_missing_drift_detected"
    assert value(samples, miss, feature="normal1", **base) == 1.0
    assert value(samples, miss, feature="normal2", **base) == 0.0
    monitor.close()


def test_prediction_decision_metrics_are_exported() -> None:
    rng = np.random.default_rng(10)
    X = rng.normal(size=(5000, 2))
    profile = ReferenceProfile.from_data(X, predictions=X[:, 0] * 2.0, feature_names=["a", "b"])
    registry = CollectorRegistry()
    monitor = modelmon.Monitor("m", "1", reference=profile, registry=registry, strict=True)
    live = rng.normal(size=(1000, 2))
    monitor.observe(inputs=live, outputs=live[:, 0] * 2.0 + 3.0)
    samples = scrape(registry)
    base = {"model": "m", "version": "1", "output": "prediction"}
    assert value(samples, "modelmon_prediction_drift_detected", **base) == 1.0
    assert value(samples, "modelmon_prediction_reference_rows", **base) == 5000
    assert value(samples, "modelmon_prediction_drift_pvalue", method="chi2", **base) < 1e-6  # type: ignore[operator]
    monitor.close()
