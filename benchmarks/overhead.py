"""Per-call overhead of @monitored, side by side with its peers in one run.

    python benchmarks/overhead.py [--calls 200000] [--repeats 5] [--reference]

Prints, per configuration, the cost added to a trivial predict function on a single-row
dict of 20 numeric features (amortised over all calls, including every fold and a
Prometheus scrape every 10,000 calls), and the ratios against:
  (1) prometheus-client's own ``Histogram.time()`` decorator (target: ratio <= 1.0);
  (2) the OpenTelemetry SDK recording a histogram and a counter per call (target: >= 5x cheaper);
  (3) p50/p99 latency added to the caller (target: p99 added <= 50 us).
CPU time of the whole process (all threads) is measured, so work moved to the
background fold thread is counted too. Best of ``--repeats`` runs for each side.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Histogram, generate_latest

import modelmon

FEATURES = [f"x{i}" for i in range(20)]
SCRAPE_EVERY = 10_000


def make_row(rng: np.random.Generator) -> dict[str, float]:
    return {
        name: float(v) for name, v in zip(FEATURES, rng.normal(size=len(FEATURES)), strict=True)
    }


def model(row: dict[str, float]) -> float:
    return 0.5


def run_calls(
    fn: Callable[[Any], Any], rows: list[dict[str, float]], scrape: Callable[[], Any] | None
) -> float:
    """CPU seconds (all threads) to call ``fn`` on every row, scraping every 10k calls."""
    gc.collect()
    start = time.process_time()
    n = len(rows)
    i = 0
    while i < n:
        end = min(i + SCRAPE_EVERY, n)
        for row in rows[i:end]:
            fn(row)
        if scrape is not None:
            scrape()
        i = end
    return time.process_time() - start


def best(fn: Callable[[], float], repeats: int) -> float:
    return min(fn() for _ in range(repeats))


def monitored_fn(
    reference: bool, rows: list[dict[str, float]]
) -> tuple[Callable[[Any], Any], Callable[[], Any]]:
    registry = CollectorRegistry()
    kwargs: dict[str, Any] = {"registry": registry}
    if reference:
        from modelmon.profile import ReferenceProfile

        kwargs["reference"] = ReferenceProfile.from_data(rows[:5000], feature_names=FEATURES)
    fn = modelmon.monitored(model="bench", version="1", **kwargs)(model)
    return fn, lambda: generate_latest(registry)


def prometheus_fn() -> tuple[Callable[[Any], Any], Callable[[], Any]]:
    registry = CollectorRegistry()
    hist = Histogram("bench_seconds", "latency", ["model", "version"], registry=registry)
    fn = hist.labels("bench", "1").time()(model)
    return fn, lambda: generate_latest(registry)


def otel_fn() -> tuple[Callable[[Any], Any], Callable[[], Any]]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("bench")
    hist = meter.create_histogram("bench.duration", unit="s")
    counter = meter.create_counter("bench.requests")
    attrs = {"model": "bench", "version": "1"}

    def fn(row: dict[str, float]) -> float:
        t0 = time.perf_counter()
        result = model(row)
        hist.record(time.perf_counter() - t0, attrs)
        counter.add(1, attrs)
        return result

    return fn, reader.get_metrics_data


def latencies(fn: Callable[[Any], Any], rows: list[dict[str, float]]) -> np.ndarray:
    out = np.empty(len(rows))
    clock = time.perf_counter_ns
    for i, row in enumerate(rows):
        t0 = clock()
        fn(row)
        out[i] = clock() - t0
    return out / 1000.0  # microseconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--reference", action="store_true", help="also run with a 20-feature reference profile"
    )
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    rows = [make_row(rng) for _ in range(args.calls)]

    bare = best(lambda: run_calls(model, rows, None), args.repeats)
    sides: dict[str, Callable[[], tuple[Callable[[Any], Any], Callable[[], Any]]]] = {
        "modelmon @monitored": lambda: monitored_fn(False, rows),
        "prometheus-client Histogram.time()": prometheus_fn,
        "OpenTelemetry SDK histogram+counter": otel_fn,
    }
    if args.reference:
        sides["modelmon @monitored + 20-feature reference"] = lambda: monitored_fn(True, rows)
    added: dict[str, float] = {}
    for name, make in sides.items():

        def once(
            make: Callable[[], tuple[Callable[[Any], Any], Callable[[], Any]]] = make,
        ) -> float:
            fn, scrape = make()
            return run_calls(fn, rows, scrape)

        added[name] = (best(once, args.repeats) - bare) / len(rows) * 1e6

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, ", end="")
    print(f"{args.calls} calls, best of {args.repeats}")
    print(f"bare call: {bare / len(rows) * 1e6:.3f} us")
    for name, us in added.items():
        print(f"added per call  {name:45s} {us:7.3f} us")
    mm = added["modelmon @monitored"]
    prom = added["prometheus-client Histogram.time()"]
    otel = added["OpenTelemetry SDK histogram+counter"]
    print(f"(1) ratio modelmon / prometheus Histogram.time(): {mm / prom:.2f}  (target <= 1.0)")
    print(f"(2) OTel SDK / modelmon: {otel / mm:.1f}x  (target >= 5x)")
    if args.reference:
        ref = added["modelmon @monitored + 20-feature reference"]
        print(f"    ratio modelmon+reference / prometheus Histogram.time(): {ref / prom:.2f}")

    fn, _ = monitored_fn(args.reference, rows)
    sample = rows[: min(len(rows), 100_000)]
    base = [latencies(model, sample) for _ in range(3)]
    mon = [latencies(fn, sample) for _ in range(3)]
    for q in (50, 99):
        b = statistics.median(float(np.percentile(x, q)) for x in base)
        m = statistics.median(float(np.percentile(x, q)) for x in mon)
        print(f"(3) p{q} latency: bare {b:.2f} us, monitored {m:.2f} us, ", end="")
        print(f"added {m - b:.2f} us (target p99 <= 50 us)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
