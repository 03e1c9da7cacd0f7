"""Dict rows in C-level passes: numeric values packed, categorical values kept as a block.

The common input of a serving process is one dict per call, every key present, numbers
for the numeric features and ``str`` for the categorical ones. Read value by value
(rows, then columns, then a type check per column), a categorical feature made a whole
batch take the slow path: about 80 ns per value against 35 for numbers alone. Here a
batch of such dicts costs two ``itemgetter`` passes (one over the numeric features,
one over the categorical ones), a ``struct`` packing of the numbers (strict: a
``str`` or ``None`` among them fails it) and one type check of every categorical value
(``str`` or ``None``, no longer than the cap). Anything else returns None and the
batch takes the exact per-value path of :mod:`modelmon.extract`, so the frame is the
same either way (``tests/unit/test_extract_dicts.py`` compares them).

>>> import operator
>>> getter = operator.itemgetter("a", "b")
>>> pack_dicts([{"a": 1.0, "b": 2}], getter, 2).tolist()
[[1.0, 2.0]]
>>> pack_dicts([{"a": 1.0, "b": None}], getter, 2) is None
True
>>> block, missing = category_block([{"c": "x", "d": None}], operator.itemgetter("c", "d"), 2, 9)
>>> block.tolist(), missing.tolist()
([['x', None]], [[False, True]])
"""

from __future__ import annotations

import functools
import itertools
import operator
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .batch import BoolArray, ObjArray

_TEXT_OR_NONE = frozenset({str, type(None)})


@functools.lru_cache(maxsize=64)
def _packer(width: int) -> struct.Struct:
    return struct.Struct(f"={width}d")


def pack_dicts(dicts: Sequence[Any], getter: Callable[[Any], Any], width: int) -> np.ndarray | None:
    """The numbers of every dict as a ``(rows, width)`` float matrix in one C-level pass;
    None when a key is missing or a value is not a number (``str``, ``None``...)."""
    pack, rows = _packer(width).pack, map(getter, dicts)
    try:  # one feature: the getter gives the value itself, not a tuple
        packed = b"".join(map(pack, rows) if width == 1 else itertools.starmap(pack, rows))
    except (struct.error, TypeError, KeyError, OverflowError):
        return None  # a missing key, a str, None...: the exact path sorts it out
    return np.frombuffer(bytearray(packed), dtype=np.float64).reshape(len(dicts), width)


def category_block(
    dicts: Sequence[Any], getter: Callable[[Any], Any], width: int, max_chars: int
) -> tuple[ObjArray, BoolArray | None] | None:
    """The categorical values of every dict as a ``(rows, width)`` object block (row by
    row, as the drift's lookups read them) and where they are ``None`` (None: nowhere).

    None when a key is missing or a value is not a ``str`` of at most ``max_chars``
    characters or ``None`` (numbers, NaN, ``str`` subclasses and long values are read
    by the exact per-value rules instead).
    """
    try:
        row_values = map(getter, dicts)
        values = list(row_values if width == 1 else itertools.chain.from_iterable(row_values))
    except (KeyError, TypeError, IndexError):
        return None
    types = set(map(type, values))
    if not types <= _TEXT_OR_NONE:
        return None
    has_none = type(None) in types
    distinct = set(values)  # hashes each value once: the drift's lookups reuse the hash
    distinct.discard(None)
    if max(map(len, distinct), default=0) > max_chars:
        return None
    block = np.fromiter(values, dtype=object, count=len(values))
    missing = None
    if has_none:
        found = map(operator.is_, values, itertools.repeat(None))
        missing = np.fromiter(found, dtype=bool, count=len(values)).reshape(-1, width)
    return block.reshape(-1, width), missing


@dataclass(frozen=True)
class DictSplit:
    """A schema's columns split by kind, with one getter per kind (see :func:`split_of`)."""

    numeric: tuple[int, ...]
    categorical: tuple[int, ...]
    numeric_getter: Callable[[Any], Any] | None
    categorical_getter: Callable[[Any], Any]


@functools.lru_cache(maxsize=64)
def split_of(names: tuple[str, ...], categorical: tuple[int, ...]) -> DictSplit:
    """The numeric and categorical columns of ``names`` (``categorical``: sorted indices)."""
    cats = set(categorical)
    numeric = tuple(j for j in range(len(names)) if j not in cats)
    num_getter = operator.itemgetter(*(names[j] for j in numeric)) if numeric else None
    cat_getter = operator.itemgetter(*(names[j] for j in categorical))
    return DictSplit(numeric, categorical, num_getter, cat_getter)
