"""Summarising data into profile members: input columns, numeric and categorical members, outputs.

Split by job from :mod:`modelmon.profile` (which re-exports the public names).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from . import names

# private: the member format and its limits, split by job from .profile (one owner)
from ._profile_member import (
    CONFIDENCE,
    MAX_BINS,
    MAX_CATEGORIES,
    MAX_SKETCH_BUCKETS,
    MAX_TEST_CATEGORIES,
    PREDICTION,
    REFERENCE_SKETCH_ACCURACY,
    FeatureProfile,
    _none_mask,
    sketch_center,
)
from .batch import FloatArray, IntArray, ObjArray, OutputFrame
from .drift import REFERENCE_QUANTILE_PROBS
from .errors import ConfigurationError
from .extract import bounded_category
from .outliers import fence_from_data
from .sketches.ddsketch import LogSketch

# --- columns ---------------------------------------------------------------------------


def _check(bins: int, max_categories: int) -> None:
    if bins < 2:
        raise ConfigurationError(f"bins must be >= 2, got {bins!r}")
    if not 1 <= max_categories <= MAX_CATEGORIES:
        raise ConfigurationError(
            f"max_categories must be in [1, {MAX_CATEGORIES}], got {max_categories!r}"
        )
    if bins > MAX_BINS:
        raise ConfigurationError(f"bins must be <= {MAX_BINS}, got {bins!r}")


def _columns(X: Any, feature_names: Sequence[str] | None) -> dict[str, np.ndarray]:
    """Column name -> 1-D array (float for numeric dtypes, object otherwise)."""
    module = type(X).__module__
    if module.startswith("pandas") and type(X).__name__ == "DataFrame":
        cols = {str(c): _pandas_column(X[c]) for c in X.columns}
        return _rename(cols, feature_names)
    if isinstance(X, Sequence) and X and isinstance(X[0], Mapping):
        keys: dict[str, Any] = {}  # name -> the key as found (``0`` for ``{0: 1.5}``)
        for row in X:
            keys.update((str(k), k) for k in row if str(k) not in keys)
        cols = {n: _object_column([row.get(k) for row in X]) for n, k in keys.items()}
        return _rename(cols, feature_names)
    a = np.asarray(X)
    if a.dtype.kind in "US" and not isinstance(X, np.ndarray):
        # Rows mixing numbers and strings: numpy made every value a string; keep each
        # value's own type, so numeric columns stay numeric.
        a = np.asarray(X, dtype=object)
    if a.ndim == 1:
        a = a.reshape(-1, 1)
    if a.ndim != 2 or a.shape[0] == 0:
        raise ConfigurationError(f"reference data must be 2-D with rows, got shape {a.shape}")
    names_ = (
        list(feature_names) if feature_names is not None else [f"f{i}" for i in range(a.shape[1])]
    )
    if len(names_) != a.shape[1]:
        raise ConfigurationError(f"{len(names_)} feature names for {a.shape[1]} columns")
    if a.dtype.kind in "fiu":
        return {str(n): a[:, j].astype(np.float64) for j, n in enumerate(names_)}
    return {str(n): _object_column(a[:, j].tolist()) for j, n in enumerate(names_)}


def _rename(
    cols: dict[str, np.ndarray], feature_names: Sequence[str] | None
) -> dict[str, np.ndarray]:
    if feature_names is None:
        return cols
    if len(feature_names) != len(cols):
        raise ConfigurationError(f"{len(feature_names)} feature names for {len(cols)} columns")
    return {str(n): v for n, v in zip(feature_names, cols.values(), strict=True)}


def _pandas_column(series: Any) -> np.ndarray:
    if series.dtype.kind in "fiu":
        return np.asarray(series.to_numpy(dtype=np.float64, na_value=np.nan))
    return _object_column(series.tolist())


def _object_column(values: list[Any]) -> np.ndarray:
    """A float array when every present value is a real number, else an object array."""
    present = [v for v in values if not _is_missing(v)]
    if present and all(
        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
        for v in present
    ):
        return np.asarray([math.nan if _is_missing(v) else float(v) for v in values])
    return np.asarray([None if _is_missing(v) else v for v in values], dtype=object)


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, (float, np.floating)) and math.isnan(v))


def _profile_column(
    name: str, values: np.ndarray, bins: int, max_categories: int, categorical: bool
) -> FeatureProfile:
    if values.dtype.kind == "f" and not categorical:
        return _numeric(name, values, bins)
    if values.dtype.kind == "f":  # a numeric column named in categorical=
        obj = np.asarray(
            [None if math.isnan(v) else _num_str(v) for v in values.tolist()], dtype=object
        )
        return _categorical(name, obj, max_categories)
    obj = np.asarray([None if v is None else str(v) for v in values.tolist()], dtype=object)
    return _categorical(name, obj, max_categories)


def _num_str(v: float) -> str:
    """Integers print as ints ("3", as ``str`` of an int feature value would), else repr."""
    return str(int(v)) if v.is_integer() else repr(v)


def _numeric(
    name: str, values: npt.ArrayLike, bins: int, missing: int | None = None
) -> FeatureProfile:
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    valid = v[finite]
    n_missing = int((~finite).sum()) if missing is None else missing
    total = valid.size + n_missing
    missing_share = n_missing / total if total else 0.0
    if valid.size == 0:
        return FeatureProfile(name, "numeric", (1.0,), 0, missing_share, (), quantiles=())
    probs = np.arange(1, bins) / bins
    edges = np.unique(np.quantile(valid, probs, method="lower"))
    counts = np.bincount(np.searchsorted(edges, valid, side="left"), minlength=edges.size + 1)
    sketch_values, sketch_counts = reference_sketch(valid)
    quantiles = tuple(float(q) for q in np.quantile(valid, REFERENCE_QUANTILE_PROBS))
    return FeatureProfile(
        name,
        "numeric",
        shares=tuple(float(c) for c in counts / valid.size),
        count=int(valid.size),
        missing_share=float(missing_share),
        edges=tuple(float(e) for e in edges),
        mean=float(valid.mean()),
        std=float(valid.std()),
        min=float(valid.min()),
        max=float(valid.max()),
        quantiles=quantiles,
        sketch_values=sketch_values,
        sketch_counts=sketch_counts,
        fence=fence_from_data(valid, quantiles),
    )


def reference_sketch(valid: FloatArray) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """The reference distribution with the live sketch's guarantee (relative accuracy 1%
    of the distance to :func:`sketch_center`): each non-empty bucket's representative
    value (centre added back) and count. Wasserstein and KS from profiles then follow the
    raw data on heavy tails, where a quantile summary interpolates linearly into the
    maximum.
    """
    p01, median, p99 = (float(q) for q in np.quantile(valid, (0.01, 0.5, 0.99)))
    center = sketch_center(p01, median, p99)
    sketch = LogSketch(REFERENCE_SKETCH_ACCURACY, max_buckets=MAX_SKETCH_BUCKETS)
    sketch.add(valid - center)
    _, counts, values = sketch.buckets()
    return tuple(float(v) for v in values + center), tuple(int(c) for c in counts)


def _categorical(name: str, values: ObjArray, max_categories: int) -> FeatureProfile:
    missing = _none_mask(values)
    # Values bounded as live traffic's are (see extract.bounded_category), so they match.
    present = np.array([bounded_category(v) for v in values[~missing]], dtype=object).astype(str)
    uniq, counts = np.unique(present, return_counts=True)  # sorted by name
    return categorical_from_counts(name, uniq, counts, int(missing.sum()), max_categories)


def categorical_from_counts(
    name: str,
    categories: npt.NDArray[np.str_],
    counts: IntArray,
    n_missing: int,
    max_categories: int,
) -> FeatureProfile:
    """The categorical profile of exact per-category counts (``categories`` sorted by name).

    Shared by :meth:`ReferenceProfile.from_data` and the mergeable
    :class:`~modelmon.profile_builder.ProfileBuilder`, so both keep the same categories.
    """
    n_present = int(counts.sum())
    total = n_present + n_missing
    keep = categories != names.POOLED
    uniq, counts = categories[keep], counts[keep]
    order = np.argsort(-counts, kind="stable")  # ties stay by name
    full = order[: max(MAX_TEST_CATEGORIES, max_categories)]
    top = tuple(str(c) for c in uniq[order[:max_categories]])
    top_counts = counts[order[:max_categories]]
    pooled = n_present - int(top_counts.sum())
    shares = np.append(top_counts, pooled) / max(n_present, 1)
    full_counts = (*(int(c) for c in counts[full]), n_present - int(counts[full].sum()))
    return FeatureProfile(
        name,
        "categorical",
        shares=tuple(float(s) for s in shares),
        count=n_present,
        missing_share=float(np.int64(n_missing) / total) if total else 0.0,
        categories=(*top, names.POOLED),
        full_categories=(*(str(c) for c in uniq[full]), names.POOLED),
        full_counts=full_counts,
    )


# --- outputs ---------------------------------------------------------------------------


def _labels(a: np.ndarray) -> ObjArray:
    """Class labels as strings, exactly as :func:`modelmon.extract.outputs_frame` makes them."""
    if a.dtype.kind == "b":
        return np.where(a, "1", "0").astype(object)
    return a.astype(str).astype(object)


def _profile_outputs(
    predictions: Any,
    confidence: Any,
    bins: int,
    max_categories: int,
    task: str | None,
    classes: Sequence[str] | None,
) -> dict[str, FeatureProfile]:
    outs: dict[str, FeatureProfile] = {}
    if predictions is not None:
        if hasattr(predictions, "to_numpy"):
            predictions = predictions.to_numpy()
        a = np.asarray(predictions)
        if a.ndim == 2 and a.shape[1] == 1:
            a = a[:, 0]
        if a.ndim == 2:
            frame = _probability_frame(a, classes)
            outs.update(_frame_outputs(frame, bins, max_categories))
        elif a.dtype.kind == "f" or (a.dtype.kind in "iub" and task == "regression"):
            outs[PREDICTION] = _numeric(PREDICTION, a.astype(np.float64), bins)
        else:
            outs[PREDICTION] = _categorical(PREDICTION, _labels(a), max_categories)
    if confidence is not None:
        conf = np.asarray(confidence, dtype=np.float64).reshape(-1)
        outs[CONFIDENCE] = _numeric(CONFIDENCE, conf, bins)
    return outs


def _probability_frame(m: np.ndarray, classes: Sequence[str] | None) -> OutputFrame:
    proba = m.astype(np.float64)
    k = proba.shape[1]
    class_names = tuple(classes) if classes is not None else tuple(str(i) for i in range(k))
    if len(class_names) != k:
        raise ConfigurationError(f"{len(class_names)} classes for {k} probability columns")
    labels = np.asarray(class_names, dtype=object)[proba.argmax(axis=1)]
    return OutputFrame(
        proba.shape[0], labels=labels, probabilities=proba, classes=class_names,
        confidence=proba.max(axis=1),
    )  # fmt: skip


def _frame_outputs(
    outputs: OutputFrame, bins: int, max_categories: int
) -> dict[str, FeatureProfile]:
    outs: dict[str, FeatureProfile] = {}
    if outputs.labels is not None:
        outs[PREDICTION] = _categorical(PREDICTION, outputs.labels, max_categories)
    elif outputs.values is not None:
        outs[PREDICTION] = _numeric(PREDICTION, outputs.values, bins)
    if outputs.confidence is not None:
        outs[CONFIDENCE] = _numeric(CONFIDENCE, outputs.confidence, bins)
    if outputs.probabilities is not None and outputs.classes is not None:
        for j, cls in enumerate(outputs.classes):
            if cls not in outs:
                outs[cls] = _numeric(cls, outputs.probabilities[:, j], bins)
    return outs
