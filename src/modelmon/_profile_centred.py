"""Pass 2 of a numeric column far from zero: bins from a sketch centred at its median.

Pass 1's sketch holds ``x`` itself, accurate to 1% of ``|x|``: for a feature such as
``1000 +- 5`` one bucket spans two standard deviations, too coarse for deciles. When the
plan centres the column (``c``, from pass 1's median, the same rule as
:func:`~modelmon.profile.sketch_center`), pass 2 sketches ``x - c`` instead, accurate to
1% of ``|x - c|``, and keeps the largest value of each of its buckets. The bins are
chosen when the profile is finished: edge buckets at the ranks ``floor(q (n - 1))``,
each edge the largest data value of its bucket, each bin's count the exact sum of its
buckets' counts. A bucket is a monotone function of ``x``, so
``searchsorted(edges, x, side="left")`` puts every row in the bin it was counted in.
Counts, maxima and bucket indices are exact, so the result does not depend on the
partitioning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .batch import FloatArray, IntArray
from .profile import MAX_SKETCH_BUCKETS, REFERENCE_SKETCH_ACCURACY
from .sketches.ddsketch import LogSketch


def reference_sketch() -> LogSketch:
    """An empty sketch of the profile's reference distribution (``sketch_values``)."""
    return LogSketch(REFERENCE_SKETCH_ACCURACY, max_buckets=MAX_SKETCH_BUCKETS)


def edge_positions(counts: IntArray, bins: int) -> IntArray:
    """Indices of the buckets holding the ranks ``floor(q (n - 1))``, ``q = 1/bins ...``."""
    probs = np.arange(1, bins) / bins
    cum = np.cumsum(counts)
    pos = np.searchsorted(cum, np.floor(probs * (int(cum[-1]) - 1)), side="right")
    return np.asarray(sorted_unique(np.minimum(pos, counts.size - 1)), dtype=np.int64)


def sorted_unique(values: Any) -> Any:
    """``np.unique(values)`` of a 1-D array, without importing ``numpy.ma`` (as
    ``np.unique`` does on its first call: a hundredth of a second of the CLI's start)."""
    out = np.sort(values)
    keep = np.ones(out.size, dtype=bool)
    keep[1:] = out[1:] != out[:-1]
    return out[keep]


class CentredBins:
    """A sketch of ``x - center`` and the largest ``x`` of each of its buckets."""

    __slots__ = ("center", "maxima", "sketch")

    def __init__(self, center: float) -> None:
        self.center = float(center)
        self.sketch = reference_sketch()
        self.maxima: dict[int, float] = {}  # bucket ordinal -> largest x

    def add(self, valid: FloatArray) -> None:
        d = valid - self.center
        _merge_maxima(self.maxima, _bucket_maxima(self.sketch.ordinals(d), valid))
        self.sketch.add(d)

    def merge(self, other: CentredBins) -> None:
        self.sketch.merge(other.sketch)
        _merge_maxima(self.maxima, other.maxima)

    def bins(self, bins: int) -> tuple[FloatArray, IntArray]:
        """``(edges, counts)``: inner edges (data values) and the count of every bin."""
        ordinals, counts, _ = self.sketch.buckets()
        maxima = self._folded(ordinals)
        chosen = edge_positions(counts, bins)
        cum = np.cumsum(counts)
        edges = np.asarray([maxima[int(ordinals[i])] for i in chosen.tolist()])
        bounds = np.concatenate([[0], cum[chosen], [cum[-1]]])
        return edges, np.diff(bounds).astype(np.int64)

    def _folded(self, ordinals: IntArray) -> dict[int, float]:
        """Maxima per final bucket: buckets collapsed since (the values nearest the
        centre, see :class:`~modelmon.sketches.ddsketch.LogSketch`) join the nearest kept."""
        kept = set(ordinals.tolist())
        pos = [o for o in kept if o > 0]
        neg = [o for o in kept if o < 0]
        out: dict[int, float] = {}
        for o, m in self.maxima.items():
            if o not in kept:
                o = min(pos) if o > 0 else max(neg)
            out[o] = max(out.get(o, -np.inf), m)
        return out

    def state(self) -> dict[str, Any]:
        return {
            "center": repr(self.center),
            "sketch": self.sketch.state(),
            "maxima": [[o, m] for o, m in sorted(self.maxima.items())],
        }

    @classmethod
    def from_state(cls, s: Mapping[str, Any]) -> CentredBins:
        out = cls(float(s["center"]))
        out.sketch = LogSketch.from_state(s["sketch"])
        out.maxima = {int(o): float(m) for o, m in s["maxima"]}
        return out


def _bucket_maxima(ordinals: IntArray, values: FloatArray) -> dict[int, float]:
    """The largest value per ordinal (negative, zero and positive ordinals lie 2**41
    apart: each sign is indexed densely on its own)."""
    out: dict[int, float] = {}
    for mask in (ordinals < 0, ordinals == 0, ordinals > 0):
        sub = ordinals[mask]
        if sub.size == 0:
            continue
        lo = int(sub.min())
        tops = np.full(int(sub.max()) - lo + 1, -np.inf)
        np.maximum.at(tops, sub - lo, values[mask])
        for i in np.flatnonzero(tops > -np.inf).tolist():
            out[lo + i] = float(tops[i])
    return out


def _merge_maxima(into: dict[int, float], other: Mapping[int, float]) -> None:
    for o, m in other.items():
        if m > into.get(o, -np.inf):
            into[o] = m
