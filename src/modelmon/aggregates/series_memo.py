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
* :meth:`SeriesMemo.columns`: label mappings the aggregate keeps and a list of values,
  built into points only when a value (or a mapping) changed;
  :meth:`SeriesMemo.scalar_columns` the same as :class:`~modelmon.points.ScalarColumns`
  (the renderer formats them without building points);
* :meth:`SeriesMemo.settle`: a tuple built by the aggregate itself (label mappings that
  it keeps) swapped for the last one handed out under the same key when equal.

Values are compared bit for bit as float64: ``-0.0`` and ``0.0`` render differently,
and a NaN equals itself. Entries are whole tuples replaced at once: concurrent scrapes
at worst miss.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Hashable, Mapping, Sequence
from operator import is_
from typing import Any

import numpy.typing as npt

from ..points import Point, ScalarColumns, ScalarPoint, scalar_points

Labels = Mapping[str, str]


class SeriesMemo:
    """The last point tuples of one aggregate's families, by key (see the module doc)."""

    __slots__ = ("_built", "_columns", "_settled")

    def __init__(self) -> None:
        # key -> (base items, label mappings, value bytes, points)
        self._built: dict[Hashable, tuple[tuple[tuple[str, str], ...], Any, bytes, Any]] = {}
        self._settled: dict[Hashable, tuple[bytes, tuple[Point, ...]]] = {}
        self._columns: dict[Hashable, tuple[bytes, ScalarColumns]] = {}

    def clear(self) -> None:
        """Forget everything (the aggregate's layout changed: new names, a loaded state)."""
        self._built.clear()
        self._settled.clear()
        self._columns.clear()

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
            # Canonical mappings: an aggregate rebuilt at every scrape (a multi-process
            # merge) hands out the same mappings as the last one, and their text is kept.
            labels = tuple(map(stable_labels, make_labels(base)))
            if len(labels) != values.size:
                raise ValueError(f"{key!r}: {len(labels)} label sets for {values.size} values")
        points = scalar_points(labels, values.tolist())
        self._built[key] = (items, labels, raw, points)
        return points

    def columns(
        self, key: Hashable, labels: Sequence[Labels], values: Sequence[float]
    ) -> tuple[Point, ...]:
        """Points of ``labels`` (mappings the caller keeps) valued by the floats
        ``values``; the tuple handed out last time under ``key`` when every mapping and
        every value is the same (no point is built then)."""
        return self.scalar_columns(key, labels, values).points

    def scalar_columns(
        self, key: Hashable, labels: Sequence[Labels], values: Sequence[float]
    ) -> ScalarColumns:
        """:meth:`columns` as :class:`~modelmon.points.ScalarColumns`: no point is built
        unless a reader asks for them; the same object while nothing changed."""
        raw = array("d", values).tobytes()
        entry = self._columns.get(key)
        if entry is not None and entry[0] == raw:
            old = entry[1]
            if len(old.labels) == len(labels) and all(map(is_, old.labels, labels)):
                return old
        columns = ScalarColumns(tuple(labels), tuple(values))
        self._columns[key] = (raw, columns)
        return columns

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


_MAX_CHILDREN = 16384
_CANONICAL: dict[tuple[tuple[str, str], ...], Labels] = {}


def stable_labels(labels: Labels) -> Labels:
    """One mapping per label content, the same every time: a render context's base
    labels (built fresh for each collection) made stable, so every label set derived
    from them (and their text, see :func:`extended_labels`) is kept between scrapes.
    Bounded like :func:`extended_labels`; the returned mapping must not be mutated."""
    items = tuple(labels.items())
    hit = _CANONICAL.get(items)
    if hit is None:
        if len(_CANONICAL) >= _MAX_CHILDREN:
            _CANONICAL.clear()
        hit = _CANONICAL[items] = dict(items)
    return hit


_CHILDREN: dict[tuple[int, tuple[tuple[str, str], ...]], tuple[Labels, Labels]] = {}


def child_labels(base: Labels, key: str, value: str) -> Labels:
    """``{**base, key: value}``, the same mapping every time (see :func:`extended_labels`)."""
    return extended_labels(base, ((key, value),))


def extended_labels(base: Labels, extra: tuple[tuple[str, str], ...]) -> Labels:
    """``{**base, **dict(extra)}``, the same mapping every time it is asked for again.

    For label sets an aggregate derives at each collection (an error type, a reason, a
    metric): the renderer keeps the text of a mapping by its identity, so a fresh dict
    at every scrape costs its text again. Label values come from bounded sets; the
    table is cleared when it outgrows :data:`_MAX_CHILDREN` (monitors come and go).
    The returned mapping must not be mutated.
    """
    ident = (id(base), extra)
    hit = _CHILDREN.get(ident)
    if hit is not None and hit[0] is base:
        return hit[1]
    if len(_CHILDREN) >= _MAX_CHILDREN:
        _CHILDREN.clear()
    child = {**base, **dict(extra)}
    _CHILDREN[ident] = (base, child)
    return child
