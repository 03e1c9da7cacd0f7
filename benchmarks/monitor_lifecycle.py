"""Series and memory of a process that loads model versions one after the other.

    .venv/bin/python benchmarks/monitor_lifecycle.py [--versions 1000]
    PYTHONPATH=<other checkout>/src .venv/bin/python benchmarks/monitor_lifecycle.py

The rolling-deployment pattern of docs/quickstart-notes.md: each version gets its own
monitor (20 numeric features, a reference profile) and the name ``predict`` is rebound,
so the previous version is no longer referenced. Each version serves 5 calls of 20 rows.
Printed: live monitors, exposition samples and traced Python memory (tracemalloc) after
1, 100 and every further 100 versions, and the wall time of one scrape at the end.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
import weakref
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest

import modelmon


def _model(version: int) -> Any:
    weights = np.linspace(0.0, 1.0, 20) * (1 + version % 7)

    def predict_proba(X: np.ndarray) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-(X @ weights) / 20.0))
        return np.column_stack([1.0 - p, p])

    return predict_proba


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=1000, help="versions to load")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 20))
    profile = modelmon.ReferenceProfile.from_data(X, predictions=_model(0)(X))
    registry = CollectorRegistry()
    refs: list[weakref.ref[modelmon.Monitor]] = []
    tracemalloc.start()
    print(f"modelmon from {modelmon.__file__}")
    print("versions  live monitors  samples  traced MB")
    for version in range(args.versions):
        predict = modelmon.monitored(
            model="credit", version=str(version), reference=profile, registry=registry
        )(_model(version))
        for start in range(0, 100, 20):
            predict(X[start + version % 50 : start + version % 50 + 20])
        refs.append(weakref.ref(predict.monitor))
        if version + 1 in (1, 100) or (version + 1) % 100 == 0:
            text = generate_latest(registry).decode()
            samples = sum(1 for line in text.splitlines() if line and line[0] != "#")
            live = sum(r() is not None for r in refs)
            mb = tracemalloc.get_traced_memory()[0] / 1e6
            print(f"{version + 1:8d}  {live:13d}  {samples:7d}  {mb:9.1f}")
    t0 = time.perf_counter()
    generate_latest(registry)
    print(f"one scrape at the end: {time.perf_counter() - t0:.3f} s")


if __name__ == "__main__":
    main()
