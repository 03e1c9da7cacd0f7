"""Per-call overhead of @monitored with OpenTelemetry export active, against without it.

    python benchmarks/otel_overhead.py [--calls 1000000] [--repeats 5] [--interval 1.0]

Runs the core benchmark of ``benchmarks/overhead.py`` (a trivial predict function on a
single-row dict of 20 numeric features, a Prometheus scrape every 10,000 calls) twice
per repeat, alternating: once plain, once while ``modelmon.otel.export_otel`` pushes
every ``--interval`` seconds to an in-process exporter that discards the data. CPU time
of the whole process is measured, so the export thread's work is counted. Prints the
added cost per call of each side (best of ``--repeats``) and their ratio (target <= 1.1).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData

sys.path.insert(0, str(Path(__file__).resolve().parent))

import overhead

import modelmon.otel


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    rows = [overhead.make_row(rng) for _ in range(args.calls)]

    bare = overhead.best(lambda: overhead.run_calls(overhead.model, rows, None), args.repeats)
    sink = DiscardExporter()
    plain: list[float] = []
    exported: list[float] = []
    for _ in range(args.repeats):  # alternate, so drifts of the machine hit both sides
        plain.append(run_plain(rows))
        exported.append(run_exported(rows, args.interval, sink))
    n = len(rows)
    added_plain = (min(plain) - bare) / n * 1e6
    added_exported = (min(exported) - bare) / n * 1e6

    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, {n} calls, "
        f"best of {args.repeats}, export every {args.interval:g} s"
    )
    print(f"bare call: {bare / n * 1e6:.3f} us")
    print(f"added per call  modelmon @monitored                  {added_plain:7.3f} us")
    print(f"added per call  modelmon @monitored + export_otel    {added_exported:7.3f} us")
    per_export = sink.points // max(sink.exports, 1)
    print(
        f"exports (timed runs plus one at each shutdown): {sink.exports}, "
        f"{per_export} data points each"
    )
    print(f"ratio with / without OTel export: {added_exported / added_plain:.2f}  (target <= 1.1)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
