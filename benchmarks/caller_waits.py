"""How long a serving thread waits while the background folder runs (issue 15).

``overhead.py``'s latency phase gives p50/p99/p99.9 of one caller thread's calls; this
prints, per round, how many calls waited how long, which tells the kinds of wait apart:
one fold part (hundreds of microseconds: the folder hands the GIL over between parts),
CPython's switch interval (about 5 ms: the folder released the GIL but the caller was
not scheduled in time, so it waited for a forced switch) and a fold in the caller at
the buffer's hard limit (hundreds of milliseconds, about once a round: in this closed
loop the caller makes fold work faster than the folder, which gets the GIL only while
the caller waits, can fold it). The modelmon side of ``overhead.py``'s cases, same
inputs and monitor.

    python benchmarks/caller_waits.py batch batch_ref --rounds 3
"""

from __future__ import annotations

import argparse
import gc
import itertools
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import overhead  # the cases live there

EDGES_US = (50, 100, 200, 500, 1_000, 3_000, 6_000, 50_000)


def waits(key: str, rounds: int) -> None:
    case = next(c for c in overhead.cases(False) if c.key == key)
    rng = np.random.default_rng(1)
    inputs = case.inputs(rng, overhead.POOL)
    profile = case.profile(rng) if case.reference else None
    labels = [f"{a}-{b}" for a, b in itertools.pairwise(EDGES_US)]
    print(f"- {case.label}: calls waiting (µs): " + ", ".join([*labels, f">{EDGES_US[-1]}"]))
    clock = time.perf_counter_ns
    for _ in range(rounds):
        fns, _, close = overhead.build_side("modelmon", case, profile)
        order = overhead.schedule(rng, case.calls * 2)
        gc.collect()
        fn, out = fns[0], np.empty(len(order), dtype=np.int64)
        try:
            for i, idx in enumerate(order):
                t0 = clock()
                fn(inputs[idx])
                out[i] = clock() - t0
        finally:
            close()
        us = out / 1000.0
        counts, _ = np.histogram(us, [*EDGES_US, np.inf])
        p999 = float(np.percentile(us, 99.9))
        print(
            f"  p99.9 {p999:9.1f} µs | {counts.tolist()} | "
            f"waits > 50 µs {us[us > 50].sum() / 1000:.0f} ms of {us.sum() / 1000:.0f} ms"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("cases", nargs="*", default=["batch", "batch_ref"])
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    for key in args.cases:
        waits(key, args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
