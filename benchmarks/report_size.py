"""Size of the HTML drift report, and what it takes to render, by number of features.

    .venv/bin/python benchmarks/report_size.py

For 10, 30 and 100 numeric features (and the breast-cancer model of docs/report.md, 30
features and 4 outputs): bytes of ``Monitor.report()`` raw and gzipped (deterministic:
the figures in docs/report.md), and, for information only, the process CPU time to
render it (median [range] over 5 rounds; no peer, so not a published figure). Not part
of ``benchmarks/run.py``: it compares nothing.
"""

from __future__ import annotations

import gzip
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import modelmon

ROUNDS = 5


def _synthetic(n_features: int) -> modelmon.Monitor:
    rng = np.random.default_rng(n_features)
    names = [f"feature_{i:03d}" for i in range(n_features)]
    ref = modelmon.ReferenceProfile.from_data(
        rng.normal(size=(20_000, n_features)),
        predictions=rng.random(20_000),
        feature_names=names,
        created_at=0.0,
    )
    mon = modelmon.Monitor("bench", "1", reference=ref, registry=False)
    live = rng.normal(size=(5_000, n_features))
    live[:, : n_features // 10] += 0.5  # a tenth of the features drifted
    mon.observe(live, rng.random(5_000))
    mon.fold()
    return mon


def _measure(label: str, mon: modelmon.Monitor) -> None:
    times = []
    page = ""
    for _ in range(ROUNDS):
        t0 = time.process_time()
        page = mon.report()
        times.append((time.process_time() - t0) * 1000)
    raw = page.encode()
    print(
        f"{label:<34} {len(raw) / 1024:7.0f} KiB  gzip {len(gzip.compress(raw)) / 1024:5.0f} KiB"
        f"  render {statistics.median(times):6.1f} ms [{min(times):.1f}-{max(times):.1f}]"
    )
    mon.close()


def main() -> None:
    for n in (10, 30, 100):
        _measure(f"{n} numeric features, 1 output", _synthetic(n))
    try:
        from prometheus_client import CollectorRegistry
        from tests._report_data import drifted_monitor
    except ImportError:  # scikit-learn missing: the synthetic rows are enough
        return
    _measure("breast cancer: 30 features, 4 outputs", drifted_monitor(CollectorRegistry()))


if __name__ == "__main__":
    main()
