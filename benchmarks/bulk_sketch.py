"""Bulk sketching: a 1,000,000 x 20 float batch through DriftAggregate.fold, and drift time.

    .venv/bin/python benchmarks/bulk_sketch.py

Prints values/s of the fold and the time to compute drift for 20 features from the
windowed sketches. Run with the peers' interpreter (benchmarks/.venv-peers, where
whylogs is installed) to also print the side-by-side ratio against ``whylogs.log(df)``
on the same DataFrame (target: modelmon >= 20x faster):

    benchmarks/.venv-peers/bin/python benchmarks/bulk_sketch.py
"""

from __future__ import annotations

import time

import numpy as np

from modelmon.batch import Batch, FeatureFrame
from modelmon.drift_aggregate import DriftAggregate, _compute_view
from modelmon.profile import ReferenceProfile

ROWS, COLS, REPEAT = 1_000_000, 20, 3


def main() -> None:
    rng = np.random.default_rng(0)
    profile = ReferenceProfile.from_data(rng.normal(size=(100_000, COLS)), created_at=0.0)
    x = rng.normal(0.1, 1.1, size=(ROWS, COLS))
    mask = np.zeros(x.shape, dtype=bool)
    frame = FeatureFrame(tuple(profile.features), x, mask, mask, {})
    empty = np.zeros(0)
    batch = Batch(100.0, empty, np.zeros(0, dtype=np.int64), (), empty, (), frame)
    best = float("inf")
    agg = DriftAggregate(profile)
    for _ in range(REPEAT):
        agg = DriftAggregate(profile)
        t0 = time.perf_counter()
        agg.fold(batch)
        best = min(best, time.perf_counter() - t0)
    print(f"fold {ROWS:,} x {COLS}: {best * 1e3:.0f} ms, {x.size / best / 1e6:.1f} M values/s")
    merged = agg.window.merged(100.0)
    assert merged is not None
    per = float("inf")
    for _ in range(20):  # every member's scores and quantiles, without any cache
        t0 = time.perf_counter()
        _compute_view(agg.features, merged.features, agg.min_samples, agg.quantiles)
        per = min(per, time.perf_counter() - t0)
    print(f"drift for {COLS} features from sketches: {per * 1e3:.2f} ms (target < 1 ms)")
    t0 = time.perf_counter()
    agg.drift_scores(100.0)
    print(f"drift_scores incl. window merge of 1 slot: {(time.perf_counter() - t0) * 1e3:.2f} ms")
    try:
        import pandas as pd
        import whylogs  # type: ignore[import-not-found]
    except ImportError:
        print("whylogs not installed: no side-by-side ratio")
        return
    df = pd.DataFrame(x, columns=list(profile.features))
    t0 = time.perf_counter()
    whylogs.log(df)
    peer = time.perf_counter() - t0
    print(
        f"whylogs.log(df): {peer * 1e3:.0f} ms, modelmon is {peer / best:.1f}x faster"
        " (target >= 20x)"
    )


if __name__ == "__main__":
    main()
