"""Ground-truth fold helpers: a batch's output rows as keys, times and predictions to join.

Split by job from :mod:`modelmon.aggregates.outcomes` (which re-exports the public names).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .._internal.ids import row_ids
from ..batch import Batch, FloatArray, OutputFrame
from .outcome_store import (
    Prediction,
    class_label,
)

Task = Literal["classification", "regression"]


TASKS: tuple[str, ...] = ("classification", "regression")


@dataclass(frozen=True, slots=True)
class _Pair:
    """One joined outcome."""

    actual: Any
    prediction: Prediction
    predicted_at: float


# --- fold helpers -------------------------------------------------------------------------
def _row_keys(batch: Batch, n_rows: int) -> tuple[list[str], FloatArray] | None:
    """Row ids and prediction times of the batch's output rows (None if misaligned)."""
    ok = np.fromiter((e is None for e in batch.errors), dtype=bool, count=batch.n_calls)
    calls = np.flatnonzero(ok & (batch.rows > 0))
    first, total = batch.row_offset, batch.call_rows
    ids = [
        key
        for c in calls.tolist()
        for key in row_ids(batch.call_ids[c], int(batch.rows[c]), first, total)
    ]
    if len(ids) != n_rows:
        return None
    row_call = batch.row_call
    if row_call is None or row_call.shape[0] != n_rows:
        row_call = np.repeat(calls, batch.rows[calls])
    return ids, batch.ended_at[row_call].astype(np.float64)


def _row_calls(batch: Batch, n_rows: int) -> np.ndarray:
    """The call index of every output row."""
    row_call = batch.row_call
    if row_call is not None and row_call.shape[0] == n_rows:
        return row_call
    ok = np.fromiter((e is None for e in batch.errors), dtype=bool, count=batch.n_calls)
    calls = np.flatnonzero(ok & (batch.rows > 0))
    return np.repeat(calls, batch.rows[calls])


def _with_proba(pair: _Pair, extra: tuple[tuple[float, ...], tuple[str, ...] | None]) -> _Pair:
    proba, classes = extra
    pred = pair.prediction
    full = Prediction(pred.label, pred.value, proba, classes or tuple(map(str, range(len(proba)))))
    return _Pair(pair.actual, full, pair.predicted_at)


def _as_task(value: object) -> Task | None:
    if value == "classification":
        return "classification"
    if value == "regression":
        return "regression"
    return None


def _infer_task(frame: OutputFrame) -> Task | None:
    if frame.labels is not None or frame.probabilities is not None:
        return "classification"
    if frame.values is not None:
        return "regression"
    return None


def _predictions(
    frame: OutputFrame, task: Task | None, pick: np.ndarray
) -> list[Prediction] | None:
    """The predictions of the rows ``pick`` of ``frame`` (None when unusable for the task)."""
    if task == "regression":
        if frame.values is None:
            return None
        return [Prediction(value=v) for v in frame.values[pick].tolist()]
    if task != "classification":
        return None
    raw = frame.labels if frame.labels is not None else frame.values
    if raw is None:
        return None
    labels = [class_label(x) for x in raw[pick].tolist()]
    if frame.probabilities is None or frame.classes is None:
        return [Prediction(label=label) for label in labels]
    classes = tuple(frame.classes)
    return [
        Prediction(label=label, proba=tuple(row), classes=classes)
        for label, row in zip(labels, frame.probabilities[pick].tolist(), strict=True)
    ]
