"""Categorical values coded once at extraction: a schema's vocabulary and coded columns.

A categorical value costs a dict lookup wherever it is counted (drift cells, segments).
Done in the drift's fold, that lookup reads every value's string again, long after
extraction read it (from memory, not the CPU cache). So extraction looks each value up
once, in the schema's :class:`Vocabulary` (``str`` -> a code, ``None`` -> 0), while the
value is in cache, and hands the aggregates a :class:`CodedColumns`: the codes as one
``(rows, columns)`` int32 block and, on demand, each column as the object array of
``str``/``None`` a :class:`~modelmon.batch.FeatureFrame` promises. A drift group maps
vocabulary codes to its own cells with one array (:meth:`Vocabulary.mapped`), so its
fold is a ``take`` and a ``bincount``.

The vocabulary only grows, to :data:`MAX_WORDS` values; when a batch would pass that, the
vocabulary is full and every later batch is read as plain object columns (the same
frame, without codes), so a stream of distinct values costs bounded memory and time.

>>> vocab = Vocabulary()
>>> codes = vocab.codes(["a", None, "b", "a"], max_chars=8)
>>> codes.tolist(), vocab.words()[codes].tolist()
([1, 0, 2, 1], ['a', None, 'b', 'a'])
>>> vocab.codes(["a", "too long a value"], max_chars=8) is None
True
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

ObjArray = npt.NDArray[np.object_]
CodeArray = npt.NDArray[np.int32]

#: Values a schema's vocabulary holds at most: 16,384 values of at most 128 characters,
#: about 4 MB with its table under hostile traffic. Once full, it codes nothing more.
MAX_WORDS = 1 << 14


class Vocabulary:
    """Codes of the categorical values a schema has seen (``None`` is 0), append-only.

    Not thread-safe: one thread at a time codes values (a monitor's fold, under its lock).
    Readers of codes already handed out need no lock (:meth:`words` covers them).
    """

    def __init__(self) -> None:
        # ``str`` keys only (``None`` is the lookups' default): CPython looks an exact
        # ``str`` up faster in a table whose keys are all ``str`` (about 5 ns a value).
        self.table: dict[str, int] = {}
        self._values: list[str | None] = [None]
        self._words: ObjArray = np.array([None], dtype=object)
        self._maps: dict[int, tuple[object, npt.NDArray[np.intp]]] = {}
        self.full = False  # set when a batch would pass MAX_WORDS: no more coding

    def codes(self, values: Sequence[Any], max_chars: int) -> CodeArray | None:
        """The code of each value (exact ``str`` or ``None``, the caller checked), adding
        new ones; None when a new value is longer than ``max_chars`` or no room is left."""
        found = map(self.table.get, values, itertools.repeat(0))
        codes = np.fromiter(found, dtype=np.int32, count=len(values))
        if codes.all():  # no None and nothing new: the common batch
            return codes
        new = [i for i in np.flatnonzero(codes == 0).tolist() if values[i] is not None]
        if new:
            fresh = {values[i] for i in new}
            if max(map(len, fresh)) > max_chars or not self._add(fresh):
                return None
            codes[new] = [self.table[values[i]] for i in new]
        return codes

    def _add(self, fresh: set[str]) -> bool:
        if len(self._values) + len(fresh) > MAX_WORDS:
            self.full = True
            return False
        for value in sorted(fresh):  # sorted: the same codes whatever the set order
            self._values.append(value)  # first: a code found is always in words()
            self.table[value] = len(self._values) - 1
        return True

    def words(self) -> ObjArray:
        """The values by code (an array covering every code handed out so far)."""
        words, size = self._words, len(self._values)
        if words.size < size:
            words = np.fromiter(self._values[:size], dtype=object, count=size)
            self._words = words
        return words

    def mapped(self, key: object, code_of: Callable[[str | None], int]) -> npt.NDArray[np.intp]:
        """``code_of`` applied to every value by code, kept per ``key`` (a drift group's
        table) and extended as the vocabulary grows."""
        size = len(self._values)
        kept = self._maps.get(id(key))
        known = kept[1] if kept is not None and kept[0] is key else np.zeros(0, dtype=np.intp)
        if known.size < size:
            extra = [code_of(v) for v in self._values[known.size : size]]
            known = np.concatenate([known, np.asarray(extra, dtype=np.intp)])
            self._maps[id(key)] = (key, known)
        return known


class CodedColumns(Mapping[int, ObjArray]):
    """The categorical columns of a frame as vocabulary codes (see the module doc).

    ``codes[:, c]`` holds column ``columns[c]``; ``self[j]`` is column ``j`` as an object
    array of ``str``/``None`` (built on first use, then kept).
    """

    def __init__(self, codes: CodeArray, columns: Sequence[int], vocabulary: Vocabulary) -> None:
        self.codes = codes
        self.columns = tuple(columns)
        self.vocabulary = vocabulary
        self._words = vocabulary.words()  # covers every code in ``codes``
        self._position = {j: c for c, j in enumerate(self.columns)}
        self._built: dict[int, ObjArray] = {}

    def __getitem__(self, j: int) -> ObjArray:
        column = self._built.get(j)
        if column is None:
            column = self._words[self.codes[:, self._position[j]]]
            self._built[j] = column
        return column

    def __contains__(self, j: object) -> bool:
        return j in self._position

    def __iter__(self) -> Iterator[int]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)

    def take(self, rows: npt.NDArray[np.intp] | slice) -> CodedColumns:
        """The rows ``rows`` of these columns, still coded."""
        return CodedColumns(self.codes[rows], self.columns, self.vocabulary)

    def position(self, j: int) -> int | None:
        """The block column of frame column ``j`` (None: not categorical here)."""
        return self._position.get(j)
