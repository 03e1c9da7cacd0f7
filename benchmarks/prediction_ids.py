"""Cost of an authenticated prediction id, side by side with ``str(uuid.uuid4())``.

    python benchmarks/prediction_ids.py [--ids 20000] [--rounds 7]

What a serving process pays per id it hands out (``last_prediction_id()`` of a one-row
call: mint = HMAC-SHA256 + base64) and per label it receives (verify), against the
usual alternative of a random UUID per prediction (which joins nothing by itself).
Process CPU time; the three sides interleaved with rotating order; each side reads
varied inputs (a pool of distinct ids, values and times); median [range] over rounds.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid
from collections.abc import Callable

from modelmon._internal.ids import IdCodec, PredictionKey, fingerprint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ids", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    rng = random.Random(0)
    codec = IdCodec(b"k" * 32, fingerprint(("modelmon", "m", "1"), None))
    keys = [PredictionKey(rng.getrandbits(32), i, 0) for i in range(args.ids)]
    values = [rng.gauss(0, 100) for _ in range(args.ids)]
    times = [1.7e9 + rng.random() * 86400 for _ in range(args.ids)]
    tokens = [codec.mint(k, t, value=v) for k, t, v in zip(keys, times, values, strict=True)]
    rng.shuffle(tokens)

    def mint() -> None:
        for k, t, v in zip(keys, times, values, strict=True):
            codec.mint(k, t, value=v)

    def verify() -> None:
        for token in tokens:
            codec.verify(token)

    def uuid4() -> None:
        for _ in keys:
            str(uuid.uuid4())

    sides: dict[str, Callable[[], None]] = {"mint": mint, "verify": verify, "uuid4": uuid4}
    results: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for r in range(args.rounds):
        for name in names[r % 3 :] + names[: r % 3]:
            start = time.process_time()
            sides[name]()
            results[name].append((time.process_time() - start) / args.ids * 1e6)
    for name, us in results.items():
        ratios = [a / b for a, b in zip(us, results["uuid4"], strict=True)]
        spread = f"[{min(ratios):.2f}-{max(ratios):.2f}]"
        print(
            f"{name:7s} {statistics.median(us):6.2f} us/id [{min(us):.2f}-{max(us):.2f}]"
            f"  ratio vs uuid4 {statistics.median(ratios):.2f} {spread}"
        )
    print(f"id length: {len(tokens[0])} characters")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
