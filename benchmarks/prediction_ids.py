"""Cost of an authenticated prediction id, side by side with ``str(uuid.uuid4())``.

    python benchmarks/prediction_ids.py [--ids 20000] [--rounds 7] [--quick] [--json FILE]

What a serving process pays per id it hands out (``last_prediction_id()`` of a one-row
call: mint = HMAC-SHA256 + base64) and per label it receives (verify), against the
usual alternative of a random UUID per prediction (which joins nothing by itself).
Process CPU time; the three sides interleaved with rotating order (one warm-up round
dropped); each side reads varied inputs (a pool of distinct ids, values and times);
median [range] over rounds.
"""

from __future__ import annotations

import random
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Figure, Report, Stat, header, interleave, parser, ratios

from modelmon._internal.ids import IdCodec, PredictionKey, fingerprint


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--ids", type=int, default=20_000)
    p.set_defaults(rounds=7)
    args = p.parse_args(argv)
    ids, rounds = (500, 1) if args.quick else (args.ids, args.rounds)
    given = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--quick"]
    if "--json" in given:  # where the results went is not part of the command
        k = given.index("--json")
        del given[k : k + 2]
    report = Report(
        "prediction_ids.py",
        "Authenticated prediction ids against uuid4",
        " ".join(["python benchmarks/prediction_ids.py", *given]),
        rounds,
    )
    header(report)
    rng = random.Random(0)
    codec = IdCodec(b"k" * 32, fingerprint(("modelmon", "m", "1"), None))
    keys = [PredictionKey(rng.getrandbits(32), i, 0) for i in range(ids)]
    values = [rng.gauss(0, 100) for _ in range(ids)]
    times = [1.7e9 + rng.random() * 86400 for _ in range(ids)]
    tokens = [codec.mint(k, t, value=v) for k, t, v in zip(keys, times, values, strict=True)]
    rng.shuffle(tokens)

    def per_id(work: Callable[[], None]) -> Callable[[], float]:
        def run() -> float:
            start = time.process_time()
            work()
            return (time.process_time() - start) / ids * 1e6

        return run

    def mint() -> None:
        for k, t, v in zip(keys, times, values, strict=True):
            codec.mint(k, t, value=v)

    def verify() -> None:
        for token in tokens:
            codec.verify(token)

    def uuid4() -> None:
        for _ in keys:
            str(uuid.uuid4())

    us = interleave(
        {"mint": per_id(mint), "verify": per_id(verify), "uuid4": per_id(uuid4)}, rounds
    )
    what = f"{ids:,} distinct ids: CPU per id"
    report.add(Figure("mint_us", f"mint (HMAC-SHA256 + base64), {what}", "us", Stat.of(us["mint"])))
    report.add(Figure("verify_us", f"verify a label's id, {what}", "us", Stat.of(us["verify"])))
    report.add(
        Figure("uuid4_us", f"str(uuid.uuid4()), {what}", "us", Stat.of(us["uuid4"]), peer="uuid4")
    )
    for side in ("mint", "verify"):
        report.add(
            Figure(
                f"{side}_vs_uuid4",
                f"{side} / str(uuid.uuid4()): CPU per id",
                "x",
                ratios(us[side], us["uuid4"]),
                peer="uuid4",
            )
        )
    report.note(f"id length: {len(tokens[0])} characters")
    report.write(args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
