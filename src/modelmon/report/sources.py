"""Where ``modelmon report`` reads the current state from.

* a ``/metrics`` URL of a running service (``http://...``): parsed exposition;
* a multi-process state directory (``MODELMON_MULTIPROC_DIR``): merged like a scrape;
* a CSV or Parquet file of live rows: fed through a fresh monitor, with predictions
  from a column or from a predict function (``--model module:function``).

Each returns a :class:`~modelmon.report.snapshot.Snapshot` built from exported samples.
"""

from __future__ import annotations

import csv
import importlib
import math
import os
import runpy
import sys
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

from .. import names
from ..context import last_prediction_ids
from ..errors import ConfigurationError, require
from ..profile import ReferenceProfile
from .snapshot import Snapshot, monitor_snapshot, select_samples, snapshot_from_samples

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing's own from Python 3.11

CHUNK_ROWS = 1000
_FETCH_TIMEOUT_S = 10.0


def load_reference(reference: str) -> ReferenceProfile:
    """A profile from a path or an MLflow URI (``runs:/``, ``models:/``)."""
    if reference.startswith(("runs:/", "models:/")):
        from ..integrations.mlflow import resolve_reference

        return resolve_reference(reference).profile
    try:
        return ReferenceProfile.load(reference)
    except ConfigurationError:
        raise
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read reference profile {reference!r}: {exc}") from exc


def from_url(
    url: str,
    profile: ReferenceProfile,
    model: str | None = None,
    version: str | None = None,
    namespace: str = names.DEFAULT_NAMESPACE,
) -> Snapshot:
    """Scrape ``url`` (a Prometheus text exposition) and snapshot one monitor of it."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(url, timeout=_FETCH_TIMEOUT_S) as resp:
            text = resp.read().decode("utf-8")
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read metrics from {url!r}: {exc}") from exc
    return _snapshot(text_string_to_metric_families(text), profile, model, version, namespace)


def from_directory(
    path: str,
    profile: ReferenceProfile,
    model: str | None = None,
    version: str | None = None,
    namespace: str = names.DEFAULT_NAMESPACE,
) -> Snapshot:
    """Merge a multi-process state directory (every worker) and snapshot one monitor."""
    from ..exporters.multiprocess import MultiprocessCollector

    if not os.path.isdir(path):
        raise ConfigurationError(f"{path!r} is not a directory")
    metrics = list(MultiprocessCollector(path=path).collect())
    return _snapshot(metrics, profile, model, version, namespace)


def _snapshot(
    metrics: Iterable[Any],
    profile: ReferenceProfile,
    model: str | None,
    version: str | None,
    namespace: str,
) -> Snapshot:
    m, v, samples = select_samples(metrics, model, version, namespace)
    return snapshot_from_samples(m, v, samples, profile)


class TableOptions(TypedDict, total=False):
    """How :func:`from_table` reads a table (every key optional)."""

    predict: Callable[[Any], Any] | None
    prediction_column: str | None
    label_column: str | None
    model: str | None
    version: str | None
    task: str | None


def from_table(path: str, profile: ReferenceProfile, **options: Unpack[TableOptions]) -> Snapshot:
    """Feed the rows of a CSV/Parquet file through a fresh monitor and snapshot it.

    Features are the profile's columns. Predictions come from ``prediction_column``,
    else from ``predict`` (called per chunk with a 2-D float array when every feature
    is numeric, else with a list of dict rows), else none are recorded. With
    ``label_column``, every row's label is recorded as its outcome.
    """
    from ..monitor import Monitor

    predict, task = options.get("predict"), options.get("task")
    columns = read_table(Path(path))
    missing = [n for n in profile.features if n not in columns]
    if missing:
        raise ConfigurationError(f"{path}: columns of the reference missing: {missing}")
    feature_names = list(profile.features)
    n = len(columns[feature_names[0]]) if feature_names else 0
    predictions = _column(columns, options.get("prediction_column"), path)
    if predictions is not None:
        predictions = _labels_if_classification(predictions, task)
    labels = _column(columns, options.get("label_column"), path)
    numeric = all(columns[f].dtype.kind == "f" for f in feature_names)
    mon = Monitor(
        options.get("model") or Path(path).stem,
        options.get("version") or "current",
        reference=profile,
        registry=False,
        task=task,  # type: ignore[arg-type]
        strict=True,
    )
    try:
        for start in range(0, n, CHUNK_ROWS):
            stop = min(start + CHUNK_ROWS, n)
            rows: Any
            if numeric:
                rows = np.column_stack([columns[f][start:stop] for f in feature_names])
            else:
                rows = [{f: columns[f][i] for f in feature_names} for i in range(start, stop)]
            outputs = predictions[start:stop] if predictions is not None else None
            if outputs is None and predict is not None:
                outputs = predict(rows)
            mon.observe(rows, outputs)
            if labels is not None and outputs is not None:
                ids = last_prediction_ids()  # one id per row of the call just observed
                mon.record_outcomes(ids, labels[start:stop].tolist())
        return monitor_snapshot(mon)
    finally:
        mon.close()


def _column(columns: dict[str, np.ndarray], name: str | None, path: str) -> np.ndarray | None:
    if name is None:
        return None
    if name not in columns:
        raise ConfigurationError(f"{path}: column {name!r} not found; columns: {sorted(columns)}")
    return columns[name]


def load_predict(spec: str) -> Callable[[Any], Any]:
    """``module:function`` or ``path/to/file.py:function`` -> the function."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise ConfigurationError(
            f"--model must be module:function or file.py:function, not {spec!r}"
        )
    try:
        if target.endswith(".py"):
            namespace = runpy.run_path(target)
            fn = namespace[attr]
        else:
            if "" not in sys.path:
                sys.path.insert(0, "")
            fn = getattr(importlib.import_module(target), attr)
    except (ImportError, OSError, KeyError, AttributeError) as exc:
        raise ConfigurationError(f"cannot load --model {spec!r}: {exc!r}") from exc
    if not callable(fn):
        raise ConfigurationError(f"--model {spec!r} is not callable")
    return fn  # type: ignore[no-any-return]


def from_source(
    source: str,
    profile: ReferenceProfile,
    *,
    namespace: str = names.DEFAULT_NAMESPACE,
    **options: Unpack[TableOptions],
) -> Snapshot:
    """Dispatch on the kind of ``source`` (URL, directory, or CSV/Parquet file)."""
    model, version = options.get("model"), options.get("version")
    if source.startswith(("http://", "https://")):
        return from_url(source, profile, model, version, namespace)
    if os.path.isdir(source):
        return from_directory(source, profile, model, version, namespace)
    if Path(source).suffix.lower() in (".csv", ".parquet", ".pq"):
        if not os.path.isfile(source):
            raise ConfigurationError(f"{source!r} does not exist")
        return from_table(source, profile, **options)
    raise ConfigurationError(
        f"--current {source!r}: expected a /metrics URL, a multi-process state directory, "
        "or a .csv/.parquet file"
    )


# --- reading a table (CSV, or Parquet with the parquet extra) -----------------------------


def read_table(path: Path) -> dict[str, np.ndarray]:
    """Column name -> array (float when every value parses as a number, else object)."""
    if path.suffix.lower() in (".parquet", ".pq"):
        pq = require("pyarrow.parquet", "parquet")
        table = pq.read_table(path)
        return {str(n): _parse_column(table.column(n).to_pylist()) for n in table.column_names}
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


def _labels_if_classification(prediction: np.ndarray, task: str | None) -> np.ndarray:
    """Integral float labels of a classification task become integers (class labels)."""
    if task != "classification" or prediction.dtype.kind != "f":
        return prediction
    finite = prediction[np.isfinite(prediction)]
    if finite.size and np.all(finite == np.round(finite)) and finite.size == prediction.size:
        return prediction.astype(np.int64)
    return prediction.astype(str)
