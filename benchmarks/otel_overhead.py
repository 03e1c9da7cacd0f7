"""The cost of OpenTelemetry export: @monitored with ``export_otel`` running, against without.

    python benchmarks/otel_overhead.py [--rounds 5] [--interval 0.25] [--quick] [--json out.json]

Both sides call a trivial predict function decorated with ``@modelmon.monitored`` (20
numeric features in dict rows, a 20-feature reference, so every export carries the
drift families too) on a shuffled pool of distinct rows, a Prometheus scrape every
10,000 calls. The ``exported`` side also runs ``modelmon.otel.export_otel`` pushing
every ``--interval`` seconds to an in-process exporter that counts and drops the data
(no network: what is measured is modelmon's collection and the SDK's translation).
Each timed run lasts long enough for several exports; only the exports that happen
inside the timed window are counted (the final one at shutdown is not).

Reported: the exports per run and data points per export, the CPU time per export
(the difference of the two sides' process CPU time divided by the exports of the run),
and the ratio of the added per-call cost with and without export at that interval.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData

sys.path.insert(0, str(Path(__file__).resolve().parent))

import overhead
from _harness import Figure, Report, Stat, added, header, interleave, parser, ratios, version

import modelmon.otel


class CountingExporter(MetricExporter):
    """Accepts and drops everything; counts exports and data points while ``armed``."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False
        self.exports = 0
        self.points = 0
        self.lock = threading.Lock()

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        points = 0
        for rm in metrics_data.resource_metrics:
            for sm in rm.scope_metrics:
                points += sum(len(m.data.data_points) for m in sm.metrics)
        with self.lock:
            if self.armed:
                self.exports += 1
                self.points += points
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--interval", type=float, default=0.25, help="seconds between exports")
    p.add_argument("--calls", type=int, default=600_000, help="calls per side per round")
    args = p.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    calls = 20_000 if args.quick else args.calls
    interval = 0.05 if args.quick else args.interval
    report = Report(
        "otel_overhead.py",
        "OpenTelemetry export cost (exports happening inside the timed runs)",
        "python benchmarks/otel_overhead.py",
        rounds,
    )
    report.peers = {"opentelemetry-sdk": version("opentelemetry-sdk") or "missing"}
    header(report)
    case = overhead.Case("dict_ref", "dict row, 20 numeric + reference", reference=True)
    case.calls = calls
    rng = np.random.default_rng(0)
    inputs = case.inputs(rng, overhead.POOL)
    profile = case.profile(rng)
    sink = CountingExporter()
    runs: list[tuple[int, int, float]] = []  # exports, points, wall seconds

    def side(export: bool) -> Any:
        def run() -> float:
            fns, scrape, close = overhead.build_side("modelmon", case, profile)
            handle = modelmon.otel.export_otel(sink, interval_s=interval) if export else None
            order = overhead.schedule(rng, calls)
            before = (sink.exports, sink.points)
            try:
                with sink.lock:
                    sink.armed = export
                w0, t0 = time.perf_counter(), time.process_time()
                overhead.drive(fns, inputs, order, False, scrape)
                cpu = time.process_time() - t0
                wall = time.perf_counter() - w0
                with sink.lock:
                    sink.armed = False
                if export:
                    runs.append((sink.exports - before[0], sink.points - before[1], wall))
                return cpu
            finally:
                if handle is not None:
                    handle.shutdown()
                close()

        return run

    def bare() -> float:
        order = overhead.schedule(rng, calls)
        fn = case.model()
        t0 = time.process_time()
        overhead.drive([fn], inputs, order, False, None)
        return time.process_time() - t0

    per = interleave({"bare": bare, "plain": side(False), "exported": side(True)}, rounds)
    kept = runs[1:]  # the warm-up round's run dropped
    exports = [float(e) for e, _, _ in kept]
    report.add(
        Figure(
            "exports_per_run",
            f"exports inside each timed run (interval {interval:g} s)",
            "exports",
            Stat.of(exports),
        )
    )
    report.add(
        Figure(
            "points_per_export",
            "data points per export",
            "points",
            Stat.of([pt / max(e, 1) for e, pt, _ in kept]),
        )
    )
    report.add(
        Figure("run_wall_s", "wall time of one exported run", "s", Stat.of([w for _, _, w in kept]))
    )
    per_export = [
        (x - p) / max(e, 1) * 1e3
        for x, p, e in zip(per["exported"], per["plain"], exports, strict=True)
    ]
    report.add(
        Figure(
            "cpu_per_export_ms",
            "process CPU per export (exported - plain) / exports",
            "ms",
            Stat.of(per_export),
        )
    )
    plain_added = added(per["plain"], per["bare"])
    exp_added = added(per["exported"], per["bare"])
    report.add(
        Figure(
            "plain_us",
            "modelmon added per call, no export",
            "us/call",
            Stat.of(plain_added).scaled(1e6 / calls),
        )
    )
    report.add(
        Figure(
            "exported_us",
            f"modelmon added per call, export every {interval:g} s",
            "us/call",
            Stat.of(exp_added).scaled(1e6 / calls),
        )
    )
    report.add(
        Figure(
            "ratio",
            f"added cost with / without export every {interval:g} s",
            "x",
            ratios(exp_added, plain_added),
        )
    )
    if min(exports) < 2:
        report.note("fewer than 2 exports in some run: the per-export cost is imprecise")
    report.write(args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
