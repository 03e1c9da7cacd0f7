"""Heavy tails: Wasserstein and KS from a profile follow scipy on the raw samples.

The profile keeps the reference distribution as a log sketch with the live sketch's
guarantee, so the drift aggregate compares sketch with sketch; the quantile summary alone
interpolated linearly from p99.9 to the maximum (errors up to 120% measured here).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats

from modelmon.aggregates.drift import DriftAggregate
from modelmon.batch import Batch, FeatureFrame
from modelmon.profile import ReferenceProfile

N = 10_000
Draw = Callable[[np.random.Generator, int], np.ndarray]
TAILS: dict[str, Draw] = {
    "lognormal_sigma2": lambda rng, n: rng.lognormal(0.0, 2.0, n),
    "student_t3": lambda rng, n: rng.standard_t(3, n),
    "pareto_1.5": lambda rng, n: rng.pareto(1.5, n) + 1.0,
    "pareto_2.5": lambda rng, n: rng.pareto(2.5, n) + 1.0,
}


def _scores(ref: np.ndarray, cur: np.ndarray) -> dict[str, float]:
    profile = ReferenceProfile.from_data(ref.reshape(-1, 1), feature_names=["x"])
    agg = DriftAggregate(profile)
    x = cur.reshape(-1, 1)
    mask = np.zeros(x.shape, dtype=bool)
    frame = FeatureFrame(("x",), x, mask, mask, {})
    empty = np.zeros(0)
    agg.fold(Batch(1.0, empty, np.zeros(0, dtype=np.int64), (), empty, (), frame))
    return agg.drift_scores(1.0)["features"]["x"]


@pytest.mark.parametrize("name", list(TAILS))
@pytest.mark.parametrize("shift", [0.0, 0.5])
def test_heavy_tail_wasserstein_and_ks_follow_scipy(name: str, shift: float) -> None:
    for seed in range(3):
        rng = np.random.default_rng(seed)
        ref = TAILS[name](rng, N)
        cur = TAILS[name](rng, N) + shift * stats.iqr(ref)
        got = _scores(ref, cur)
        exact_w = stats.wasserstein_distance(ref, cur) / ref.std()
        assert got["wasserstein"] == pytest.approx(exact_w, rel=0.05), (name, shift, seed)
        exact_ks = stats.ks_2samp(ref, cur).statistic
        assert abs(got["ks"] - exact_ks) <= 0.02, (name, shift, seed)


def test_a_profile_without_a_sketch_falls_back_to_the_quantile_summary() -> None:
    """Format-1 profiles (no reference sketch) still get KS and Wasserstein."""
    import json

    from modelmon.sketches.ddsketch import LogSketch

    from ._drift_oracle import wasserstein_normed

    rng = np.random.default_rng(12)
    ref, cur = rng.normal(0, 1, N), rng.normal(0.3, 1, N)
    doc = ReferenceProfile.from_data(ref.reshape(-1, 1), feature_names=["x"]).to_json()
    doc["format_version"] = 1
    del doc["features"]["x"]["sketch_values"], doc["features"]["x"]["sketch_counts"]
    old = ReferenceProfile.loads(json.dumps(doc))
    agg = DriftAggregate(old)
    x = cur.reshape(-1, 1)
    mask = np.zeros(x.shape, dtype=bool)
    empty = np.zeros(0)
    frame = FeatureFrame(("x",), x, mask, mask, {})
    agg.fold(Batch(1.0, empty, np.zeros(0, dtype=np.int64), (), empty, (), frame))
    got = agg.drift_scores(1.0)["features"]["x"]["wasserstein"]
    f = old.features["x"]
    sketch = LogSketch()
    sketch.add(cur - f.sketch_center)
    expected = wasserstein_normed(
        f.quantiles, f.std or 0.0, sketch, shift=f.sketch_center, bounds=(cur.min(), cur.max())
    )
    assert got == pytest.approx(expected, rel=1e-6)
    exact = stats.wasserstein_distance(ref, cur) / ref.std()
    assert got == pytest.approx(exact, rel=0.05)
