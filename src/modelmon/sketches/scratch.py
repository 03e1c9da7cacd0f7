"""Reused arrays for the drift fold's large temporaries.

A fold part of a 64-row batch case is 4,096 rows x 20 features: each per-value
temporary of the drift fold (the transposed chunk, ``x - center``, the keys, the cell
indices, the bin indices) is 640 KiB. Allocated afresh at every fold, such arrays are
above glibc ``malloc``'s mmap threshold or trimmed off the top of its heap when freed,
and each new one page-faults its memory in again (about 7 faults a call in that case,
more than a tenth of its cost on a 2-core virtual machine). Cut into chunks small enough
to avoid that, the fold pays its fixed cost per chunk several times a part.

A :class:`Scratch` keeps one array per temporary and hands out views of it, grown when
a larger one is asked for (at most :data:`MAX_VALUES` values: larger requests are
plain allocations). :func:`borrowed` lends one from a small pool to one fold at a time
(two threads may fold two monitors at once; each gets its own), so the memory kept is
a few MiB per concurrent fold, not per monitor or per thread.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import numpy.typing as npt

MAX_VALUES = 1 << 17  # a fold part's values: fold_parts.MAX_PART_VALUES is this constant
_KEPT = 2  # pooled scratches: one per concurrent fold, the usual case one or two


class Scratch:
    """Reusable uninitialised arrays, one per name and dtype (one user at a time)."""

    __slots__ = ("_arrays",)

    def __init__(self) -> None:
        self._arrays: dict[tuple[str, str], npt.NDArray[Any]] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: npt.DTypeLike) -> npt.NDArray[Any]:
        """A C-ordered array of ``shape`` whose contents are undefined (``np.empty``).

        The same memory is handed out again at the next ``get`` of ``name``: the caller
        uses it before that and lets no reference to it escape.
        """
        n = math.prod(shape)
        dt = np.dtype(dtype)
        if n > MAX_VALUES:
            return np.empty(shape, dtype=dt)
        key = (name, dt.str)
        buf = self._arrays.get(key)
        if buf is None or buf.size < n:
            buf = self._arrays[key] = np.empty(n, dtype=dt)
        return buf[:n].reshape(shape)


_POOL: list[Scratch] = []


@contextmanager
def borrowed() -> Iterator[Scratch]:
    """A :class:`Scratch` no other fold uses until the ``with`` block ends."""
    try:
        scratch = _POOL.pop()  # one C call under the GIL: no two folds get the same
    except IndexError:
        scratch = Scratch()
    try:
        yield scratch
    finally:
        if len(_POOL) < _KEPT:
            _POOL.append(scratch)
