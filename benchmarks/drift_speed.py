"""Drift for 20 features: modelmon from its sketches vs Evidently on raw rows, side by side.

    benchmarks/.venv-peers/bin/python benchmarks/drift_speed.py   # with Evidently
    .venv/bin/python benchmarks/drift_speed.py                     # modelmon only

modelmon: a reference profile of 100k rows, then 100k shifted rows folded into the
drift aggregate; timed is the computation of every score (PSI, JS, KS, Wasserstein)
and live quantile of the 20 features from the windowed sketches (no cache), target
< 1 ms. Evidently: ``Report([DataDriftPreset()]).run`` on the same 100k vs 100k raw
rows (Evidently is installed only in benchmarks/.venv-peers, never a dependency).
"""

from __future__ import annotations

import time

import numpy as np

from modelmon.batch import Batch, FeatureFrame
from modelmon.drift_aggregate import DriftAggregate, _compute_view
from modelmon.profile import ReferenceProfile

ROWS, COLS, REPEAT = 100_000, 20, 20


def _modelmon(ref: np.ndarray, cur: np.ndarray, names: list[str]) -> float:
    profile = ReferenceProfile.from_data(ref, feature_names=names, created_at=0.0)
    agg = DriftAggregate(profile)
    mask = np.zeros(cur.shape, dtype=bool)
    empty = np.zeros(0)
    frame = FeatureFrame(tuple(names), cur, mask, mask, {})
    agg.fold(Batch(100.0, empty, np.zeros(0, dtype=np.int64), (), empty, (), frame))
    merged = agg.window.merged(100.0)
    assert merged is not None
    best = float("inf")
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        _compute_view(agg.features, merged.features, agg.min_samples, agg.quantiles)
        best = min(best, time.perf_counter() - t0)
    psi = agg.drift_scores(100.0)["features"][names[0]]["psi"]
    print(
        f"modelmon: drift for {COLS} features from sketches: {best * 1e3:.3f} ms (psi x0 {psi:.3f})"
    )
    return best


def _evidently(ref: np.ndarray, cur: np.ndarray, names: list[str]) -> float | None:
    try:
        import pandas as pd
        from evidently import Report  # type: ignore[import-not-found]
        from evidently.presets import DataDriftPreset  # type: ignore[import-not-found]
    except ImportError as exc:
        print(f"Evidently not importable ({exc}): no side-by-side ratio")
        return None
    ref_df = pd.DataFrame(ref, columns=names)
    cur_df = pd.DataFrame(cur, columns=names)
    report = Report([DataDriftPreset()])
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        report.run(cur_df, ref_df)
        best = min(best, time.perf_counter() - t0)
    print(f"Evidently DataDriftPreset on {ROWS:,} vs {ROWS:,} raw rows: {best * 1e3:.0f} ms")
    return best


def main() -> None:
    rng = np.random.default_rng(0)
    names = [f"x{i}" for i in range(COLS)]
    ref = rng.normal(size=(ROWS, COLS))
    cur = rng.normal(0.1, 1.1, size=(ROWS, COLS))
    mine = _modelmon(ref, cur, names)
    peer = _evidently(ref, cur, names)
    if peer is not None:
        print(f"ratio: modelmon is {peer / mine:,.0f}x faster than Evidently")


if __name__ == "__main__":
    main()
