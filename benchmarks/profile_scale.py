"""Profiling at scale: rows/s on one machine, Spark local[2] and Dask (2 workers); the CLI
on an ~80 MB CSV against pandas ``read_csv`` alone.

    .venv/bin/python benchmarks/profile_scale.py --rows 1000000 --rounds 5

Data: ``--rows`` x 20 columns (16 float columns of different scales, 4 string columns of
10-25 categories), seed 0; each round draws new values (seed = round) so no side reuses a
warm cache of the same input.

* **in-process** (``ProfileBuilder`` both passes over Arrow batches, beside
  ``ReferenceProfile.from_data`` and, when importable, ``whylogs.log`` on the same
  pandas frame): process CPU time per side, sides interleaved with rotating order,
  median [range] of rows/s over the rounds, and the ratio to each peer per round;
* **engines** (``modelmon.spark.profile`` on local[2], ``modelmon.dask.profile`` on a
  LocalCluster of 2 worker processes, both reading the same Parquet file): wall time
  (the work runs in other processes, so this process's CPU time says nothing), rotating
  order, median [range] rows/s;
* **streamed** (``--streamed-rows 10000000``): that many rows x 20 through the builder
  on one machine in generated 1 M-row chunks, process CPU time of the builder only;
* **CLI** (``modelmon profile data.csv`` in a subprocess against a subprocess running
  ``pandas.read_csv`` alone on the same ~80 MB file): wall time and peak RSS of each
  child (``os.wait4``), rotating order, median [range] and the ratios.

Options: ``--skip-engines``, ``--skip-cli``, ``--csv-mb`` (default 80).
whylogs is compared when the interpreter has it (e.g. a separate venv with
``pip install whylogs`` and modelmon installed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from modelmon import ReferenceProfile
from modelmon.profile_builder import ProfileBuilder, build_profile

NUMERIC, CATEGORICAL = 16, 4
BATCH_ROWS = 1 << 17


def make_table(rows: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {}
    for i in range(NUMERIC):
        scale = 10.0 ** (i % 5 - 1)
        cols[f"x{i}"] = np.round(rng.normal(i, 1 + i, rows) * scale, 6)
    for i in range(CATEGORICAL):
        levels = np.array([f"level_{j}" for j in range(10 + 5 * i)], dtype=object)
        cols[f"c{i}"] = levels[rng.zipf(1.5, rows) % levels.size]
    return pa.table(cols)


def summary(values: list[float], fmt: str = "{:,.0f}") -> str:
    mid, lo, hi = (fmt.format(v) for v in (statistics.median(values), min(values), max(values)))
    return f"{mid} [{lo} .. {hi}]"


def rotate(sides: list[tuple[str, Callable[[], float]]], rounds: int) -> dict[str, list[float]]:
    """Run every side once per round, the starting side rotating; collect their results."""
    out: dict[str, list[float]] = {name: [] for name, _ in sides}
    for r in range(rounds):
        for k in range(len(sides)):
            name, fn = sides[(r + k) % len(sides)]
            out[name].append(fn())
    return out


# --- in-process -----------------------------------------------------------------------------


def in_process(rows: int, rounds: int) -> None:
    tables = [make_table(rows, seed) for seed in range(rounds)]
    frames = [t.to_pandas() for t in tables]
    round_of: dict[str, int] = {}

    def data_round(name: str) -> int:
        r = round_of.get(name, 0)
        round_of[name] = r + 1
        return r % rounds

    def builder() -> float:
        t = tables[data_round("builder")]
        t0 = time.process_time()
        build_profile(lambda: t.to_batches(max_chunksize=BATCH_ROWS), created_at=0.0)
        return rows / (time.process_time() - t0)

    def from_data() -> float:
        df = frames[data_round("from_data")]
        t0 = time.process_time()
        ReferenceProfile.from_data(df, created_at=0.0)
        return rows / (time.process_time() - t0)

    sides: list[tuple[str, Callable[[], float]]] = [("builder", builder), ("from_data", from_data)]
    try:
        import whylogs  # type: ignore[import-not-found]

        def whylogs_side() -> float:
            df = frames[data_round("whylogs")]
            t0 = time.process_time()
            whylogs.log(df).view()
            return rows / (time.process_time() - t0)

        sides.append(("whylogs", whylogs_side))
    except ImportError:
        print("whylogs not importable here: no whylogs column")
    result = rotate(sides, rounds)
    print(f"\nin-process, {rows:,} x 20, process CPU rows/s, median [range] over {rounds} rounds")
    for name, values in result.items():
        print(f"  {name:10s} {summary(values)}")
    for peer in result:
        if peer != "builder":
            ratios = [b / p for b, p in zip(result["builder"], result[peer], strict=True)]
            print(f"  builder / {peer}: {summary(ratios, '{:.2f}')}x")


# --- one machine, streamed -----------------------------------------------------------------


def streamed(rows: int, rounds: int) -> None:
    """``rows`` x 20 through ``ProfileBuilder`` in 1 M-row chunks generated on the fly.

    Only ``update``/``second_pass``/``finish`` are timed (process CPU), so generating the
    data does not count; memory stays at one chunk whatever ``rows``.
    """
    chunk = 1_000_000
    results = []
    for r in range(rounds):
        builder = ProfileBuilder()
        spent = 0.0
        for stage in (1, 2):
            if stage == 2:
                t0 = time.process_time()
                builder = builder.second_pass()
                spent += time.process_time() - t0
            for start in range(0, rows, chunk):
                table = make_table(min(chunk, rows - start), 1000 * r + start // chunk)
                for batch in table.to_batches(max_chunksize=BATCH_ROWS):
                    t0 = time.process_time()
                    builder.update(batch)
                    spent += time.process_time() - t0
        t0 = time.process_time()
        builder.finish(created_at=0.0)
        spent += time.process_time() - t0
        results.append(rows / spent)
    print(f"\nstreamed on one machine, {rows:,} x 20, process CPU rows/s over {rounds} rounds")
    print(f"  builder {summary(results)}")


# --- engines --------------------------------------------------------------------------------


def engines(rows: int, rounds: int, workdir: Path) -> None:
    path = workdir / "data.parquet"
    pq.write_table(make_table(rows, 0), path, row_group_size=BATCH_ROWS)
    os.environ["PYSPARK_PYTHON"] = sys.executable
    import dask.dataframe as dd
    from distributed import Client, LocalCluster
    from pyspark.sql import SparkSession

    from modelmon import dask as mm_dask
    from modelmon import spark as mm_spark

    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    sdf = spark.read.parquet(str(path)).repartition(4).cache()
    sdf.count()
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    )
    client = Client(cluster)
    ddf = dd.read_parquet(str(path)).repartition(npartitions=4).persist()
    table = pq.read_table(path)
    prints: dict[str, str] = {}

    def timed(name: str, fn: Callable[[], ReferenceProfile]) -> Callable[[], float]:
        def run() -> float:
            t0 = time.perf_counter()
            prints[name] = fn().fingerprint
            return rows / (time.perf_counter() - t0)

        return run

    sides = [
        ("spark", timed("spark", lambda: mm_spark.profile(sdf, created_at=0.0))),
        ("dask", timed("dask", lambda: mm_dask.profile(ddf, created_at=0.0))),
        (
            "local",
            timed(
                "local",
                lambda: build_profile(
                    lambda: table.to_batches(max_chunksize=BATCH_ROWS), created_at=0.0
                ),
            ),
        ),
    ]
    try:
        result = rotate(sides, rounds)
    finally:
        client.close()
        cluster.close()
        spark.stop()
    print(
        f"\nengines, {rows:,} x 20 from Parquet, wall-clock rows/s, median [range], {rounds} rounds"
    )
    for name, values in result.items():
        print(f"  {name:6s} {summary(values)}")
    print(f"  same fingerprint on all three: {len(set(prints.values())) == 1} {prints}")


# --- CLI ------------------------------------------------------------------------------------


def write_csv(path: Path, megabytes: float) -> int:
    probe = make_table(10_000, 1).to_pandas()
    per_row = len(probe.to_csv(index=False).encode()) / len(probe)
    rows = int(megabytes * 1e6 / per_row)
    make_table(rows, 1).to_pandas().to_csv(path, index=False)
    return rows


def child(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process.

    The peak comes from GNU time (``/usr/bin/time -f %M``): the measured process is then
    forked from that small process. Forked from this one, its peak would include this
    process's own memory (Linux keeps the high-water mark across ``exec``).
    """
    timer = shutil.which("time") or "/usr/bin/time"
    t0 = time.perf_counter()
    done = subprocess.run(
        [timer, "-f", "MAXRSS_KB %M", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    wall = time.perf_counter() - t0
    err = done.stderr.decode(errors="replace")
    if done.returncode != 0:
        raise RuntimeError(f"{argv} failed: {err}")
    peak_kb = float(err.strip().rsplit("MAXRSS_KB ", 1)[1].split()[0])
    return wall, peak_kb / 1024.0


def cli(rounds: int, megabytes: float, workdir: Path) -> None:
    path = workdir / "train.csv"
    rows = write_csv(path, megabytes)
    size = path.stat().st_size / 1e6
    out = workdir / "ref.json"
    modelmon = [sys.executable, "-m", "modelmon", "profile", str(path), "-o", str(out)]
    pandas = [sys.executable, "-c", f"import pandas as pd; pd.read_csv({str(path)!r})"]
    times: dict[str, list[float]] = {"modelmon": [], "pandas": []}
    rss: dict[str, list[float]] = {"modelmon": [], "pandas": []}
    sides = [("modelmon", modelmon), ("pandas", pandas)]
    for r in range(rounds):
        for k in range(2):
            name, argv = sides[(r + k) % 2]
            wall, peak = child(argv)
            times[name].append(wall)
            rss[name].append(peak)
    print(f"\nCLI on a {size:.0f} MB CSV ({rows:,} rows x 20), median [range] over {rounds} rounds")
    for name in sides:
        n = name[0]
        print(f"  {n:9s} wall {summary(times[n], '{:.2f}')} s   peak RSS {summary(rss[n])} MB")
    t_ratio = [a / b for a, b in zip(times["modelmon"], times["pandas"], strict=True)]
    m_ratio = [a / b for a, b in zip(rss["modelmon"], rss["pandas"], strict=True)]
    print(f"  modelmon / pandas: time {summary(t_ratio, '{:.2f}')}x (goal <= 1.5x), "
          f"memory {summary(m_ratio, '{:.2f}')}x (goal < 1x)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--csv-mb", type=float, default=80.0)
    parser.add_argument("--skip-in-process", action="store_true")
    parser.add_argument("--skip-engines", action="store_true")
    parser.add_argument("--skip-cli", action="store_true")
    parser.add_argument(
        "--streamed-rows", type=int, default=0, help="also stream this many rows (e.g. 10000000)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelmon-bench-") as tmp:
        if not args.skip_in_process:
            in_process(args.rows, args.rounds)
        if args.streamed_rows:
            streamed(args.streamed_rows, args.rounds)
        if not args.skip_engines:
            engines(args.rows, args.rounds, Path(tmp))
        if not args.skip_cli:
            cli(args.rounds, args.csv_mb, Path(tmp))


if __name__ == "__main__":
    main()
