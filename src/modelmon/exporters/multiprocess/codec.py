"""State files as bytes and back: a JSON header plus raw numpy buffers, never pickle.

A state is plain data (dicts, lists, scalars, numeric numpy arrays). :func:`encode`
writes ``MAGIC``, the header length, a JSON header in which each array is a reference
``{"__nb__": [dtype, shape, offset]}`` and then the arrays' raw bytes (integer arrays
in the narrowest integer type that holds their values, e.g. small counts as uint8):
decoding costs a JSON parse of the small header and one copy per array (no base64).
:func:`decode` also reads the older all-JSON files (arrays as base64). This module
also validates a decoded process state (pids, tokens, non-negative counts).
"""

from __future__ import annotations

import base64
import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ... import names
from .files import FORMAT, FORMAT_VERSION, MAX_PID, TOKEN, Key, pid_alive, read_bytes

_ND = "__nd__"  # an array inline, base64 (the older all-JSON files; still read)
_NB = "__nb__"  # an array in the binary tail: [dtype, shape, offset]
_NUMERIC_KINDS = frozenset("biuf")
MAGIC = b"MMSTATE2"
_HEAD = struct.Struct("<Q")  # the JSON header's length, after MAGIC
_ALIGN = 8


class _Tail:
    """The raw bytes of the arrays of one state, appended in order (8-byte aligned)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, arr: np.ndarray) -> list[Any]:
        """Append ``arr``; its reference ``[dtype, shape, offset(, stored dtype)]``."""
        offset = self.size
        stored = _narrowest(arr)
        raw = np.ascontiguousarray(arr, dtype=stored).tobytes(order="C")
        pad = -len(raw) % _ALIGN
        self.parts.append(raw + b"\0" * pad)
        self.size += len(raw) + pad
        ref: list[Any] = [arr.dtype.str, list(arr.shape), offset]
        if stored != arr.dtype:
            ref.append(stored.str)
        return ref


_NARROW = tuple(np.dtype(t) for t in ("u1", "i1", "u2", "i2", "u4", "i4"))


def _narrowest(arr: np.ndarray) -> np.dtype[Any]:
    """The smallest integer dtype holding every value of an integer ``arr`` (counts are
    mostly small: int64 sketch counts shrink 4-8x), else ``arr``'s own dtype."""
    if arr.dtype.kind not in "iu" or arr.size < 64:
        return arr.dtype
    lo, hi = int(arr.min()), int(arr.max())
    for dtype in _NARROW:
        if dtype.itemsize >= arr.dtype.itemsize:
            break
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return dtype
    return arr.dtype


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _plain(obj: Any, tail: _Tail | None) -> Any:
    # The exact built-in types first (most of a state): one type lookup, no isinstance chain.
    kind = type(obj)
    if kind in _SCALARS:
        return obj
    if kind is dict:
        return {str(k): _plain(v, tail) for k, v in obj.items()}
    if kind is list:
        return [_plain(v, tail) for v in obj]
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in _NUMERIC_KINDS:
            return [_plain(x, tail) for x in obj.tolist()]
        if tail is not None:
            return {_NB: tail.add(obj)}
        data = base64.b64encode(obj.tobytes(order="C")).decode("ascii")
        return {_ND: [obj.dtype.str, list(obj.shape), data]}
    if isinstance(obj, Mapping):
        return {str(k): _plain(v, tail) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v, tail) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a multi-process state file")


def _spec(spec: Any) -> tuple[np.dtype[Any], tuple[int, ...], int]:
    dtype_str, shape = spec[0], spec[1]
    dtype = np.dtype(str(dtype_str))
    if dtype.kind not in _NUMERIC_KINDS:
        raise ValueError(f"refusing array dtype {dtype_str!r} in a state file")
    dims = tuple(int(s) for s in shape)
    if any(d < 0 for d in dims) or len(dims) > 32:
        raise ValueError("malformed array shape in a state file")
    return dtype, dims, math.prod(dims) * dtype.itemsize  # exact: no int64 wrap-around


def _inline_array(spec: Any) -> np.ndarray:
    dtype, shape, nbytes = _spec(spec)
    raw = base64.b64decode(spec[2], validate=True)
    if len(raw) != nbytes:
        raise ValueError("array size does not match its shape in a state file")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


def _tail_array(spec: Any, tail: memoryview) -> np.ndarray:
    if len(spec) not in (3, 4):
        raise ValueError("malformed array reference in a state file")
    dtype, shape, _ = _spec(spec)
    stored = dtype
    if len(spec) == 4:  # integers kept in a narrower integer type
        stored = np.dtype(str(spec[3]))
        if stored.kind not in "iu" or dtype.kind not in "iu" or stored.itemsize > dtype.itemsize:
            raise ValueError("malformed array reference in a state file")
    nbytes = math.prod(shape) * stored.itemsize
    offset = int(spec[2])
    if offset < 0 or offset % _ALIGN or offset + nbytes > len(tail):
        raise ValueError("array outside the state file's data")
    raw = np.frombuffer(tail[offset : offset + nbytes], dtype=stored).reshape(shape)
    return raw.astype(dtype, copy=True)


def encode(obj: Any) -> bytes:
    """Serialise plain state (dicts, lists, scalars, numeric numpy arrays) to bytes.

    The arrays' bytes follow a small JSON header raw, not base64: a reader parses the
    header and copies each array once.

    >>> import numpy as np
    >>> decode(encode({"a": np.arange(3)}))["a"].tolist()
    [0, 1, 2]
    """
    tail = _Tail()
    head = json.dumps(_plain(obj, tail), separators=(",", ":")).encode("utf-8")
    head += b" " * (-(len(MAGIC) + _HEAD.size + len(head)) % _ALIGN)
    return b"".join([MAGIC, _HEAD.pack(len(head)), head, *tail.parts])


def encode_json(obj: Any) -> bytes:
    """The older all-JSON form of :func:`encode` (arrays as base64); :func:`decode` reads it."""
    return json.dumps(_plain(obj, None), separators=(",", ":")).encode("utf-8")


def decode(data: bytes) -> Any:
    """Inverse of :func:`encode` and :func:`encode_json`: refuses object arrays, never unpickles."""
    if not data.startswith(MAGIC):
        return json.loads(data.decode("utf-8"), object_hook=_inline_hook)
    start = len(MAGIC) + _HEAD.size
    if len(data) < start:
        raise ValueError("truncated state file")
    (size,) = _HEAD.unpack_from(data, len(MAGIC))
    if size > len(data) - start:
        raise ValueError("truncated state file")
    tail = memoryview(data)[start + size :]

    def hook(d: dict[str, Any]) -> Any:
        if len(d) == 1 and _NB in d:
            return _tail_array(d[_NB], tail)
        return d

    return json.loads(data[start : start + size].decode("utf-8"), object_hook=hook)


def _inline_hook(d: dict[str, Any]) -> Any:
    if len(d) == 1 and _ND in d:
        return _inline_array(d[_ND])
    return d


def thaw(obj: Any) -> Any:
    """A deep copy of a decoded state's containers and arrays (scalars are shared)."""
    kind = type(obj)
    if kind in _SCALARS:
        return obj
    if kind is list:  # mostly numbers (a covariance row, a fence): copied at C speed then
        if all(type(v) in _SCALARS for v in obj):
            return obj.copy()
        return [thaw(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.copy()
    if isinstance(obj, Mapping):
        return {k: thaw(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [thaw(v) for v in obj]
    return obj


@dataclass
class ProcessState:
    """The state one process wrote (from its own file, or from a dead-worker file).

    ``started`` fixes the process's place in the merge order (with ``token``): it is set
    under the directory lock at the process's first write that holds data, after
    everything the archive has folded; None while the process has recorded nothing
    (then its place does not matter: merging it adds exact zeros).
    """

    pid: int
    token: str
    written_at: float
    alive: bool
    monitors: dict[Key, dict[str, Any]]
    http: list[dict[str, Any]] = field(default_factory=list)
    started: int | None = None

    @property
    def order(self) -> tuple[int, str] | None:
        """The merge-order key, None for a process that recorded nothing yet."""
        return None if self.started is None else (self.started, self.token)


def parse_entries(doc: Mapping[str, Any]) -> tuple[dict[Key, dict[str, Any]], list[Any]]:
    """The validated monitor entries (by key) and HTTP states of a state document."""
    monitors = {
        (str(m["namespace"]), str(m["model"]), str(m["version"])): m for m in doc["monitors"]
    }
    for entry in monitors.values():
        if not isinstance(entry.get("aggregates"), dict):
            raise ValueError("malformed monitor entry in a state file")
        _check_live(entry)
        _check_counts(entry["aggregates"])
    http = list(doc.get("http", []))
    _check_counts(http)
    return monitors, http


def parse_state(doc: Any, alive: bool | None = None) -> ProcessState:
    """A validated :class:`ProcessState` from a decoded process file (raises ValueError)."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError("not a modelmon multi-process state file")
    if doc.get("version") != FORMAT_VERSION:
        raise ValueError(f"unsupported state file version {doc.get('version')!r}")
    pid = doc["pid"]
    if type(pid) is not int or not 0 < pid <= MAX_PID:
        raise ValueError(f"pid {pid!r} out of range in a state file")
    token = doc["token"]
    if not isinstance(token, str) or not TOKEN.match(token):
        raise ValueError("malformed token in a state file")
    written_at = float(doc["written_at"])
    if not math.isfinite(written_at):
        raise ValueError("malformed time in a state file")
    started = doc.get("started")
    if started is not None and (type(started) is not int or started < 0):
        raise ValueError("malformed start key in a state file")
    monitors, http = parse_entries(doc)
    return ProcessState(
        pid,
        token,
        written_at,
        pid_alive(pid) if alive is None else alive,
        monitors,
        http,
        started,
    )


def is_empty(doc: Mapping[str, Any]) -> bool:
    """Whether a state document recorded nothing at all (every count and counter is 0).

    Merging such a state adds exact zeros, so its place in the merge order is free.
    """
    for entry in doc.get("monitors", []):
        for item in entry.get("live", []):
            if is_counter(str(item[0])) and any(float(v) != 0 for _, v in item[1]):
                return False
        aggregates = entry.get("aggregates", {})
        # Every fold of the per-call aggregates (inputs, drift, distributions...) comes
        # from calls the traffic aggregate counts; labels are counted by outcomes.
        has_traffic = any(a.get("kind") == "traffic" for a in aggregates.values())
        for agg in aggregates.values():
            if _recorded(agg.get("kind"), agg.get("state"), has_traffic):
                return False
    return not any(np.asarray(h.get("counts", ())).any() for h in doc.get("http", []))


def _recorded(kind: Any, state: Any, has_traffic: bool) -> bool:
    if not isinstance(state, Mapping):
        return True
    if kind == "traffic":
        return bool(state.get("requests")) or any(state.get("aborted", {}).values())
    if kind == "outcomes":
        regression = state.get("regression") or [0]
        return bool(state.get("confusion")) or bool(regression[0]) or bool(state.get("window"))
    return not has_traffic  # no traffic to tell: assume it holds data


def read_state(path: str, alive: bool | None = None) -> ProcessState | None:
    """The validated state of one process file, or None if it does not exist."""
    data = read_bytes(path)
    if data is None:
        return None
    return parse_state(decode(data), alive)


_COUNT_KEYS = frozenset({"requests", "predictions", "errors"})


def _is_count_key(key: str) -> bool:
    return key in _COUNT_KEYS or "count" in key


def _check_counts(obj: Any, counting: bool = False, depth: int = 0) -> None:
    """Refuse a negative count anywhere in a state (fields named ``*count*``, requests...)."""
    if depth > 64:
        raise ValueError("state nested too deeply")
    kind = type(obj)
    if not counting and kind in _SCALARS:
        return  # most of a state: nothing to check
    if kind is list and not counting:
        for v in obj:
            if type(v) not in _SCALARS:
                _check_counts(v, False, depth + 1)
        return
    if isinstance(obj, np.ndarray):
        if counting and obj.dtype.kind in "iuf" and obj.size and not (obj >= 0).all():
            raise ValueError("negative count in a state file")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _check_counts(v, counting or _is_count_key(str(k)), depth + 1)
    elif isinstance(obj, list):
        for v in obj:
            _check_counts(v, counting, depth + 1)
    elif counting and isinstance(obj, (int, float)) and not obj >= 0:
        raise ValueError("negative count in a state file")


def _check_live(entry: Mapping[str, Any]) -> None:
    for item in entry.get("live", []):
        spec_name, points = item
        if not is_counter(str(spec_name)):
            continue
        for _labels, value in points:
            v = float(value)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"counter {spec_name} has value {v!r} in a state file")


def is_counter(spec_name: str) -> bool:
    try:
        return names.by_name(spec_name).kind == "counter"
    except KeyError:
        return False
