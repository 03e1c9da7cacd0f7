"""Bulk sketching: a 300,000 x 20 float batch into modelmon's drift sketches, against whylogs.

    benchmarks/.venv-peers/bin/python benchmarks/bulk_sketch.py [--rounds 5] [--quick]

Both sides start from the same float matrix (a pandas DataFrame of it for whylogs,
built before the timer) and end with per-column distribution sketches: modelmon folds
it into a fresh ``DriftAggregate`` (reference bins, quantile sketches, moments);
whylogs runs ``whylogs.log(df)``. Process CPU time per round, interleaved; the ratio
is taken per round. Without whylogs only modelmon's throughput is printed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Figure, Report, Stat, header, interleave, parser, ratios, version

from modelmon.aggregates.drift import DriftAggregate
from modelmon.batch import Batch, FeatureFrame
from modelmon.profile import ReferenceProfile

COLS = 20


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--rows", type=int, default=300_000)
    args = p.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    rows = 20_000 if args.quick else args.rows
    report = Report(
        "bulk_sketch.py",
        f"Bulk sketching of {rows:,} x {COLS} floats",
        "benchmarks/.venv-peers/bin/python benchmarks/bulk_sketch.py",
        rounds,
    )
    report.peers = {"whylogs": version("whylogs") or "missing"}
    header(report)
    rng = np.random.default_rng(0)
    profile = ReferenceProfile.from_data(rng.normal(size=(100_000, COLS)), created_at=0.0)
    x = rng.normal(0.1, 1.1, size=(rows, COLS))
    mask = np.zeros(x.shape, dtype=bool)
    frame = FeatureFrame(tuple(profile.features), x, mask, mask, {})
    empty = np.zeros(0)
    batch = Batch(100.0, empty, np.zeros(0, dtype=np.int64), (), empty, (), frame)

    def cpu(fn: Any) -> Any:
        def run() -> float:
            t0 = time.process_time()
            fn()
            return time.process_time() - t0

        return run

    sides = {"modelmon": cpu(lambda: DriftAggregate(profile).fold(batch))}
    try:
        import pandas as pd
        import whylogs  # type: ignore[import-not-found]

        df = pd.DataFrame(x, columns=list(profile.features))
        sides["whylogs"] = cpu(lambda: whylogs.log(df))
    except ImportError:
        report.note("whylogs is not importable here: no side-by-side ratio (run make bench)")
    per = interleave(sides, rounds)
    report.add(
        Figure(
            "modelmon_ms",
            "modelmon DriftAggregate.fold: CPU",
            "ms",
            Stat.of(per["modelmon"]).scaled(1e3),
        )
    )
    report.add(
        Figure(
            "modelmon_mvalues_s",
            "modelmon throughput",
            "M values/s",
            Stat.of([x.size / t / 1e6 for t in per["modelmon"]]),
            goal=">= 20",
        )
    )
    if "whylogs" in per:
        report.add(
            Figure(
                "whylogs_ms",
                "whylogs.log(df): CPU",
                "ms",
                Stat.of(per["whylogs"]).scaled(1e3),
                peer="whylogs",
            )
        )
        report.add(
            Figure(
                "speedup",
                "whylogs CPU / modelmon CPU (same rows)",
                "x",
                ratios(per["whylogs"], per["modelmon"]),
                goal=">= 20",
                peer="whylogs",
            )
        )
    report.write(args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
