"""False-alarm rate and power of modelmon's drift decisions (the table in docs/drift.md).

    .venv/bin/python benchmarks/drift_calibration.py            # full table (a few minutes)
    .venv/bin/python benchmarks/drift_calibration.py --quick    # fewer windows

A model with 30 features (10 normal, 6 lognormal, 6 discrete-integer, 8 categorical of
which 3 have 150-400 categories with a long tail), a reference profile of 10,000 rows.
Each window is folded into a fresh :class:`~modelmon.aggregates.drift.DriftAggregate` (the
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

Then two more tables: heavy tails (Wasserstein and KS from the profile against
``scipy.stats.wasserstein_distance`` / ``ks_2samp`` on the raw samples, 10,000 rows a side,
without and with a shift of half the reference IQR; the quantile gauges p01 ... p99 against
the exact quantiles), and concept drift (detections of ADWIN and Page-Hinkley on the same
regression error stream in three units).

All draws come from ``numpy.random.default_rng`` with fixed seeds.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable

import numpy as np

from modelmon.aggregates.drift import DriftAggregate
from modelmon.batch import Batch, FeatureFrame
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
    tails_table(2 if args.quick else 5)
    concept_table()


TAILS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "lognormal sigma=2": lambda rng, n: rng.lognormal(0.0, 2.0, n),
    "Student t(3)": lambda rng, n: rng.standard_t(3, n),
    "Pareto 1.5": lambda rng, n: rng.pareto(1.5, n) + 1.0,
    "Pareto 2.5": lambda rng, n: rng.pareto(2.5, n) + 1.0,
}
GAUGES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)


def tails_table(seeds: int) -> None:
    from scipy import stats

    print()
    print(
        "| distribution | Wasserstein rel. error, no shift | with shift "
        "| KS abs. error, no shift | with shift | quantile gauges rel. error (p01-p99) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, draw in TAILS.items():
        w_err = {0.0: 0.0, 0.5: 0.0}
        ks_err = {0.0: 0.0, 0.5: 0.0}
        q_err = 0.0
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            ref = draw(rng, REF_ROWS)
            profile = ReferenceProfile.from_data(ref.reshape(-1, 1), feature_names=["x"])
            for shift in (0.0, 0.5):
                cur = draw(rng, REF_ROWS) + shift * stats.iqr(ref)
                agg = DriftAggregate(profile, quantiles=GAUGES)
                x = cur.reshape(-1, 1)
                mask = np.zeros(x.shape, dtype=bool)
                frame = FeatureFrame(("x",), x, mask, mask, {})
                empty = np.zeros(0)
                agg.fold(Batch(1.0, empty, np.zeros(0, dtype=np.int64), (), empty, (), frame))
                got = agg.drift_scores(1.0)["features"]["x"]
                exact_w = stats.wasserstein_distance(ref, cur) / ref.std()
                w_err[shift] = max(w_err[shift], abs(got["wasserstein"] - exact_w) / exact_w)
                exact_ks = stats.ks_2samp(ref, cur).statistic
                ks_err[shift] = max(ks_err[shift], abs(got["ks"] - exact_ks))
                merged = agg.window.snapshot(1.0)
                assert merged is not None
                live = agg._window_view(agg.features, merged.features).quantiles[0]
                exact_q = np.quantile(cur, GAUGES, method="lower")
                q_err = max(q_err, float(np.max(np.abs(live - exact_q) / np.abs(exact_q))))
        print(
            f"| {name} | {100 * w_err[0.0]:.2f}% | {100 * w_err[0.5]:.2f}% "
            f"| {ks_err[0.0]:.4f} | {ks_err[0.5]:.4f} | {100 * q_err:.2f}% |"
        )


def concept_table() -> None:
    from modelmon.concept_drift import ADWIN, PageHinkley

    rng = np.random.default_rng(21)
    residuals = np.r_[rng.normal(0, 1, 10_000), rng.normal(0, 1.5, 10_000)]
    print()
    print("| detector | unit | detections (step at 10,000) | first detection |")
    print("|---|---:|---:|---:|")
    for cls in (ADWIN, PageHinkley):
        for unit in (0.01, 1.0, 100.0):
            d = cls()
            hits = [i for i, e in enumerate(np.abs(residuals * unit).tolist()) if d.update(e)]
            print(f"| {cls.name} | x{unit:g} | {len(hits)} | {hits[0] if hits else '-'} |")


if __name__ == "__main__":
    main(sys.argv[1:])
