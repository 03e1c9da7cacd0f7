"""``modelmon profile``: build a reference profile from a CSV or Parquet file.

modelmon profile train.csv --prediction-column y --target label --exclude id -o reference.json

The file is streamed with Arrow in batches, twice (the two passes of
:class:`~modelmon.profile_builder.ProfileBuilder`), so memory stays bounded whatever its
size; ``--sample N`` profiles a uniform sample of N rows instead; ``--engine spark|dask``
runs the same builder on Spark or Dask for data that does not fit one machine. A progress
bar (tqdm) shows on a terminal only.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError, MissingExtraError, require
from ._help import examples

if TYPE_CHECKING:
    from ..profile import ReferenceProfile
    from ..profile_builder import Column

BLOCK_BYTES = 8 << 20  # CSV bytes per Arrow block when streaming
READ_BLOCK_BYTES = 1 << 20  # per block of a whole-file read: blocks parse in parallel
CACHE_MB = 256  # decoded batches kept from pass 1 for pass 2 (else the file is read again)
PARQUET_BATCH_ROWS = 1 << 17
CHUNK_ROWS = 1 << 16  # rows per update of an in-memory table: temporaries stay small


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``profile`` subcommand to an ``argparse`` subparsers object."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "profile",
        help="build a reference profile (JSON) from training data (CSV or Parquet)",
        description="Build a reference profile from a CSV or Parquet file of training data.",
        epilog=examples(
            "modelmon profile train.csv --prediction-column y -o reference.json",
            "modelmon profile train.parquet --prediction-column label --task classification \\",
            "    --categorical country,device --confidence-column proba -o reference.json",
        ),
    )
    p.add_argument("input", help="CSV (.csv) or Parquet (.parquet, .pq) file with a header")
    p.add_argument(
        "--prediction-column",
        default=None,
        help="column holding the model's predictions (default: none)",
    )
    p.add_argument(
        "--confidence-column",
        default=None,
        help="column holding the prediction confidence (default: none)",
    )
    p.add_argument(
        "--target",
        action="append",
        default=None,
        help="label (ground truth) column: not profiled as a feature (repeatable; default: none)",
    )
    p.add_argument(
        "--exclude",
        action="append",
        default=None,
        help="comma-separated columns not to profile, e.g. ids (repeatable; default: none)",
    )
    p.add_argument(
        "--categorical",
        default="",
        help="comma-separated columns to treat as categorical; strings and booleans "
        "always are (default: none)",
    )
    p.add_argument(
        "--bins", type=int, default=10, help="bins per numeric feature; 10 gives deciles"
    )
    p.add_argument(
        "--max-categories",
        type=int,
        default=20,
        help="most frequent categories kept per categorical feature; the rest are pooled "
        "as __other__",
    )
    p.add_argument(
        "--task",
        choices=("classification", "regression"),
        default=None,
        help="the model's task; classification turns integral predictions into class "
        "labels (default: inferred from the predictions)",
    )
    p.add_argument("--sample", type=int, default=None, metavar="N", help="profile N random rows")
    p.add_argument("--seed", type=int, default=0, help="seed of --sample (default: 0)")
    p.add_argument(
        "--engine",
        choices=("local", "spark", "dask"),
        default="local",
        help="where to build: this process, Spark or Dask (default: local)",
    )
    p.add_argument(
        "--spark-master",
        default="local[*]",
        help="Spark master for --engine spark (default: local[*])",
    )
    p.add_argument(
        "--dask-scheduler",
        default=None,
        help="Dask scheduler address for --engine dask (default: Dask's default scheduler)",
    )
    p.add_argument(
        "--memory-mb",
        type=int,
        default=CACHE_MB,
        help="decoded data kept between the two passes, in MB; a larger file is read twice "
        f"(default: {CACHE_MB})",
    )
    p.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    p.add_argument("-o", "--output", required=True, help="where to write the profile JSON")
    p.set_defaults(func=run)
    return p


def _split(values: list[str]) -> tuple[str, ...]:
    return tuple(c.strip() for v in values for c in v.split(",") if c.strip())


def run(args: argparse.Namespace) -> int:
    """Build and save the profile; return the process exit code."""
    options: dict[str, Any] = {
        "prediction": args.prediction_column,
        "confidence": args.confidence_column,
        "exclude": _split([*(args.exclude or []), *(args.target or [])]),
        "categorical": _split([args.categorical]),
        "bins": args.bins,
        "max_categories": args.max_categories,
        "task": args.task,
    }
    if args.sample is not None and args.sample < 1:
        print("modelmon profile: error: --sample must be >= 1", file=sys.stderr)
        return 2
    try:
        path = Path(args.input)
        if not path.is_file():
            raise ConfigurationError(f"{path} is not a file")
        if args.engine == "spark":
            profile, rows = _on_spark(path, args, options)
        elif args.engine == "dask":
            profile, rows = _on_dask(path, args, options)
        else:
            profile, rows = _local(path, args, options)
        profile.save(args.output)
    except (OSError, ConfigurationError, MissingExtraError, KeyError) as exc:
        print(f"modelmon profile: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if type(exc).__module__.startswith("pyarrow"):  # a CSV Arrow cannot parse
            print(f"modelmon profile: error: cannot read {args.input}: {exc}", file=sys.stderr)
            return 2
        raise
    print(
        f"wrote {args.output}: {len(profile.features)} features, "
        f"outputs {sorted(profile.outputs)}, {rows} rows"
    )
    return 0


# --- on this machine: Arrow streaming ---------------------------------------------------


def _local(
    path: Path, args: argparse.Namespace, options: dict[str, Any]
) -> tuple[ReferenceProfile, int]:
    from ..profile_builder import build_profile

    source = ArrowSource(path)
    show = not args.no_progress
    if args.sample is not None:
        table = source.sample(args.sample, args.seed, _progress(source, "sampling", show))
        batches: Callable[[], Any] = lambda: table.to_batches(max_chunksize=PARQUET_BATCH_ROWS)  # noqa: E731
        threads = min(os.cpu_count() or 1, 8)
        return build_profile(batches, threads=threads, **options), table.num_rows
    budget = max(args.memory_mb, 0) << 20
    if source.decoded_bytes() <= budget:
        return _in_memory(source, show, options)
    return _streamed(source, show, budget, options)


def _in_memory(
    source: ArrowSource, show: bool, options: dict[str, Any]
) -> tuple[ReferenceProfile, int]:
    """Data that fits the budget: one multithreaded read with the types inferred once.

    Each column is converted once; both passes run over the same in-memory columns in
    chunks of ``CHUNK_ROWS`` (the temporaries of each update are reused, not faulted in
    anew: about a third less system time), on one thread per column up to the cores.
    """
    from ..profile_builder import ProfileSpec, build_profile, table_columns

    bar = _progress(source, "reading", show)
    try:
        table = source.read_all(lambda names: list(ProfileSpec(**options).roles(names)))
        bar(source.total)
    finally:
        bar(None)
    rows = table.num_rows
    chunks = _chunks(table_columns(table), rows)
    del table
    threads = min(os.cpu_count() or 1, 8)
    bar = _progress(source, "profiling", show, total=2 * rows, unit="rows")
    done = [0]

    def count(n: int) -> None:
        done[0] += n
        bar(done[0])

    try:
        profile = build_profile(lambda: chunks, progress=count, threads=threads, **options)
    finally:
        bar(None)
    return profile, rows


def _chunks(columns: dict[str, Column], rows: int) -> list[dict[str, Column]]:
    """Views of ``CHUNK_ROWS`` rows of each converted column (no copies)."""
    from ..profile_builder import Column

    def part(col: Column, start: int) -> Column:
        if col.arrow is not None:
            return Column(None, col.dtype, arrow=col.arrow.slice(start, CHUNK_ROWS))
        return Column(col.values[start : start + CHUNK_ROWS], col.dtype)

    return [
        {name: part(col, start) for name, col in columns.items()}
        for start in range(0, rows, CHUNK_ROWS)
    ]


def _streamed(
    source: ArrowSource, show: bool, budget: int, options: dict[str, Any]
) -> tuple[ReferenceProfile, int]:
    """Data larger than the budget: batches streamed, kept for pass 2 while they fit."""
    from ..profile_builder import build_profile

    passes = iter(("pass 1/2", "pass 2/2"))
    cache: list[Any] | None = []
    done: list[bool] = []

    def each_pass() -> Iterator[Any]:
        nonlocal cache
        if done and cache is not None:  # pass 2 from the batches pass 1 kept
            yield from cache
            return
        bar = _progress(source, next(passes), show)
        kept = 0
        try:
            for batch in source.batches():
                if cache is not None and not done:
                    kept += batch.nbytes
                    if kept <= budget:
                        cache.append(batch)
                    else:
                        cache = None  # too big: pass 2 reads the file again
                yield batch
                bar(source.position())
        finally:
            bar(None)
        done.append(True)

    counted = [0]

    def count(rows: int) -> None:
        counted[0] += rows

    threads = min(os.cpu_count() or 1, 8)
    profile = build_profile(each_pass, progress=count, threads=threads, **options)
    return profile, counted[0] // 2


class ArrowSource:
    """Batches of a CSV or Parquet file, read with Arrow (streaming, bounded memory)."""

    def __init__(self, path: Path) -> None:
        require("pyarrow", "cli")
        self.path = path
        self.parquet = _is_parquet(path)
        self.size = path.stat().st_size
        self._file: Any = None
        self._rows = 0

    def decoded_bytes(self) -> int:
        """About the bytes the decoded data takes (the CSV's size; Parquet's metadata)."""
        if not self.parquet:
            return self.size
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(self.path).metadata
        return sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))

    def read_all(self, select: Callable[[list[str]], list[str]] | None = None) -> Any:
        """The whole file as one Arrow table (Arrow's multithreaded readers).

        ``select(column_names)`` names the columns to read (default: all).
        """
        if self.parquet:
            import pyarrow.parquet as pq

            names = pq.read_schema(self.path).names
            return pq.read_table(self.path, columns=None if select is None else select(names))
        from pyarrow import csv

        options = _csv_options()
        typed = self._typed(options, select)
        read = csv.ReadOptions(block_size=READ_BLOCK_BYTES)
        try:
            return csv.read_csv(self.path, read_options=read, convert_options=typed)
        except Exception as exc:  # a later row breaks the first block's types: infer all
            if not type(exc).__module__.startswith("pyarrow"):
                raise
            options.include_columns = typed.include_columns
            return csv.read_csv(self.path, read_options=read, convert_options=options)

    def _typed(self, options: Any, select: Callable[[list[str]], list[str]] | None) -> Any:
        """Column types inferred once, from the first block; strings dictionary-encoded."""
        import pyarrow as pa
        from pyarrow import csv

        first = csv.ReadOptions(block_size=READ_BLOCK_BYTES)
        with csv.open_csv(self.path, read_options=first, convert_options=options) as reader:
            schema = reader.schema
        types = {
            f.name: pa.dictionary(pa.int32(), pa.string()) if pa.types.is_string(f.type) else f.type
            for f in schema
        }
        keep = list(types) if select is None else select(list(types))
        return csv.ConvertOptions(
            strings_can_be_null=True, column_types=types, include_columns=keep
        )

    @property
    def unit(self) -> str:
        return "rows" if self.parquet else "B"

    @property
    def total(self) -> int:
        if self.parquet:
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(self.path).metadata.num_rows)
        return self.size

    def position(self) -> int:
        """Progress so far in :attr:`unit` (bytes read from a CSV, rows of Parquet)."""
        if self.parquet:
            return self._rows
        return int(self._file.tell()) if self._file is not None else 0

    def batches(self) -> Iterator[Any]:
        self._rows = 0
        if self.parquet:
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(self.path).iter_batches(batch_size=PARQUET_BATCH_ROWS):
                self._rows += batch.num_rows
                yield batch
            return
        from pyarrow import csv

        with self.path.open("rb") as fh:
            self._file = fh
            reader = csv.open_csv(fh, read_options=_read_options(), convert_options=_csv_options())
            try:
                yield from reader
            finally:
                self._file = None

    def sample(self, n: int, seed: int, progress: Callable[[int | None], None]) -> Any:
        """A uniform sample of ``n`` rows: the ``n`` smallest of one random key per row."""
        import numpy as np
        import pyarrow as pa

        rng = np.random.default_rng(seed)
        kept: Any = None
        keys = np.zeros(0)
        try:
            for batch in self.batches():
                table = pa.Table.from_batches([batch])
                fresh = rng.random(batch.num_rows)
                kept = table if kept is None else pa.concat_tables([kept, table])
                keys = np.concatenate([keys, fresh])
                if keys.size > n:
                    pick = np.sort(np.argpartition(keys, n - 1)[:n])
                    kept, keys = kept.take(pa.array(pick)), keys[pick]
                progress(self.position())
        finally:
            progress(None)
        if kept is None:
            raise ConfigurationError(f"{self.path} has no rows")
        return kept.combine_chunks()


def _read_options() -> Any:
    from pyarrow import csv

    return csv.ReadOptions(block_size=BLOCK_BYTES)


def _csv_options() -> Any:
    from pyarrow import csv

    return csv.ConvertOptions(strings_can_be_null=True)


def _progress(
    source: ArrowSource,
    label: str,
    show: bool,
    *,
    total: int | None = None,
    unit: str | None = None,
) -> Callable[[int | None], None]:
    """``update(position)``; ``update(None)`` closes. A no-op off a terminal or without tqdm.

    ``total`` and ``unit`` default to the source's (bytes of a CSV, rows of Parquet).
    """
    bar: Any = None
    if show and sys.stderr.isatty():
        try:
            from tqdm import tqdm

            bar = tqdm(
                total=source.total if total is None else total,
                desc=label,
                unit=source.unit if unit is None else unit,
                unit_scale=True,
                file=sys.stderr,
                leave=False,
            )
        except ImportError:
            bar = None

    def update(position: int | None) -> None:
        if bar is None:
            return
        if position is None:
            bar.close()
            return
        bar.update(max(position - bar.n, 0))

    return update


# --- on an engine -----------------------------------------------------------------------


def _on_spark(
    path: Path, args: argparse.Namespace, options: dict[str, Any]
) -> tuple[ReferenceProfile, int]:
    from .. import spark as mm_spark

    sql = require("pyspark.sql", "spark")
    existing = sql.SparkSession.getActiveSession()  # e.g. inside pyspark: used, not stopped
    session = sql.SparkSession.builder.master(args.spark_master).appName("modelmon-profile")
    spark = existing if existing is not None else session.getOrCreate()
    try:
        reader = spark.read
        if _is_parquet(path):
            df = reader.parquet(str(path))
        else:
            df = reader.csv(str(path), header=True, inferSchema=True)
        if args.sample is not None:
            total = df.count()
            df = df.sample(fraction=_sample_fraction(args.sample, total), seed=args.seed)
        df = df.cache()
        try:
            return mm_spark.profile(df, **options), int(df.count())
        finally:
            df.unpersist()
    finally:
        if existing is None:  # stop what this command started
            spark.stop()


def _on_dask(
    path: Path, args: argparse.Namespace, options: dict[str, Any]
) -> tuple[ReferenceProfile, int]:
    from .. import dask as mm_dask

    dd = require("dask.dataframe", "dask")
    client: Any = None
    if args.dask_scheduler:
        import distributed

        client_class: Any = distributed.Client
        client = client_class(args.dask_scheduler)
    try:
        if _is_parquet(path):
            ddf = dd.read_parquet(str(path))
        else:
            ddf = dd.read_csv(str(path), blocksize=64 << 20)
        if args.sample is not None:
            total = int(ddf.shape[0].compute())
            ddf = ddf.sample(frac=_sample_fraction(args.sample, total), random_state=args.seed)
        ddf = ddf.persist()
        return mm_dask.profile(ddf, **options), int(ddf.shape[0].compute())
    finally:
        if client is not None:
            client.close()


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def _sample_fraction(sample: int, total: int) -> float:
    """The fraction of ``total`` rows that samples about ``sample`` of them (at most all)."""
    return min(1.0, sample / max(total, 1))
