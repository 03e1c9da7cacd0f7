"""Drift from sketches and bins versus exact computation on the raw samples (scipy/numpy)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats
from sklearn.datasets import load_breast_cancer, load_diabetes

from modelmon.drift import chi2, js_distance, psi
from modelmon.profile import ReferenceProfile
from modelmon.sketches.ddsketch import LogSketch

from ._drift_oracle import ks_statistic, wasserstein_normed

N = 20_000
Pair = tuple[np.ndarray, np.ndarray]


def _rng() -> np.random.Generator:
    return np.random.default_rng(2024)


CASES: dict[str, Callable[[], Pair]] = {
    "normal_shift": lambda: (_rng().normal(0, 1, N), _rng().normal(0.4, 1, N + 1)),
    "offset_normal_shift": lambda: (_rng().normal(1000, 5, N), _rng().normal(1002, 5, N + 1)),
    "scale_change": lambda: (_rng().normal(0, 1, N), _rng().normal(0, 1.6, N + 1)),
    "heavy_tail": lambda: (_rng().lognormal(0, 1, N), _rng().lognormal(0.3, 1.1, N + 1)),
    "bimodal": lambda: (
        np.concatenate([_rng().normal(-2, 0.5, N // 2), _rng().normal(2, 0.5, N // 2)]),
        np.concatenate([_rng().normal(-2, 0.5, N // 4), _rng().normal(2, 0.5, 3 * N // 4)]),
    ),
    "discrete_integer": lambda: (
        _rng().poisson(5, N).astype(float),
        _rng().poisson(6, N + 1).astype(float),
    ),
}


def _check(ref: np.ndarray, cur: np.ndarray) -> None:
    f = ReferenceProfile.from_data(ref.reshape(-1, 1)).features["f0"]
    counts = np.bincount(f.bin_index(cur), minlength=f.n_bins)
    # PSI with numpy on the same (right-closed) edges, from the raw samples.
    ref_h = np.bincount(np.searchsorted(f.edges, ref, side="left"), minlength=f.n_bins) / ref.size
    cur_h = np.bincount(np.searchsorted(f.edges, cur, side="left"), minlength=f.n_bins) / cur.size
    r, c = np.maximum(ref_h, 1e-4), np.maximum(cur_h, 1e-4)
    assert abs(psi(f.shares, counts) - np.sum((c - r) * np.log(c / r))) <= 0.01
    center = f.median
    sketch = LogSketch()
    sketch.add(cur - center)
    ks = ks_statistic(f.quantiles, sketch, shift=center)
    assert abs(ks - stats.ks_2samp(ref, cur).statistic) <= 0.02
    w = wasserstein_normed(
        f.quantiles, f.std or 0.0, sketch, shift=center, bounds=(cur.min(), cur.max())
    )
    exact = stats.wasserstein_distance(ref, cur) / ref.std()
    assert abs(w - exact) <= 0.05 * exact


@pytest.mark.parametrize("case", list(CASES))
def test_synthetic_distributions(case: str) -> None:
    ref, cur = CASES[case]()
    _check(ref, cur)


def test_categorical_psi_js_chi2() -> None:
    rng = _rng()
    cats = np.array(list("abcdef"))
    ref = rng.choice(cats, N, p=[0.3, 0.25, 0.2, 0.15, 0.07, 0.03])
    cur = rng.choice(cats, N, p=[0.2, 0.25, 0.2, 0.15, 0.1, 0.1])
    f = ReferenceProfile.from_data([{"c": v} for v in ref], max_categories=4).features["c"]
    counts = np.bincount(f.bin_index(cur.astype(object)), minlength=f.n_bins)
    ref_counts = np.bincount(f.bin_index(ref.astype(object)), minlength=f.n_bins)
    r, c = ref_counts / ref.size, counts / cur.size
    assert psi(f.shares, counts) == pytest.approx(np.sum((c - r) * np.log(c / r)), abs=1e-9)
    from scipy.spatial.distance import jensenshannon

    assert js_distance(f.shares, counts) == pytest.approx(float(jensenshannon(r, c)), abs=1e-9)
    expected = stats.chisquare(counts, r * counts.sum()).statistic
    assert chi2(f.shares, counts) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("loader", [load_breast_cancer, load_diabetes])
def test_real_data_split_and_shift(loader: Callable[..., object]) -> None:
    X = np.asarray(loader().data, dtype=np.float64)  # type: ignore[attr-defined]
    rng = np.random.default_rng(5)
    order = rng.permutation(X.shape[0])
    half = X.shape[0] // 2
    for j in range(0, X.shape[1], 3):
        ref, cur = X[order[:half], j], X[order[half:], j]
        # A material shift of half a standard deviation keeps relative errors meaningful.
        _check(ref, cur + 0.5 * ref.std())
