"""Per-call overhead of @monitored with OpenTelemetry export active, against without it.

    python benchmarks/otel_overhead.py [--calls 1000000] [--rounds 5] [--interval 1.0]

Runs the core benchmark of ``benchmarks/overhead.py`` (a trivial predict function on a
single-row dict of 20 numeric features, a Prometheus scrape every 10,000 calls) on four
sides per round, in an order rotating across rounds:

* plain, and while ``modelmon.otel.export_otel`` pushes every ``--interval`` seconds to
  an in-process exporter that discards the data (ratio target <= 1.1);
* with a 20-feature reference profile (drift: quantile sketches folded), with the
  scale-6 exponential mapping and with the former 1%-gamma bucket width (the peer:
  the same code at scale log2(1/log2(1.01/0.99)) = 5.11), ratio target ~1.0.

CPU time of the whole process is measured, so the export and fold threads' work counts.
Prints the added cost per call of each side and the per-round ratios, median [range].
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData

sys.path.insert(0, str(Path(__file__).resolve().parent))

import overhead

import modelmon.otel
from modelmon.sketches import mapping


class DiscardExporter(MetricExporter):
    """Accepts and drops everything; counts exports and data points."""

    def __init__(self) -> None:
        super().__init__()
        self.exports = 0
        self.points = 0

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        self.exports += 1
        for rm in metrics_data.resource_metrics:
            for sm in rm.scope_metrics:
                self.points += sum(len(m.data.data_points) for m in sm.metrics)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None


def run_plain(rows: list[dict[str, float]]) -> float:
    fn, scrape = overhead.monitored_fn(False, rows)
    return overhead.run_calls(fn, rows, scrape)


def run_exported(rows: list[dict[str, float]], interval_s: float, sink: DiscardExporter) -> float:
    fn, scrape = overhead.monitored_fn(False, rows)
    handle = modelmon.otel.export_otel(sink, interval_s=interval_s)
    try:
        return overhead.run_calls(fn, rows, scrape)
    finally:
        handle.shutdown()


# The former mapping's bucket width, gamma = 1.01 / 0.99 (1% accuracy), as a scale:
# 2 ** -scale = log2(gamma). Keys are still computed with log2 (measured apart below).
LEGACY_SCALE = -math.log2(math.log2(1.01 / 0.99))


def run_reference(rows: list[dict[str, float]], legacy: bool) -> float:
    """A 20-feature reference profile (drift: quantile sketches in the fold)."""
    original = mapping.scale_for
    if legacy:
        mapping.scale_for = lambda a: LEGACY_SCALE  # type: ignore[assignment,return-value]
    try:
        fn, scrape = overhead.monitored_fn(True, rows)
        return overhead.run_calls(fn, rows, scrape)
    finally:
        mapping.scale_for = original


def log_vs_log2(n: int = 20 * 4096, repeats: int = 200) -> tuple[float, float]:
    """ns per value of np.log and np.log2 on a fold-sized array (process CPU time)."""
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
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument(
        "--scrape-every", type=int, default=overhead.SCRAPE_EVERY, help="calls between scrapes"
    )
    args = parser.parse_args(argv)
    overhead.SCRAPE_EVERY = args.scrape_every
    rng = np.random.default_rng(0)
    rows = [overhead.make_row(rng) for _ in range(args.calls)]
    n = len(rows)
    sink = DiscardExporter()
    sides: dict[str, Callable[[], float]] = {
        "plain": lambda: run_plain(rows),
        "export": lambda: run_exported(rows, args.interval, sink),
        "reference": lambda: run_reference(rows, legacy=False),
        "reference, legacy width": lambda: run_reference(rows, legacy=True),
    }
    added: dict[str, list[float]] = {name: [] for name in sides}
    export_ratio: list[float] = []
    mapping_ratio: list[float] = []
    names = list(sides)
    for r in range(args.rounds):
        # Rotating order: each side runs first, second, ... in turn across rounds.
        order = names[r % len(names) :] + names[: r % len(names)]
        bare = overhead.run_calls(overhead.model, rows, None)
        this: dict[str, float] = {}
        for name in order:
            this[name] = (sides[name]() - bare) / n * 1e6
            added[name].append(this[name])
        export_ratio.append(this["export"] / this["plain"])
        mapping_ratio.append(this["reference"] / this["reference, legacy width"])

    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, {n} calls, "
        f"{args.rounds} rounds (median [range]), export every {args.interval:g} s, "
        f"a scrape every {args.scrape_every} calls"
    )
    for name, values in added.items():
        print(f"added per call  {name:<26} {summary(values)} us")
    per_export = sink.points // max(sink.exports, 1)
    print(f"exports: {sink.exports}, {per_export} data points each")
    print(f"ratio with / without OTel export:          {summary(export_ratio)}  (target <= 1.1)")
    print(
        f"ratio scale-6 / former-width sketch (20-feature reference): {summary(mapping_ratio)}"
        "  (target ~1.0)"
    )
    ln, l2 = log_vs_log2()
    print(f"np.log {ln:.2f} ns/value, np.log2 {l2:.2f} ns/value (the key computation)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
