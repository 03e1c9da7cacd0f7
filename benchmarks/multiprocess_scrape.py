"""CPU time of a multi-process scrape with 4 worker state files: before and after the cache.

    python benchmarks/multiprocess_scrape.py [--rounds 5] [--quick] [--json out.json]

Four real worker processes (one model, 20 numeric features, a reference profile, 3,000
calls each) write their state files into a directory and exit; the scraping process
then merges the directory with ``MultiprocessCollector`` and renders it with
``generate_latest``. Sides, interleaved with rotating order, process CPU time per
scrape, median [range] over the rounds:

- ``json, every file decoded``: the files re-encoded in the older all-JSON form (base64
  arrays) and every cache emptied before each scrape (parsed states, reference
  profiles, merged aggregates): what every scrape cost before;
- ``binary, every file decoded``: the current format, every cache emptied before each
  scrape (the binary codec's share of the gain);
- ``binary, 4 of 4 changed``: every worker's file rewritten before each scrape with a
  changed aggregate (a busy server: every worker served requests since the last scrape;
  a rewrite with unchanged aggregates keeps the merged sum);
- ``binary, 1 of 4 changed``: one worker's file rewritten before each scrape;
- ``binary, none changed``: nothing rewritten (the files are read and compared only).

The reference profile of each worker's monitor is kept between scrapes in every side
but the first two.

Also: the size of one worker's state file in both forms, the time to decode it, and the
CPU of ``mark_process_dead`` (gunicorn's ``child_exit``) for the first and the last tenth
of 100 dead workers, each folded into the archive at once: constant, not growing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Figure, Report, Stat, header, interleave, parser, ratios

HERE = Path(__file__).resolve()
WORKERS = 4
FEATURES = 20


def worker(calls: int) -> int:
    """A worker process: feed one monitor, write its state file, exit."""
    from scrape import Setup

    import modelmon.multiprocess

    setup = Setup(1, FEATURES, calls)
    modelmon.multiprocess.flush()
    setup.close()
    return 0


def _spawn(path: str, calls: int) -> None:
    env = {**os.environ, "MODELMON_MULTIPROC_DIR": path}
    procs = [
        subprocess.Popen([sys.executable, str(HERE), "--worker", str(calls)], env=env)
        for _ in range(WORKERS)
    ]
    for proc in procs:
        if proc.wait(timeout=300) != 0:
            raise RuntimeError("a worker failed")


def _json_copy(src: str, dst: str) -> None:
    from modelmon.exporters.multiprocess import codec

    for name in os.listdir(src):
        data = Path(src, name).read_bytes()
        if name.endswith(".state"):
            data = codec.encode_json(codec.decode(data))
        Path(dst, name).write_bytes(data)


def _scrape_side(path: str, before: Callable[[], None]) -> Callable[[], float]:
    from prometheus_client import CollectorRegistry, generate_latest

    from modelmon.exporters.multiprocess import MultiprocessCollector

    registry = CollectorRegistry()
    MultiprocessCollector(registry, path=path)

    def run() -> float:
        before()
        t0 = time.process_time()
        generate_latest(registry)
        return time.process_time() - t0

    return run


def _decode_cpu(data: bytes, repeat: int) -> float:
    from modelmon.exporters.multiprocess import codec

    t0 = time.process_time()
    for _ in range(repeat):
        codec.decode(data)
    return (time.process_time() - t0) / repeat


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--worker", type=int, help=_hidden())
    args = p.parse_args(argv)
    if args.worker:
        return worker(args.worker)
    rounds = 1 if args.quick else args.rounds
    calls = 300 if args.quick else 3000
    report = Report(
        "multiprocess_scrape.py",
        "Multi-process scrape: 4 worker state files, before and after the parsed-state cache",
        "python benchmarks/multiprocess_scrape.py",
        rounds,
    )
    header(report)
    os.environ.pop("MODELMON_MULTIPROC_DIR", None)
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    from modelmon.exporters.multiprocess import clear_caches, codec

    with (
        tempfile.TemporaryDirectory(prefix="modelmon-mp-") as binary,
        tempfile.TemporaryDirectory(prefix="modelmon-mp-json-") as legacy,
    ):
        _spawn(binary, calls)
        _json_copy(binary, legacy)
        files = sorted(Path(binary).glob("modelmon_[0-9]*.state"))
        changing = files[0]
        docs = {f: codec.decode(f.read_bytes()) for f in files}

        def rewrite(which: list[Path]) -> Callable[[], None]:
            def run() -> None:
                for f in which:  # a new time and a changed aggregate (a call since)
                    docs[f]["written_at"] += 1.0
                    traffic = docs[f]["monitors"][0]["aggregates"]["traffic"]["state"]
                    traffic["last_prediction"] += 1.0
                    f.write_bytes(codec.encode(docs[f]))

            return run

        sides = {
            "json_all": _scrape_side(legacy, clear_caches),
            "binary_all": _scrape_side(binary, clear_caches),
            "binary_four": _scrape_side(binary, rewrite(files)),
            "binary_one": _scrape_side(binary, rewrite([changing])),
            "binary_none": _scrape_side(binary, lambda: None),
        }
        per = interleave(sides, rounds)
        labels = {
            "json_all": "older JSON format, every file decoded (before)",
            "binary_all": "binary format, every file decoded",
            "binary_four": "binary format, 4 of 4 files changed (profiles kept)",
            "binary_one": "binary format, 1 of 4 files changed (cache)",
            "binary_none": "binary format, no file changed (cache)",
        }
        for key, label in labels.items():
            report.add(
                Figure(
                    f"mp.{key}.ms",
                    f"{WORKERS} workers x 1 model x {FEATURES} features: scrape, {label}",
                    "ms CPU",
                    Stat.of(per[key]).scaled(1e3),
                )
            )
        for key in ("binary_four", "binary_one", "binary_none"):
            report.add(
                Figure(
                    f"mp.{key}.ratio",
                    f"scrape CPU, {labels[key]} / before",
                    "x",
                    ratios(per[key], per["json_all"]),
                    issue=15,
                )
            )
        data = changing.read_bytes()
        old = Path(legacy, changing.name).read_bytes()
        for key, blob in (("binary", data), ("json", old)):
            size = len(blob) / 1024
            report.add(
                Figure(
                    f"mp.state_kib.{key}", f"one state file, {key}", "KiB", Stat(size, size, size)
                )
            )
        decode = interleave(
            {"binary": lambda: _decode_cpu(data, 20), "json": lambda: _decode_cpu(old, 20)},
            rounds,
        )
        for key in ("binary", "json"):
            report.add(
                Figure(
                    f"mp.decode.{key}.ms",
                    f"decode one state file, {key}",
                    "ms CPU",
                    Stat.of(decode[key]).scaled(1e3),
                )
            )
        dead_workers(binary, docs[changing], 10 if args.quick else 100, report)
    report.write(args.json)
    return 0


def dead_workers(path: str, doc: dict[str, Any], n: int, report: Report) -> None:
    """CPU of ``mark_process_dead`` for the 1st..nth dead worker (each folded at once)."""
    from modelmon.exporters.multiprocess import clear_caches, codec, mark_process_dead

    for name in os.listdir(path):  # only the archive and the dead workers from here on
        if name.startswith("modelmon_") and name.endswith(".state"):
            os.unlink(os.path.join(path, name))
    clear_caches()
    costs = []
    for i in range(n):
        pid = 4_100_000 + i
        doc = {**doc, "pid": pid, "token": f"{pid:032x}", "started": 10**18 + i}
        Path(path, f"modelmon_{pid}.state").write_bytes(codec.encode(doc))
        t0 = time.process_time()
        mark_process_dead(pid, path=path)
        costs.append(time.process_time() - t0)
    files = sorted(os.listdir(path))
    tenth = max(n // 10, 1)
    for label, part in (("first", costs[:tenth]), ("last", costs[-tenth:])):
        report.add(
            Figure(
                f"mp.mark_dead.{label}.ms",
                f"mark_process_dead, the {label} {tenth} of {n} dead workers (each folded)",
                "ms CPU",
                Stat.of(part).scaled(1e3),
            )
        )
    size = os.path.getsize(os.path.join(path, "modelmon_archive.state")) / 1024
    report.add(Figure("mp.archive_kib", f"archive after {n} dead workers", "KiB", Stat.of([size])))
    report.note(f"directory after {n} dead workers: {', '.join(files)}")


def _hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    raise SystemExit(main())
