"""The exported quantile gauges are within 1% of the value (relative), p01 ... p99."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from modelmon.aggregates.drift import DriftAggregate
from modelmon.batch import Batch, FeatureFrame
from modelmon.profile import ReferenceProfile

QS = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
Draw = Callable[[np.random.Generator, int], np.ndarray]
CASES: dict[str, Draw] = {
    "exponential": lambda rng, n: rng.exponential(1.0, n),
    "lognormal_sigma2": lambda rng, n: rng.lognormal(0.0, 2.0, n),
    "offset_normal": lambda rng, n: rng.normal(1000.0, 5.0, n),
    "negative_offset": lambda rng, n: -rng.gamma(20.0, 3.0, n),
    "pareto_1.5": lambda rng, n: rng.pareto(1.5, n) + 1.0,
    "uniform_0_1": lambda rng, n: rng.random(n),
}


@pytest.mark.parametrize("name", list(CASES))
def test_quantile_gauges_have_one_percent_relative_error(name: str) -> None:
    rng = np.random.default_rng(4)
    ref = CASES[name](rng, 10_000)
    cur = CASES[name](rng, 20_000)
    profile = ReferenceProfile.from_data(ref.reshape(-1, 1), feature_names=["x"])
    agg = DriftAggregate(profile, quantiles=QS)
    x = cur.reshape(-1, 1)
    mask = np.zeros(x.shape, dtype=bool)
    empty = np.zeros(0)
    agg.fold(
        Batch(
            1.0,
            empty,
            np.zeros(0, dtype=np.int64),
            (),
            empty,
            (),
            FeatureFrame(("x",), x, mask, mask, {}),
        )
    )
    merged = agg.window.snapshot(1.0)
    assert merged is not None
    live = agg._window_view(agg.features, merged.features).quantiles[0]
    exact = np.quantile(cur, QS, method="lower")  # the sketch's rank: floor(q (n - 1))
    rel = np.abs(live - exact) / np.abs(exact)
    assert rel.max() <= 0.01 + 1e-12, dict(zip(QS, rel.round(4), strict=True))
