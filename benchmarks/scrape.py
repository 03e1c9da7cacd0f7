"""CPU time of one Prometheus scrape, and its series count, by models and features.

    python benchmarks/scrape.py [--rounds 5] [--quick] [--json out.json]

Each configuration (1 or 10 models, 20/100/500 numeric features, each monitor with a
reference profile) is fed a shuffled pool of distinct dict rows, folded, and then
scraped as modelmon's ``/metrics`` endpoints do (``modelmon.exporters.exposition.
generate_text``: modelmon's cached renderer, the bytes of ``generate_latest``); the same
registry is also scraped with prometheus-client's ``generate_latest`` (the generic
path, what a user's own endpoint gets) and as OpenMetrics by modelmon's endpoint (what a
Prometheus server asks for first) in the same rounds. Between two scrapes 50 more
calls per model arrive and are folded as the background folder folds them, and the
folder's drift-statistics refresh runs (it runs at most every ``drift_refresh_s`` = 1 s,
and scrapes come every 15 s or so): what is timed is the render of a state that changed,
as between two real scrapes. The refresh's CPU time (off the scrape, in the folder
thread) is reported per model, and so is a scrape right after an explicit
``monitor.fold()`` (no refresh: it computes the statistics itself, the worst case).
Configurations and the paths are interleaved with rotating order; process CPU time per
scrape.

Multi-process: the same configuration in ``MODELMON_MULTIPROC_DIR`` with 4 worker
processes (each with the same monitors, fed and flushed, alive while measured); the
scraping process merges their 4 state files and its own. Also timed there: scrapes with
no new call anywhere since the last scrape (only heartbeats change).
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Figure, Report, Stat, header, interleave, parser

HERE = Path(__file__).resolve()
CONFIGS = ((1, 20), (10, 20), (1, 100), (10, 100), (1, 500))
MP_CONFIGS = ((1, 20), (10, 20), (1, 500))
WORKERS = 4


class Setup:
    """``models`` monitors of ``features`` numeric features with a reference, one registry."""

    def __init__(self, models: int, features: int, calls: int) -> None:
        from prometheus_client import CollectorRegistry

        import modelmon
        from modelmon.profile import ReferenceProfile

        rng = np.random.default_rng(0)
        self.names = [f"x{i}" for i in range(features)]
        ref = rng.normal(size=(2000, features))
        profile = ReferenceProfile.from_data(ref, feature_names=self.names, created_at=0.0)
        self.registry = CollectorRegistry()
        self.monitors = [
            modelmon.Monitor(
                f"m{i}",
                "1",
                registry=self.registry,
                reference=profile,
                max_features=max(features, 100),
            )
            for i in range(models)
        ]
        x = rng.normal(0.1, 1.0, size=(512, features))
        self.rows = [dict(zip(self.names, map(float, r), strict=True)) for r in x]
        self.rng = rng
        self.refresh_s: list[float] = []  # CPU of the folder's refresh, per model
        self.feed(calls)

    def feed(self, calls: int, explicit: bool = False) -> None:
        """Observe ``calls`` per model and fold them: as the background folder does
        (then its statistics refresh, timed), or with ``monitor.fold()`` (no refresh)."""
        from modelmon import fold
        from modelmon._internal import folder

        for monitor in self.monitors:
            for i in self.rng.integers(0, len(self.rows), size=calls).tolist():
                monitor.observe(self.rows[i], 0.5, latency_s=0.001)
            if explicit:
                monitor.fold()
                continue
            fold.fold(monitor, fresh=False)
            t0 = time.process_time()
            folder._refresh(monitor)
            self.refresh_s.append(time.process_time() - t0)

    def scrape(self, path: str = "text") -> bytes:
        return render(self.registry, path)

    def close(self) -> None:
        for monitor in self.monitors:
            monitor.close()


def render(registry: CollectorRegistry, path: str = "text") -> bytes:
    """One scrape the way modelmon's endpoints render it (``generic``: generate_latest).

    The encoders are imported once (as an endpoint does), not inside the timed call."""
    if not _ENCODERS:
        from prometheus_client import generate_latest

        from modelmon.exporters.exposition import generate_openmetrics, generate_text

        _ENCODERS.update(generic=generate_latest, openmetrics=generate_openmetrics)
        _ENCODERS["text"] = generate_text
    return _ENCODERS[path](registry)


_ENCODERS: dict[str, Callable[[CollectorRegistry], bytes]] = {}


def series(text: bytes) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))


class GcClock:
    """Time spent in the garbage collector while :attr:`on` (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.on = False
        self.seconds = 0.0
        self._start = 0.0
        gc.callbacks.append(self._note)

    def _note(self, phase: str, info: dict[str, int]) -> None:
        if not self.on:
            return
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._start


def scrape_side(
    setup: Setup,
    scrapes: int,
    path: str = "text",
    explicit: bool = False,
    calls: int = 50,
    gc_share: list[float] | None = None,
) -> Callable[[], float]:
    """Mean CPU seconds per scrape; ``gc_share`` gets the garbage collector's share of
    each run (collections that ran inside the timed scrapes)."""
    clock = GcClock() if gc_share is not None else None

    def run() -> float:
        total = 0.0
        if not calls:
            setup.scrape(path)  # settles what the other sides changed: then nothing changes
        if clock is not None:
            clock.seconds = 0.0
        for _ in range(scrapes):
            if explicit:
                setup.feed(calls, explicit=True)
            elif calls:
                setup.feed(calls)  # the setup's own way (segments.py folds with monitor.fold())
            if clock is not None:
                clock.on = True
            t0 = time.process_time()
            setup.scrape(path)
            total += time.process_time() - t0
            if clock is not None:
                clock.on = False
        if clock is not None and gc_share is not None and total > 0:
            gc_share.append(clock.seconds / total)
        return total / scrapes

    return run


def worker(models: int, features: int, calls: int) -> int:
    """A worker process: feed, flush its state file, stay alive until stdin closes."""
    import modelmon.multiprocess

    setup = Setup(models, features, calls)
    modelmon.multiprocess.flush()
    print("ready", flush=True)
    sys.stdin.read()
    setup.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--worker", nargs=3, type=int, help=argparse_hidden())
    args = p.parse_args(argv)
    if args.worker:
        return worker(*args.worker)
    rounds = 1 if args.quick else args.rounds
    calls = 300 if args.quick else 3000
    scrapes = 2 if args.quick else 6
    report = Report(
        "scrape.py", "Scrape CPU time and series count", "python benchmarks/scrape.py", rounds
    )
    header(report)
    single(CONFIGS[:2] if args.quick else CONFIGS, rounds, calls, scrapes, report)
    multi(MP_CONFIGS[:1] if args.quick else MP_CONFIGS, rounds, calls, max(scrapes // 2, 1), report)
    report.write(args.json)
    return 0


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


def _goal(models: int, features: int) -> str | None:
    if features != 20:
        return None
    return "<= 1.0" if models == 1 else "<= 10.0"


Configs = tuple[tuple[int, int], ...]


def single(configs: Configs, rounds: int, calls: int, scrapes: int, report: Report) -> None:
    print("- single process", flush=True)
    setups = {f"{m}x{f}": Setup(m, f, calls) for m, f in configs}
    try:
        gc_shares: dict[str, list[float]] = {k: [] for k in setups}
        sides = {k: scrape_side(s, scrapes, gc_share=gc_shares[k]) for k, s in setups.items()}
        for path in ("generic", "openmetrics"):
            sides.update({f"{k}.{path}": scrape_side(s, scrapes, path) for k, s in setups.items()})
        sides.update(
            {f"{k}.explicit": scrape_side(s, scrapes, explicit=True) for k, s in setups.items()}
        )
        per = interleave(sides, rounds)
        for (m, f), key in zip(configs, setups, strict=True):
            n = series(setups[key].scrape())
            stat = Stat.of(per[key]).scaled(1e3)
            label = f"1 process, {m} model(s) x {f} features"
            report.add(
                Figure(
                    f"single.{key}.ms",
                    f"{label}: scrape (modelmon's /metrics)",
                    "ms CPU",
                    stat,
                    goal=_goal(m, f),
                    issue=15 if _goal(m, f) else None,
                )
            )
            report.add(
                Figure(
                    f"single.{key}.generic_ms",
                    f"{label}: scrape with prometheus-client's generate_latest",
                    "ms CPU",
                    Stat.of(per[f"{key}.generic"]).scaled(1e3),
                )
            )
            report.add(
                Figure(
                    f"single.{key}.openmetrics_ms",
                    f"{label}: scrape (modelmon's /metrics, OpenMetrics as Prometheus asks)",
                    "ms CPU",
                    Stat.of(per[f"{key}.openmetrics"]).scaled(1e3),
                )
            )
            report.add(
                Figure(
                    f"single.{key}.explicit_ms",
                    f"{label}: scrape right after monitor.fold() (computes the statistics)",
                    "ms CPU",
                    Stat.of(per[f"{key}.explicit"]).scaled(1e3),
                )
            )
            report.add(
                Figure(
                    f"single.{key}.refresh_ms",
                    f"{label}: the folder's statistics refresh, per model (off the scrape)",
                    "ms CPU",
                    Stat.of(setups[key].refresh_s).scaled(1e3),
                )
            )
            report.add(
                Figure(
                    f"single.{key}.gc_share",
                    f"{label}: garbage collection's share of the scrape",
                    "%",
                    Stat.of(gc_shares[key][1:] or gc_shares[key]).scaled(100),  # no warm-up
                )
            )
            report.add(Figure(f"single.{key}.series", f"{label}: series", "series", Stat(n, n, n)))
            report.add(
                Figure(
                    f"single.{key}.us_per_series",
                    f"{label}: per series",
                    "us",
                    stat.scaled(1e3 / n),
                )
            )
    finally:
        for s in setups.values():
            s.close()


def multi(configs: Configs, rounds: int, calls: int, scrapes: int, report: Report) -> None:
    print(f"- {WORKERS} worker state files + the scraping process", flush=True)
    import modelmon.multiprocess  # noqa: F401 - turns multi-process mode on

    for m, f in configs:
        with tempfile.TemporaryDirectory(prefix="modelmon-bench-") as tmp:
            os.environ["MODELMON_MULTIPROC_DIR"] = tmp
            procs: list[subprocess.Popen[str]] = []
            setup: Setup | None = None
            try:
                for _ in range(WORKERS):
                    cmd = [sys.executable, str(HERE), "--worker", str(m), str(f), str(calls)]
                    procs.append(
                        subprocess.Popen(
                            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
                        )
                    )
                for proc in procs:
                    assert proc.stdout is not None
                    if proc.stdout.readline().strip() != "ready":
                        raise RuntimeError("a worker failed to start")
                setup = Setup(m, f, calls)
                sides = {
                    "mp": scrape_side(setup, scrapes),
                    "idle": scrape_side(setup, scrapes, calls=0),
                }
                per = interleave(sides, rounds)
                n = series(setup.scrape())
                files = [x for x in os.listdir(tmp) if x.endswith(".state")]
                size = sum(os.path.getsize(os.path.join(tmp, x)) for x in files) / len(files)
            finally:
                for proc in procs:
                    if proc.stdin is not None:
                        proc.stdin.close()
                for proc in procs:
                    proc.wait(timeout=60)
                if setup is not None:
                    setup.close()
                del os.environ["MODELMON_MULTIPROC_DIR"]
            key = f"{m}x{f}"
            label = f"{WORKERS} workers + scraper, {m} model(s) x {f} features"
            report.add(
                Figure(
                    f"multi.{key}.ms", f"{label}: scrape", "ms CPU", Stat.of(per["mp"]).scaled(1e3)
                )
            )
            report.add(
                Figure(
                    f"multi.{key}.idle_ms",
                    f"{label}: scrape, no new call since the last one",
                    "ms CPU",
                    Stat.of(per["idle"]).scaled(1e3),
                )
            )
            report.add(Figure(f"multi.{key}.series", f"{label}: series", "series", Stat(n, n, n)))
            report.add(
                Figure(
                    f"multi.{key}.state_kib",
                    f"{label}: state file size",
                    "KiB",
                    Stat(size / 1024, size / 1024, size / 1024),
                )
            )


if __name__ == "__main__":
    raise SystemExit(main())
