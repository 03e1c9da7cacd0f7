"""``modelmon profile``: build a reference profile from a CSV or Parquet file.

modelmon profile train.csv --prediction-column y -o reference.json
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigurationError, MissingExtraError
from ..profile import ReferenceProfile
from ._help import examples


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
        "--prediction-column", required=True, help="column holding the model's predictions"
    )
    p.add_argument(
        "--confidence-column",
        default=None,
        help="column holding the prediction confidence (default: none)",
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
    p.add_argument("-o", "--output", required=True, help="where to write the profile JSON")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Build and save the profile; return the process exit code."""
    try:
        columns = read_table(Path(args.input))
        prediction = _pop(columns, args.prediction_column)
        confidence = _pop(columns, args.confidence_column) if args.confidence_column else None
        categorical = [c.strip() for c in args.categorical.split(",") if c.strip()]
        prediction = _labels_if_classification(prediction, args.task)
        rows = len(prediction)
        names = list(columns)
        if names and all(c.dtype.kind == "f" for c in columns.values()):
            X: Any = np.column_stack([columns[k] for k in names])
        else:
            X = [{k: columns[k][i] for k in names} for i in range(rows)]
        profile = ReferenceProfile.from_data(
            X,
            predictions=prediction,
            feature_names=names,
            bins=args.bins,
            categorical=categorical,
            max_categories=args.max_categories,
            confidence=confidence,
            task=args.task,
        )
        profile.save(args.output)
    except (OSError, ConfigurationError, MissingExtraError, KeyError) as exc:
        print(f"modelmon profile: error: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {args.output}: {len(profile.features)} features, "
        f"outputs {sorted(profile.outputs)}, {rows} rows"
    )
    return 0


def read_table(path: Path) -> dict[str, np.ndarray]:
    """Column name -> array (float when every value parses as a number, else object)."""
    if path.suffix.lower() in (".parquet", ".pq"):
        return _read_parquet(path)
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise ConfigurationError(f"{path} is empty")
        cells = list(reader)
    return {
        name: _parse_column([r[j] if j < len(r) else "" for r in cells])
        for j, name in enumerate(header)
    }


def _read_parquet(path: Path) -> dict[str, np.ndarray]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingExtraError("pyarrow", "parquet") from exc
    table = pq.read_table(path)
    out: dict[str, np.ndarray] = {}
    for name in table.column_names:
        values = table.column(name).to_pylist()
        out[str(name)] = _parse_column(values)
    return out


def _parse_column(values: list[Any]) -> np.ndarray:
    """Floats when every non-empty value is a number; else strings (None when empty)."""
    present = [v for v in values if v not in ("", None)]
    try:
        if any(isinstance(v, (bool, np.bool_)) for v in present):
            raise ValueError
        nums = [math.nan if v in ("", None) else float(v) for v in values]
    except (TypeError, ValueError):
        return np.asarray([None if v in ("", None) else str(v) for v in values], dtype=object)
    return np.asarray(nums, dtype=np.float64)


def _pop(columns: dict[str, np.ndarray], name: str) -> np.ndarray:
    if name not in columns:
        raise ConfigurationError(f"column {name!r} not found; columns: {sorted(columns)}")
    return columns.pop(name)


def _labels_if_classification(prediction: np.ndarray, task: str | None) -> np.ndarray:
    """Integral float labels of a classification task become integers (class labels)."""
    if task != "classification" or prediction.dtype.kind != "f":
        return prediction
    finite = prediction[np.isfinite(prediction)]
    if finite.size and np.all(finite == np.round(finite)) and finite.size == prediction.size:
        return prediction.astype(np.int64)
    return prediction.astype(str)
