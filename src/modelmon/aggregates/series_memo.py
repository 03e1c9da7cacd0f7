"""Point tuples handed out again while nothing changed, so a scrape re-renders no text.

modelmon's text renderer (:class:`modelmon.exporters.exposition.TextRenderer`) keeps the
text of a point tuple by the tuple's identity and the text of a label set by the
mapping's identity. An aggregate whose families carry the *same* label mappings every
scrape, and the *same* tuple while the values have not changed, costs next to nothing to
render again: most series of a model (missing and invalid counts, outliers, decisions,
reference ratios) do not change between two scrapes.

:class:`SeriesMemo` does that for one aggregate:

* :meth:`SeriesMemo.points`: label mappings built once per base label set (the
  monitor's labels) and number of series (an aggregate whose names change otherwise
  calls :meth:`SeriesMemo.clear`), points rebuilt only when a value changed;
* :meth:`SeriesMemo.settle`: a tuple built by the aggregate itself (label mappings that
  it keeps) swapped for the last one handed out under the same key when equal.

Values are compared bit for bit as float64: ``-0.0`` and ``0.0`` render differently,
and a NaN equals itself. Entries are whole tuples replaced at once: concurrent scrapes
at worst miss.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy.typing as npt

from ..points import Point, ScalarPoint

Labels = Mapping[str, str]


class SeriesMemo:
    """The last point tuples of one aggregate's families, by key (see the module doc)."""

    __slots__ = ("_built", "_settled")

    def __init__(self) -> None:
        # key -> (base items, label mappings, value bytes, points)
        self._built: dict[Hashable, tuple[tuple[tuple[str, str], ...], Any, bytes, Any]] = {}
        self._settled: dict[Hashable, tuple[bytes, tuple[Point, ...]]] = {}

    def clear(self) -> None:
        """Forget everything (the aggregate's layout changed: new names, a loaded state)."""
        self._built.clear()
        self._settled.clear()

    def points(
        self,
        key: Hashable,
        base: Labels,
        make_labels: Callable[[Labels], Sequence[Labels]],
        values: npt.NDArray[Any],
    ) -> tuple[ScalarPoint, ...]:
        """One point per label set of ``make_labels(base)``, valued by the 1-d array
        ``values`` in the same order (ints stay ints: OTLP sends them ``as_int``); the
        last tuple when the base labels and every value are the same."""
        items = tuple(base.items())
        raw = values.dtype.str.encode() + values.tobytes()
        entry = self._built.get(key)
        if entry is not None and entry[0] == items and len(entry[1]) == values.size:
            if entry[2] == raw:
                built: tuple[ScalarPoint, ...] = entry[3]
                return built
            labels = entry[1]
        else:
            labels = tuple(make_labels(base))
            if len(labels) != values.size:
                raise ValueError(f"{key!r}: {len(labels)} label sets for {values.size} values")
        points = tuple(map(ScalarPoint, labels, values.tolist()))
        self._built[key] = (items, labels, raw, points)
        return points

    def settle(self, key: Hashable, points: tuple[Point, ...]) -> tuple[Point, ...]:
        """``points`` or, when equal (the same label mappings, the same values bit for
        bit), the tuple handed out last time under ``key``. Scalar points of float
        values only (an int and the equal float are not told apart)."""
        raw = array("d", [p.value for p in points]).tobytes()  # type: ignore[union-attr]
        entry = self._settled.get(key)
        if entry is not None and entry[0] == raw:
            old = entry[1]
            if len(old) == len(points) and all(
                a.labels is b.labels for a, b in zip(old, points, strict=True)
            ):
                return old
        self._settled[key] = (raw, points)
        return points
