"""The call record and the buffer that holds a monitor's calls until they are folded.

A record is what the hot path keeps of one call: seven fields, named by :class:`Record`.
The hot path builds it as a plain tuple of the same layout (a tuple display is the
cheapest object Python makes) and *extends* the buffer with it: the buffer is flat,
:data:`RECORD_WIDTH` items a call, so buffered calls keep no GC-tracked object of their
own alive (which would make the garbage collector run more often and promote them into
full collections). The tuple itself lives only as the context's last prediction.

>>> buf = CallBuffer(buffer_size=2)
>>> seq = buf.next_seq()
>>> buf.extend(({"x": 1.0}, None, 0.5, 0.001, None, seq, None))
>>> buf.pending_calls(), buf.pending()[0].result
(1, 0.5)
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, Final, NamedTuple, TypeVar

T = TypeVar("T")
DEFAULT_BUFFER_SIZE = 1024
HARD_LIMIT_FACTOR = 16

# ``Record.call`` of ``Monitor.observe``: inputs and outputs are given, not a call's.
OBSERVED: Any = type("Observed", (), {"__repr__": lambda self: "OBSERVED"})()


class Record(NamedTuple):
    """One recorded call. ``inp``/``call`` take one of three forms:

    * ``call is None``: a wrapped call; ``inp`` is its input (the first argument).
    * ``call`` is a dict: a wrapped call kept whole; ``inp`` is its positional arguments
      and ``call`` its keyword arguments (``features=`` callables, methods, failed calls).
    * ``call is OBSERVED``: ``Monitor.observe``; ``inp`` and ``result`` are as given.
    """

    inp: Any
    call: Any
    result: Any
    latency: float
    error: str | None
    seq: int | str
    monitor: Any


# The hot path's form of a record: a plain tuple in the layout of ``Record``.
RawRecord = tuple[Any, Any, Any, float, "str | None", "int | str", Any]
RECORD_WIDTH: Final = 7
# Field positions in a raw record (``record[SEQ]``), for readers of raw records.
INP: Final = 0
CALL: Final = 1
RESULT: Final = 2
LATENCY: Final = 3
ERROR: Final = 4
SEQ: Final = 5
MONITOR: Final = 6


class CallBuffer:
    """Recorded calls not folded yet, flat, with the limits that trigger a fold.

    Past ``limit[0]`` the hot path calls :attr:`on_full`. The limit is ``soft_items``
    until the monitor wakes the background folder, then ``hard_items`` until the fold
    takes the items (:meth:`take`), so only one call per fold pays for the wake while
    the folder catches up; past ``hard_items`` callers fold themselves. Every call takes
    a sequence number from :meth:`next_seq` when it starts and ends as exactly one
    record, so started minus finished is the number of calls in flight.

    Thread-safety: ``list.extend`` of a tuple and ``del items[:n]`` are each one C call
    under the GIL; only the fold (under the monitor's fold lock) removes items.
    """

    __slots__ = (
        "extend",
        "folded",
        "hard_items",
        "items",
        "limit",
        "next_seq",
        "on_full",
        "reads",
        "soft_items",
    )

    def __init__(
        self, buffer_size: int = DEFAULT_BUFFER_SIZE, on_full: Callable[[], None] | None = None
    ) -> None:
        # A list: extending it with a tuple and deleting a prefix are each one C call,
        # and a prefix is taken in two memcpys where a deque pops item by item.
        self.items: list[Any] = []
        self.extend = self.items.extend
        self.soft_items = buffer_size * RECORD_WIDTH
        self.hard_items = buffer_size * HARD_LIMIT_FACTOR * RECORD_WIDTH
        self.on_full: Callable[[], None] = on_full or _nothing
        self.next_seq: Callable[[], int] = itertools.count(1).__next__
        self.folded = 0  # calls taken by folds
        self.reads = 0  # sequence numbers taken by in-flight reads (not calls)
        # A list: the hot path holds it and sees the limit move (see the class docstring).
        self.limit = [self.soft_items]

    @property
    def wake_sent(self) -> bool:
        """The folder was woken since the last fold (callers check the hard limit only)."""
        return self.limit[0] != self.soft_items

    def woken(self) -> None:
        """The folder is woken: until the next :meth:`take`, only the hard limit calls."""
        self.limit[0] = self.hard_items

    def append(self, record: RawRecord) -> None:
        """Buffer one record (the hot path inlines this: ``extend`` then the limit check)."""
        self.extend(record)
        if len(self.items) >= self.limit[0]:
            self.on_full()

    def past_hard_limit(self) -> bool:
        return len(self.items) >= self.hard_items

    def take(self) -> list[Any]:
        """Remove and return every buffered item, oldest first (under the fold lock)."""
        self.limit[0] = self.soft_items  # calls past it from now on wake the folder again
        items = self.items
        n = len(items)  # a multiple of RECORD_WIDTH: list.extend of a tuple is atomic
        if n == 0:
            return []
        # Calls finishing meanwhile extend past n; only the fold removes items.
        taken = items[:n]
        del items[:n]
        self.folded += n // RECORD_WIDTH
        return taken

    def pending_calls(self) -> int:
        return len(self.items) // RECORD_WIDTH

    def pending(self) -> list[Record]:
        """The records buffered and not folded yet, oldest first (a copy)."""
        items = list(self.items)
        w = RECORD_WIDTH
        return [Record._make(items[i : i + w]) for i in range(0, len(items), w)]

    def in_flight(self) -> int:
        """Calls started and not recorded yet (call under the fold lock: folds move counts).

        ``itertools.count`` is atomic under the GIL; reading it takes a number, so the
        numbers taken by reads are subtracted.
        """
        finished = self.folded + self.pending_calls()
        started = self.next_seq() - 1 - self.reads
        self.reads += 1
        return max(started - finished, 0)

    def restart(self) -> None:
        """After ``fork``: the parent's pending and in-flight calls are not this process's."""
        self.items.clear()
        self.limit[0] = self.soft_items
        self.reads = 0
        started = self.next_seq()
        self.reads = 1
        self.folded = started - 1


def _nothing() -> None:
    return None


class NestingGuard:
    """Counts a call nested in another call of the same monitor once, as the outer call.

    Only a monitor wrapping several functions can see one call nested in another
    (``predict`` calling ``predict_proba``, an endpoint calling another): once it wraps
    two, :attr:`on` ``[0]`` is True and every wrapper checks :attr:`active`; a
    single-function monitor pays nothing for the guard.
    """

    __slots__ = ("active", "functions", "on")

    def __init__(self, name: str) -> None:
        self.active: ContextVar[bool] = ContextVar(name, default=False)
        self.on = [False]  # a list: wrappers hold it and see the switch
        self.functions = 0

    def add_function(self) -> None:
        self.functions += 1
        if self.functions >= 2:
            self.on[0] = True


@contextlib.contextmanager
def collecting(var: ContextVar[list[T] | None]) -> Iterator[list[T]]:
    """Set ``var`` to a fresh list for the block and yield it (reset on exit).

    The list is shared by reference, so threads the block hands work to (with a copied
    context) append to the same list: the prediction scope and the deferred failures.
    """
    items: list[T] = []
    token = var.set(items)
    try:
        yield items
    finally:
        var.reset(token)
