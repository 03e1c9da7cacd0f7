"""What one fold hands to the aggregates: a batch of calls, already vectorised.

The hot path appends raw ``(inputs, outputs, latency, error, id)`` records; the fold
turns a batch of them into these arrays once (see :mod:`modelmon.extract`) and every
aggregate reads them. Nothing here knows an exporter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from .points import Family

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ObjArray = npt.NDArray[np.object_]


@dataclass(frozen=True, slots=True)
class FeatureFrame:
    """Input rows of a batch, one column per exported feature.

    ``numeric`` holds the value of numeric features and NaN wherever the value is
    missing, invalid, or the feature is categorical. ``missing`` marks None/NaN,
    ``invalid`` marks values of the wrong type (strings in a numeric feature, +-inf,
    unparseable objects). ``categorical`` maps a column index to an object array of
    ``str`` (``None`` where missing) for categorical features.
    """

    names: tuple[str, ...]
    numeric: FloatArray
    missing: BoolArray
    invalid: BoolArray
    categorical: Mapping[int, ObjArray]
    not_exported: int = 0

    @property
    def n_rows(self) -> int:
        return int(self.numeric.shape[0])


@dataclass(frozen=True, slots=True)
class OutputFrame:
    """Outputs of a batch, one entry per predicted row.

    ``values`` is the numeric prediction (regression output, or the positive-class
    probability / numeric label); ``labels`` the class label as ``str`` for
    classification outputs; ``probabilities`` the per-class matrix when the model
    returned one (``classes`` names its columns); ``confidence`` the max class
    probability (or the user's confidence callable) per row.
    """

    n_rows: int
    values: FloatArray | None = None
    labels: ObjArray | None = None
    probabilities: FloatArray | None = None
    classes: tuple[str, ...] | None = None
    confidence: FloatArray | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    """A folded batch of calls.

    Per call: ``latencies`` (seconds), ``rows`` (rows predicted), ``errors`` (the
    exception class name or ``None``), ``ended_at`` (unix time), ``call_ids``.
    Per row of successful calls: ``features`` and ``outputs`` (row-aligned with each
    other when both are present), and ``row_call`` (index of the call of each row).

    A call with more rows than a fold part is folded in several batches of that one
    call (see :mod:`modelmon.fold_parts`): ``call_rows`` is then the whole call's row
    count and ``row_offset`` the index, within the call, of this batch's first row. The
    call itself (request, latency, batch size) counts with its first part only.
    """

    now: float
    latencies: FloatArray
    rows: IntArray
    errors: tuple[str | None, ...]
    ended_at: FloatArray
    call_ids: Sequence[str]
    features: FeatureFrame | None = None
    outputs: OutputFrame | None = None
    row_call: IntArray | None = None
    seqs: Sequence[int | str] | None = None  # the monitor's id sequence numbers per call
    id_prefix: str = ""  # call_ids[c] == id_prefix + hex(seqs[c]) for int seqs
    call_rows: int | None = None  # set on the parts of one call split over batches
    row_offset: int = 0  # index within that call of this part's first row

    @property
    def n_calls(self) -> int:
        return int(self.latencies.shape[0])

    @property
    def continued(self) -> bool:
        """A later part of a split call: its rows count, its call counted already."""
        return self.row_offset > 0


@dataclass(frozen=True, slots=True)
class RenderContext:
    """What an aggregate needs to render its families."""

    namespace: str
    labels: Mapping[str, str]  # model, version
    now: float


class Aggregate(Protocol):
    """A mergeable piece of per-monitor state, fed by folds, read by exporters.

    ``merge`` adds another aggregate of the same type and configuration into this one
    (multi-process servers merge the state of every worker); ``state``/``from_state``
    give a plain representation (dicts, lists, str, int, float, numpy arrays) that the
    multi-process files store.
    """

    def fold(self, batch: Batch) -> None: ...

    def families(self, ctx: RenderContext) -> Iterable[Family]: ...

    def merge(self, other: Any) -> None: ...

    def state(self) -> dict[str, Any]: ...

    def load_state(self, state: Mapping[str, Any]) -> None: ...
