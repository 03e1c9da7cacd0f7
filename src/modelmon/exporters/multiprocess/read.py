"""Reading the directory: every process's state, validated, in one merge order.

A scrape reads every file (cheap: bytes from the page cache) but decodes and validates
only those whose bytes changed since the last scrape: parsed states are cached with
the bytes they came from, so a scrape costs O(changed workers) in decoding. The cache
also gives the fallback for a file that turns unreadable (truncated, replaced by
something hostile, a full disk): it counts with what it said before, so the merged
view never goes backwards. Cached states are shared between scrapes, never mutated:
:func:`thaw` copies a state before an aggregate loads it.

The merge order: the archive (every dead worker folded so far) first, then every
other process by its start key (``started``, ``token``), then processes that have
recorded nothing yet. An entry the archive already holds (start key at or before
the archive's ``through``) is skipped: it was folded between two reads.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .codec import ProcessState, decode, parse_entries, parse_state
from .files import (
    ARCHIVE_FORMAT,
    ARCHIVE_NAME,
    ARCHIVE_VERSION,
    DEAD_FILE,
    HEALTH,
    PID_FILE,
    listing,
    pid_alive,
    pid_path,
    read_bytes,
)

Order = tuple[int, str]
NO_ORDER: Order = (-1, "")


@dataclasses.dataclass
class Archive:
    """The dead workers folded so far: one summed state, and the last start key folded."""

    through: Order
    state: ProcessState | None


def parse_archive(doc: Any) -> Archive:
    """A validated :class:`Archive` from a decoded archive file (raises ValueError)."""
    if not isinstance(doc, dict) or doc.get("format") != ARCHIVE_FORMAT:
        raise ValueError("not a modelmon archive")
    if doc.get("version") != ARCHIVE_VERSION:
        raise ValueError(f"unsupported archive version {doc.get('version')!r}")
    started, token = doc["through"]
    if type(started) is not int or not isinstance(token, str):
        raise ValueError("malformed archive")
    monitors, http = parse_entries(doc)
    state = ProcessState(0, "archive", float(doc["written_at"]), False, monitors, http, -1)
    return Archive((started, token), state)


EMPTY_ARCHIVE = Archive(NO_ORDER, None)


class _Cache:
    """Parsed states by file, with the bytes they were parsed from."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, tuple[bytes, Any]] = {}
        self.decoded = 0  # files decoded (not served from the cache): for tests, benchmarks
        self.reads = 0  # files read (not skipped as unchanged): for tests, benchmarks
        self.failed = 0  # reads that fell back to the last good content

    def parse(self, key: str, data: bytes, parse: Callable[[Any], Any]) -> Any:
        with self._lock:
            hit = self._data.get(key)
        if hit is not None and hit[0] == data:
            return hit[1]
        value = parse(decode(data))
        if hit is not None:
            share_unchanged(hit[1], value)
        with self._lock:
            self._data[key] = (data, value)
            self.decoded += 1
        return value

    def after_fork(self) -> None:
        self._lock = threading.Lock()  # a parent thread may have held it at the fork

    def last(self, key: str) -> Any:
        with self._lock:
            hit = self._data.get(key)
        return None if hit is None else hit[1]

    def forget(self, keep: Iterable[str]) -> None:
        keep = set(keep)
        with self._lock:
            for key in [k for k in self._data if k not in keep]:
                del self._data[key]


CACHE = _Cache()


def share_unchanged(old: Any, new: Any) -> None:
    """Let ``new``'s monitor entries reuse ``old``'s aggregates where they are identical.

    A process rewrites its file for a new heartbeat even when none of its aggregates
    changed: sharing the objects lets the merge cache (keyed by identity) keep its sum.
    """
    if not isinstance(old, ProcessState) or not isinstance(new, ProcessState):
        return
    for key, entry in new.monitors.items():
        before = old.monitors.get(key)
        if before is not None and identical(before["aggregates"], entry["aggregates"]):
            entry["aggregates"] = before["aggregates"]


def identical(a: Any, b: Any) -> bool:
    """Whether two decoded states are the same, bit for bit (NaN: never the same)."""
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is dict:
        return list(a) == list(b) and all(map(identical, a.values(), b.values()))
    if kind is np.ndarray:
        return bool(a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes())
    if kind is list:
        if len(a) != len(b):
            return False
        if not any(map(_unsure, a)) and list(map(type, a)) == list(map(type, b)):
            return bool(a == b)  # only str/int/bool/None, type for type: == is bit for bit
        return all(map(identical, a, b))
    if kind is float:
        return a == b and (a != 0.0 or math.copysign(1.0, a) == math.copysign(1.0, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(identical(a[k], b[k]) for k in a)
    return bool(a == b)


def _unsure(x: Any) -> bool:
    """A value whose ``==`` is not "bit for bit the same": a float (0.0 == -0.0, NaN),
    an array or a container."""
    return type(x) not in _EXACT


_EXACT = frozenset({str, int, bool, type(None)})


def _read(full: str, parse: Callable[[Any], Any], own: bytes | None = None) -> Any:
    """A file's parsed content; its last good content if it is unreadable now."""
    try:
        data = own if own is not None else read_bytes(full)
        if data is None:
            return None
        if own is None:
            CACHE.reads += 1
        return CACHE.parse(full, data, parse)
    except Exception as exc:  # hostile or half-written: fall back to what it said before
        CACHE.failed += 1
        HEALTH.note("mp_read", "modelmon: unreadable state file %s: %r", full, exc)
        return CACHE.last(full)


def _process_parser(pid: int) -> Callable[[Any], ProcessState]:
    def parse(doc: Any) -> ProcessState:
        state = parse_state(doc, alive=False)
        if state.pid != pid:
            raise ValueError(f"a file of pid {pid} holds the state of pid {state.pid}")
        return state

    return parse


def _dead_parser(match: re.Match[str]) -> Callable[[Any], ProcessState]:
    def parse(doc: Any) -> ProcessState:
        state = parse_state(doc, alive=False)
        if (str(state.pid), state.token) != (match.group(1), match.group(2)):
            raise ValueError("a dead-worker file holds the state of another process")
        return state

    return parse


def read_live(path: str, own: bytes | None = None) -> list[ProcessState]:
    """The states of the directory's process files (``alive`` as of now)."""
    return with_liveness(_read_live(path, own))


def with_liveness(states: list[ProcessState]) -> list[ProcessState]:
    """``states`` with ``alive`` as of now (this process is alive)."""
    me = os.getpid()
    return [dataclasses.replace(s, alive=s.pid == me or pid_alive(s.pid)) for s in states]


def _read_live(path: str, own: bytes | None) -> list[ProcessState]:
    try:
        names_ = listing(path)
    except FileNotFoundError:
        names_ = []
    me = os.getpid()
    own_name = os.path.basename(pid_path(path, me))
    if own is not None and own_name not in names_:
        names_.append(own_name)
    states = []
    for filename in names_:
        match = PID_FILE.match(filename)
        assert match is not None
        pid = int(match.group(1))
        mine = own if pid == me else None
        state = _read(os.path.join(path, filename), _process_parser(pid), mine)
        if state is not None:
            states.append(state)
    return states


def read_dead(path: str) -> list[ProcessState]:
    """The states of the directory's dead-worker files (not yet folded into the archive)."""
    try:
        names_ = listing(path, DEAD_FILE)
    except FileNotFoundError:
        names_ = []
    states = []
    for filename in names_:
        match = DEAD_FILE.match(filename)
        assert match is not None
        state = _read(os.path.join(path, filename), _dead_parser(match))
        if state is not None:
            states.append(state)
    return states


def read_archive(path: str) -> Archive:
    """The directory's archive (its last good content if it is unreadable now)."""
    archive = _read(os.path.join(path, ARCHIVE_NAME), parse_archive)
    return EMPTY_ARCHIVE if archive is None else archive


def dead_order(state: ProcessState) -> Order:
    """A dead worker's place (a file of an older version has no start key: first)."""
    return state.order or (0, state.token)


def merge_order(
    archive: Archive, live: list[ProcessState], dead: list[ProcessState]
) -> list[ProcessState]:
    """Every state once, in merge order, without what the archive already holds."""
    dead_tokens = {d.token for d in dead}
    keyed = [(dead_order(d), d) for d in dead]
    unkeyed: list[ProcessState] = []
    for state in live:
        if state.token in dead_tokens:  # absorbed between the two reads: the dead copy counts
            continue
        if state.order is None:
            unkeyed.append(state)
        else:
            keyed.append((state.order, state))
    keyed = [(order, s) for order, s in keyed if order > archive.through]
    keyed.sort(key=lambda item: item[0])
    unkeyed.sort(key=lambda s: (s.pid, s.token))
    head = [] if archive.state is None else [archive.state]
    return head + [s for _, s in keyed] + unkeyed


def read_directory(path: str, own: bytes | None = None) -> list[ProcessState]:
    """Every process of the directory (live, dead, archived), in merge order.

    Process files are read first, then dead-worker files, then the archive: an entry
    moved in between (absorbed, or folded into the archive) is found later and counted
    once, never lost. ``own`` is this process's latest state (used instead of its file,
    which a full or read-only directory may have kept from being written).
    """
    sig = signature(path, own)
    last = _UNCHANGED.get(path)
    if sig is not None and last is not None and last[0] == sig and last[1] == own:
        live, dead, archive = last[2]  # no file changed: nothing read, the same states
    else:
        failed = CACHE.failed
        live = _read_live(path, own)
        dead = read_dead(path)
        archive = read_archive(path)
        try:
            kept = os.listdir(path)
        except OSError:
            kept = []
        CACHE.forget(os.path.join(path, name) for name in kept)
        if sig is not None and CACHE.failed == failed:  # a failed read is retried next time
            _UNCHANGED[path] = (sig, own, (live, dead, archive))
        else:
            _UNCHANGED.pop(path, None)
    return merge_order(archive, with_liveness(live), dead)


# A file changed in place within the clock's granularity may keep its (inode, size,
# mtime): a signature is kept only when every file is older than this ("racy git").
RACY_NS = 1_000_000_000
Signature = tuple[tuple[str, int, int, int, int, int], ...]
_UNCHANGED: dict[
    str, tuple[Signature, bytes | None, tuple[list[ProcessState], list[ProcessState], Archive]]
] = {}


def signature(path: str, own: bytes | None = None) -> Signature | None:
    """(name, inode, size, mtime, ctime, mode) of every state file; None: not reusable.

    modelmon replaces files by renaming (a new inode each time); a file written in place
    within :data:`RACY_NS` of now makes the signature unusable. This process's own file
    is left out when ``own`` stands in for it.
    """
    own_name = os.path.basename(pid_path(path, os.getpid())) if own is not None else None
    entries = []
    try:
        with os.scandir(path) as it:
            for entry in it:
                name = entry.name
                if name == own_name or not (
                    PID_FILE.match(name) or DEAD_FILE.match(name) or name == ARCHIVE_NAME
                ):
                    continue
                st = entry.stat(follow_symlinks=False)
                entries.append(
                    (name, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)
                )
    except OSError:
        return None
    newest = max((max(e[3], e[4]) for e in entries), default=0)
    if newest > time.time_ns() - RACY_NS:
        return None
    return tuple(sorted(entries))


def forget_unchanged() -> None:
    """Drop the kept signatures (the next read reads every file)."""
    _UNCHANGED.clear()
