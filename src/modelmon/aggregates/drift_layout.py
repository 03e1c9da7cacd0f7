"""The drift aggregate's layout and window slots, and the vectorised fold into them.

Split by job from :mod:`modelmon.aggregates.drift` (which re-exports the public names):
a group's members, bins and reference sketches (``_Group``), the per-slot counts,
sketches and extremes (``_GroupSlot``, ``_Slot``), and the helpers that bin a batch's
columns into a slot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import drift
from ..batch import FeatureFrame, FloatArray, IntArray, ObjArray, OutputFrame
from ..profile import CONFIDENCE, PREDICTION, FeatureProfile
from ..sketches.columns import LogSketchColumns, chunk_rows
from ..sketches.ddsketch import LogSketch
from ..sketches.extremes import Extremes
from ..sketches.scratch import Scratch
from .drift_categories import CategoryCodes

NUMERIC_METHODS = ("psi", "js", "ks", "wasserstein")
CATEGORICAL_METHODS = ("psi", "js", "chi2")


@dataclass(frozen=True)
class _Group:
    """The layout of one group (features or outputs): members, bins, numeric columns."""

    members: tuple[FeatureProfile, ...]
    numeric: tuple[int, ...]  # member indices of numeric members
    categorical: tuple[int, ...]
    offsets: tuple[int, ...]  # start of each member's bins in the flat count array
    total_bins: int
    edges: FloatArray  # (max_edges, n_numeric), padded with +inf
    centers: FloatArray  # reference median of each numeric member
    binned: drift.BinnedReference  # reference shares of every member, padded
    cells: IntArray  # (members, bins) index into the flat counts (padding: total_bins)
    reference: drift.QuantileReference  # of the numeric members, shifted by centers
    column_of: tuple[int, ...]  # sketch column of each member (-1: categorical)
    numeric_bins: npt.NDArray[np.bool_]  # (n_numeric, max_edges + 1): real bins
    numeric_cells: IntArray  # flat count index of each real bin, in that order
    test_offsets: tuple[int, ...]  # start of each categorical member's test cells (-1: none)
    test_total: int
    ref_rows: FloatArray  # non-missing reference rows of each member
    # Per numeric column: the profile's reference sketch (values clipped to the reference
    # min/max, weights summing to 1), None for profiles written without one.
    ref_sketches: tuple[tuple[FloatArray, FloatArray] | None, ...]
    ref_points: tuple[FloatArray, FloatArray, IntArray]  # the same, flat: value, weight, column
    has_ref_sketch: npt.NDArray[np.bool_]  # per numeric column: ref_sketches[c] is not None
    category_codes: CategoryCodes | None  # the categorical members counted in one pass

    @classmethod
    def of(cls, members: Sequence[FeatureProfile]) -> _Group:
        numeric = tuple(i for i, m in enumerate(members) if m.kind == "numeric")
        categorical = tuple(i for i, m in enumerate(members) if m.kind == "categorical")
        sizes = [m.n_bins for m in members]
        offsets = (
            tuple(int(x) for x in np.concatenate(([0], np.cumsum(sizes)[:-1]))) if sizes else ()
        )
        width = max((len(members[i].edges) for i in numeric), default=0)
        edges = np.full((width, len(numeric)), np.inf)
        for c, i in enumerate(numeric):
            e = members[i].edges_array
            edges[: e.size, c] = e
        centers = np.array([members[i].sketch_center for i in numeric], dtype=np.float64)
        total = int(sum(sizes))
        binned = drift.BinnedReference.of([m.shares_array for m in members])
        cells = np.full(binned.shares.shape, total, dtype=np.int64)
        for i, m in enumerate(members):
            cells[i, : m.n_bins] = offsets[i] + np.arange(m.n_bins)
        n_q = len(drift.REFERENCE_QUANTILE_PROBS)
        quantiles = np.array(
            [members[i].quantiles or (0.0,) * n_q for i in numeric], dtype=np.float64
        ).reshape(len(numeric), n_q)
        stds = np.array([members[i].std or 0.0 for i in numeric], dtype=np.float64)
        reference = drift.QuantileReference.of(quantiles, stds, centers)
        column_of = [-1] * len(members)
        real = np.zeros((len(numeric), width + 1), dtype=bool)
        for c, i in enumerate(numeric):
            column_of[i] = c
            real[c, : members[i].n_bins] = True
        numeric_cells = np.concatenate(
            [cells[i, : members[i].n_bins] for i in numeric] or [np.zeros(0, dtype=np.int64)]
        )
        test_offsets = [-1] * len(members)
        test_total = 0
        for i in categorical:
            test_offsets[i] = test_total
            test_total += len(members[i].test_categories)
        ref_rows = np.array([m.reference_rows for m in members], dtype=np.float64)
        ref_sketches = tuple(_reference_sketch(members[i]) for i in numeric)
        codes = CategoryCodes.of(members, categorical, offsets, test_offsets, test_total, total)
        return cls(
            tuple(members), numeric, categorical, offsets, total, edges, centers,
            binned, cells, reference, tuple(column_of), real, numeric_cells,
            tuple(test_offsets), test_total, ref_rows, ref_sketches, _flat(ref_sketches),
            np.array([s is not None for s in ref_sketches], dtype=bool), codes,
        )  # fmt: skip

    def test_cells(self, slot: _GroupSlot, i: int) -> tuple[IntArray, tuple[float, ...]]:
        """Window counts and reference shares over member ``i``'s test cells."""
        member = self.members[i]
        start = self.test_offsets[i]
        if start < 0 or slot.test_counts.size == 0:
            return self.bins(slot.counts, i), member.shares
        return slot.test_counts[start : start + len(member.test_categories)], member.test_shares

    def bins(self, flat: IntArray, i: int) -> IntArray:
        return flat[self.offsets[i] : self.offsets[i] + self.members[i].n_bins]


class _GroupSlot:
    """Windowed state of one group: bin counts, a sketch and extremes per numeric member,
    the categorical members' full test-cell counts, and per member the values seen and
    missing (for the missing-share test)."""

    __slots__ = ("counts", "extremes", "missing", "seen", "sketches", "test_counts")

    def __init__(
        self,
        total_bins: int,
        n_numeric: int,
        accuracy: float,
        test_total: int = 0,
        n_members: int = 0,
    ) -> None:
        self.counts: IntArray = np.zeros(total_bins, dtype=np.int64)
        self.sketches = LogSketchColumns(n_numeric, accuracy)
        self.extremes = Extremes(n_numeric)
        self.test_counts: IntArray = np.zeros(test_total, dtype=np.int64)
        self.missing: IntArray = np.zeros(n_members, dtype=np.int64)
        self.seen: IntArray = np.zeros(n_members, dtype=np.int64)

    def merge(self, other: _GroupSlot) -> None:
        self.counts += other.counts
        self.sketches.merge(other.sketches)
        self.extremes.merge(other.extremes)
        self.test_counts = _add(self.test_counts, other.test_counts)
        self.missing = _add(self.missing, other.missing)
        self.seen = _add(self.seen, other.seen)

    def state(self) -> dict[str, Any]:
        return {
            "counts": self.counts.copy(),
            "sketches": self.sketches.state(),
            "moments": self.extremes.state(),  # the key of the Moments it replaced
            "test_counts": self.test_counts.copy(),
            "missing": self.missing.copy(),
            "seen": self.seen.copy(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> _GroupSlot:
        slot = cls(0, 0, 0.01)
        slot.counts = np.asarray(state["counts"], dtype=np.int64).copy()
        for key in ("test_counts", "missing", "seen"):  # absent in states before 0.2
            if key in state:
                setattr(slot, key, np.asarray(state[key], dtype=np.int64).copy())
        sketches = state["sketches"]
        if isinstance(sketches, Mapping):
            slot.sketches = LogSketchColumns.from_state(sketches)
        else:  # a list of LogSketch states (written before the sketches were columns)
            slot.sketches = LogSketchColumns.from_sketches(
                [LogSketch.from_state(x) for x in sketches]
            )
        slot.extremes = Extremes.from_state(state["moments"])
        return slot


class _Slot:
    """One sub-window: a :class:`_GroupSlot` for features and one for outputs."""

    __slots__ = ("features", "outputs")

    def __init__(self, features: _GroupSlot, outputs: _GroupSlot) -> None:
        self.features = features
        self.outputs = outputs

    def merge(self, other: _Slot) -> None:
        self.features.merge(other.features)
        self.outputs.merge(other.outputs)

    def state(self) -> dict[str, Any]:
        return {"features": self.features.state(), "outputs": self.outputs.state()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> _Slot:
        return cls(
            _GroupSlot.from_state(state["features"]), _GroupSlot.from_state(state["outputs"])
        )


_Sizes = tuple[int, int, int, int]


def _sizes(group: _Group) -> _Sizes:
    """What an empty slot of ``group`` needs: bins, numeric members, test cells, members."""
    return (group.total_bins, len(group.numeric), group.test_total, len(group.members))


def _new_slot(features: _Sizes, outputs: _Sizes, a: float) -> _Slot:
    """An empty window slot for groups of these sizes."""
    f_bins, f_numeric, f_cells, f_members = features
    o_bins, o_numeric, o_cells, o_members = outputs
    return _Slot(
        _GroupSlot(f_bins, f_numeric, a, f_cells, f_members),
        _GroupSlot(o_bins, o_numeric, a, o_cells, o_members),
    )


def _reference_sketch(member: FeatureProfile) -> tuple[FloatArray, FloatArray] | None:
    if not member.sketch_values or not member.count:
        return None
    values = np.asarray(member.sketch_values, dtype=np.float64)
    lo = member.min if member.min is not None else -math.inf
    hi = member.max if member.max is not None else math.inf
    weights = np.asarray(member.sketch_counts, dtype=np.float64) / member.count
    return np.clip(values, lo, hi), weights


def _flat(
    sketches: Sequence[tuple[FloatArray, FloatArray] | None],
) -> tuple[FloatArray, FloatArray, IntArray]:
    """Reference sketches laid end to end: values, weights and the column of each point."""
    present = [(c, s) for c, s in enumerate(sketches) if s is not None]
    if not present:
        return np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64)
    return (
        np.concatenate([s[0] for _, s in present]),
        np.concatenate([s[1] for _, s in present]),
        np.repeat([c for c, _ in present], [s[0].size for _, s in present]).astype(np.int64),
    )


# --- vectorised helpers ----------------------------------------------------------------


def _select(numeric: FloatArray, cols: list[int]) -> FloatArray:
    """The numeric columns ``cols`` (-1: all NaN), without a copy when already in order
    (one strided copy when they are a run of the frame's columns: numbers, then categories)."""
    if cols == list(range(numeric.shape[1])):
        return np.ascontiguousarray(numeric, dtype=np.float64)
    if cols and cols[0] >= 0 and cols == list(range(cols[0], cols[0] + len(cols))):
        return np.ascontiguousarray(numeric[:, cols[0] : cols[0] + len(cols)], dtype=np.float64)
    out = np.full((numeric.shape[0], len(cols)), np.nan)
    present = [c for c, j in enumerate(cols) if j >= 0]
    if present:
        out[:, present] = numeric[:, [cols[c] for c in present]]
    return out


def _numeric_bins(
    columns: FloatArray, edges: FloatArray, valid: IntArray, scratch: Scratch | None = None
) -> IntArray:
    """Per row of ``columns`` (``(d, n)``: a matrix transposed, a column per row),
    counts in bins ``(-inf, e0], (e0, e1], ..., (e_last, inf)``.

    The bin of ``x`` is the number of edges below it: ``x > e_k`` is accumulated into a
    small integer per value (NaN compares False, so it lands in bin 0 and is taken out
    with ``valid``, the finite count), then one ``bincount`` over all columns. Columns
    with fewer edges are padded with +inf (their extra bins stay empty). A column per
    row, each comparison runs along a whole column against one edge. ``scratch``: where
    the temporaries go (the fold's reused arrays; default new ones).
    """
    n_edges, d = edges.shape
    width = n_edges + 1
    out = np.zeros(d * width, dtype=np.int64)
    small = np.uint8 if n_edges < 255 else np.uint16
    step = chunk_rows(d)
    by_column = np.ascontiguousarray(edges.T)[:, :, None]  # (d, n_edges, 1)
    base = (np.arange(d, dtype=np.intp) * width)[:, None]
    ws = Scratch() if scratch is None else scratch
    for start in range(0, columns.shape[1], step):
        chunk = columns[:, start : start + step]
        acc = ws.get("bins", chunk.shape, small)
        acc.fill(0)
        gt = ws.get("above", chunk.shape, np.bool_)
        for k in range(n_edges):
            np.greater(chunk, by_column[:, k], out=gt)
            np.add(acc, gt.view(np.uint8), out=acc)
        idx = ws.get("bin_index", chunk.shape, np.intp)
        np.copyto(idx, acc)
        idx += base
        out += np.bincount(idx.ravel(), minlength=d * width)
    binned = out.reshape(d, width)
    binned[:, 0] -= columns.shape[1] - np.asarray(valid, dtype=np.int64)
    return binned


def _add_categorical(
    group: _Group, i: int, values: ObjArray, counts: IntArray, slot: _GroupSlot, text: bool = False
) -> None:
    """Count ``values`` (``text``: all ``str`` or None, as in a feature frame) into member ``i``."""
    member = group.members[i]
    cells = member.test_index(values, text=text)
    cells = cells[cells >= 0]
    n_cells = len(member.test_categories)
    start = group.test_offsets[i]
    if start >= 0 and slot.test_counts.size >= start + n_cells:
        slot.test_counts[start : start + n_cells] += np.bincount(cells, minlength=n_cells)
    idx = member.bins_of_test_cells(cells)
    counts[group.offsets[i] : group.offsets[i] + member.n_bins] += np.bincount(
        idx, minlength=member.n_bins
    )


def _count_missing(frame: FeatureFrame, cols: list[int], slot: _GroupSlot) -> None:
    """Per feature member: values seen (missing or valid) and missing values."""
    if slot.seen.size != len(cols) or frame.n_rows == 0:
        return
    idx = np.asarray(cols, dtype=np.intp)
    present = idx >= 0
    if not present.any():
        return
    if frame.missing.any():  # most batches have no missing value: one cheap pass
        missing = frame.missing[:, idx[present]].sum(axis=0)
        slot.missing[present] += missing.astype(np.int64)
    # As modelmon_feature_observations_total: every value seen, missing, valid or invalid.
    slot.seen[present] += frame.n_rows


def _add(a: IntArray, b: IntArray) -> IntArray:
    """``a + b`` where one side may be empty (a state written before the field existed)."""
    if b.size == 0:
        return a
    if a.size == 0:
        return b.copy()
    return a + b


def _numeric_output(name: str, out: OutputFrame) -> FloatArray:
    nan = np.full(out.n_rows, np.nan)
    if name == PREDICTION:
        return out.values if out.values is not None else nan
    if name == CONFIDENCE:
        return out.confidence if out.confidence is not None else nan
    if out.probabilities is not None and out.classes is not None and name in out.classes:
        return np.asarray(out.probabilities[:, out.classes.index(name)], dtype=np.float64)
    return nan
