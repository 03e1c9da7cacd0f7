"""Per-call cost of @monitored against what a prometheus-client user writes, case by case.

    python benchmarks/overhead.py [--rounds 5] [--quick] [--only CASE ...] [--json out.json]

For each case (input shape, reference or not, sync or async, one or ten models; with a
reference the outlier counters are on unless the case says ``outliers=False``) the
same trivial predict function is called on a pool of distinct inputs, shuffled anew
every round (as a server sees them), by five sides in one process:

- ``bare``: the function alone;
- ``modelmon``: ``@modelmon.monitored`` (folds included, a fresh registry);
- ``prom``: prometheus-client ``Histogram.time()`` plus a ``Counter.inc()`` per call,
  the minimum a prometheus-client user writes for latency and request counts;
- ``prom-hist``: ``Histogram.time()`` alone (printed for comparison with older figures);
- ``otel``: the OpenTelemetry SDK recording a histogram and a counter per call.

Every side scrapes its registry (or reads its metric reader) every 10,000 calls
(modelmon as its ``/metrics`` endpoints do, prometheus-client with ``generate_latest``).
Measured: process CPU time of all threads (so work moved to the background folder is
counted), per call, minus the bare call's cost (added cost); ratios are taken per
round and reported as median [min-max] over the rounds after one warm-up round. Each
side is built (a fresh monitor or registry) and ``gc.collect()`` runs before its
timed calls, so a garbage collection of what building it left behind is not counted
as a per-call cost (every side alike; collections the calls and scrapes themselves
trigger are counted).
A second phase measures the caller's wall-clock latency per call (p50/p99/p99.9,
the function's own time included) for modelmon and prom, interleaved the same way.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Figure, Report, Stat, added, header, interleave, parser, ratios, version

import modelmon
from modelmon.exporters.exposition import generate_text
from modelmon.profile import ReferenceProfile

SCRAPE_EVERY = 10_000
POOL = 2048
REF_ROWS = 5000
SIDES = ("bare", "modelmon", "prom", "prom-hist", "otel")


# --- the cases ------------------------------------------------------------------------


@dataclass
class Case:
    """One input shape: how to make inputs, the model's output, the monitor's options."""

    key: str
    label: str
    numeric: int = 20
    categorical: int = 0
    categories: int = 10
    form: str = "dict"  # dict | numpy | batch
    batch: int = 1
    reference: bool = False
    is_async: bool = False
    monitors: int = 1
    calls: int = 60_000
    goal: str | None = None  # goal of issue 15 for the ratio vs prom
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        num = [f"x{i}" for i in range(self.numeric)]
        return num + [f"c{i}" for i in range(self.categorical)]

    def inputs(self, rng: np.random.Generator, n: int) -> list[Any]:
        """``n`` distinct inputs of this case's form."""
        x = rng.normal(loc=rng.normal(size=self.numeric), size=(n * self.batch, self.numeric))
        cats = rng.integers(0, self.categories, size=(n * self.batch, self.categorical))
        if self.form == "numpy":
            return list(x)
        if self.form == "batch":
            return [x[i * self.batch : (i + 1) * self.batch] for i in range(n)]
        out = []
        for i in range(n):
            row: dict[str, Any] = {f"x{j}": float(v) for j, v in enumerate(x[i])}
            row.update({f"c{j}": f"v{v}" for j, v in enumerate(cats[i])})
            out.append(row)
        return out

    def profile(self, rng: np.random.Generator) -> ReferenceProfile:
        rows = self.inputs(rng, REF_ROWS // self.batch)
        data: Any = np.vstack(rows) if self.form != "dict" else rows
        cats = [f"c{i}" for i in range(self.categorical)]
        return ReferenceProfile.from_data(
            data, feature_names=self.names, categorical=cats, created_at=0.0
        )

    def model(self) -> Callable[[Any], Any]:
        out: Any = np.full(self.batch, 0.5) if self.form == "batch" else 0.5
        if self.is_async:

            async def apredict(x: Any) -> Any:
                return out

            return apredict

        def predict(x: Any) -> Any:
            return out

        return predict


def cases(quick: bool) -> list[Case]:
    c = [
        Case("dict", "dict row, 20 numeric", goal="<= 1.0"),
        Case("dict_ref", "dict row, 20 numeric + reference", reference=True, goal="<= 1.25"),
        # Segments (issue 16): the same input with and without segment= on its categorical.
        Case("dict_c1", "dict row, 20 numeric + 1 categorical", categorical=1),
        Case(
            "dict_c1_seg",
            "dict row, 20 numeric + 1 categorical, segment= on it (5 values)",
            categorical=1,
            options={"segment": "c0", "segments": [f"v{i}" for i in range(5)]},
        ),
        Case(
            "dict_c1_ref",
            "dict row, 20 numeric + 1 categorical + reference",
            categorical=1,
            reference=True,
        ),
        Case(
            "dict_c1_ref_seg",
            "dict row, 20 numeric + 1 categorical + reference, segment= (top 10)",
            categorical=1,
            reference=True,
            options={"segment": "c0"},
        ),
        Case(
            "dict_ref_no_outliers",
            "dict row, 20 numeric + reference, outliers=False",
            reference=True,
            options={"outliers": False},
        ),
        Case("numpy", "numpy 1-D row, 20 floats", form="numpy", goal="<= 1.0"),
        Case(
            "numpy_ref",
            "numpy 1-D row, 20 floats + reference",
            form="numpy",
            reference=True,
            goal="<= 1.25",
        ),
        Case("batch", "64-row numpy batch", form="batch", batch=64, calls=20_000),
        Case(
            "batch_ref",
            "64-row numpy batch + reference",
            form="batch",
            batch=64,
            reference=True,
            calls=10_000,
            goal="<= 2.0",
        ),
        Case(
            "batch_ref_no_outliers",
            "64-row numpy batch + reference, outliers=False",
            form="batch",
            batch=64,
            reference=True,
            calls=10_000,
            options={"outliers": False},
        ),
        Case("async", "async predict, dict row", is_async=True, goal="<= 1.0"),
        Case(
            "async_ref",
            "async predict, dict row + reference",
            is_async=True,
            reference=True,
            goal="<= 1.25",
        ),
        Case("num10_ref", "10 numeric + reference", numeric=10, reference=True),
        Case(
            "cat10_ref",
            "10 numeric + 10 categorical (10 categories) + reference",
            numeric=10,
            categorical=10,
            reference=True,
            calls=20_000,
        ),
        Case(
            "cat100_ref",
            "10 numeric + 10 categorical (100 categories) + reference",
            numeric=10,
            categorical=10,
            categories=100,
            reference=True,
            calls=20_000,
        ),
        Case("num100_ref", "100 numeric + reference", numeric=100, reference=True, calls=20_000),
        Case(
            "num500_ref",
            "500 numeric + reference (max_features=500)",
            numeric=500,
            reference=True,
            # A scrape every 10,000 calls, as the other cases (at 4,000 calls a round, one
            # scrape per 4,000: 2.5 times their scrape and view cost per call).
            calls=10_000,
            options={"max_features": 500},
        ),
        Case(
            "ten_models_ref",
            "10 monitors x 20 numeric + reference, one registry",
            reference=True,
            monitors=10,
            calls=60_000,
        ),
    ]
    if quick:
        for case in c:
            case.calls = max(case.calls // 50, 300)
    return c


# --- the sides ------------------------------------------------------------------------

Built = tuple[list[Callable[[Any], Any]], Callable[[], Any] | None, Callable[[], None]]


def _nothing() -> None:
    return None


def build_side(side: str, case: Case, profile: ReferenceProfile | None) -> Built:
    """The callables of one side (one per model), its scrape, and its clean-up."""
    models = [f"m{i}" for i in range(case.monitors)]
    predict = case.model()
    if side == "bare":
        return [predict] * case.monitors, None, _nothing
    if side == "modelmon":
        registry = CollectorRegistry()
        fns = [
            modelmon.monitored(
                model=m,
                version="1",
                registry=registry,
                reference=profile,
                feature_names=case.names,
                categorical=[n for n in case.names if n.startswith("c")],
                **case.options,
            )(case.model())
            for m in models
        ]

        def close() -> None:
            for fn in fns:
                fn.monitor.close()  # type: ignore[attr-defined]

        # As modelmon's /metrics endpoints scrape (generate_latest's bytes, cached render).
        return fns, lambda: generate_text(registry), close
    if side in ("prom", "prom-hist"):
        registry = CollectorRegistry()
        hist = Histogram("bench_seconds", "latency", ["model", "version"], registry=registry)
        count = Counter("bench_requests", "requests", ["model", "version"], registry=registry)
        fns = [
            _prom_fn(predict, hist.labels(m, "1"), count.labels(m, "1") if side == "prom" else None)
            for m in models
        ]
        return fns, lambda: generate_latest(registry), _nothing
    if side == "otel":
        return _otel_side(predict, models)
    raise ValueError(side)


def _prom_fn(predict: Any, hist: Any, count: Any) -> Callable[[Any], Any]:
    if asyncio.iscoroutinefunction(predict):
        # prometheus-client's Histogram.time() does not time coroutines: what users write.
        async def timed(x: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await predict(x)
            finally:
                hist.observe(time.perf_counter() - t0)
                if count is not None:
                    count.inc()

        return timed
    if count is None:
        return hist.time()(predict)  # type: ignore[no-any-return]
    timed_fn = hist.time()(predict)
    inc = count.inc

    def fn(x: Any) -> Any:
        result = timed_fn(x)
        inc()
        return result

    return fn


def _otel_side(predict: Any, models: list[str]) -> Built:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("bench")
    hist = meter.create_histogram("bench.duration", unit="s")
    counter = meter.create_counter("bench.requests")
    is_async = asyncio.iscoroutinefunction(predict)

    def make(model: str) -> Callable[[Any], Any]:
        attrs = {"model": model, "version": "1"}
        if is_async:

            async def afn(x: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return await predict(x)
                finally:
                    hist.record(time.perf_counter() - t0, attrs)
                    counter.add(1, attrs)

            return afn

        def fn(x: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return predict(x)
            finally:
                hist.record(time.perf_counter() - t0, attrs)
                counter.add(1, attrs)

        return fn

    return [make(m) for m in models], reader.get_metrics_data, provider.shutdown


# --- running --------------------------------------------------------------------------


def schedule(rng: np.random.Generator, calls: int) -> list[int]:
    """Indices into the input pool: every input once per pass, each pass shuffled."""
    passes = [rng.permutation(POOL) for _ in range(-(-calls // POOL))]
    return np.concatenate(passes)[:calls].tolist()


def drive(
    fns: list[Callable[[Any], Any]],
    inputs: list[Any],
    order: list[int],
    is_async: bool,
    scrape: Callable[[], Any] | None,
) -> None:
    """Call the side on the inputs in ``order``, round-robin over models, scraping now and then."""
    k = len(fns)
    for start in range(0, len(order), SCRAPE_EVERY):
        chunk = order[start : start + SCRAPE_EVERY]
        if is_async:
            for i, idx in enumerate(chunk):
                coro = fns[i % k](inputs[idx])
                try:  # noqa: SIM105 - contextlib.suppress costs more than the call itself
                    coro.send(None)
                except StopIteration:
                    pass
        elif k == 1:
            fn = fns[0]
            for idx in chunk:
                fn(inputs[idx])
        else:
            for i, idx in enumerate(chunk):
                fns[i % k](inputs[idx])
        if scrape is not None:
            scrape()


def cpu_side(
    side: str, case: Case, profile: Any, inputs: list[Any], rng: Any
) -> Callable[[], float]:
    def run() -> float:
        fns, scrape, close = build_side(side, case, profile)
        order = schedule(rng, case.calls)
        gc.collect()  # the side's construction garbage is not a per-call cost
        try:
            t0 = time.process_time()
            drive(fns, inputs, order, case.is_async, scrape)
            return (time.process_time() - t0) / case.calls
        finally:
            close()

    return run


def latency_side(
    side: str, case: Case, profile: Any, inputs: list[Any], rng: Any, store: dict[str, list[Any]]
) -> Callable[[], float]:
    """Wall-clock nanoseconds of each call; keeps (p50, p99, p99.9) per round in ``store``."""

    def run() -> float:
        fns, _, close = build_side(side, case, profile)
        order = schedule(rng, case.calls * 2)
        gc.collect()  # as in cpu_side
        out = np.empty(len(order), dtype=np.int64)
        clock = time.perf_counter_ns
        k = len(fns)
        try:
            for i, idx in enumerate(order):
                fn = fns[i % k]
                t0 = clock()
                if case.is_async:
                    coro = fn(inputs[idx])
                    try:  # noqa: SIM105 - as in drive()
                        coro.send(None)
                    except StopIteration:
                        pass
                else:
                    fn(inputs[idx])
                out[i] = clock() - t0
        finally:
            close()
        store.setdefault(side, []).append(np.percentile(out, [50, 99, 99.9]) / 1000.0)
        return 0.0

    return run


def measure(case: Case, rounds: int, report: Report) -> dict[str, Stat]:
    rng = np.random.default_rng(0)
    inputs = case.inputs(rng, POOL)
    profile = case.profile(rng) if case.reference else None
    print(f"- {case.label} ({case.calls} calls/side/round)", flush=True)
    sides = {s: cpu_side(s, case, profile, inputs, rng) for s in SIDES}
    per = interleave(sides, rounds)
    mm = added(per["modelmon"], per["bare"])
    prom = added(per["prom"], per["bare"])
    out = {"modelmon_us": Stat.of(mm).scaled(1e6)}
    key = case.key
    report.add(
        Figure(f"{key}.modelmon_us", f"{case.label}: modelmon added", "us/call", out["modelmon_us"])
    )
    report.add(
        Figure(
            f"{key}.prom_us",
            f"{case.label}: prom Histogram.time()+Counter added",
            "us/call",
            Stat.of(prom).scaled(1e6),
        )
    )
    out["ratio_prom"] = report.add(
        Figure(
            f"{key}.ratio_prom",
            f"{case.label}: modelmon / prom Histogram.time()+Counter",
            "x",
            ratios(mm, prom),
            goal=case.goal,
            issue=15 if case.goal else None,
            peer="prometheus-client",
        )
    ).stat
    report.add(
        Figure(
            f"{key}.ratio_prom_hist",
            f"{case.label}: modelmon / prom Histogram.time()",
            "x",
            ratios(mm, added(per["prom-hist"], per["bare"])),
            peer="prometheus-client",
        )
    )
    report.add(
        Figure(
            f"{key}.ratio_otel",
            f"{case.label}: modelmon / OTel SDK hist+counter",
            "x",
            ratios(mm, added(per["otel"], per["bare"])),
            goal="<= 1.0",
            issue=15,
            peer="opentelemetry-sdk",
        )
    )
    return out


def measure_latency(case: Case, rounds: int, report: Report) -> None:
    rng = np.random.default_rng(1)
    inputs = case.inputs(rng, POOL)
    profile = case.profile(rng) if case.reference else None
    store: dict[str, list[Any]] = {}
    sides = {s: latency_side(s, case, profile, inputs, rng, store) for s in ("modelmon", "prom")}
    interleave(sides, rounds)
    for side in ("modelmon", "prom"):
        got = np.array(store[side][1:])  # the warm-up round dropped
        for col, q in enumerate(("p50", "p99", "p99.9")):
            goal = "<= 50" if side == "modelmon" and q == "p99.9" else None
            report.add(
                Figure(
                    f"{case.key}.latency_{side}_{q}",
                    f"{case.label}: {side} caller {q}",
                    "us",
                    Stat.of(got[:, col].tolist()),
                    goal=goal,
                    issue=15 if goal else None,
                )
            )


LATENCY_CASES = ("dict", "numpy", "batch", "batch_ref", "num500_ref")


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--only", nargs="*", default=None, help="case keys to run")
    p.add_argument("--note", action="append", default=[], help="a note for the page (load...)")
    args = p.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    report = Report(
        "overhead.py",
        "Per-call cost against prometheus-client and the OTel SDK",
        "python benchmarks/overhead.py",
        rounds,
    )
    report.peers = {d: version(d) or "missing" for d in ("prometheus-client", "opentelemetry-sdk")}
    header(report)
    for text in args.note:
        report.note(text)
    measured: dict[str, dict[str, Stat]] = {}
    for case in cases(args.quick):
        if args.only and case.key not in args.only:
            continue
        measured[case.key] = measure(case, rounds, report)
    _slopes(measured, report)
    print("caller latency (wall clock per call, the function's own time included)", flush=True)
    for case in cases(args.quick):
        if case.key in LATENCY_CASES and (not args.only or case.key in args.only):
            measure_latency(case, rounds, report)
    report.write(args.json)
    return 0


def _slopes(measured: dict[str, dict[str, Stat]], report: Report) -> None:
    """Cost per added feature, from the medians (issue 15: linear, no super-linear step)."""
    got = {k: v["modelmon_us"].median for k, v in measured.items()}
    if {"dict_ref", "num500_ref"} <= got.keys():
        slope = (got["num500_ref"] - got["dict_ref"]) / 480 * 1000
        report.add(
            Figure(
                "slope.numeric_ns",
                "per added numeric feature, 20 -> 500, with reference",
                "ns",
                Stat(slope, slope, slope),
                goal="<= 60",
                issue=15,
                note="from the medians of two cases",
            )
        )
    if {"dict_ref", "num100_ref"} <= got.keys():
        slope = (got["num100_ref"] - got["dict_ref"]) / 80 * 1000
        report.add(
            Figure(
                "slope.numeric100_ns",
                "per added numeric feature, 20 -> 100, with reference",
                "ns",
                Stat(slope, slope, slope),
                goal="<= 60",
                issue=15,
                note="from the medians of two cases",
            )
        )
    if {"num10_ref", "cat10_ref"} <= got.keys():
        slope = (got["cat10_ref"] - got["num10_ref"]) / 10 * 1000
        report.add(
            Figure(
                "slope.categorical_ns",
                "per added categorical feature (10 categories)",
                "ns",
                Stat(slope, slope, slope),
                goal="<= 120",
                issue=15,
                note="10 numeric + 10 categorical minus 10 numeric, from the medians",
            )
        )


if __name__ == "__main__":
    raise SystemExit(main())
