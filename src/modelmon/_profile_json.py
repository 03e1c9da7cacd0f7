"""The profile's JSON text, byte for byte ``json.dumps(obj, sort_keys=True, indent=2,
allow_nan=False)``, with flat lists of numbers joined in C.

With ``indent`` the standard library encodes in Python, one call per value: a profile
holds tens of thousands of numbers (bins, sketch buckets), which cost more than the rest
of the file. Anything the fast path does not know falls back to ``json.dumps`` itself.
"""

from __future__ import annotations

import json
import math
from typing import Any

_INDENT = "  "
_encode_key = json.encoder.encode_basestring_ascii  # what json.dumps uses (ensure_ascii)


class _Unknown(Exception):
    """A value the fast path leaves to ``json.dumps``."""


def dumps_indented(obj: Any) -> str:
    """``json.dumps(obj, sort_keys=True, indent=2, allow_nan=False)``, the same text."""
    try:
        parts: list[str] = []
        _emit(obj, 0, parts)
        return "".join(parts)
    except _Unknown:
        return json.dumps(obj, sort_keys=True, indent=2, allow_nan=False)


def _emit(obj: Any, level: int, out: list[str]) -> None:
    kind = type(obj)
    if kind is dict:
        if not obj:
            out.append("{}")
            return
        if not all(type(k) is str for k in obj):
            raise _Unknown
        inner = "\n" + _INDENT * (level + 1)
        out.append("{")
        first = True
        for key in sorted(obj):
            out.append(inner if first else "," + inner)
            first = False
            out.append(_encode_key(key))
            out.append(": ")
            _emit(obj[key], level + 1, out)
        out.append("\n" + _INDENT * level + "}")
    elif kind is list or kind is tuple:
        if not obj:
            out.append("[]")
            return
        inner = "\n" + _INDENT * (level + 1)
        flat = _numbers(obj)
        if flat is not None:
            out.append("[" + inner + ("," + inner).join(flat) + "\n" + _INDENT * level + "]")
            return
        out.append("[")
        for i, item in enumerate(obj):
            out.append(inner if i == 0 else "," + inner)
            _emit(item, level + 1, out)
        out.append("\n" + _INDENT * level + "]")
    else:
        out.append(_scalar(obj))


def _numbers(items: list[Any] | tuple[Any, ...]) -> list[str] | None:
    """The texts of a list of only floats or only ints (exact types), else ``None``."""
    kind = type(items[0])
    if kind is float:
        if not all(type(v) is float for v in items):
            return None
        if not all(map(math.isfinite, items)):
            raise _Unknown  # json.dumps raises its own ValueError
        return list(map(float.__repr__, items))
    if kind is int:
        if not all(type(v) is int for v in items):
            return None
        return list(map(int.__repr__, items))
    return None


def _scalar(obj: Any) -> str:
    kind = type(obj)
    if kind is str:
        return _encode_key(obj)
    if obj is None:
        return "null"
    if obj is True:
        return "true"
    if obj is False:
        return "false"
    if kind is int:
        return int.__repr__(obj)
    if kind is float and math.isfinite(obj):
        return float.__repr__(obj)
    raise _Unknown
