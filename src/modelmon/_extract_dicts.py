"""Dict rows in C-level passes: numbers packed, categories checked and coded in bulk.

The common input of a serving process is one dict per call, every key present, numbers
for the numeric features and ``str`` for the categorical ones. Read value by value
(rows, then columns, then a type check per column), a categorical feature made a whole
batch take the slow path: about 80 ns per value against 35 for numbers alone. Here a
batch of such dicts costs two ``itemgetter`` passes (one over the numeric features,
one over the categorical ones), a ``struct`` packing of the numbers (strict: a
``str`` or ``None`` among them fails it), one type check of every categorical value
(``str`` or ``None``, no longer than the cap) and, in a fold, one vocabulary lookup of
each (:mod:`modelmon.category_vocabulary`). Anything else returns None and the batch
takes the exact per-value path of :mod:`modelmon.extract`, so the frame is the same
either way (``tests/unit/test_extract_dicts.py`` compares them).

>>> import operator
>>> getter = operator.itemgetter("a", "b")
>>> pack_dicts([{"a": 1.0, "b": 2}], getter, 2).tolist()
[[1.0, 2.0]]
>>> pack_dicts([{"a": 1.0, "b": None}], getter, 2) is None
True
>>> split = split_of(("a", "c", "d"), (1, 2))
>>> numbers, block, missing = read_dicts([{"a": 1, "c": "x", "d": None}], split, 9)
>>> numbers.tolist(), block.tolist(), missing.tolist()
([[1.0]], [['x', None]], [[False, True]])
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

from .batch import BoolArray
from .category_vocabulary import Vocabulary

_TEXT_OR_NONE = frozenset({str, type(None)})
_PART_ROWS = 256


@functools.lru_cache(maxsize=64)
def _packer(width: int) -> struct.Struct:
    return struct.Struct(f"={width}d")


def pack_dicts(dicts: Sequence[Any], getter: Callable[[Any], Any], width: int) -> np.ndarray | None:
    """The numbers of every dict as a ``(rows, width)`` float matrix in one C-level pass;
    None when a key is missing or a value is not a number (``str``, ``None``...)."""
    packed = _packed(dicts, getter, width)
    if packed is None:
        return None
    return np.frombuffer(bytearray(packed), dtype=np.float64).reshape(len(dicts), width)


def _packed(dicts: Sequence[Any], getter: Callable[[Any], Any], width: int) -> bytes | None:
    pack, rows = _packer(width).pack, map(getter, dicts)
    try:  # one feature: the getter gives the value itself, not a tuple
        return b"".join(map(pack, rows) if width == 1 else itertools.starmap(pack, rows))
    except (struct.error, TypeError, KeyError, OverflowError):
        return None  # a missing key, a str, None...: the exact path sorts it out


def _categories(dicts: Sequence[Any], getter: Callable[[Any], Any], width: int) -> list[Any] | None:
    try:
        row_values = map(getter, dicts)
        return list(row_values if width == 1 else itertools.chain.from_iterable(row_values))
    except (KeyError, TypeError, IndexError):
        return None


def read_dicts(
    dicts: Sequence[Any],
    split: DictSplit,
    max_chars: int,
    vocabulary: Vocabulary | None = None,
) -> tuple[np.ndarray | None, np.ndarray, BoolArray | None] | None:
    """The numeric matrix (None without numeric features), the categorical values as a
    ``(rows, categorical)`` block (row by row, as the lookups read them) and where they
    are ``None`` (None: nowhere), or None for the exact per-value path: a missing key, a
    number that is not one (see :func:`pack_dicts`), a categorical value that is not a
    ``str`` of at most ``max_chars`` characters or ``None`` (numbers, NaN, ``str``
    subclasses and long values are read by the exact per-value rules instead).

    With a ``vocabulary`` the block holds the values' int32 codes in it (see
    :mod:`modelmon.category_vocabulary`), else the values themselves (an object block);
    a vocabulary that cannot code a value (too long, or full) gives the object block.

    Read :data:`_PART_ROWS` rows at a time: each pass over a part's values (type check,
    lookups or hashing, the block's references) finds them still in the CPU cache, where
    passes over a whole fold's values read them from memory every time.
    """
    if vocabulary is not None and vocabulary.full:
        vocabulary = None
    n, width = len(dicts), len(split.categorical)
    numeric: list[bytes] = []
    block = np.empty(n * width, dtype=object if vocabulary is None else np.int32)
    types: set[type] = set()
    distinct: set[Any] = set()
    for start in range(0, n, _PART_ROWS):
        part = dicts[start : start + _PART_ROWS]
        if split.numeric_getter is not None:
            packed = _packed(part, split.numeric_getter, len(split.numeric))
            if packed is None:
                return None
            numeric.append(packed)
        values = _categories(part, split.categorical_getter, width)
        if values is None:
            return None
        types.update(map(type, values))
        if not types <= _TEXT_OR_NONE:
            return None
        at = slice(start * width, start * width + len(values))
        if vocabulary is not None:
            codes = vocabulary.codes(values, max_chars)
            if codes is None:  # a long value, or a full vocabulary: values, not codes
                return read_dicts(dicts, split, max_chars)
            block[at] = codes
        else:
            distinct.update(values)  # hashes each value once: the drift's lookups reuse it
            block[at] = np.fromiter(values, dtype=object, count=len(values))
    distinct.discard(None)
    if max(map(len, distinct), default=0) > max_chars:
        return None
    missing = None
    if type(None) in types:
        empty: Any = 0 if vocabulary is not None else None  # the code or the value
        missing = np.asarray(block == empty, dtype=bool).reshape(n, width)
    matrix = None
    if split.numeric_getter is not None:
        matrix = np.frombuffer(bytearray(b"".join(numeric)), dtype=np.float64)
        matrix = matrix.reshape(n, len(split.numeric))
    return matrix, block.reshape(n, width), missing


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
