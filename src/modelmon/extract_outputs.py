"""Output extraction: turn what a predict function returned into an :class:`OutputFrame`.

Split by job from :mod:`modelmon.extract` (inputs; it re-exports these names): scalars,
1-D predictions, class labels, probability matrices and confidences, over a whole batch
of calls at once in the fold, never on the hot path.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

# private: the pandas and scalar checks shared with the inputs (one owner)
from ._extract_types import UnsupportedInput, _is_pandas, _is_scalar
from .batch import FloatArray, ObjArray, OutputFrame

PROBABILITY_TOLERANCE = 1e-3


# --- outputs ------------------------------------------------------------------------

# Outputs of these exact types are one numeric row each (checked with one set of types).
SCALAR_OUTPUT_TYPES = frozenset({float, int, np.float64, np.float32, np.int64, np.int32})


def output_array(y: Any) -> np.ndarray:
    """One call's output as an ndarray with a leading row axis (raises UnsupportedInput)."""
    if isinstance(y, np.ndarray):
        return y.reshape(1) if y.ndim == 0 else y
    if _is_pandas(y, "DataFrame") or _is_pandas(y, "Series"):
        return np.asarray(y.to_numpy())
    if isinstance(y, (list, tuple)):
        if not len(y):
            return np.zeros(0)
        try:
            a = np.asarray(y)
        except (ValueError, TypeError, UnicodeError):  # ragged, or str mixed with bytes
            a = np.empty(len(y), dtype=object)
            a[:] = [v if _is_scalar(v) else repr(v) for v in y]
        return a.astype(object) if a.dtype.kind == "S" else a
    if isinstance(y, bytes):
        return np.asarray([y], dtype=object)
    if _is_scalar(y) and y is not None:
        return np.asarray([y])
    raise UnsupportedInput(f"cannot read predictions from {type(y).__name__}")


def output_rows(y: Any) -> int:
    """Rows predicted by one call (1 for anything without a length)."""
    if isinstance(y, np.ndarray):
        return int(y.shape[0]) if y.ndim else 1
    if isinstance(y, (list, tuple)) or _is_pandas(y, "DataFrame") or _is_pandas(y, "Series"):
        return len(y)
    return 1


def outputs_frame(
    outputs: Sequence[Any],
    *,
    task: str | None = None,
    classes: Sequence[str] | None = None,
    confidence: Literal["auto"] | Callable[[Any], Any] | None = "auto",
) -> OutputFrame:
    """Vectorise the outputs of a batch of calls.

    Float vectors are numeric predictions; integer, boolean and string vectors are class
    labels (unless ``task="regression"``); a 2-D matrix whose rows lie in [0, 1] and sum
    to 1 is a probability matrix, giving labels (argmax), the max-probability confidence
    and, for two classes, the positive-class probability as the numeric value.
    """
    try:
        arrays = _stack_outputs(outputs)
    except _MixedShapes:
        frames = [
            outputs_frame([y], task=task, classes=classes, confidence=confidence) for y in outputs
        ]
        return concat_output_frames(frames)
    if arrays is None:
        return OutputFrame(n_rows=0)
    n = int(arrays.shape[0])
    conf_user: FloatArray | None = None
    if callable(confidence):
        conf_user = _confidence_from_callable(outputs, confidence)
    if arrays.ndim == 2 and arrays.shape[1] == 1:
        arrays = arrays[:, 0]
    if arrays.ndim == 2:
        return _matrix_outputs(arrays, classes, confidence, conf_user)
    kind = arrays.dtype.kind
    if kind == "f" or (kind in "iub" and task == "regression"):
        return OutputFrame(n, values=arrays.astype(np.float64), confidence=conf_user)
    labels = _labels(arrays)
    values = arrays.astype(np.float64) if kind in "iub" else None
    return OutputFrame(n, values=values, labels=labels, confidence=conf_user)


def _labels(a: np.ndarray) -> ObjArray:
    if a.dtype.kind == "b":
        return np.where(a, "1", "0").astype(object)
    if a.dtype.kind in "OS":
        return np.array([_label(v) for v in a.tolist()], dtype=object)
    return a.astype(str).astype(object)


def _label(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    return str(v)


def _matrix_outputs(
    m: np.ndarray,
    classes: Sequence[str] | None,
    confidence: Literal["auto"] | Callable[[Any], Any] | None,
    conf_user: FloatArray | None,
) -> OutputFrame:
    n, k = m.shape
    if m.dtype.kind not in "fiub" or not _is_probability(m):
        return OutputFrame(n, confidence=conf_user)
    proba = m.astype(np.float64)
    names = tuple(classes) if classes is not None and len(classes) == k else None
    names = names or tuple(str(i) for i in range(k))
    best = proba.argmax(axis=1)
    labels = np.asarray(names, dtype=object)[best]
    conf = conf_user
    if conf is None and confidence == "auto":
        conf = proba.max(axis=1)
    values = proba[:, 1] if k == 2 else None
    return OutputFrame(n, values, labels, proba, names, conf)


def _is_probability(m: np.ndarray) -> bool:
    if m.size == 0:
        return False
    finite = np.isfinite(m).all()
    return bool(
        finite
        and m.min() >= -PROBABILITY_TOLERANCE
        and m.max() <= 1 + PROBABILITY_TOLERANCE
        and np.allclose(m.sum(axis=1), 1.0, atol=PROBABILITY_TOLERANCE)
    )


def _stack_outputs(outputs: Sequence[Any]) -> np.ndarray | None:
    """Concatenate per-call outputs along rows; scalars are one row each."""
    if not outputs:
        return None
    types = set(map(type, outputs))
    if types == {float}:  # the common case in one pass (np.asarray: two)
        return np.fromiter(outputs, np.float64, count=len(outputs))
    if types <= SCALAR_OUTPUT_TYPES:
        return np.asarray(outputs)
    arrays = [output_array(y) for y in outputs]
    arrays = [a for a in arrays if a.shape[0]]
    if not arrays:
        return None
    trailing = {a.shape[1:] for a in arrays}
    if len(trailing) != 1:
        raise _MixedShapes
    if len({a.dtype.kind for a in arrays}) > 1:
        arrays = [a.astype(object) for a in arrays]  # e.g. str and bytes labels mixed
    return np.concatenate(arrays) if len(arrays) > 1 else arrays[0]


class _MixedShapes(Exception):
    """Calls in one batch returned outputs of different shapes (e.g. predict and predict_proba)."""


def concat_output_frames(frames: Sequence[OutputFrame]) -> OutputFrame:
    """Row-wise concatenation; a field missing from some frames is filled (NaN / None)."""
    n = sum(f.n_rows for f in frames)

    def floats(get: Callable[[OutputFrame], FloatArray | None]) -> FloatArray | None:
        if all(get(f) is None for f in frames):
            return None
        return np.concatenate([_or_fill(get(f), f.n_rows, np.nan) for f in frames])

    labels = None
    if any(f.labels is not None for f in frames):
        labels = np.concatenate(
            [
                f.labels if f.labels is not None else np.full(f.n_rows, None, dtype=object)
                for f in frames
            ]
        )
    shapes = {f.probabilities.shape[1] for f in frames if f.probabilities is not None}
    proba = classes = None
    if len(shapes) == 1 and all(f.probabilities is not None for f in frames):
        proba = np.concatenate([f.probabilities for f in frames if f.probabilities is not None])
        classes = frames[0].classes
    return OutputFrame(
        n,
        floats(lambda f: f.values),
        labels,
        proba,
        classes,
        floats(lambda f: f.confidence),
    )


def _or_fill(a: FloatArray | None, n: int, fill: float) -> FloatArray:
    return a if a is not None else np.full(n, fill)


def _confidence_from_callable(outputs: Sequence[Any], fn: Callable[[Any], Any]) -> FloatArray:
    parts = [np.asarray(fn(y), dtype=np.float64).reshape(-1) for y in outputs]
    return np.concatenate(parts) if parts else np.zeros(0)
