"""Data drift of 20 features from the same raw rows: modelmon against Evidently, like for like.

    benchmarks/.venv-peers/bin/python benchmarks/drift_speed.py [--rounds 5] [--quick]

Both sides start from the same two raw float matrices (100,000 reference rows and
100,000 current rows, 20 columns, the current ones shifted) and end with a drift score
per feature:

- modelmon: ``ReferenceProfile.from_data(reference)``, one fold of the current rows
  into a ``DriftAggregate`` (its sketches), then ``drift_scores()`` (PSI, JS, KS,
  Wasserstein and live quantiles of every feature);
- Evidently: ``Report([DataDriftPreset()]).run(current, reference)`` on DataFrames of
  the same matrices (built before the timer, as modelmon's arrays are).

Measured: process CPU time and wall time of each side per round, interleaved. Also
printed, without a peer: modelmon's scores from already-built sketches (what a scrape
pays), which is a different starting point and never compared with Evidently.
Evidently is installed only in ``benchmarks/.venv-peers``; without it only modelmon's
figures are printed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Figure, Report, Stat, header, interleave, parser, ratios, version

from modelmon.aggregates.drift import DriftAggregate, _compute_view
from modelmon.batch import Batch, FeatureFrame
from modelmon.profile import ReferenceProfile

COLS = 20


def modelmon_from_raw(ref: np.ndarray, cur: np.ndarray, names: list[str]) -> dict[str, Any]:
    """Raw rows to per-feature scores, as a user of modelmon's drift API does it."""
    profile = ReferenceProfile.from_data(ref, feature_names=names, created_at=0.0)
    agg = DriftAggregate(profile)
    agg.fold(_batch(cur, names))
    return agg.drift_scores(100.0)


def _batch(cur: np.ndarray, names: list[str]) -> Batch:
    mask = np.zeros(cur.shape, dtype=bool)
    empty = np.zeros(0)
    frame = FeatureFrame(tuple(names), cur, mask, mask, {})
    return Batch(100.0, empty, np.zeros(0, dtype=np.int64), (), empty, (), frame)


def _evidently() -> Any:
    try:
        from evidently import Report as EvReport  # type: ignore[import-not-found]
        from evidently.presets import DataDriftPreset  # type: ignore[import-not-found]
    except ImportError:
        try:  # evidently < 0.7
            from evidently.metric_preset import DataDriftPreset  # type: ignore[import-not-found]
            from evidently.report import Report as EvReport  # type: ignore[import-not-found]
        except ImportError:
            return None
    return EvReport, DataDriftPreset


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--rows", type=int, default=100_000)
    args = p.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    rows = 2_000 if args.quick else args.rows
    report = Report(
        "drift_speed.py",
        f"Drift of {COLS} features from the same raw {rows:,} vs {rows:,} rows",
        "benchmarks/.venv-peers/bin/python benchmarks/drift_speed.py",
        rounds,
    )
    report.peers = {"evidently": version("evidently") or "missing"}
    header(report)
    rng = np.random.default_rng(0)
    names = [f"x{i}" for i in range(COLS)]
    ref = rng.normal(size=(rows, COLS))
    cur = rng.normal(0.1, 1.1, size=(rows, COLS))
    walls: dict[str, list[float]] = {}

    def timed(name: str, fn: Any) -> Any:
        def run() -> float:
            w0, t0 = time.perf_counter(), time.process_time()
            fn()
            walls.setdefault(name, []).append(time.perf_counter() - w0)
            return time.process_time() - t0

        return run

    sides = {"modelmon": timed("modelmon", lambda: modelmon_from_raw(ref, cur, names))}
    ev = _evidently()
    if ev is not None:
        import pandas as pd

        ev_report, preset = ev
        ref_df = pd.DataFrame(ref, columns=names)
        cur_df = pd.DataFrame(cur, columns=names)
        sides["evidently"] = timed("evidently", lambda: ev_report([preset()]).run(cur_df, ref_df))
    else:
        report.note("Evidently is not importable here: no side-by-side ratio (run make bench)")
    per = interleave(sides, rounds)
    wall = {k: v[1:] for k, v in walls.items()}  # the warm-up round dropped
    report.add(
        Figure(
            "modelmon_raw_ms",
            "modelmon, raw rows to scores: CPU",
            "ms",
            Stat.of(per["modelmon"]).scaled(1e3),
        )
    )
    report.add(
        Figure(
            "modelmon_raw_wall_ms",
            "modelmon, raw rows to scores: wall",
            "ms",
            Stat.of(wall["modelmon"]).scaled(1e3),
        )
    )
    if "evidently" in per:
        report.add(
            Figure(
                "evidently_ms",
                "Evidently DataDriftPreset, raw rows: CPU",
                "ms",
                Stat.of(per["evidently"]).scaled(1e3),
                peer="evidently",
            )
        )
        report.add(
            Figure(
                "evidently_wall_ms",
                "Evidently DataDriftPreset, raw rows: wall",
                "ms",
                Stat.of(wall["evidently"]).scaled(1e3),
                peer="evidently",
            )
        )
        report.add(
            Figure(
                "speedup_cpu",
                "Evidently CPU / modelmon CPU (same raw rows)",
                "x",
                ratios(per["evidently"], per["modelmon"]),
                peer="evidently",
            )
        )
        report.add(
            Figure(
                "speedup_wall",
                "Evidently wall / modelmon wall (same raw rows)",
                "x",
                ratios(wall["evidently"], wall["modelmon"]),
                peer="evidently",
            )
        )
    _from_sketches(ref, cur, names, rounds, report)
    report.write(args.json)
    return 0


def _from_sketches(
    ref: np.ndarray, cur: np.ndarray, names: list[str], rounds: int, report: Report
) -> None:
    """Scores from sketches already built by earlier folds (what a scrape pays); no peer."""
    profile = ReferenceProfile.from_data(ref, feature_names=names, created_at=0.0)
    agg = DriftAggregate(profile)
    agg.fold(_batch(cur, names))
    merged = agg.window.merged(100.0)
    assert merged is not None

    def run() -> float:
        t0 = time.process_time()
        for _ in range(20):
            _compute_view(agg.features, merged.features, agg.min_samples, agg.quantiles)
        return (time.process_time() - t0) / 20

    per = interleave({"sketch": run}, rounds)
    report.add(
        Figure(
            "modelmon_sketch_ms",
            "modelmon, scores from built sketches (no peer)",
            "ms",
            Stat.of(per["sketch"]).scaled(1e3),
            goal="<= 1.0",
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
