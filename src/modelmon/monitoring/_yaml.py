"""A tiny deterministic YAML emitter (block style), so the CLI needs no PyYAML.

Handles what the generated files hold: dicts (insertion order kept), lists, strings,
numbers, booleans and None. Multi-line strings become literal blocks (``|-``); strings
YAML would read as something else are double-quoted (JSON escapes are valid YAML).

>>> print(dump({"a": [1, "b: c"], "d": {}}), end="")
a:
- 1
- "b: c"
d: {}
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

# Plain (unquoted) scalars: a safe first character, then anything printable; the checks in
# _string exclude what block-context YAML would read differently (": ", " #", booleans).
_PLAIN = re.compile(r"^[A-Za-z_/$(][\x20-\x7e]*\Z")
_RESERVED = re.compile(
    r"^(?:~|null|true|false|yes|no|on|off|y|n|\.nan|\.inf|-\.inf)$", re.IGNORECASE
)


def dump(data: Mapping[str, Any]) -> str:
    """``data`` as a YAML document (ends with a newline)."""
    return "".join(line + "\n" for line in _mapping(data, 0))


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return json.dumps(value)
    if isinstance(value, str):
        return _string(value)
    raise TypeError(f"cannot emit {type(value).__name__} as YAML")


def _string(text: str) -> str:
    plain = (
        _PLAIN.match(text)
        and not _RESERVED.match(text)
        and not text.endswith((" ", ":"))
        and ": " not in text
        and " #" not in text
    )
    return text if plain else _quote(text)


def _quote(text: str) -> str:
    """A YAML double-quoted scalar; every non-printable character escaped."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def _is_block(value: Any) -> bool:
    if not isinstance(value, str) or "\n" not in value or value.endswith("\n\n"):
        return False
    lines = value.split("\n")
    # YAML folds a leading space / empty line into indentation; JSON-quote those instead.
    return (
        bool(lines[0].strip())
        and lines[0][0] != " "
        and all(line.isprintable() and line == line.rstrip() for line in lines)
    )


def _block(text: str, indent: int) -> list[str]:
    pad = " " * indent
    return [pad + line if line else "" for line in text.rstrip("\n").split("\n")]


def _mapping(data: Mapping[str, Any], indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    for key, value in data.items():
        head = f"{pad}{_string(str(key))}:"
        lines.extend(_entry(head, value, indent, indent + 2))
    return lines


def _entry(head: str, value: Any, indent: int, child: int) -> list[str]:
    if isinstance(value, Mapping):
        if not value:
            return [head + " {}"]
        return [head, *_mapping(value, child)]
    if isinstance(value, Sequence) and not isinstance(value, str):
        if not value:
            return [head + " []"]
        return [head, *_sequence(value, indent)]
    if _is_block(value):
        chomp = "|" if value.endswith("\n") else "|-"
        return [f"{head} {chomp}", *_block(value, child)]
    return [f"{head} {_scalar(value)}"]


def _sequence(items: Sequence[Any], indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    for item in items:
        if isinstance(item, Mapping) and item:
            inner = _mapping(item, indent + 2)
            lines.append(pad + "- " + inner[0][indent + 2 :])
            lines.extend(inner[1:])
        elif isinstance(item, Sequence) and not isinstance(item, str) and item:
            inner = _sequence(item, indent + 2)
            lines.append(pad + "- " + inner[0][indent + 2 :])
            lines.extend(inner[1:])
        else:
            lines.extend(_entry(pad + "-", item, indent, indent + 2))
    return lines
