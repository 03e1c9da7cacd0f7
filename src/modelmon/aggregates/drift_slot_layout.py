"""A new drift window slot's sketches laid out once, before its first values.

The numeric members' sketches (:class:`~modelmon.sketches.columns.LogSketchColumns` of
``x - center``) start empty in every new window slot and, left alone, grow their layout
value by value: at hundreds of features most of the drift fold went into those
re-layouts (``docs/fold-cost.md``). A slot is instead laid out when the fold first
writes to it, for the keys the last slot held (its :meth:`occupied_keys`) or, for the
first slot and for columns the last slot did not see, the keys of the reference
profile's values (the largest distance to the center from its min and max, the smallest
non-zero one from its reference sketch).

The layout only decides where counts sit: counts, quantiles, drift statistics and
exported series are the same whatever it is (``tests/unit/test_slot_layout.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from ..batch import IntArray
from ..sketches.columns import EMPTY, LogSketchColumns

# private: the aggregate's layout and slots, split by job from .drift (one owner)
from .drift_layout import _Group, _GroupSlot, _Slot

# A new slot takes the last slot's layout while that span is at most this many times the
# keys the last slot held (plus the slack): a span widened by a one-off extreme is not
# carried on past the next slot.
_INHERIT, _INHERIT_SLACK = 2, 128


def reference_keys(group: _Group, accuracy: float) -> tuple[IntArray, IntArray]:
    """Per numeric member of ``group``: the lowest and highest sketch key of the reference's
    ``x - center`` (:data:`EMPTY` where the profile does not tell)."""
    d = len(group.numeric)
    centers = group.centers
    ends = np.array(
        [[_or_nan(group.members[i].min), _or_nan(group.members[i].max)] for i in group.numeric],
        dtype=np.float64,
    ).reshape(d, 2)
    far = np.fmax.reduce(np.abs(ends - centers[:, None]), axis=1)  # NaN: no min or max
    values, _, column = group.ref_points  # the reference sketches, end to end
    near_all = np.abs(values - centers[column])
    ok = (near_all > 0.0) & np.isfinite(near_all)
    near = np.full(d, np.inf)
    np.minimum.at(near, column[ok], near_all[ok])
    known = np.isfinite(far) & (far > 0.0) & np.isfinite(near)
    keys = LogSketchColumns(1, accuracy).keys
    with np.errstate(invalid="ignore"):
        top_k = keys(np.where(known, far, 1.0))
        low_k = np.minimum(keys(np.where(known, near, 1.0)), top_k)
    top = np.where(known, top_k, EMPTY).astype(np.int64)
    low = np.where(known, low_k, EMPTY).astype(np.int64)
    return low, top


def _or_nan(v: float | None) -> float:
    return math.nan if v is None else float(v)


class SlotLayouts:
    """Lays out the numeric sketches of a drift window's new slots (see the module doc)."""

    __slots__ = ("_accuracy", "_groups", "_last", "_reference")

    def __init__(self, features: _Group, outputs: _Group, accuracy: float) -> None:
        self._groups = (features, outputs)
        self._accuracy = accuracy
        self._reference: tuple[tuple[IntArray, IntArray], ...] | None = None
        self._last: _Slot | None = None  # the slot seen last (kept until the next one)

    def lay_out(self, slots: Mapping[int, _Slot], slot: _Slot) -> None:
        """Lay out ``slot``'s sketches that hold no non-zero value yet, from the newest
        other slot of ``slots`` holding values, else from the reference."""
        if slot is self._last:  # once per slot: a sketch not laid out then grows as before
            return
        self._last = slot
        if self._reference is None:
            self._reference = tuple(reference_keys(g, self._accuracy) for g in self._groups)
        before = [s for k, s in sorted(slots.items()) if s is not slot]
        for which, (ref_low, ref_top) in enumerate(self._reference):
            mine = _group_slot(slot, which)
            if mine.sketches.span or mine.sketches.width == 0:
                continue
            low, top = ref_low, ref_top
            last = next(
                (
                    _group_slot(s, which)
                    for s in reversed(before)
                    if _group_slot(s, which).sketches.span
                ),
                None,
            )
            if last is not None and last.sketches.width == mine.sketches.width:
                seen_low, seen_top = last.sketches.occupied_keys()
                seen = seen_top != EMPTY
                need = int(np.max(seen_top - seen_low, where=seen, initial=0)) + 1
                if seen.all() and last.sketches.span <= _INHERIT * need + _INHERIT_SLACK:
                    # The last slot's own layout, not much wider than it needed: the
                    # window's slots then share one layout and merge by adding counts.
                    mine.sketches.lay_out_like(last.sketches)
                    continue
                low, top = np.where(seen, seen_low, low), np.where(seen, seen_top, top)
            mine.sketches.lay_out(low, top)


def _group_slot(slot: _Slot, which: int) -> _GroupSlot:
    return slot.features if which == 0 else slot.outputs
