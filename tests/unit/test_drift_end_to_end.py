"""Drift from @monitored end to end: profile, serve, scrape, compare with exact maths."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from scipy import stats
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import modelmon
from modelmon import ReferenceProfile

from ..conftest import scrape, value


def exact_psi(edges: np.ndarray, ref_shares: np.ndarray, live: np.ndarray) -> float:
    counts = np.bincount(np.searchsorted(edges, live, side="left"), minlength=len(ref_shares))
    cur = np.maximum(counts / counts.sum(), 1e-4)
    ref = np.maximum(ref_shares, 1e-4)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


Served = tuple[object, np.ndarray, list[str], ReferenceProfile, np.ndarray]


@pytest.fixture(scope="module")
def served() -> Served:
    data = load_breast_cancer()
    names = [n.replace(" ", "_") for n in data.feature_names]
    X_train, X_test, y_train, _ = train_test_split(data.data, data.target, random_state=0)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X_train, y_train)
    profile = ReferenceProfile.from_data(
        X_train, predictions=model.predict_proba(X_train), feature_names=names
    )
    return model, X_test, names, profile, X_train


def test_drift_scores_from_a_served_model(served: Served, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model, X_test, names, profile, X_train = served
    path = tmp_path / "reference.json"
    profile.save(path)
    registry = CollectorRegistry()

    @modelmon.monitored(
        model="cancer", version="1", reference=str(path), registry=registry, strict=True
    )
    def predict(rows: list[dict[str, float]]) -> np.ndarray:
        return model.predict_proba(np.array([[r[n] for n in names] for r in rows]))  # type: ignore[attr-defined]

    rng = np.random.default_rng(0)
    live = X_test[rng.integers(0, len(X_test), size=3000)].copy()
    shifted = names.index("mean_radius")
    live[:, shifted] += 2.0 * X_test[:, shifted].std()
    for start in range(0, len(live), 7):
        chunk = live[start : start + 7]
        predict([dict(zip(names, row, strict=True)) for row in chunk])

    samples = scrape(registry)
    labels = {"model": "cancer", "version": "1"}
    psi_shifted = value(
        samples, "modelmon_feature_drift", feature="mean_radius", method="psi", **labels
    )
    psi_stable = value(
        samples, "modelmon_feature_drift", feature="mean_texture", method="psi", **labels
    )
    assert psi_shifted is not None and psi_stable is not None
    assert psi_shifted > 0.25 > 0.1 > psi_stable
    fp = profile.features["mean_radius"]
    assert psi_shifted == pytest.approx(
        exact_psi(fp.edges_array, np.asarray(fp.shares), live[:, shifted]), abs=0.01
    )
    ks = value(samples, "modelmon_feature_drift", feature="mean_radius", method="ks", **labels)
    train = X_train[:, shifted]
    assert ks is not None and ks > 0.5
    assert ks == pytest.approx(stats.ks_2samp(train, live[:, shifted]).statistic, abs=0.02)
    # bin counters add up to the rows seen, reference ratios to 1
    bins = [
        value(samples, "modelmon_feature_bin_total", feature="mean_radius", bin=str(i), **labels)
        for i in range(fp.n_bins)
    ]
    assert sum(b or 0 for b in bins) == len(live)
    ratios = [
        value(
            samples, "modelmon_feature_reference_ratio", feature="mean_radius", bin=str(i), **labels
        )
        for i in range(fp.n_bins)
    ]
    assert sum(r or 0 for r in ratios) == pytest.approx(1.0)
    # prediction drift is exported for the outputs of the profile
    assert (
        value(samples, "modelmon_prediction_drift", output="confidence", method="psi", **labels)
        is not None
    )
    assert (
        value(samples, "modelmon_feature_quantile", feature="mean_radius", q="0.5", **labels)
        is not None
    )


def test_no_score_before_min_samples(
    served: Served,
) -> None:
    model, X_test, _, profile, _ = served
    registry = CollectorRegistry()
    mon = modelmon.Monitor("cancer", "1", reference=profile, registry=registry, min_samples=100)
    mon.observe(X_test[:99], model.predict_proba(X_test[:99]))  # type: ignore[attr-defined]
    assert (
        registry.get_sample_value(
            "modelmon_feature_drift",
            {"model": "cancer", "version": "1", "feature": "mean_radius", "method": "psi"},
        )
        is None
    )
    mon.observe(X_test[99:100], model.predict_proba(X_test[99:100]))  # type: ignore[attr-defined]
    assert (
        registry.get_sample_value(
            "modelmon_feature_drift",
            {"model": "cancer", "version": "1", "feature": "mean_radius", "method": "psi"},
        )
        is not None
    )


def test_warmup_reference() -> None:
    registry = CollectorRegistry()
    mon = modelmon.Monitor(
        "w", "1", reference="warmup", warmup_size=500, registry=registry, min_samples=100
    )
    rng = np.random.default_rng(0)
    mon.observe(rng.normal(size=(500, 2)), rng.normal(size=500))
    mon.observe(rng.normal(loc=3.0, size=(300, 2)), rng.normal(size=300))
    psi = registry.get_sample_value(
        "modelmon_feature_drift", {"model": "w", "version": "1", "feature": "f0", "method": "psi"}
    )
    assert psi is not None and psi > 1.0
    assert (
        registry.get_sample_value(
            "modelmon_model_info",
            {
                "model": "w",
                "version": "1",
                "task": "regression",
                "sdk_version": modelmon.__version__,
                "reference": "warmup",
            },
        )
        == 1
    )
