"""What segments cost: scrape CPU per segment series, fold CPU per row, memory per segment.

    python benchmarks/segments.py [--rounds 5] [--quick] [--json out.json]

One monitor, 20 numeric features and a categorical ``c0`` of 10 equally frequent values,
with a reference profile; ``segment="c0"`` with the reference's top K values, K = 0 (no
segment), 1, 5, 10. Each configuration is fed the same shuffled pool of distinct dict
rows (every value of ``c0``), folded, then scraped with ``generate_latest``; between
scrapes 50 more calls arrive and are folded before the timer starts. Configurations are
interleaved with rotating order; process CPU time. The cost per segment series is the
slope of scrape CPU over the series count from K = 0 to K = 10; the memory per segment
is the traced allocation growth of a monitor from K = 0 to K = 10, divided by 10.

These figures set the default ``max_series`` (docs/segments.md).
"""

from __future__ import annotations

import gc
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Figure, Report, Stat, header, interleave, parser
from scrape import render, scrape_side  # the same timed scrape: feed 50 calls, fold, scrape

FEATURES = 20
VALUES = 10
KS = (0, 1, 5, 10)


def _rows(rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
    x = rng.normal(size=(n, FEATURES))
    cats = rng.integers(0, VALUES, size=n)
    return [
        {**{f"x{j}": float(v) for j, v in enumerate(r)}, "c0": f"v{c}"}
        for r, c in zip(x, cats, strict=True)
    ]


class Setup:
    def __init__(self, k: int, profile: Any, rows: list[dict[str, Any]], calls: int) -> None:
        from prometheus_client import CollectorRegistry

        import modelmon

        self.registry = CollectorRegistry()
        options: dict[str, Any] = {"segment": "c0", "segment_top_k": k} if k else {}
        self.monitor = modelmon.Monitor(
            f"m{k}", "1", reference=profile, registry=self.registry, **options
        )
        self.rows = rows
        self.rng = np.random.default_rng(k)
        self.feed(calls)

    def feed(self, calls: int) -> None:
        for i in self.rng.integers(0, len(self.rows), size=calls).tolist():
            self.monitor.observe(self.rows[i], 0.5, latency_s=0.001)
        self.monitor.fold()

    def scrape(self, path: str = "text") -> bytes:
        return render(self.registry, path)


def series(text: bytes, segment_only: bool = False) -> int:
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith(b"#")]
    return sum(1 for ln in lines if not segment_only or b'segment="' in ln)


def fold_side(setup: Setup, calls: int) -> Callable[[], float]:
    """CPU per row of recording and folding (the background folder may fold meanwhile:
    process time counts every thread)."""

    def run() -> float:
        order = setup.rng.integers(0, len(setup.rows), size=calls).tolist()
        mon = setup.monitor
        t0 = time.process_time()
        for i in order:
            mon.observe(setup.rows[i], 0.5, latency_s=0.001)
        mon.fold()
        return (time.process_time() - t0) / calls

    return run


def memory_per_segment(profile: Any, rows: list[dict[str, Any]], calls: int) -> float:
    """Traced bytes of a K=10 monitor minus a K=0 one, per segment (both fed the same)."""
    sizes = {}
    for k in (0, 10):
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        setup = Setup(k, profile, rows, calls)
        setup.scrape()
        gc.collect()
        sizes[k] = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        setup.monitor.close()
    return (sizes[10] - sizes[0]) / 10


def main(argv: list[str] | None = None) -> int:
    from modelmon.profile import ReferenceProfile
    from modelmon.segments import DEFAULT_MAX_SERIES

    args = parser(__doc__).parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    calls = 500 if args.quick else 5000
    scrapes = 2 if args.quick else 5
    report = Report(
        "segments.py",
        "Segments: scrape and fold cost, memory",
        "python benchmarks/segments.py",
        rounds,
    )
    header(report)
    rng = np.random.default_rng(0)
    rows = _rows(rng, 2048)
    profile = ReferenceProfile.from_data(_rows(rng, 5000), categorical=["c0"], created_at=0.0)
    setups = {k: Setup(k, profile, rows, calls) for k in KS}
    try:
        scr = interleave({str(k): scrape_side(s, scrapes) for k, s in setups.items()}, rounds)
        fold = interleave({str(k): fold_side(s, calls) for k, s in setups.items()}, rounds)
        counts = {k: series(s.scrape()) for k, s in setups.items()}
        for k in KS:
            seg = series(setups[k].scrape(), segment_only=True)
            label = f"top {k} (+ __other__)" if k else "no segment"
            report.add(
                Figure(
                    f"scrape.k{k}.ms",
                    f"{label}: scrape",
                    "ms CPU",
                    Stat.of(scr[str(k)]).scaled(1e3),
                )
            )
            report.add(
                Figure(
                    f"series.k{k}",
                    f"{label}: series (segment series {seg})",
                    "series",
                    Stat(counts[k], counts[k], counts[k]),
                )
            )
            report.add(
                Figure(
                    f"fold.k{k}.us",
                    f"{label}: record + fold per row",
                    "us CPU",
                    Stat.of(fold[str(k)]).scaled(1e6),
                )
            )
        extra = counts[10] - counts[0]
        slope = [
            (a - b) / extra for a, b in zip(scr["10"], scr["0"], strict=True)
        ]  # s per segment series, per round
        per_series = report.add(
            Figure(
                "scrape.us_per_segment_series",
                "scrape CPU per segment series",
                "us",
                Stat.of(slope).scaled(1e6),
            )
        )
        budget_ms = per_series.stat.scaled(DEFAULT_MAX_SERIES / 1e3)
        report.add(
            Figure(
                "scrape.ms_at_default_budget",
                f"scrape CPU of a full default budget ({DEFAULT_MAX_SERIES} series)",
                "ms",
                budget_ms,
            )
        )
    finally:
        for s in setups.values():
            s.monitor.close()
    per_segment = memory_per_segment(profile, rows, calls)
    report.add(
        Figure(
            "memory.kb_per_segment",
            "memory per segment (20 features, traced)",
            "KiB",
            Stat(per_segment / 1024, per_segment / 1024, per_segment / 1024),
        )
    )
    report.write(args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
