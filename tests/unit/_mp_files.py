"""Helpers for multi-process tests: real monitor states written as other processes' files."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

import modelmon
from modelmon.exporters.multiprocess import MultiprocessCollector, codec
from modelmon.exporters.multiprocess.files import FORMAT, FORMAT_VERSION
from modelmon.exporters.multiprocess.writer import snapshot
from modelmon.profile import ReferenceProfile
from tests.conftest import scrape

FIRST_PID = 4_100_000  # beyond any live process: these "processes" are dead


def write_process(
    path: Path,
    pid: int,
    started: int | None,
    latencies: np.ndarray,
    reference: ReferenceProfile | None = None,
) -> dict[str, Any]:
    """A real monitor's state after ``len(latencies)`` calls, as the file of process ``pid``."""
    mon = modelmon.Monitor("m", "1", registry=CollectorRegistry(), reference=reference)
    try:
        for i, latency in enumerate(latencies):
            mon.observe({"a": float(latency) * 10, "b": float(i % 3)}, [0.5], latency_s=latency)
        mon.fold()
        entry = snapshot(mon, time.time())
    finally:
        mon.close()
    entry["registry"] = "default"
    doc = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "pid": pid,
        "token": f"{pid:032x}",
        "written_at": time.time(),
        "started": started,
        "monitors": [entry],
        "http": [],
    }
    (path / f"modelmon_{pid}.state").write_bytes(codec.encode(doc))
    if reference is not None:
        sidecar = path / f"modelmon_profile_{reference.fingerprint}.json"
        sidecar.write_text(reference.dumps())
    return doc


def merged_view(path: Path) -> dict[Any, float]:
    """What a scrape of every process in ``path`` shows (times of day left out)."""
    reg = CollectorRegistry()
    MultiprocessCollector(reg, path=str(path))
    return {k: v for k, v in scrape(reg).items() if "timestamp" not in k[0]}


def duration_sum(doc: dict[str, Any]) -> float:
    return float(doc["monitors"][0]["aggregates"]["traffic"]["state"]["duration"]["sum"])
