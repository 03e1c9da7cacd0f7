"""Profiling at scale: rows/s on one machine, Spark local[2] and Dask (2 workers); the CLI
on an ~80 MB CSV against pandas ``read_csv`` alone.

    benchmarks/.venv-peers/bin/python benchmarks/profile_scale.py [--engine-rows 10000000]

Data: ``--rows`` x 20 columns (16 float columns of different scales, 4 string columns of
10-25 categories); each round draws new values (its own seed) so no side reuses a warm
cache of the same input.

* **in-process** (``ProfileBuilder``, both passes over Arrow batches, beside
  ``ReferenceProfile.from_data`` and, when importable, ``whylogs.log`` on the same
  pandas frame): process CPU time per side, interleaved, rows/s and the ratio per round;
* **streamed** (``--streamed-rows``): that many rows x 20 through the builder in
  generated 1 M-row chunks, process CPU time of the builder only;
* **engines** (``modelmon.spark.profile`` on local[2], ``modelmon.dask.profile`` on a
  LocalCluster of 2 worker processes, the builder in this process): the partitions
  (500,000 rows each) are generated where they are read, in each pass, never cached; wall
  time (the work runs in other processes), one round unless ``--engine-rounds``, no
  warm-up; a job that only generates and counts the rows is timed beside each, so the
  profiling's own cost shows; all three must give the same fingerprint;
* **CLI** (``modelmon profile data.csv`` in a subprocess against a subprocess running
  ``pandas.read_csv`` alone on the same file): wall time and peak RSS of each child
  (GNU ``time``), interleaved, and the ratios per round.

whylogs is compared when the interpreter has it (``make bench`` runs the peers' venv).
"""

from __future__ import annotations

import compileall
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Figure, Report, Stat, header, interleave, parser, ratios, version

import modelmon
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


# --- in-process -----------------------------------------------------------------------------


def in_process(report: Report, rows: int, rounds: int) -> None:
    tables = [make_table(rows, seed) for seed in range(rounds + 1)]
    frames = [t.to_pandas() for t in tables]
    round_of: dict[str, int] = {}

    def data_round(name: str) -> int:
        r = round_of.get(name, 0)
        round_of[name] = r + 1
        return r % len(tables)

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

    sides: dict[str, Callable[[], float]] = {"builder": builder, "from_data": from_data}
    try:
        import whylogs  # type: ignore[import-not-found]

        def whylogs_side() -> float:
            df = frames[data_round("whylogs")]
            t0 = time.process_time()
            whylogs.log(df).view()
            return rows / (time.process_time() - t0)

        sides["whylogs"] = whylogs_side
    except ImportError:
        report.note("whylogs is not importable here: no whylogs figure (run make bench)")
    per = interleave(sides, rounds)
    label = f"{rows:,} x 20 in this process"
    report.add(
        Figure("builder_rows_s", f"ProfileBuilder, {label}: CPU", "rows/s", Stat.of(per["builder"]))
    )
    report.add(
        Figure("from_data_rows_s", f"from_data, {label}: CPU", "rows/s", Stat.of(per["from_data"]))
    )
    report.add(
        Figure(
            "builder_vs_from_data",
            "ProfileBuilder / from_data speed (same rows)",
            "x",
            ratios(per["builder"], per["from_data"]),
        )
    )
    if "whylogs" in per:
        report.add(
            Figure(
                "whylogs_rows_s",
                f"whylogs.log, {label}: CPU",
                "rows/s",
                Stat.of(per["whylogs"]),
                peer="whylogs",
            )
        )
        report.add(
            Figure(
                "builder_vs_whylogs",
                "ProfileBuilder / whylogs speed (same rows)",
                "x",
                ratios(per["builder"], per["whylogs"]),
                peer="whylogs",
            )
        )


# --- one machine, streamed -----------------------------------------------------------------


def streamed(report: Report, rows: int, rounds: int) -> None:
    """``rows`` x 20 through ``ProfileBuilder`` in 1 M-row chunks generated on the fly.

    Only ``update``/``second_pass``/``finish`` are timed (process CPU), so generating the
    data does not count; memory stays at one chunk whatever ``rows``.
    """
    chunk = 1_000_000
    results = []
    for r in range(rounds):  # no warm-up round: each round is long
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
    report.add(
        Figure(
            "streamed_rows_s",
            f"ProfileBuilder streamed, {rows:,} x 20 (1 M-row chunks): CPU",
            "rows/s",
            Stat.of(results),
        )
    )


# --- engines --------------------------------------------------------------------------------

PARTITION_ROWS = 500_000


def partition_sizes(rows: int) -> list[int]:
    parts = max(1, -(-rows // PARTITION_ROWS))
    return [len(p) for p in np.array_split(np.arange(rows), parts)]


def partition(sizes: list[int], index: int) -> pa.Table:
    """Partition ``index``: generated where it is read (seed = its index), never cached."""
    return make_table(sizes[index], 1000 + index)


def spark_frame(spark: Any, sizes: list[int]) -> Any:
    """A DataFrame whose partitions are generated on the executors by ``mapInArrow``."""
    fields = [f"x{i} double" for i in range(NUMERIC)] + [f"c{i} string" for i in range(CATEGORICAL)]

    def generate(batches: Any) -> Any:
        for batch in batches:
            for index in batch.column(0).to_pylist():
                yield from partition(sizes, index).to_batches(max_chunksize=BATCH_ROWS)

    seeds = spark.range(0, len(sizes), numPartitions=len(sizes))
    return seeds.mapInArrow(generate, ", ".join(fields))


def dask_frame(sizes: list[int]) -> Any:
    """A Dask DataFrame whose partitions are generated on the workers (``from_map``)."""
    import dask.dataframe as dd

    meta = make_table(0, 0).to_pandas()
    return dd.from_map(lambda i: partition(sizes, i).to_pandas(), range(len(sizes)), meta=meta)


def engines(report: Report, rows: int, rounds: int) -> None:
    """Spark local[2], Dask (2 worker processes) and one process, on generated partitions.

    Every pass regenerates its partitions where they are read (nothing is cached, so
    memory stays at a few partitions whatever ``rows``); the generation alone is timed
    too (a job that only counts the generated rows), so the profiling's own share shows.
    """
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from distributed import Client, LocalCluster
    from pyspark.sql import SparkSession

    from modelmon import dask as mm_dask
    from modelmon import spark as mm_spark

    sizes = partition_sizes(rows)
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(BATCH_ROWS))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    )
    client = Client(cluster)
    sdf, ddf = spark_frame(spark, sizes), dask_frame(sizes)
    prints: dict[str, str] = {}

    def local_profile() -> ReferenceProfile:
        def batches() -> Any:
            for i in range(len(sizes)):
                yield from partition(sizes, i).to_batches(max_chunksize=BATCH_ROWS)

        return build_profile(batches, created_at=0.0)

    def local_count() -> int:
        return sum(partition(sizes, i).num_rows for i in range(len(sizes)))

    def timed(name: str, fn: Callable[[], Any]) -> Callable[[], float]:
        def run() -> float:
            t0 = time.perf_counter()
            out = fn()
            if isinstance(out, ReferenceProfile):
                prints[name] = out.fingerprint
            else:
                assert int(out) == rows, (name, out)
            return rows / (time.perf_counter() - t0)

        return run

    sides = [
        ("spark", timed("spark", lambda: mm_spark.profile(sdf, created_at=0.0))),
        ("dask", timed("dask", lambda: mm_dask.profile(ddf, created_at=0.0))),
        ("local", timed("local", local_profile)),
        ("spark generate only", timed("spark-gen", lambda: sdf.count())),
        ("dask generate only", timed("dask-gen", lambda: len(ddf))),
        ("local generate only", timed("local-gen", local_count)),
    ]
    try:
        per = interleave(dict(sides), rounds, warmup=0)
    finally:
        client.close()
        cluster.close()
        spark.stop()
    where = f"{rows:,} x 20 in {len(sizes)} generated partitions"
    for name, values in per.items():
        key = name.replace(" ", "_") + "_rows_s"
        label = f"{name}, {where}: wall" + ("" if "only" in name else " (two passes)")
        report.add(Figure(key, label, "rows/s", Stat.of(values)))
    same = len(set(prints.values())) == 1
    report.note(f"same fingerprint on Spark, Dask and one process: {same} ({prints})")
    if not same:
        raise SystemExit("the engines' profiles differ")


def engines_from(report: Report, path: str) -> None:
    """Copy the engine figures of an earlier results file, saying so (``--engines-from``)."""
    import json

    earlier = json.loads(Path(path).read_text(encoding="utf-8"))
    copied = [f for f in earlier["figures"] if f["key"].startswith(("spark_", "dask_", "local_"))]
    if not copied:
        raise SystemExit(f"{path} has no engine figures")
    provenance = [n for n in earlier["notes"] if n.startswith(("engine figures", "(that run)"))]
    if not provenance:  # measured by that run itself
        provenance = [
            f"engine figures copied from the run of {earlier['machine']['at']} "
            f"(`{earlier['command']}`, load {earlier['machine']['loadavg_1m']}), not re-measured"
        ]
        provenance += [
            f"(that run) {n}" for n in earlier["notes"] if n.startswith("same fingerprint")
        ]
    for note in provenance:  # a copy of a copy names the run that measured them
        report.note(note)
    for f in copied:
        report.add(Figure(f["key"], f["label"], f["unit"], Stat(**f["stat"]), note=f["note"]))


# --- CLI ------------------------------------------------------------------------------------


def write_csv(path: Path, megabytes: float) -> int:
    probe = make_table(10_000, 1).to_pandas()
    per_row = len(probe.to_csv(index=False).encode()) / len(probe)
    rows = int(megabytes * 1e6 / per_row)
    make_table(rows, 1).to_pandas().to_csv(path, index=False)
    return rows


def child(argv: list[str]) -> tuple[float, float, float]:
    """Wall seconds, peak RSS (MB) and CPU seconds (user + system) of one child process.

    The peak comes from GNU time (``/usr/bin/time -f %M``): the measured process is then
    forked from that small process. Forked from this one, its peak would include this
    process's own memory (Linux keeps the high-water mark across ``exec``).
    """
    timer = shutil.which("time") or "/usr/bin/time"
    t0 = time.perf_counter()
    done = subprocess.run(
        [timer, "-f", "MAXRSS_KB %M CPU_S %U %S", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wall = time.perf_counter() - t0
    err = done.stderr.decode(errors="replace")
    if done.returncode != 0:
        raise RuntimeError(f"{argv} failed: {err}")
    fields = err.strip().rsplit("MAXRSS_KB ", 1)[1].split()
    peak_kb, user, system = float(fields[0]), float(fields[2]), float(fields[3])
    return wall, peak_kb / 1024.0, user + system


def cli(report: Report, rounds: int, megabytes: float, workdir: Path) -> None:
    # Byte-compile modelmon first, as an installed package is (pandas' modules are): a
    # source checkout run with PYTHONDONTWRITEBYTECODE would compile ~40 modules per run.
    compileall.compile_dir(Path(modelmon.__file__).parent, quiet=1)
    path = workdir / "train.csv"
    rows = write_csv(path, megabytes)
    size = path.stat().st_size / 1e6
    out = workdir / "ref.json"
    argvs = {
        "modelmon": [sys.executable, "-m", "modelmon", "profile", str(path), "-o", str(out)],
        "pandas": [sys.executable, "-c", f"import pandas as pd; pd.read_csv({str(path)!r})"],
    }
    peaks: dict[str, list[float]] = {name: [] for name in argvs}
    cpus: dict[str, list[float]] = {name: [] for name in argvs}

    def side(name: str) -> Callable[[], float]:
        def run() -> float:
            wall, peak, cpu = child(argvs[name])
            peaks[name].append(peak)
            cpus[name].append(cpu)
            return wall

        return run

    times = interleave({name: side(name) for name in argvs}, rounds)
    for name in argvs:  # the warm-up round's peak and CPU are dropped with its time
        peaks[name] = peaks[name][-rounds:]
        cpus[name] = cpus[name][-rounds:]
    what = f"a {size:.0f} MB CSV ({rows:,} rows x 20)"
    report.add(
        Figure("cli_s", f"modelmon profile on {what}: wall", "s", Stat.of(times["modelmon"]))
    )
    report.add(
        Figure(
            "pandas_s",
            f"pandas.read_csv alone on {what}: wall",
            "s",
            Stat.of(times["pandas"]),
            peer="pandas",
        )
    )
    report.add(Figure("cli_mb", "modelmon profile: peak RSS", "MB", Stat.of(peaks["modelmon"])))
    report.add(
        Figure(
            "pandas_mb", "pandas.read_csv: peak RSS", "MB", Stat.of(peaks["pandas"]), peer="pandas"
        )
    )
    report.add(
        Figure(
            "cli_time_ratio",
            "modelmon profile / pandas.read_csv: wall time",
            "x",
            ratios(times["modelmon"], times["pandas"]),
            goal="<= 1.5",
            issue=19,
            peer="pandas",
        )
    )
    report.add(
        Figure(
            "cli_memory_ratio",
            "modelmon profile / pandas.read_csv: peak RSS",
            "x",
            ratios(peaks["modelmon"], peaks["pandas"]),
            goal="<= 1.0",
            issue=19,
            peer="pandas",
        )
    )
    report.add(
        Figure(
            "cli_cpu_ratio",
            "modelmon profile / pandas.read_csv: CPU time (user + system, all threads)",
            "x",
            ratios(cpus["modelmon"], cpus["pandas"]),
            peer="pandas",
        )
    )


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--csv-mb", type=float, default=80.0)
    p.add_argument("--engine-rows", type=int, default=1_000_000)
    p.add_argument("--engine-rounds", type=int, default=1)
    p.add_argument("--streamed-rows", type=int, default=0, help="e.g. 10000000 (default: none)")
    p.add_argument("--skip-in-process", action="store_true")
    p.add_argument("--skip-engines", action="store_true")
    p.add_argument("--skip-cli", action="store_true")
    p.add_argument(
        "--engines-from",
        default=None,
        metavar="JSON",
        help="do not measure the engines: copy their figures from an earlier results file (noted)",
    )
    args = p.parse_args(argv)
    quick = args.quick
    rounds = 1 if quick else args.rounds
    rows = 20_000 if quick else args.rows
    given = list(argv if argv is not None else sys.argv[1:])
    if "--json" in given:  # where the results went is not part of the command
        k = given.index("--json")
        del given[k : k + 2]
    command = " ".join(["python benchmarks/profile_scale.py", *given])
    report = Report(
        "profile_scale.py", "Profiling at scale: builder, engines, CLI", command, rounds
    )
    report.peers = {
        k: v or "missing"
        for k, v in {
            "whylogs": version("whylogs"),
            "pandas": version("pandas"),
            "pyspark": version("pyspark"),
            "dask": version("dask"),
        }.items()
    }
    header(report)
    with tempfile.TemporaryDirectory(prefix="modelmon-bench-") as tmp:
        if not args.skip_in_process:
            in_process(report, rows, rounds)
        if args.streamed_rows and not quick:
            streamed(report, args.streamed_rows, rounds)
        if args.engines_from and not quick:
            engines_from(report, args.engines_from)
        elif args.skip_engines or quick:
            report.note("engines not measured in this run (--quick or --skip-engines)")
        else:
            engines(report, args.engine_rows, args.engine_rounds)
        if not args.skip_cli:
            cli(report, rounds, 2.0 if quick else args.csv_mb, Path(tmp))
    report.write(args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
