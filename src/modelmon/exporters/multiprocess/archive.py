"""Dead workers: their counters stay (gauges dropped) in the directory's archive."""

from __future__ import annotations

import os
from typing import Any

from ...errors import ConfigurationError
from .codec import decode, encode, is_counter, parse_state, read_state
from .files import (
    ARCHIVE_FORMAT,
    ARCHIVE_NAME,
    DEAD_FILE,
    FORMAT_VERSION,
    atomic_write,
    directory,
    directory_lock,
    listing,
    pid_path,
    read_bytes,
)


def mark_process_dead(pid: int, path: str | None = None) -> bool:
    """Drop a dead worker's live gauges, keep its counters; returns True if a file was absorbed.

    For gunicorn's ``child_exit`` hook (in ``gunicorn.conf.py``)::

        from modelmon.multiprocess import mark_process_dead

        def child_exit(server, worker):
            mark_process_dead(worker.pid)

    The worker's aggregates are merged into ``modelmon_archive.state`` (under a file
    lock) and its file is deleted, so the directory does not grow with restarts.
    """
    path = path or directory()
    if path is None:
        raise ConfigurationError(
            "mark_process_dead needs MODELMON_MULTIPROC_DIR (or PROMETHEUS_MULTIPROC_DIR) or path="
        )
    if pid == os.getpid():
        raise ConfigurationError("mark_process_dead called with this process's own pid")
    with directory_lock(path):
        return _absorb(path, pid)


def absorb_foreign(path: str, pid: int, token: str) -> None:
    """An old file of our pid (pid reuse): archive it before we overwrite it."""
    target = pid_path(path, pid)
    if not os.path.exists(target):
        return
    try:
        state = read_state(target, alive=False)
    except Exception:
        return
    if state is not None and state.token != token:
        with directory_lock(path):
            _absorb(path, pid)


def _absorb(path: str, pid: int) -> bool:
    """Keep a dead process's entry, gauges stripped, in a file of its own; delete its file.

    One file per dead process (``modelmon_dead_<pid>_<token>.state``): absorbing costs
    one file, whatever the number of dead workers (the single archive it replaces was
    read and rewritten whole each time). Entries are not summed into one: readers merge
    every entry in the same (pid, token) order wherever it is stored, so float sums stay
    bit-identical and no counter moves backwards, even by a rounding error.
    """
    target = pid_path(path, pid)
    data = read_bytes(target)
    if data is None:
        return False
    dead = decode(data)
    state = parse_state(dead, alive=False)  # validate before archiving
    dead_path = os.path.join(path, f"modelmon_dead_{state.pid}_{state.token}.state")
    legacy = read_archive(os.path.join(path, ARCHIVE_NAME))["processes"]
    if not os.path.exists(dead_path) and all(p["token"] != state.token for p in legacy):
        for entry in dead["monitors"]:
            entry["live"] = [item for item in entry.get("live", []) if is_counter(item[0])]
        atomic_write(dead_path, encode(dead))
    os.unlink(target)
    return True


def read_archive(path: str) -> dict[str, Any]:
    return archive_doc(path, read_bytes(path))


def archive_doc(path: str, data: bytes | None) -> dict[str, Any]:
    if data is None:
        return {"format": ARCHIVE_FORMAT, "version": FORMAT_VERSION, "processes": []}
    doc = decode(data)
    if not isinstance(doc, dict) or doc.get("format") != ARCHIVE_FORMAT:
        raise ValueError(f"{path} is not a modelmon archive")
    if doc.get("version") != FORMAT_VERSION:
        raise ValueError(f"unsupported archive version {doc.get('version')!r}")
    return doc


def archived_tokens(path: str) -> list[str]:
    """Tokens of the dead processes kept in ``path`` (legacy archive and dead files)."""
    tokens = [str(p["token"]) for p in read_archive(os.path.join(path, ARCHIVE_NAME))["processes"]]
    for filename in listing(path, DEAD_FILE):
        match = DEAD_FILE.match(filename)
        if match is not None:
            tokens.append(match.group(2))
    return sorted(tokens)
