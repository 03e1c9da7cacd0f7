"""Shared measuring rules for every benchmark script (see docs/benchmarks.md).

Each script measures its sides in the same process, interleaved with a rotating order
(round ``r`` starts with side ``r mod k``), one warm-up round discarded, and reports
the median [min-max] over the remaining rounds. Ratios are taken per round (both sides
of one round ran back to back on the same machine state), then summarised. Results are
written as JSON (``--json``) for ``benchmarks/run.py`` to turn into the docs page.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

Side = Callable[[], float]


def interleave(sides: dict[str, Side], rounds: int, warmup: int = 1) -> dict[str, list[float]]:
    """Run every side once per round in a rotating order; drop the warm-up rounds.

    Each side returns its own measurement (e.g. CPU seconds per call). Returns the kept
    measurements per side, in round order.
    """
    names = list(sides)
    kept: dict[str, list[float]] = {n: [] for n in names}
    for r in range(warmup + rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            gc.collect()
            value = sides[name]()
            if r >= warmup:
                kept[name].append(value)
    return kept


def cpu_per_item(work: Callable[[], int]) -> float:
    """Process CPU seconds (all threads) per item of ``work()`` (which returns its items)."""
    gc.collect()
    start = time.process_time()
    items = work()
    return (time.process_time() - start) / max(items, 1)


@dataclass
class Stat:
    """Median [min-max] of per-round values."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        return cls(statistics.median(values), min(values), max(values))

    def scaled(self, k: float) -> Stat:
        return Stat(self.median * k, self.low * k, self.high * k)

    def fmt(self, digits: int = 2) -> str:
        return f"{self.median:.{digits}f} [{self.low:.{digits}f}-{self.high:.{digits}f}]"


def ratios(num: Sequence[float], den: Sequence[float]) -> Stat:
    """Per-round ratios ``num[i] / den[i]``, summarised."""
    return Stat.of([a / b if b else float("inf") for a, b in zip(num, den, strict=True)])


def added(side: Sequence[float], bare: Sequence[float]) -> list[float]:
    """Per-round cost added to the bare call."""
    return [a - b for a, b in zip(side, bare, strict=True)]


@dataclass
class Figure:
    """One published figure: what was measured, its value, and its goal if any."""

    key: str
    label: str
    unit: str
    stat: Stat
    goal: str | None = None  # e.g. "<= 1.0"
    issue: int | None = None
    peer: str | None = None
    note: str | None = None

    @property
    def met(self) -> bool | None:
        if self.goal is None:
            return None
        op, target = self.goal.split()
        value = self.stat.median
        return value <= float(target) if op == "<=" else value >= float(target)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["met"] = self.met
        return d


@dataclass
class Report:
    """Everything one script measured, with how to reproduce it."""

    script: str
    title: str
    command: str
    rounds: int
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    peers: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        met = figure.met
        verdict = "" if met is None else ("  goal " + figure.goal + (" MET" if met else " NOT MET"))
        print(f"  {figure.label:<68} {figure.stat.fmt()} {figure.unit}{verdict}", flush=True)
        return figure

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)

    def write(self, path: str | None) -> None:
        doc = {
            "script": self.script,
            "title": self.title,
            "command": self.command,
            "rounds": self.rounds,
            "warmup_rounds": 1,
            "machine": machine(),
            "peers": self.peers,
            "seconds": round(time.time() - self.started, 1),
            "figures": [f.as_dict() for f in self.figures],
            "notes": self.notes,
        }
        if path:
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=1, sort_keys=True)


def version(dist: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """The machine and its load while measuring (other processes compete for the CPUs)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_1m": round(load[0], 2),
        "numpy": version("numpy"),
        "modelmon": version("modelmon"),
        "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def parser(doc: str | None) -> argparse.ArgumentParser:
    """The common options: ``--rounds``, ``--quick`` (a smoke run) and ``--json``."""
    p = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rounds", type=int, default=5, help="measured rounds (plus 1 warm-up)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs")
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    return p


def header(report: Report) -> None:
    m = machine()
    print(
        f"{report.title}\n  python {m['python']}, {m['cpus']} cpus, load {m['loadavg_1m']}, "
        f"{report.rounds} rounds + 1 warm-up, median [min-max]",
        flush=True,
    )
