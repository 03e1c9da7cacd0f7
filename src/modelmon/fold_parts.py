"""Folding in parts: a fold's records cut into parts of at most :func:`part_rows` rows.

A fold turns its records into arrays (rows x features) and folds them into the
aggregates. Done in one pass, a 10-million-row call would build arrays of that size and
hold the fold lock (and, inside long C calls, the interpreter) for seconds. So the fold
plans parts first:

* consecutive calls are grouped while their rows add up to at most ``MAX_PART_ROWS``;
* a call with more rows than that is cut into row slices of its input and output
  (numpy arrays, pandas frames, lists of rows), each folded as a part of that one call
  (:attr:`~modelmon.batch.Batch.call_rows`, :attr:`~modelmon.batch.Batch.row_offset`):
  the call counts once (request, latency, batch size), its rows in every part.

A part holds at most ``MAX_PART_ROWS`` rows and ``MAX_PART_VALUES`` values (rows x
features: a few milliseconds of folding). Between parts the fold releases the GIL
(callers waiting for it run at once, not at the interpreter's next forced switch) and
lets a waiting scrape in, so the fold's memory is bounded by the part size and nobody
waits for more than one part. Counts are exactly those of one
pass (tests/unit/test_fold_parts.py). A call whose input and output cannot be sliced
alike (an unknown type, or row counts that differ) is folded whole, as before.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .buffer import OBSERVED, RECORD_WIDTH
from .extract import SCALAR_OUTPUT_TYPES, output_rows
from .sketches.scratch import MAX_VALUES

MAX_PART_ROWS = 4096  # rows folded at once at most (and calls, for single-row traffic)
# Values (rows x features) folded at once at most, and the fewest rows a part is cut to:
# wide models get parts as short as narrow ones (a few milliseconds: the GIL is handed
# over between parts, see PartQueue.run). Not smaller: a part has a fixed cost of a few
# hundred microseconds (numpy calls per aggregate), and 1,638-row parts of 20 features
# measured up to 25% more CPU per row than 4,096-row ones. (2**17, defined with the drift
# fold's reused temporaries, which are sized for a whole part: one constant for both.)
MAX_PART_VALUES = MAX_VALUES
MIN_PART_ROWS = 64
_ONE_ROW = SCALAR_OUTPUT_TYPES | {type(None), str, bool}


@dataclass(frozen=True, slots=True)
class Part:
    """Records to fold together (flat, ``RECORD_WIDTH`` items each).

    ``outputs`` holds each record's output when the planner already computed it (a
    ``prediction=`` callable runs once per call), else None. ``call_rows`` and
    ``row_offset`` mark one slice of a split call, cut from ``source`` (the call's
    record, input and output) only when its turn comes.
    """

    items: list[Any]
    outputs: list[Any] | None = None
    call_rows: int | None = None
    row_offset: int = 0
    source: tuple[list[Any], Any, Any] | None = None
    slice_rows: int = 0

    def records(self) -> list[Any]:
        """The part's records (a split call's slice is cut here)."""
        if self.source is None:
            return self.items
        record, x, y = self.source
        a, b = self.row_offset, self.row_offset + self.slice_rows
        return [_slice(x, a, b), OBSERVED, _slice(y, a, b), *record[3:]]


class PartQueue:
    """The parts planned and not folded yet, shared by every thread that folds.

    A fold folds part after part and, between parts, lets waiting readers in; an
    explicit ``fold()`` let in that way folds every queued part too (it sees every call
    made before it). A scrape folds every queued part except the later slices of a
    split call, left to the fold in progress or the background folder: it sees every
    call made before it (a call larger than a part possibly with only some of its rows)
    and waits for at most one part.
    """

    def __init__(self) -> None:
        self.todo: deque[tuple[Part, float]] = deque()
        self.owner_busy = False
        # Records taken from the buffer and not in ``todo``: the calls being planned and
        # the part being folded. A label lookup in another thread (fold.fold_for_labels)
        # must see them pending, or it would not wait for the fold that keeps their ids.
        self.planning: list[Any] = []
        self.current: Part | None = None

    def pending(self) -> list[list[Any]]:
        """The flat records of every call taken from the buffer and not folded yet."""
        parts = [part for part, _ in list(self.todo)]
        current = self.current
        if current is not None:
            parts.append(current)
        out = [p.source[0] if p.source is not None else p.items for p in parts]
        return [self.planning, *out]

    def add(self, records: list[Any], parts: Iterable[Part], now: float) -> None:
        """Queue the ``parts`` planned from ``records`` (the buffer's taken items)."""
        self.planning = records
        try:
            self.todo.extend((p, now) for p in parts)
        finally:
            self.planning = []

    def run(
        self,
        fold: Callable[[Part, float], None],
        hand_off: Callable[[], None],
        whole: bool = True,
    ) -> int:
        """Fold the queued parts (the caller holds the fold lock); returns how many.

        ``whole=False`` (a scrape) leaves the later slices of split calls queued, for
        the background folder: a scrape folds at most one part of a huge call.
        """
        if not whole:
            return self._run_reader(fold)
        nested = self.owner_busy  # an explicit fold let in between the owner's parts
        self.owner_busy = True
        done = 0
        try:
            while self.todo:
                if done:
                    # Let callers waiting for the GIL in now, not at the interpreter's
                    # next forced switch (5 ms by default): a fold does not hold it for
                    # longer than one part.
                    time.sleep(0)
                    hand_off()
                    if not self.todo:
                        break
                self._fold_first(fold)
                done += 1
        finally:
            if not nested:
                self.owner_busy = False
        return done

    def _run_reader(self, fold: Callable[[Part, float], None]) -> int:
        later = [item for item in self.todo if item[0].row_offset > 0]
        ready = [item for item in self.todo if item[0].row_offset == 0]
        self.todo = deque([*ready, *later])  # each stays in sight until folded
        for _ in ready:
            self._fold_first(fold)
        return len(ready)

    def _fold_first(self, fold: Callable[[Part, float], None]) -> None:
        """Take the first queued part and fold it, in sight of :meth:`pending` throughout."""
        part, now = self.todo[0]
        self.current = part  # before it leaves the queue: never out of sight
        self.todo.popleft()
        try:
            fold(part, now)
        finally:
            self.current = None


def part_rows(width: int) -> int:
    """Rows per part for ``width`` features: ``MAX_PART_VALUES`` values, within
    ``MIN_PART_ROWS .. MAX_PART_ROWS``."""
    by_values = MAX_PART_VALUES // max(int(width), 1)
    return max(min(MIN_PART_ROWS, MAX_PART_ROWS), min(MAX_PART_ROWS, by_values))


def plan(
    items: list[Any],
    output_of: Callable[[Any, Any], Any] | None,
    input_of: Callable[[Any, Any], Any],
    max_rows: int | None = None,
) -> Iterator[Part]:
    """The parts to fold ``items`` in, lazily (slices are cut when their turn comes).

    ``output_of(call, result)`` maps a record to its output (None: the result is the
    output); ``input_of(inp, call)`` maps it to its input.
    """
    limit = MAX_PART_ROWS if max_rows is None else max(int(max_rows), 1)
    w = RECORD_WIDTH
    n = len(items) // w
    results = items[2::w]
    if output_of is None and set(map(type, results)) <= _ONE_ROW:
        # The common case: single-row calls, at most ``limit`` calls a part.
        for a in range(0, n, limit):
            yield Part(items[a * w : (a + limit) * w] if n > limit else items)
        return
    errors = items[4::w]
    if output_of is None:
        outputs = results
    else:
        calls = items[1::w]
        outputs = [
            output_of(c, r) if e is None else None
            for c, r, e in zip(calls, results, errors, strict=True)
        ]
    rows = [_rows(y) if e is None else 0 for y, e in zip(outputs, errors, strict=True)]
    given = outputs if output_of is not None else None
    start = acc = 0
    for i, r in enumerate(rows):
        if r > limit:
            if i > start:
                yield _group(items, given, start, i)
            yield from _split(items[i * w : (i + 1) * w], outputs[i], r, input_of, limit)
            start, acc = i + 1, 0
            continue
        if acc + max(r, 1) > limit and i > start:
            yield _group(items, given, start, i)
            start, acc = i, 0
        acc += max(r, 1)
    if start < n:
        yield _group(items, given, start, n)


def _rows(y: Any) -> int:
    try:
        return output_rows(y) if y is not None else 0
    except Exception:  # an odd output: the fold counts it as before
        return 1


def _group(items: list[Any], outputs: list[Any] | None, a: int, b: int) -> Part:
    w = RECORD_WIDTH
    if a == 0 and b * w == len(items):
        return Part(items, outputs)
    return Part(items[a * w : b * w], outputs[a:b] if outputs is not None else None)


def _split(
    record: list[Any],
    output: Any,
    total: int,
    input_of: Callable[[Any, Any], Any],
    limit: int,
) -> Iterator[Part]:
    inp, call = record[0], record[1]
    try:
        x = input_of(inp, call)
        sliceable = _input_rows(x) == total and _can_slice(output)
    except Exception:  # the fold runs the input callable again and counts its error
        sliceable = False
    if not sliceable:
        yield Part(record, [output])
        return
    for a in range(0, total, limit):
        rows = min(a + limit, total) - a
        yield Part([], None, total, a, source=(record, x, output), slice_rows=rows)


def _is_pandas(x: object, name: str) -> bool:
    cls = type(x)
    return cls.__module__.startswith("pandas") and cls.__name__ == name


def _input_rows(x: Any) -> int | None:
    """Rows of an input that can be sliced by row (None: cannot, or one row)."""
    if x is None:
        return None
    if isinstance(x, np.ndarray):
        return int(x.shape[0]) if x.ndim >= 2 else None
    if _is_pandas(x, "DataFrame"):
        return len(x)
    if isinstance(x, (list, tuple)) and x:
        first = x[0]
        rowlike = isinstance(first, (Mapping, list, tuple, np.ndarray))
        if rowlike or hasattr(first, "model_dump"):
            return len(x)
    return None


def _can_slice(y: Any) -> bool:
    if isinstance(y, np.ndarray):
        return y.ndim >= 1
    return isinstance(y, (list, tuple)) or _is_pandas(y, "DataFrame") or _is_pandas(y, "Series")


def _slice(x: Any, a: int, b: int) -> Any:
    if _is_pandas(x, "DataFrame") or _is_pandas(x, "Series"):
        return x.iloc[a:b]
    return x[a:b]
