"""Prediction ids: short, unique per process, cheap on the hot path.

A call's id is a per-process random prefix plus a counter in hex; the rows of a
batch call of N > 1 rows get ``"{call_id}.{i}"`` for i in 0..N-1, and a single-row
call's row id is the call id itself.

>>> row_ids("ab12", 1)
['ab12']
>>> row_ids("ab12", 3)
['ab12.0', 'ab12.1', 'ab12.2']
"""

from __future__ import annotations

import itertools
import os


def row_ids(call_id: str, n_rows: int) -> list[str]:
    """The ids of the rows of one call, in row order."""
    if n_rows == 1:
        return [call_id]
    return [f"{call_id}.{i}" for i in range(n_rows)]


class IdGenerator:
    """Makes call ids: 8 random hex characters per process, then a counter.

    The hot path takes only ``next_seq()`` (an int); the string is formatted when
    somebody reads it (:meth:`format`), in the fold or by ``last_prediction_id()``.
    """

    __slots__ = ("_counter", "next_seq", "prefix")

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        """New prefix (called after fork so workers never share ids)."""
        self.prefix = os.urandom(4).hex()
        self._counter = itertools.count(1)
        self.next_seq = self._counter.__next__

    def format(self, seq: int | str) -> str:
        """The id of sequence number ``seq`` (a caller-supplied ``str`` id is kept)."""
        if isinstance(seq, str):
            return seq
        return f"{self.prefix}{seq:x}"

    def __call__(self) -> str:
        return self.format(self.next_seq())


IDS = IdGenerator()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=IDS.reseed)
