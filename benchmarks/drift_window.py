"""A server's drift window: new slots laid out up front against slots grown from nothing.

    python benchmarks/drift_window.py [--rounds 5] [--features 20 100 500]

A ``DriftAggregate`` with a reference of ``--features`` numeric features (5,000 rows)
folds 64-row batches 50 ms apart (a 60 s window of 15 slots of 4 s: 90 s of data, so
slots open, fill and expire) and reads its drift scores every 20 batches, as a scrape
every second would. Two sides, interleaved in one process with a rotating order: the
aggregate as it is (each new slot's sketches laid out once, from the last slot or the
reference: :mod:`modelmon.aggregates.drift_slot_layout`), and the same with that layout
switched off (each slot grows its layout from nothing). Process CPU time per folded row,
median [range] over the rounds; the scores of both sides are checked equal.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Stat, interleave, parser, ratios

from modelmon.aggregates import drift_slot_layout
from modelmon.aggregates.drift import DriftAggregate
from modelmon.batch import Batch, FeatureFrame
from modelmon.profile import ReferenceProfile

STEPS = 1800  # batches, 50 ms apart
ROWS = 64


def _batch(now: float, x: np.ndarray, names: tuple[str, ...]) -> Batch:
    missing = np.isnan(x)
    e = np.zeros(0)
    frame = FeatureFrame(names, x, missing, np.zeros_like(missing), {})
    return Batch(now, e, np.zeros(0, dtype=np.int64), (), e, (), frame)


def _side(profile: ReferenceProfile, xs: list[np.ndarray], laid: bool, out: list[Any]) -> Any:
    names = tuple(f"f{j}" for j in range(xs[0].shape[1]))
    original = drift_slot_layout.SlotLayouts.lay_out

    def run() -> float:
        if not laid:
            drift_slot_layout.SlotLayouts.lay_out = lambda self, slots, slot: None  # type: ignore[method-assign]
        try:
            agg = DriftAggregate(
                profile, window_seconds=60.0, slots=15, max_features=xs[0].shape[1]
            )
            scores: list[Any] = []
            start = time.process_time()
            for step in range(STEPS):
                now = step * 0.05
                agg.fold(_batch(now, xs[step % len(xs)], names))
                if step % 20 == 19:
                    scores.append(agg.drift_scores(now))
            spent = time.process_time() - start
        finally:
            drift_slot_layout.SlotLayouts.lay_out = original  # type: ignore[method-assign]
        out.append(repr(scores))
        return spent / (STEPS * ROWS)

    return run


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--features", type=int, nargs="+", default=[20, 100, 500])
    args = p.parse_args(argv)
    rounds = 2 if args.quick else args.rounds
    for d in args.features:
        rng = np.random.default_rng(d)
        loc = rng.normal(size=d)
        ref = rng.normal(loc, 1.0, size=(5000, d))
        profile = ReferenceProfile.from_data(
            ref, feature_names=[f"f{j}" for j in range(d)], created_at=0.0
        )
        xs = [rng.normal(loc, 1.0, size=(ROWS, d)) for _ in range(50)]
        seen: dict[str, list[Any]] = {"laid out": [], "grown": []}
        got = interleave(
            {
                "laid out": _side(profile, xs, True, seen["laid out"]),
                "grown": _side(profile, xs, False, seen["grown"]),
            },
            rounds,
        )
        if seen["laid out"] != seen["grown"]:
            raise SystemExit(f"{d} features: the drift scores differ between the sides")
        for side, values in got.items():
            s = Stat.of([v * 1e6 for v in values])
            print(f"{d:4d} features, slots {side:9s} {s.fmt()} us/row")
        r = ratios(got["laid out"], got["grown"])
        print(f"{d:4d} features, laid out / grown {r.fmt()} x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
