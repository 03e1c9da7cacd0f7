"""Reading the directory: every process's state, validated, in one merge order.

Parsed states are cached by (name, inode, size, mtime_ns): a scrape re-reads and
decodes only the files that changed since the last one. Cached states are never handed
out to be mutated: :func:`thaw` copies a state's arrays before an aggregate loads it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable

from .archive import archive_doc
from .codec import ProcessState, decode, parse_state
from .files import ARCHIVE_NAME, DEAD_FILE, HEALTH, PID_FILE, listing, pid_path, read_bytes


class _LastGood:
    """The last bytes of each file that parsed: a file that turns unreadable (truncated,
    replaced by something hostile, a full disk) counts with what it said before, so the
    merged view never goes backwards. Bytes, re-decoded on use: merges never alias them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, bytes] = {}

    def remember(self, key: str, data: bytes) -> None:
        with self._lock:
            self._data[key] = data

    def forget(self, keep: Iterable[str]) -> None:
        keep = set(keep)
        with self._lock:
            for key in [k for k in self._data if k not in keep]:
                del self._data[key]

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self._data.get(key)


_LAST_GOOD = _LastGood()


def _read_process_file(path: str, filename: str, own: bytes | None) -> ProcessState | None:
    full = os.path.join(path, filename)
    pid = int(PID_FILE.match(filename).group(1))  # type: ignore[union-attr]
    try:
        data = own if own is not None and pid == os.getpid() else read_bytes(full)
        if data is None:
            return None
        state = parse_state(decode(data))
        if state.pid != pid:
            raise ValueError(f"{filename} holds the state of pid {state.pid}")
    except Exception as exc:  # hostile or half-written: fall back to what it said before
        HEALTH.note("mp_read", "modelmon: unreadable state file %s: %r", filename, exc)
        last = _LAST_GOOD.get(full)
        return parse_state(decode(last)) if last is not None else None
    _LAST_GOOD.remember(full, data)
    return state


def _read_dead_file(path: str, filename: str) -> ProcessState | None:
    full = os.path.join(path, filename)
    match = DEAD_FILE.match(filename)
    assert match is not None
    try:
        data = read_bytes(full)
        if data is None:
            return None
        state = parse_state(decode(data), alive=False)
        if (str(state.pid), state.token) != (match.group(1), match.group(2)):
            raise ValueError(f"{filename} holds the state of another process")
    except Exception as exc:
        HEALTH.note("mp_read", "modelmon: unreadable state file %s: %r", filename, exc)
        last = _LAST_GOOD.get(full)
        return parse_state(decode(last), alive=False) if last is not None else None
    _LAST_GOOD.remember(full, data)
    return state


def read_directory(path: str, own: bytes | None = None) -> list[ProcessState]:
    """Every process of the directory (live files and archived ones), in merge order.

    Process files are read before the archive: a file archived in between is then
    found in the archive (and skipped here by its token), never lost. The order is
    (pid, token) whichever file holds an entry, so sums are always added in one order.
    ``own`` is this process's latest state (used instead of its file, which a full or
    read-only directory may have kept from being written).
    """
    states: list[ProcessState] = []
    try:
        process_files = listing(path)
    except FileNotFoundError:
        process_files = []
    own_name = os.path.basename(pid_path(path, os.getpid()))
    if own is not None and own_name not in process_files:
        process_files.append(own_name)
    for filename in process_files:
        state = _read_process_file(path, filename, own)
        if state is not None:
            states.append(state)
    archive_path = os.path.join(path, ARCHIVE_NAME)
    try:
        data = read_bytes(archive_path)
        doc = archive_doc(archive_path, data)
        archived = [parse_state(d, alive=False) for d in doc["processes"]]
        if data is not None:
            _LAST_GOOD.remember(archive_path, data)
    except Exception as exc:
        HEALTH.note("mp_archive", "modelmon: unreadable archive: %r", exc)
        last = _LAST_GOOD.get(archive_path)
        archived = []
        if last is not None:
            archived = [
                parse_state(d, alive=False) for d in archive_doc(archive_path, last)["processes"]
            ]
    try:  # listed after the process files were read: a file absorbed meanwhile is here
        dead_listing = listing(path, DEAD_FILE)
    except FileNotFoundError:
        dead_listing = []
    for filename in dead_listing:
        state = _read_dead_file(path, filename)
        if state is not None:
            archived.append(state)
    seen = [os.path.join(path, f) for f in process_files + dead_listing]
    _LAST_GOOD.forget([*seen, archive_path])
    tokens = {a.token for a in archived}
    states = [s for s in states if s.token not in tokens] + archived
    states.sort(key=lambda s: (s.pid, s.token))
    return states
