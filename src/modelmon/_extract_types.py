"""What extraction recognises, shared by inputs and outputs: pandas objects, scalars, the error.

Split from :mod:`modelmon.extract` (which re-exports :class:`UnsupportedInput`).
"""

from __future__ import annotations

import numbers

import numpy as np


class UnsupportedInput(TypeError):
    """An input or output of a type modelmon cannot read (counted, never raised)."""


def _is_pandas(x: object, name: str) -> bool:
    cls = type(x)
    return cls.__module__.startswith("pandas") and cls.__name__ == name


def _is_scalar(x: object) -> bool:
    return x is None or isinstance(x, (numbers.Number, str, bytes, bool, np.generic))
