"""False-alarm rate and power of the outlier alerts' decision (docs/outliers.md).

    python benchmarks/outlier_calibration.py [--refs 200] [--windows 200] [--seed 16]

The decision is the one the recording rules compute (``modelmon.outliers.rate_flagged``:
one-sided Poisson test of the window's outlier count against ``n * (ratio + 1/N)``, at
least ``min_count`` outliers, rate floor), at the default MonitoringConfig values.

**Per feature.** For each distribution and reference size ``N``: draw a reference,
compute its fences and reference ratio as ``ReferenceProfile.from_data`` does, take the
*true* probability of a value beyond those fences from the distribution (scipy), and
draw the outlier count of each live window of ``n`` values as Binomial(n, p). The false
alarm rate is the share of (reference, window) pairs flagged when live traffic is drawn
like the reference, with one feature (``m = 1``) and with the Bonferroni level of 20
features (``m = 20``, per feature). Power: live windows where a share ``c`` of the values
are corrupted into far outliers (a sentinel value), i.e. Binomial(n, p + c (1 - p)).

**Rows.** A 5-feature reference (multivariate normal, and a heavy-tailed multivariate t
with 5 degrees of freedom), its Mahalanobis reference (ratio counted); the true share of
live rows beyond the cut-off is estimated on 1,000,000 fresh rows; windows as above.
Power: a share ``c`` of the live rows comes from the same marginals with the correlation
of the first two features flipped (0.8 -> -0.8), which no single feature shows.

Every figure is a rate over ``refs x windows`` simulated windows (fixed seed).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import stats

from modelmon.drift_decision import z_upper
from modelmon.monitoring.config import MonitoringConfig
from modelmon.outliers import fence_from_data, joint_from_data, rate_flagged

CFG = MonitoringConfig()
WINDOWS_N = (1_000, 10_000, 100_000)


def _dists() -> dict[str, tuple[Callable[[Any, int], Any], Any]]:
    return {
        "normal": (lambda rng, n: rng.normal(size=n), stats.norm()),
        "lognormal": (lambda rng, n: rng.lognormal(size=n), stats.lognorm(1.0)),
        "exponential": (lambda rng, n: rng.exponential(size=n), stats.expon()),
        "poisson(3)": (lambda rng, n: rng.poisson(3.0, n).astype(float), stats.poisson(3.0)),
    }


def _true_tail(dist: Any, low: float, high: float) -> float:
    """P(X < low) + P(X > high) under the distribution (strict, also for discrete ones)."""
    below = dist.cdf(np.nextafter(low, -np.inf))
    return float(below + dist.sf(high))


def _flag_rate(ks: np.ndarray, n: int, ratio: float, ref_rows: int, members: int) -> float:
    z_crit = z_upper(CFG.outlier_alpha / members)
    flags = [
        rate_flagged(
            float(k), n, ratio, ref_rows, z_crit, CFG.outlier_min_count, CFG.outlier_rate_floor
        )
        for k in ks.tolist()
    ]
    return float(np.mean(flags))


def features(rng: np.random.Generator, refs: int, windows: int) -> list[dict[str, Any]]:
    out = []
    for name, (draw, dist) in _dists().items():
        for ref_rows in (10_000, 100_000):
            fences = []
            for _ in range(refs):
                ref = draw(rng, ref_rows)
                fence = fence_from_data(ref, _full_quantiles(ref))
                fences.append((fence.ratio or 0.0, _true_tail(dist, fence.low, fence.high)))
            for n in WINDOWS_N:
                row: dict[str, Any] = {"dist": name, "N": ref_rows, "n": n}
                row["ratio"] = float(np.mean([r for r, _ in fences]))
                row["true"] = float(np.mean([p for _, p in fences]))
                for members in (1, 20):
                    flagged = [
                        _flag_rate(rng.binomial(n, p, size=windows), n, r, ref_rows, members)
                        for r, p in fences
                    ]
                    row[f"false_alarm_m{members}"] = float(np.mean(flagged))
                for c in (0.002, 0.005, 0.02):
                    hit = [
                        _flag_rate(
                            rng.binomial(n, p + c * (1 - p), size=windows), n, r, ref_rows, 20
                        )
                        for r, p in fences
                    ]
                    row[f"power_{c}"] = float(np.mean(hit))
                out.append(row)
    return out


def _full_quantiles(ref: np.ndarray) -> tuple[float, ...]:
    from modelmon.drift import REFERENCE_QUANTILE_PROBS

    return tuple(float(v) for v in np.quantile(ref, REFERENCE_QUANTILE_PROBS))


def _rows_draw(kind: str, flip: bool) -> Callable[[np.random.Generator, int], np.ndarray]:
    cov = np.eye(5)
    cov[0, 1] = cov[1, 0] = -0.8 if flip else 0.8
    cov[2, 3] = cov[3, 2] = 0.5

    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        z = rng.multivariate_normal(np.zeros(5), cov, size=n)
        if kind == "t(5)":
            z = z / np.sqrt(rng.chisquare(5, size=(n, 1)) / 5)
        return np.asarray(z)

    return draw


def rows(rng: np.random.Generator, refs: int, windows: int) -> list[dict[str, Any]]:
    out = []
    for kind in ("normal", "t(5)"):
        same, flipped = _rows_draw(kind, False), _rows_draw(kind, True)
        ref_rows = 20_000
        pairs = []
        for _ in range(max(refs // 10, 5)):
            joint = joint_from_data([f"x{i}" for i in range(5)], same(rng, ref_rows))
            assert joint is not None and joint.ratio is not None
            p = float(np.mean(joint.outliers(same(rng, 1_000_000))))
            q = float(np.mean(joint.outliers(flipped(rng, 200_000))))
            pairs.append((joint.ratio, p, q))
        for n in WINDOWS_N:
            row: dict[str, Any] = {"dist": kind, "N": ref_rows, "n": n}
            row["ratio"] = float(np.mean([r for r, _, _ in pairs]))
            row["true"] = float(np.mean([p for _, p, _ in pairs]))
            row["flipped_share"] = float(np.mean([q for _, _, q in pairs]))
            reps = max(windows * refs // len(pairs), windows)
            alarms = [
                _flag_rate(rng.binomial(n, p, size=reps), n, r, ref_rows, 1) for r, p, _ in pairs
            ]
            row["false_alarm_m1"] = float(np.mean(alarms))
            for c in (0.01, 0.05):
                row[f"power_{c}"] = float(
                    np.mean(
                        [
                            _flag_rate(
                                rng.binomial(n, (1 - c) * p + c * q, size=reps), n, r, ref_rows, 1
                            )
                            for r, p, q in pairs
                        ]
                    )
                )
            out.append(row)
    return out


def _table(rows_: list[dict[str, Any]], cols: list[str]) -> str:
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows_:
        cells = []
        for c in cols:
            v = r[c]
            cells.append(
                f"{v:.2e}"
                if isinstance(v, float) and v and v < 0.01
                else (f"{v:.3f}" if isinstance(v, float) else str(v))
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--refs", type=int, default=200)
    ap.add_argument("--windows", type=int, default=200)
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    feats = features(rng, args.refs, args.windows)
    print("Per feature (fences; alpha=0.01, min count 10, floor 0.001):")
    print(
        _table(
            feats,
            [
                "dist",
                "N",
                "n",
                "ratio",
                "true",
                "false_alarm_m1",
                "false_alarm_m20",
                "power_0.002",
                "power_0.005",
                "power_0.02",
            ],
        )
    )
    joint = rows(rng, args.refs, args.windows)
    print("\nRows (Mahalanobis, 5 features; power: correlation flip of 2 features):")
    print(
        _table(
            joint,
            [
                "dist",
                "N",
                "n",
                "ratio",
                "true",
                "flipped_share",
                "false_alarm_m1",
                "power_0.01",
                "power_0.05",
            ],
        )
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"features": feats, "rows": joint}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
