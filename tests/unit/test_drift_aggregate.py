from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from modelmon import names
from modelmon.aggregates.drift import DriftAggregate
from modelmon.batch import Batch, FeatureFrame, OutputFrame, RenderContext
from modelmon.drift import js_distance, psi
from modelmon.errors import ConfigurationError
from modelmon.points import ScalarPoint
from modelmon.profile import ReferenceProfile
from modelmon.sketches.ddsketch import LogSketch

from ._drift_oracle import ks_statistic

CTX_LABELS = {"model": "m", "version": "1"}


def _batch(now: float, frame: FeatureFrame | None, out: OutputFrame | None = None) -> Batch:
    e = np.zeros(0)
    return Batch(now, e, np.zeros(0, dtype=np.int64), (), e, (), frame, out)


def _frame(x: np.ndarray, cats: np.ndarray | None = None) -> FeatureFrame:
    names_ = tuple(f"f{i}" for i in range(x.shape[1]))
    numeric, categorical = x, {}
    if cats is not None:
        names_ = (*names_, "c")
        numeric = np.column_stack([x, np.full(x.shape[0], np.nan)])
        categorical = {x.shape[1]: cats}
    missing = np.isnan(numeric)
    return FeatureFrame(names_, numeric, missing, np.zeros_like(missing), categorical)


def _reference(rng: np.random.Generator) -> tuple[ReferenceProfile, np.ndarray, np.ndarray]:
    x = rng.normal([0.0, 50.0, 0.0], [1.0, 5.0, 0.01], size=(5000, 3))
    cats = rng.choice(np.array(["a", "b", "c"]), 5000, p=[0.5, 0.3, 0.2])
    rows = [{"f0": r[0], "f1": r[1], "f2": r[2], "c": c} for r, c in zip(x, cats, strict=True)]
    preds = rng.normal(size=5000)
    return ReferenceProfile.from_data(rows, predictions=preds, created_at=0.0), x, cats


def _families(agg: DriftAggregate, now: float) -> dict[str, list[ScalarPoint]]:
    ctx = RenderContext("modelmon", CTX_LABELS, now)
    out: dict[str, list[ScalarPoint]] = {}
    for fam in agg.families(ctx):
        out[fam.name] = [p for p in fam.points if isinstance(p, ScalarPoint)]
    return out


def test_bin_counts_equal_searchsorted_counts() -> None:
    rng = np.random.default_rng(0)
    profile, _, _ = _reference(rng)
    agg = DriftAggregate(profile)
    x = rng.normal([0.5, 48.0, 0.0], [1.0, 6.0, 0.02], size=(3000, 3))
    x[::11, 1] = np.nan
    cats = rng.choice(np.array(["a", "b", "zzz"], dtype=object), 3000)
    cats[::13] = None
    agg.fold(_batch(10.0, _frame(x, cats), OutputFrame(3000, values=rng.normal(size=3000))))
    agg.fold(_batch(20.0, _frame(x[:100], cats[:100])))
    fams = _families(agg, 20.0)
    bins = {(p.labels["feature"], p.labels["bin"]): p.value for p in fams["modelmon_feature_bin"]}
    for j in range(3):
        f = profile.features[f"f{j}"]
        col = np.concatenate([x[:, j], x[:100, j]])
        col = col[~np.isnan(col)]
        expected = np.bincount(np.searchsorted(f.edges, col, side="left"), minlength=f.n_bins)
        got = [bins[(f"f{j}", str(b))] for b in range(f.n_bins)]
        np.testing.assert_array_equal(got, expected)
    c = profile.features["c"]
    allc = np.concatenate([cats, cats[:100]])
    allc = allc[allc != None]  # noqa: E711
    expected_c = np.bincount(c.bin_index(allc), minlength=c.n_bins)
    np.testing.assert_array_equal([bins[("c", str(b))] for b in range(c.n_bins)], expected_c)
    ratio = {
        (p.labels["feature"], p.labels["bin"]): p.value
        for p in fams["modelmon_feature_reference_ratio"]
    }
    assert ratio[("c", "0")] == c.shares[0]
    point = fams["modelmon_feature_bin"][0]
    assert point.labels["model"] == "m" and point.labels["version"] == "1"
    assert {p.labels["output"] for p in fams["modelmon_prediction_bin"]} == {"prediction"}


def test_drift_values_equal_drift_functions_on_raw_data() -> None:
    rng = np.random.default_rng(1)
    profile, ref, _ = _reference(rng)
    agg = DriftAggregate(profile, min_samples=100)
    cur = rng.normal([0.3, 52.0, 0.0], [1.0, 5.0, 0.015], size=(4000, 3))
    agg.fold(_batch(100.0, _frame(cur)))
    scores = agg.drift_scores(100.0)["features"]
    for j in range(3):
        f = profile.features[f"f{j}"]
        counts = np.bincount(f.bin_index(cur[:, j]), minlength=f.n_bins)
        got = scores[f"f{j}"]
        assert got["psi"] == pytest.approx(psi(f.shares, counts), abs=1e-12)
        assert got["js"] == pytest.approx(js_distance(f.shares, counts), abs=1e-12)
        s = LogSketch()
        center = f.sketch_center  # what the aggregate's sketches are centred on
        s.add(cur[:, j] - center)
        assert got["ks"] == pytest.approx(ks_statistic(f.quantiles, s, shift=center), abs=1e-12)
        assert got["ks"] == pytest.approx(stats.ks_2samp(ref[:, j], cur[:, j]).statistic, abs=0.02)
        exact_w = stats.wasserstein_distance(ref[:, j], cur[:, j]) / ref[:, j].std()
        assert got["wasserstein"] == pytest.approx(exact_w, rel=0.05)
    fams = _families(agg, 100.0)
    methods = {(p.labels["feature"], p.labels["method"]) for p in fams["modelmon_feature_drift"]}
    assert ("f0", "wasserstein") in methods and ("c", "psi") not in methods  # no c values
    q = {(p.labels["feature"], p.labels["q"]): p.value for p in fams["modelmon_feature_quantile"]}
    exact = np.quantile(cur[:, 1], [0.05, 0.5, 0.95], method="lower")
    got_q = [q[("f1", "0.05")], q[("f1", "0.5")], q[("f1", "0.95")]]
    np.testing.assert_allclose(
        got_q, exact, rtol=0, atol=0.011 * np.abs(exact - profile.features["f1"].median).max()
    )


def test_min_samples_gating() -> None:
    rng = np.random.default_rng(2)
    profile, _, _ = _reference(rng)
    agg = DriftAggregate(profile, min_samples=100)
    agg.fold(_batch(0.0, _frame(rng.normal(size=(99, 3)))))
    fams = _families(agg, 0.0)
    assert fams["modelmon_feature_drift"] == [] and fams["modelmon_feature_quantile"] == []
    assert sum(p.value for p in fams["modelmon_feature_bin"]) == 3 * 99
    agg.fold(_batch(1.0, _frame(rng.normal(size=(1, 3)))))
    assert len(_families(agg, 1.0)["modelmon_feature_drift"]) == 3 * 4


def test_window_expiry_keeps_cumulative_counters() -> None:
    rng = np.random.default_rng(3)
    profile, _, _ = _reference(rng)
    agg = DriftAggregate(profile, window_seconds=900.0, slots=15, min_samples=10)
    agg.fold(_batch(0.0, _frame(rng.normal(size=(200, 3)))))
    assert agg.drift_scores(600.0)["features"]
    assert agg.drift_scores(900.0)["features"] == {}  # slot 0 left the window
    fams = _families(agg, 900.0)
    assert fams["modelmon_feature_drift"] == []
    assert sum(p.value for p in fams["modelmon_feature_bin"]) == 600


def test_merge_equals_one_aggregate_fed_both_halves() -> None:
    rng = np.random.default_rng(4)
    profile, _, _ = _reference(rng)
    x = rng.normal([0.2, 49.0, 0.0], [1.2, 5.0, 0.01], size=(2000, 3))
    cats = rng.choice(np.array(["a", "b", "c", "d"], dtype=object), 2000)
    y = rng.normal(size=2000)
    a, b, whole = (DriftAggregate(profile, min_samples=10) for _ in range(3))
    a.fold(_batch(60.0, _frame(x[:700], cats[:700]), OutputFrame(700, values=y[:700])))
    b.fold(_batch(130.0, _frame(x[700:], cats[700:]), OutputFrame(1300, values=y[700:])))
    whole.fold(_batch(60.0, _frame(x[:700], cats[:700]), OutputFrame(700, values=y[:700])))
    whole.fold(_batch(130.0, _frame(x[700:], cats[700:]), OutputFrame(1300, values=y[700:])))
    a.merge(b)
    fa, fw = _families(a, 130.0), _families(whole, 130.0)
    assert fa.keys() == fw.keys()
    for name in fa:
        got = {tuple(sorted(p.labels.items())): p.value for p in fa[name]}
        want = {tuple(sorted(p.labels.items())): p.value for p in fw[name]}
        assert got.keys() == want.keys()
        for k in got:
            assert got[k] == pytest.approx(want[k], rel=1e-9, abs=1e-12), (name, k)


def test_state_round_trip_and_profile_mismatch() -> None:
    rng = np.random.default_rng(5)
    profile, _, _ = _reference(rng)
    a = DriftAggregate(profile, min_samples=10)
    a.fold(_batch(5.0, _frame(rng.normal(size=(300, 3)))))
    b = DriftAggregate(profile, min_samples=10)
    b.load_state(a.state())
    assert b.drift_scores(5.0) == a.drift_scores(5.0)
    other = ReferenceProfile.from_data(rng.normal(size=(100, 3)), created_at=0.0)
    with pytest.raises(ValueError, match="different reference"):
        DriftAggregate(other).merge(a)


def test_warmup_builds_a_profile_from_the_first_rows() -> None:
    rng = np.random.default_rng(6)
    agg = DriftAggregate(None, warmup=1000, min_samples=50)
    first = rng.normal(size=(600, 3))
    second = rng.normal(size=(600, 3))
    agg.fold(_batch(1.0, _frame(first), OutputFrame(600, values=rng.normal(size=600))))
    assert (
        agg.profile is None and list(agg.families(RenderContext("modelmon", CTX_LABELS, 1.0))) == []
    )
    agg.fold(_batch(2.0, _frame(second), OutputFrame(600, values=rng.normal(size=600))))
    assert agg.profile is not None
    expected = ReferenceProfile.from_data(np.vstack([first, second[:400]]), created_at=0.0)
    assert agg.profile.features["f1"].edges == expected.features["f1"].edges
    assert "prediction" in agg.profile.outputs
    fams = _families(agg, 2.0)
    assert sum(p.value for p in fams["modelmon_feature_bin"] if p.labels["feature"] == "f0") == 200
    restored = DriftAggregate(None, warmup=1000)
    restored.load_state(agg.state())
    assert restored.profile is not None and restored.profile.fingerprint == agg.profile.fingerprint


def test_outputs_categorical_confidence_and_classes() -> None:
    rng = np.random.default_rng(7)
    proba = rng.dirichlet([2, 1], size=3000)
    profile = ReferenceProfile.from_data(
        rng.normal(size=(3000, 1)), predictions=proba, classes=["no", "yes"]
    )
    agg = DriftAggregate(profile, min_samples=10)
    cur = rng.dirichlet([1, 2], size=500)
    labels = np.asarray(["no", "yes"], dtype=object)[cur.argmax(axis=1)]
    out = OutputFrame(500, cur[:, 1], labels, cur, ("no", "yes"), cur.max(axis=1))
    agg.fold(_batch(1.0, None, out))
    scores = agg.drift_scores(1.0)["outputs"]
    assert set(scores) == {"prediction", "confidence", "no", "yes"}
    assert set(scores["prediction"]) == {"psi", "js", "chi2"}
    assert scores["yes"]["psi"] > 0.25


def test_bin_edges_opt_in_and_max_features() -> None:
    rng = np.random.default_rng(8)
    profile = ReferenceProfile.from_data(rng.normal(size=(500, 4)), created_at=0.0)
    agg = DriftAggregate(profile, max_features=2, export_bin_edges=True)
    agg.fold(_batch(0.0, _frame(rng.normal(size=(10, 4)))))
    fams = _families(agg, 0.0)
    assert {p.labels["feature"] for p in fams["modelmon_feature_bin"]} == {"f0", "f1"}
    edges = fams[names.FEATURE_BIN_EDGES.family_name()]
    assert edges[-1].labels["upper_edge"] == "+Inf"


def test_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        DriftAggregate(None)
    with pytest.raises(ConfigurationError):
        DriftAggregate(None, warmup=10, window_seconds=0)
