"""Per-call cost of the scale-6 exponential sketch mapping, against the former bucket width.

    python benchmarks/sketch_mapping.py [--calls 300000] [--rounds 5] [--scrape-every 10000]

A trivial predict function decorated with ``@modelmon.monitored`` and a 20-feature
reference profile (bins, quantile sketches, windowed drift), fed single-row dicts of 20
normal features, a Prometheus scrape every ``--scrape-every`` calls. Two sides, the same
code: the sketches at scale 6 (OpenTelemetry's exponential mapping, 0.54% accuracy) and at
the former mapping's bucket width (gamma = 1.01 / 0.99, i.e. scale
log2(1 / log2(gamma)) = 5.11, 1% accuracy): only the grid's density differs. Rounds
alternate the order; process CPU time (all threads); the added cost per call over the bare
function and the per-round ratio are printed as median [range]. Also: ``np.log`` against
``np.log2`` per value (the key computation changed from one to the other).
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest

import modelmon
from modelmon.profile import ReferenceProfile
from modelmon.sketches import mapping

FEATURES = [f"x{i}" for i in range(20)]
LEGACY_SCALE = -math.log2(math.log2(1.01 / 0.99))


def model(row: dict[str, float]) -> float:
    return 0.5


def run_calls(
    fn: Callable[[Any], Any],
    rows: list[dict[str, float]],
    scrape: Callable[[], Any] | None,
    every: int,
) -> float:
    gc.collect()
    start = time.process_time()
    for i in range(0, len(rows), every):
        for row in rows[i : i + every]:
            fn(row)
        if scrape is not None:
            scrape()
    return time.process_time() - start


def side(rows: list[dict[str, float]], legacy: bool, every: int) -> float:
    original = mapping.scale_for
    if legacy:
        mapping.scale_for = lambda a: LEGACY_SCALE  # type: ignore[assignment,return-value]
    try:
        registry = CollectorRegistry()
        profile = ReferenceProfile.from_data(rows[:5000], feature_names=FEATURES)
        fn = modelmon.monitored(model="bench", version="1", registry=registry, reference=profile)(
            model
        )
        seconds = run_calls(fn, rows, lambda: generate_latest(registry), every)
        fn.monitor.close()
        return seconds
    finally:
        mapping.scale_for = original


def log_vs_log2(n: int = 20 * 4096, repeats: int = 200) -> tuple[float, float]:
    x = np.abs(np.random.default_rng(1).normal(size=n))
    out = []
    for fn in (np.log, np.log2):
        start = time.process_time()
        for _ in range(repeats):
            fn(x)
        out.append((time.process_time() - start) / repeats / n * 1e9)
    return out[0], out[1]


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} [{min(values):.3f}-{max(values):.3f}]"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--calls", type=int, default=300_000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--scrape-every", type=int, default=10_000)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    rows = [
        dict(zip(FEATURES, map(float, rng.normal(size=20)), strict=True)) for _ in range(args.calls)
    ]
    n = len(rows)
    names = ["scale 6", "former width"]
    added: dict[str, list[float]] = {k: [] for k in names}
    ratio: list[float] = []
    for r in range(args.rounds):
        bare = run_calls(model, rows, None, args.scrape_every)
        this = {}
        for name in names[r % 2 :] + names[: r % 2]:
            this[name] = (side(rows, name != "scale 6", args.scrape_every) - bare) / n * 1e6
            added[name].append(this[name])
        ratio.append(this["scale 6"] / this["former width"])
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, {n} calls, {args.rounds} rounds "
        f"(median [range]), a scrape every {args.scrape_every} calls"
    )
    for name, values in added.items():
        print(f"added per call  {name:<13} {summary(values)} us")
    print(f"ratio scale 6 / former width: {summary(ratio)}  (target ~1.0)")
    ln, l2 = log_vs_log2()
    print(f"np.log {ln:.2f} ns/value, np.log2 {l2:.2f} ns/value")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
