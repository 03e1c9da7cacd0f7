"""Dead workers: their counters stay, folded into one running total, the archive.

:func:`mark_process_dead` (gunicorn's ``child_exit``) moves a dead worker's file to
``modelmon_dead_<pid>_<token>.state`` (gauges dropped), then :func:`compact` folds
dead workers into ``modelmon_archive.state`` and deletes their files, so the directory
and the cost of ``mark_process_dead`` stay constant however many workers were recycled.

No counter ever goes backwards, not even by a rounding error: scrapes sum processes
in one fixed order (the archive, then by start key; see :mod:`.read`), and the archive
only ever folds a *leading run* of dead workers of that order (computed by the same
code a scrape uses, :mod:`.sums`). A dead worker that started after a live one stays
a file until that one is gone too (with recycling, workers die roughly in start
order). Readers skip entries the archive holds (start key at or before ``through``).
Everything happens under the directory's file lock; the archive is replaced
atomically and only then are the folded files deleted.
"""

from __future__ import annotations

import os
import time
from typing import Any

from ...errors import ConfigurationError
from .codec import ProcessState, decode, encode, is_counter, is_empty, parse_state
from .files import (
    ARCHIVE_FORMAT,
    ARCHIVE_NAME,
    ARCHIVE_VERSION,
    HEALTH,
    Key,
    atomic_write,
    directory,
    directory_lock,
    pid_path,
    read_bytes,
)
from .kinds import Profiles, describe
from .read import Archive, dead_order, parse_archive, read_archive, read_dead, read_live
from .sums import live_sums, merge_aggregates, merge_http


def mark_process_dead(pid: int, path: str | None = None) -> bool:
    """Drop a dead worker's live gauges, keep its counters; returns True if a file was absorbed.

    For gunicorn's ``child_exit`` hook (in ``gunicorn.conf.py``)::

        from modelmon.multiprocess import mark_process_dead

        def child_exit(server, worker):
            mark_process_dead(worker.pid)

    The worker's counters are folded into ``modelmon_archive.state`` (under a file
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
        absorbed = _absorb(path, pid)
        try:
            compact(path)
        except Exception as exc:  # the dead files stay: nothing is lost, folded next time
            HEALTH.note("mp_compact", "modelmon: cannot fold dead workers: %r", exc)
        return absorbed


def absorb_foreign(path: str, pid: int, token: str) -> None:
    """An old file of our pid (pid reuse): keep it as a dead worker's (directory lock held)."""
    target = pid_path(path, pid)
    data = read_bytes(target)
    if data is None:
        return
    try:
        state = parse_state(decode(data), alive=False)
    except Exception:
        return
    if state.token != token:
        _absorb(path, pid)


def _absorb(path: str, pid: int) -> bool:
    """Move a dead process's file to its dead-worker file, gauges stripped."""
    target = pid_path(path, pid)
    data = read_bytes(target)
    if data is None:
        return False
    dead = decode(data)
    state = parse_state(dead, alive=False)  # validate before keeping
    dead_path = os.path.join(path, f"modelmon_dead_{state.pid}_{state.token}.state")
    if not os.path.exists(dead_path) and dead_order(state) > read_archive(path).through:
        for entry in dead["monitors"]:
            entry["live"] = [item for item in entry.get("live", []) if is_counter(item[0])]
        atomic_write(dead_path, encode(dead))
    os.unlink(target)
    return True


def next_start_key(path: str) -> int:
    """A start key after everything the archive holds (directory lock held)."""
    return max(time.time_ns(), read_archive(path).through[0] + 1)


def _foldable(
    archive: Archive, live: list[ProcessState], dead: list[ProcessState]
) -> tuple[list[ProcessState], list[ProcessState]]:
    """(the leading run of dead workers to fold, in order; dead files already folded)."""
    folded = [d for d in dead if dead_order(d) <= archive.through]
    dead_tokens = {d.token for d in dead}
    entries = [(dead_order(d), True, d) for d in dead if dead_order(d) > archive.through]
    entries += [
        (s.order, False, s)
        for s in live
        if s.order is not None and s.token not in dead_tokens and s.order > archive.through
    ]
    entries.sort(key=lambda e: e[0])
    run: list[ProcessState] = []
    for _, is_dead, state in entries:
        if not is_dead:
            break
        run.append(state)
    return run, folded


def compact(path: str) -> int:
    """Fold the leading run of dead workers into the archive (directory lock held).

    Returns how many dead-worker files were folded. Raises (and changes nothing) when
    a file it would need cannot be read: every live file must be readable to know
    the order, and the archive must be readable to add to it.
    """
    data = read_bytes(os.path.join(path, ARCHIVE_NAME))
    archive = Archive((-1, ""), None) if data is None else parse_archive(decode(data))
    live = read_live(path)
    dead = read_dead(path)
    run, folded = _foldable(archive, live, dead)
    empty = [d for d in run if is_empty({"monitors": list(d.monitors.values()), "http": d.http})]
    if any(d not in empty for d in run):
        atomic_write(os.path.join(path, ARCHIVE_NAME), encode(_fold(path, archive, run)))
    for state in [*folded, *run]:
        dead_path = os.path.join(path, f"modelmon_dead_{state.pid}_{state.token}.state")
        if os.path.exists(dead_path):
            os.unlink(dead_path)
    return len(run)


def _raise(exc: Exception) -> None:
    raise exc


def _described(aggregates: dict[str, Any]) -> dict[str, Any]:
    described = {name: describe(agg) for name, agg in aggregates.items()}
    return {name: entry for name, entry in described.items() if entry is not None}


def _fold(path: str, archive: Archive, run: list[ProcessState]) -> dict[str, Any]:
    """The archive document holding ``archive`` plus ``run``, summed in merge order."""
    states = ([] if archive.state is None else [archive.state]) + run
    by_key: dict[Key, list[tuple[ProcessState, dict[str, Any]]]] = {}
    for state in states:
        for key, entry in state.monitors.items():
            by_key.setdefault(key, []).append((state, entry))
    profiles = Profiles(path)
    monitors = []
    for (namespace, model, version), items in by_key.items():
        merged = merge_aggregates([e for _, e in items], profiles, _raise)
        sums, _ = live_sums(items)  # dead: counters only
        registries = {str(e.get("registry")) for _, e in items}
        monitors.append(
            {
                "namespace": namespace,
                "model": model,
                "version": version,
                "registry": "default" if "default" in registries else min(registries),
                "aggregates": _described(merged),
                "live": [
                    [name, [[dict(labels), value] for labels, value in points.items()]]
                    for name, points in sums.items()
                ],
            }
        )
    last = run[-1]
    return {
        "format": ARCHIVE_FORMAT,
        "version": ARCHIVE_VERSION,
        "through": list(dead_order(last)),
        "written_at": max(s.written_at for s in states),
        "monitors": monitors,
        "http": [m.state() for m in merge_http(states).values()],
    }
