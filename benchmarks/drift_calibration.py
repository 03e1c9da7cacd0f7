"""False-alarm rate and power of modelmon's drift decisions (the table in docs/drift.md).

    .venv/bin/python benchmarks/drift_calibration.py            # full table (a few minutes)
    .venv/bin/python benchmarks/drift_calibration.py --quick    # fewer windows

A model with 30 features (10 normal, 6 lognormal, 6 discrete-integer, 8 categorical of
which 3 have 150-400 categories with a long tail), a reference profile of 10,000 rows.
Each window is folded into a fresh :class:`~modelmon.drift_aggregate.DriftAggregate` (the
code path that exports ``modelmon_feature_drift_detected``) and its decisions are read:

* **no drift**: the share of windows in which *any* feature is flagged (family-wise
  false-alarm rate; the goal is <= 5% at every window size);
* **power**: the share of windows in which the shifted feature is flagged, for a 0.5 sd
  and a 1 sd mean shift of one normal feature;
* **missing 28% -> 70%** in one feature: share of windows with the missing-share flag;
* **rare categories**: in the 400-category feature, the categories ranked 21-400 swap
  their shares end for end (PSI 0.97 on the raw categories; the exported top-20 +
  ``__other__`` bins do not change at all): share of windows flagged;
* **min_samples**: the false-alarm rate at 20 and 50 rows too.

All draws come from ``numpy.random.default_rng`` with fixed seeds.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable

import numpy as np

from modelmon.batch import Batch, FeatureFrame
from modelmon.drift_aggregate import DriftAggregate
from modelmon.profile import ReferenceProfile

REF_ROWS = 10_000
SIZES = (20, 50, 100, 200, 500, 1_000, 10_000)
N_NORMAL, N_LOGNORMAL, N_DISCRETE, N_CAT_SMALL, N_CAT_LONG = 10, 6, 6, 5, 3
Columns = dict[str, np.ndarray]


def _zipf_probs(k: int, s: float = 1.1) -> np.ndarray:
    w = 1.0 / np.arange(1, k + 1) ** s
    return w / w.sum()


class Model:
    """The 30 features' generators (``draw(rng, n, **changes)``)."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.categorical: list[str] = []
        for i in range(N_NORMAL):
            self.names.append(f"normal{i}")
        for i in range(N_LOGNORMAL):
            self.names.append(f"lognormal{i}")
        for i in range(N_DISCRETE):
            self.names.append(f"count{i}")
        for i in range(N_CAT_SMALL):
            self.names.append(f"cat{i}")
            self.categorical.append(f"cat{i}")
        self.long_sizes = (150, 250, 400)
        for i in range(N_CAT_LONG):
            self.names.append(f"longcat{i}")
            self.categorical.append(f"longcat{i}")

    def draw(
        self,
        rng: np.random.Generator,
        n: int,
        shift: float = 0.0,
        missing: float = 0.0,
        rare_move: bool = False,
    ) -> Columns:
        cols: Columns = {}
        for i in range(N_NORMAL):
            cols[f"normal{i}"] = rng.normal(shift if i == 0 else 0.0, 1.0, n)
        for i in range(N_LOGNORMAL):
            cols[f"lognormal{i}"] = rng.lognormal(0.0, 0.5 + 0.25 * i, n)
        for i in range(N_DISCRETE):
            cols[f"count{i}"] = rng.poisson(0.5 + i, n).astype(np.float64)
        for i in range(N_CAT_SMALL):
            k = 2 + i
            p = np.arange(1, k + 1, dtype=np.float64)[::-1]
            cols[f"cat{i}"] = np.asarray(
                [f"c{j}" for j in rng.choice(k, n, p=p / p.sum())], dtype=object
            )
        for i, k in enumerate(self.long_sizes):
            p = _zipf_probs(k)
            if rare_move and i == N_CAT_LONG - 1:
                p = _move_rare(p)
            cols[f"longcat{i}"] = np.asarray([f"v{j}" for j in rng.choice(k, n, p=p)], dtype=object)
        if missing > 0:
            col = cols["normal1"]
            col[rng.random(n) < missing] = np.nan
        return cols


def _move_rare(p: np.ndarray) -> np.ndarray:
    """Ranks 21..k swap their shares end for end (the pooled ``__other__`` share is unchanged)."""
    q = p.copy()
    q[20:] = p[20:][::-1]
    return q


def frame_of(cols: Columns, names: list[str], categorical: list[str]) -> FeatureFrame:
    n = len(next(iter(cols.values())))
    numeric = np.full((n, len(names)), np.nan)
    missing = np.zeros((n, len(names)), dtype=bool)
    cats: dict[int, np.ndarray] = {}
    for j, name in enumerate(names):
        v = cols[name]
        if name in categorical:
            cats[j] = v
            missing[:, j] = v == None  # noqa: E711
        else:
            numeric[:, j] = v
            missing[:, j] = np.isnan(v)
    return FeatureFrame(tuple(names), numeric, missing, np.zeros_like(missing), cats)


def reference(model: Model, seed: int, missing: float = 0.0) -> ReferenceProfile:
    rng = np.random.default_rng(seed)
    cols = model.draw(rng, REF_ROWS, missing=missing)
    rows = [{k: (None if _nan(v[i]) else v[i]) for k, v in cols.items()} for i in range(REF_ROWS)]
    return ReferenceProfile.from_data(rows, categorical=model.categorical, created_at=0.0)


def _nan(x: object) -> bool:
    return isinstance(x, float) and math.isnan(x)


def decide(profile: ReferenceProfile, frame: FeatureFrame, min_samples: int) -> dict[str, object]:
    agg = DriftAggregate(profile, min_samples=min_samples)
    empty = np.zeros(0)
    agg.fold(Batch(1.0, empty, np.zeros(0, dtype=np.int64), (), empty, (), frame))
    return agg.decisions(1.0)


def rate(
    model: Model,
    profile: ReferenceProfile,
    n: int,
    windows: int,
    seed: int,
    hit: Callable[[dict[str, object]], bool],
    **changes: object,
) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(windows):
        cols = model.draw(rng, n, **changes)  # type: ignore[arg-type]
        d = decide(profile, frame_of(cols, model.names, model.categorical), min(n, 20))
        hits += bool(hit(d))
    return hits / windows


def any_feature(d: dict[str, object]) -> bool:
    feats = d["features"]
    assert isinstance(feats, dict)
    return any(x.detected for x in feats.values())


def feature(name: str) -> Callable[[dict[str, object]], bool]:
    def hit(d: dict[str, object]) -> bool:
        feats = d["features"]
        assert isinstance(feats, dict)
        return name in feats and bool(feats[name].detected)

    return hit


def missing_flag(name: str) -> Callable[[dict[str, object]], bool]:
    def hit(d: dict[str, object]) -> bool:
        miss = d["missing"]
        assert isinstance(miss, dict)
        return name in miss and bool(miss[name].detected)

    return hit


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer windows per cell")
    args = parser.parse_args(argv)
    windows = 100 if args.quick else 400
    model = Model()
    profile = reference(model, seed=1)
    missing_profile = reference(model, seed=2, missing=0.28)
    print(f"reference {REF_ROWS} rows, {len(model.names)} features; {windows} windows per cell")
    print(
        "| rows/window | any feature flagged, no drift | 0.5 sd shift flagged "
        "| 1 sd shift flagged | missing 28%->70% flagged | rare-category move flagged |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for k, n in enumerate(SIZES):
        cells = [
            rate(model, profile, n, windows, 100 + k, any_feature),
            rate(model, profile, n, windows, 200 + k, feature("normal0"), shift=0.5),
            rate(model, profile, n, windows, 300 + k, feature("normal0"), shift=1.0),
            rate(model, missing_profile, n, windows, 400 + k, missing_flag("normal1"), missing=0.7),
            rate(model, profile, n, windows, 500 + k, feature("longcat2"), rare_move=True),
        ]
        print(f"| {n:,} | " + " | ".join(f"{100 * c:.1f}%" for c in cells) + " |")
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
