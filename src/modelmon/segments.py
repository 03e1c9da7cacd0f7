"""Segments: which slice of traffic a row belongs to, and how many series they may cost.

``segment=`` names a feature (its value is the segment) or is a callable receiving the
row as a ``{feature: value}`` dict and returning a string. The values a segment label
can take are fixed at configuration time, never by traffic: ``segments=[...]``, else
the reference profile's ``top_k`` most frequent categories of that feature. Every other
value is ``__other__``; a missing value (or a callable returning None) is
``__missing__``.

Each value has a fixed *code*, the same on every replica (it depends on configuration
only), and that code travels in the prediction id, so a label is scored per segment in
whichever process receives it. Code 0 means "no segment".

====== =====================
code   segment
====== =====================
0      none (not configured)
1      ``__missing__``
2      ``__other__``
3 + i  ``values[i]``
====== =====================

The series budget: every segment exports a fixed set of series (see
:meth:`SegmentPlan.series_per_segment`); segments are admitted in code order from the
allowed values (most frequent first), then ``__other__``, then ``__missing__``, until
``max_series`` would be exceeded. Rows of segments left out are still counted overall,
and in ``modelmon_dropped_observations_total{reason="series_budget"}``.

>>> seg = Segmenter("country", ["fr", "de"])
>>> [seg.label(c) for c in seg.codes_of_rows([{"country": "de"}, {"country": "xx"}, {}])]
['de', '__other__', '__missing__']
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import names
from .batch import FeatureFrame, IntArray
from .category_vocabulary import CodedColumns
from .errors import ConfigurationError
from .profile import ReferenceProfile

DEFAULT_TOP_K = 10
#: Default ``max_series``: see docs/segments.md for the measurement behind it.
DEFAULT_MAX_SERIES = 2000
MAX_SEGMENT_VALUES = 1000
MAX_SEGMENT_CHARS = 128
NONE_CODE = 0
MISSING_CODE = 1
OTHER_CODE = 2
FIRST_VALUE_CODE = 3

SegmentArg = str | Callable[[Mapping[str, Any]], Any] | None


def _value_text(v: Any) -> str | None:
    """A row's segment value as the label compares it (None when missing)."""
    if v is None:
        return None
    if isinstance(v, float):
        if math.isnan(v):
            return None
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return repr(v)
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (np.floating, np.integer)):
        return _value_text(v.item())
    text = v if isinstance(v, str) else str(v)
    return text[:MAX_SEGMENT_CHARS] if text else None


class Segmenter:
    """Maps rows to segment codes (see the module doc); configuration errors raise here."""

    def __init__(self, segment: SegmentArg, values: Sequence[Any]) -> None:
        if not (isinstance(segment, str) and segment) and not callable(segment):
            raise ConfigurationError(
                f"segment= must be a feature name or a callable of the row, got {segment!r}"
            )
        texts = [_value_text(v) for v in values]
        if any(t is None for t in texts):
            raise ConfigurationError(f"segments must be non-empty values, got {list(values)!r}")
        allowed = list(dict.fromkeys(t for t in texts if t is not None))
        reserved = {names.POOLED, names.SEGMENT_MISSING}
        if reserved & set(allowed):
            raise ConfigurationError(f"segments must not contain {sorted(reserved)}")
        if not allowed or len(allowed) > MAX_SEGMENT_VALUES:
            raise ConfigurationError(
                f"segments needs 1 to {MAX_SEGMENT_VALUES} values, got {len(allowed)}"
            )
        self.feature = segment if isinstance(segment, str) else None
        self.fn = None if isinstance(segment, str) else segment
        self.values: tuple[str, ...] = tuple(allowed)
        self._index = {v: FIRST_VALUE_CODE + i for i, v in enumerate(self.values)}
        self._column_index: dict[Any, int] = {None: MISSING_CODE, **self._index}
        self.labels: tuple[str, ...] = ("", names.SEGMENT_MISSING, names.POOLED, *self.values)
        self.last_error: Exception | None = None  # read and cleared by the fold

    def take_error(self) -> Exception | None:
        """The latest failure of the ``segment=`` callable since the last call, if any."""
        exc, self.last_error = self.last_error, None
        return exc

    @property
    def n_codes(self) -> int:
        """Codes 1..n_codes - 1 are segments (0 is none)."""
        return len(self.labels)

    def label(self, code: int) -> str:
        """The label of a code; unknown codes (another configuration) are ``__other__``."""
        if MISSING_CODE <= code < len(self.labels):
            return self.labels[code]
        return names.POOLED

    def code(self, value: Any) -> int:
        text = _value_text(value)
        if text is None:
            return MISSING_CODE
        return self._index.get(text, OTHER_CODE)

    def codes_of_rows(self, rows: Sequence[Mapping[str, Any]]) -> IntArray:
        """Codes of rows given as ``{feature: value}`` dicts (never raises on a bad row)."""
        out = np.empty(len(rows), dtype=np.int64)
        for i, row in enumerate(rows):
            out[i] = self._row_code(row)
        return out

    def _row_code(self, row: Mapping[str, Any]) -> int:
        if self.fn is None:
            return self.code(row.get(self.feature or ""))
        try:
            return self.code(self.fn(row))
        except Exception as exc:  # the user's callable failed on this row
            self.last_error = exc
            return MISSING_CODE

    def codes_of_input(self, inp: Any) -> list[int] | None:
        """Codes of a call's input when it is a dict, a pydantic model or a list of dicts
        (the id's fast path: no frame is built), else None."""
        if type(inp) is not dict and callable(getattr(inp, "model_dump", None)):
            inp = inp.model_dump()  # a pydantic model, as the fold reads it
        if type(inp) is dict:
            return [self._row_code(inp)]
        if type(inp) is list and inp and all(type(r) is dict for r in inp):
            return [self._row_code(r) for r in inp]
        return None

    def codes(self, frame: FeatureFrame | None, n_rows: int) -> IntArray:
        """The code of each row of a fold's feature frame (``__missing__`` without one)."""
        if frame is None or frame.n_rows != n_rows:
            return np.full(n_rows, MISSING_CODE, dtype=np.int64)
        if self.fn is None:
            return self._column_codes(frame)
        return self.codes_of_rows(frame_rows(frame))

    def _column_codes(self, frame: FeatureFrame) -> IntArray:
        try:
            j = frame.names.index(self.feature or "")
        except ValueError:
            return np.full(frame.n_rows, MISSING_CODE, dtype=np.int64)
        coded = frame.categorical
        position = coded.position(j) if isinstance(coded, CodedColumns) else None
        if isinstance(coded, CodedColumns) and position is not None:  # one lookup per word
            codes = coded.vocabulary.mapped(self._column_index, self._index_of)
            return np.asarray(codes[coded.codes[:, position]], dtype=np.int64)
        cats = frame.categorical.get(j)
        if cats is not None:  # str or None (see FeatureFrame): one dict lookup each
            found = map(self._column_index.get, cats.tolist(), itertools.repeat(OTHER_CODE))
            return np.fromiter(found, dtype=np.int64, count=frame.n_rows)
        return np.fromiter(
            (self.code(v) for v in frame.numeric[:, j].tolist()),
            dtype=np.int64,
            count=frame.n_rows,
        )

    def _index_of(self, value: str | None) -> int:
        return self._column_index.get(value, OTHER_CODE)


def frame_rows(frame: FeatureFrame) -> list[dict[str, Any]]:
    """Each row of a feature frame as ``{feature: value}`` (None where missing or invalid)."""
    columns: list[list[Any]] = []
    for j in range(len(frame.names)):
        cats = frame.categorical.get(j)
        if cats is not None:
            columns.append(cats.tolist())
        else:
            col = frame.numeric[:, j]
            columns.append([None if v != v else v for v in col.tolist()])
    return [dict(zip(frame.names, values, strict=True)) for values in zip(*columns, strict=True)]


def segment_values(
    segment: SegmentArg,
    values: Sequence[Any] | None,
    profile: ReferenceProfile | None,
    top_k: int = DEFAULT_TOP_K,
) -> list[Any]:
    """The allowed segment values: ``values``, else the reference's top-``top_k`` categories."""
    if values is not None:
        if isinstance(values, str):
            raise ConfigurationError("segments= must be a list of values, not one string")
        return list(values)
    if not isinstance(top_k, int) or top_k < 1:
        raise ConfigurationError(f"segment_top_k must be a positive int, got {top_k!r}")
    if not isinstance(segment, str):
        raise ConfigurationError(
            "a segment= callable needs segments=[...]: its values cannot come from the reference"
        )
    member = profile.features.get(segment) if profile is not None else None
    if member is None:
        raise ConfigurationError(
            f"segment={segment!r} needs segments=[...] or a reference profile with that feature"
        )
    if member.kind != "categorical":
        raise ConfigurationError(
            f"segment={segment!r} is numeric in the reference: give segments=[...] "
            "(or a callable binning it, with its segments)"
        )
    pairs: list[tuple[str, float]]
    if member.full_categories and member.full_counts:
        counts = member.full_counts
        pairs = [(c, float(n)) for c, n in zip(member.full_categories, counts, strict=False)]
    else:
        pairs = list(zip(member.categories, member.shares, strict=False))
    ranked = sorted((p for p in pairs if p[0] != names.POOLED), key=lambda p: (-p[1], p[0]))
    return [c for c, _ in ranked[:top_k]]


@dataclass(frozen=True)
class SegmentPlan:
    """Which segments are exported, from the series each costs and the budget."""

    segmenter: Segmenter
    admitted: frozenset[int]
    series_per_segment: int
    max_series: int

    @classmethod
    def of(
        cls,
        segmenter: Segmenter,
        max_series: int,
        n_features: int,
        n_outputs: int,
        n_quantiles: int,
    ) -> SegmentPlan:
        if not isinstance(max_series, int) or max_series < 1:
            raise ConfigurationError(f"max_series must be a positive int, got {max_series!r}")
        cost = series_per_segment(n_features, n_outputs, n_quantiles)
        order = [*range(FIRST_VALUE_CODE, segmenter.n_codes), OTHER_CODE, MISSING_CODE]
        room = max_series // cost
        return cls(segmenter, frozenset(order[:room]), cost, max_series)


def series_per_segment(n_features: int, n_outputs: int, n_quantiles: int) -> int:
    """The most series one segment exports (counters, confidence histogram, drift, labels)."""
    histogram = len(names.CONFIDENCE_BUCKETS) + 3  # buckets, +Inf, _sum, _count
    drift = len(names.DRIFT_METHODS) + 1  # scores and the decision
    traffic = 2  # requests, predictions
    labels = 4  # correct/wrong, or squared/absolute _sum and _count
    return traffic + histogram + labels + (n_features + n_outputs) * drift + n_outputs * n_quantiles


def segment_schema(
    segment: SegmentArg,
    names_: Sequence[str] | None,
    categorical: Iterable[str],
    profile: ReferenceProfile | None,
) -> Iterable[str]:
    """The categorical features, with a ``segment=`` feature read as labels (checked).

    A profiled feature keeps its kind; without an explicit list, kinds are guessed from
    the first input (a string column is categorical), so the list is left alone.
    """
    if not isinstance(segment, str):
        return categorical
    if names_ is not None and segment not in names_:
        raise ConfigurationError(
            f"segment={segment!r} is not among the monitored features {list(names_)[:10]}"
        )
    kinds = list(categorical)
    profiled = profile is not None and segment in profile.features
    if kinds and not profiled and segment not in kinds:
        kinds.append(segment)
    return kinds
