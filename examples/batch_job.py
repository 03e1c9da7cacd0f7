"""Score a batch file with a model and record it with ``Monitor.observe``.

    python examples/batch_job.py                       # a generated batch, exposition printed
    python examples/batch_job.py --input batch.csv     # a CSV with the 10 diabetes features
    python examples/batch_job.py --pushgateway http://127.0.0.1:9091   # or $PUSHGATEWAY_URL

Batch jobs end before Prometheus could scrape them, so the metrics are pushed to a
Pushgateway when one is configured (``job="modelmon_batch"``), else printed.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections.abc import Sequence

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest, push_to_gateway
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

import modelmon
from modelmon.profile import ReferenceProfile

CHUNK_ROWS = 256


def read_csv(path: str, feature_names: Sequence[str]) -> np.ndarray:
    """The feature columns of a CSV with a header row (missing cells become NaN)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return np.array(
        [
            [float(r[c]) if r.get(c) not in (None, "") else np.nan for c in feature_names]
            for r in rows
        ]
    )


def generated_batch(X: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` rows resampled from ``X`` (a night's worth of requests like the training data)."""
    rng = np.random.default_rng(seed)
    return np.asarray(X[rng.integers(len(X), size=n)])


def score(monitor: modelmon.Monitor, model: Ridge, batch: np.ndarray) -> np.ndarray:
    """Predict chunk by chunk; each chunk is one request of ``len(chunk)`` predictions."""
    out = []
    for start in range(0, len(batch), CHUNK_ROWS):
        chunk = batch[start : start + CHUNK_ROWS]
        t0 = time.perf_counter()
        y = model.predict(np.nan_to_num(chunk))
        monitor.observe(chunk, y, latency_s=time.perf_counter() - t0)
        out.append(y)
    return np.concatenate(out) if out else np.zeros(0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", help="CSV file with the feature columns")
    parser.add_argument("--rows", type=int, default=5000, help="generated rows without --input")
    parser.add_argument("--pushgateway", default=os.environ.get("PUSHGATEWAY_URL"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    data = load_diabetes()
    names = [str(n) for n in data.feature_names]
    # Fit on 75%, profile the held-out 25%: the reference describes how the model
    # behaves on data it has not seen, as it will in production.
    cut = len(data.data) * 3 // 4
    model = Ridge(alpha=0.1).fit(data.data[:cut], data.target[:cut])
    held_out = data.data[cut:]
    profile = ReferenceProfile.from_data(
        held_out, predictions=model.predict(held_out), feature_names=names, task="regression"
    )
    registry = CollectorRegistry()
    monitor = modelmon.Monitor(
        "diabetes_batch", "1.0", reference=profile, task="regression", registry=registry
    )
    batch = (
        read_csv(args.input, names)
        if args.input
        else generated_batch(held_out, args.rows, args.seed)
    )
    predictions = score(monitor, model, batch)
    if args.pushgateway:
        push_to_gateway(args.pushgateway, job="modelmon_batch", registry=registry)
        print(f"pushed {len(predictions)} predictions to {args.pushgateway}", file=sys.stderr)
    else:
        sys.stdout.write(generate_latest(registry).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
