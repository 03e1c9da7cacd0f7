"""Short stretches within a fold part: the GIL released between the part's steps.

A fold part (see :mod:`modelmon.fold_parts`) is a few hundred microseconds to a few
milliseconds of work in the background folder, most of it Python and numpy calls on
arrays too small for numpy to release the GIL for long. A serving thread that wants
the GIL meanwhile waits: CPython lets it in when the folder releases the GIL (a
``time.sleep``), or after the switch interval (5 ms by default). Between parts the
fold already calls ``time.sleep(0)``; within a part, :class:`Pauses` calls it between
the part's steps (stacking the inputs, the feature and output frames, each aggregate's
fold), at most once every ``PAUSE_NS`` nanoseconds, so the fold's cost barely moves
and a waiting caller waits for one step, not for the whole part.

What a pause cannot cut is one step: the longest are the drift fold of a part (about
1 ms for 4,096 rows of 20 features with a reference) and the outlier fold. Handing
those aggregates a part in row slices counts the same but multiplies their fixed cost
per call (docs/fold-cost.md, "Caller latency with batches").

``sys.setswitchinterval`` is the application's setting: a library does not change it.
"""

from __future__ import annotations

import time

# At most one pause per this many nanoseconds of folding: a pause is a system call of
# about a microsecond, and a step shorter than this does not keep a caller waiting long.
PAUSE_NS = 20_000


class Pauses:
    """Release the GIL between a fold's steps, at most every ``PAUSE_NS`` nanoseconds."""

    __slots__ = ("last", "taken")

    def __init__(self) -> None:
        self.last = time.perf_counter_ns()
        self.taken = 0  # pauses taken (tests read it)

    def __call__(self) -> None:
        now = time.perf_counter_ns()
        if now - self.last >= PAUSE_NS:
            time.sleep(0)  # releases the GIL: a thread waiting for it runs now
            self.taken += 1
            self.last = time.perf_counter_ns()

    def restart(self) -> None:
        """The GIL was just released (between parts): the next stretch starts now."""
        self.last = time.perf_counter_ns()
