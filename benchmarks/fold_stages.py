"""Where the per-call cost of one ``overhead.py`` case goes, stage by stage (no peer).

    python benchmarks/fold_stages.py [--rounds 3] [--only CASE ...] [--quick]

Runs the modelmon side of ``overhead.py``'s cases exactly as that script does (the same
pool of distinct inputs, shuffled, a scrape every 10,000 calls) with the fold's stages
wrapped: extraction (``features_frame``), the drift fold, the drift views' recompute,
the outlier, input-health and traffic folds. Each wrapper adds the *thread* CPU time of
its stage (``time.thread_time``: the folder thread's and the callers' alike, waiting
excluded) and the script prints it per call next to the process CPU time per call. The
difference is the hot path, the scrape's rendering and what no wrapper covers. The
per-feature figures of docs/fold-cost.md are differences of these between cases.

A profile, not a comparison: nothing here is collected by ``run.py``.
"""

from __future__ import annotations

import argparse
import collections
import functools
import gc
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import overhead  # the cases and drivers of overhead.py

import modelmon.fold as fold_module
from modelmon.aggregates import drift, outliers, traffic

SPENT: collections.Counter[str] = collections.Counter()


def _timed(owner: Any, name: str, stage: str) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            SPENT[stage] += time.thread_time() - t0

    setattr(owner, name, wrapper)


STAGES = (
    (fold_module, "features_frame", "extraction (features_frame)"),
    (drift.DriftAggregate, "fold", "drift fold"),
    (drift.DriftAggregate, "_compute_views", "drift views (recompute)"),
    (outliers.OutlierAggregate, "fold", "outliers fold"),
    (traffic.InputHealthAggregate, "fold", "input health fold"),
    (traffic.TrafficAggregate, "fold", "traffic fold"),
)


def run_case(case: overhead.Case, rounds: int) -> dict[str, float]:
    """ns per call of each stage, and of the whole process, over ``rounds`` runs."""
    rng = np.random.default_rng(1)
    profile = case.profile(rng) if case.reference else None
    inputs = case.inputs(rng, overhead.POOL)
    SPENT.clear()
    calls, total = 0, 0.0
    for _ in range(rounds):
        fns, scrape, close = overhead.build_side("modelmon", case, profile)
        order = overhead.schedule(rng, case.calls)
        gc.collect()
        t0 = time.process_time()
        overhead.drive(fns, inputs, order, case.is_async, scrape)
        total += time.process_time() - t0
        calls += case.calls
        close()
    out = {"process CPU per call": total / calls * 1e9}
    out.update({stage: SPENT[stage] / calls * 1e9 for _, _, stage in STAGES})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=["dict_ref", "num100_ref", "num500_ref"])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs")
    args = parser.parse_args()
    for owner, name, stage in STAGES:
        _timed(owner, name, stage)
    cases = {c.key: c for c in overhead.cases(args.quick)}
    for key in args.only:
        figures = run_case(cases[key], 1 if args.quick else args.rounds)
        print(f"- {cases[key].label}")
        for stage, ns in figures.items():
            print(f"  {stage:32s} {ns:10,.0f} ns/call")


if __name__ == "__main__":
    main()
