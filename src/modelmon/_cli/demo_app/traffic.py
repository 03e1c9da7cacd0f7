"""The demo's load generator: held-out rows, then drift, an error burst and wrong labels."""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DRIFTED_FEATURES: tuple[str, ...] = ("mean radius", "worst perimeter", "mean concavity")
DRIFT_SHIFT_STD = 3.0
ERROR_SHARE = 0.15
FEEDBACK_SHARE = 0.5


@dataclass(frozen=True)
class DemoOptions:
    """What ``modelmon demo`` was asked for."""

    duration: float = 60.0
    port: int = 8000
    rps: float = 50.0
    with_prometheus: bool = False
    tty: bool = True
    seed: int = 0


@dataclass
class Traffic:
    """The load generator: held-out rows, then drift, an error burst and wrong labels."""

    base_url: str
    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    std: np.ndarray
    options: DemoOptions
    started: float = field(default_factory=time.monotonic)
    stop: threading.Event = field(default_factory=threading.Event)
    sent: int = 0
    failed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def trouble_at(self) -> float:
        return self.options.duration / 3

    def phase(self, elapsed: float) -> str:
        return "normal" if elapsed < self.trouble_at else "drift"

    def run(self, workers: int = 4) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self._worker, args=(i, workers), daemon=True)
            for i in range(workers)
        ]
        for t in threads:
            t.start()
        return threads

    def _worker(self, index: int, workers: int) -> None:
        import httpx

        rng = np.random.default_rng(self.options.seed + index)
        interval = workers / self.options.rps
        budget = math.ceil(self.options.rps * self.options.duration / workers)
        next_at = time.monotonic() + index * interval / workers
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            for _ in range(budget):
                if self.stop.is_set():
                    return
                delay = next_at - time.monotonic()
                if delay > 0 and self.stop.wait(delay):
                    return
                next_at += interval
                with contextlib.suppress(httpx.HTTPError):
                    self._one(client, rng)

    def _one(self, client: Any, rng: np.random.Generator) -> None:
        elapsed = time.monotonic() - self.started
        i = int(rng.integers(len(self.X)))
        row = self.X[i].copy()
        actual = int(self.y[i])
        trouble = elapsed >= self.trouble_at
        if trouble:
            cols = [self.feature_names.index(f) for f in DRIFTED_FEATURES]
            row[cols] += DRIFT_SHIFT_STD * self.std[cols]
            actual = 1 - actual  # the world changed: the old decision is now wrong
        payload: dict[str, Any] = dict(zip(self.feature_names, row.tolist(), strict=True))
        in_burst = trouble and elapsed < self.trouble_at * 1.5
        if in_burst and rng.random() < ERROR_SHARE:
            # The model fails on a NaN (a 500, a model error); a malformed request would
            # be the client's fault (a 400), which the error budget rightly ignores.
            payload[self.feature_names[0]] = float("nan")
        body = json.dumps(payload)  # NaN as the JSON extension Python and Starlette read
        response = client.post(
            "/predict", content=body, headers={"content-type": "application/json"}
        )
        with self.lock:
            self.sent += 1
            self.failed += response.status_code >= 400
        if response.status_code == 200 and rng.random() < FEEDBACK_SHARE:
            pid = response.json()["prediction_id"]
            client.post("/feedback", json={"prediction_id": pid, "actual": actual})
