"""Merging: one set of families per monitor, summed over every process of the directory."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ... import names
from ...aggregates.http import HttpMetrics
from ...aggregates.series_memo import stable_labels
from ...batch import RenderContext
from ...errors import ConfigurationError
from ...monitor import DEFAULT_REGISTRY
from ...points import Family, ScalarPoint

# _ATTR is private to the Prometheus exporter: the mark of a registry that already holds
# modelmon's collector (a MultiprocessCollector there would duplicate every series).
from ..prometheus import _ATTR, live_families
from .codec import ProcessState
from .files import FLUSH_WAIT_S, HEALTH, Key, directory, mark_scraped
from .flushes import request_flushes
from .kinds import Profiles
from .read import CACHE, forget_unchanged, read_directory
from .sums import Built, live_sums, merge_aggregates, merge_http
from .writer import WRITER, health_of, monitor_key

if TYPE_CHECKING:
    from ...monitor import Monitor

logger = logging.getLogger("modelmon")


def _merge_live(items: list[tuple[ProcessState, dict[str, Any]]], namespace: str) -> list[Family]:
    """Counters add over every process; in-flight adds over live ones; other gauges: newest."""
    sums, newest = live_sums(items)
    families = [
        Family(
            names.by_name(n),
            namespace,
            tuple(ScalarPoint(dict(k), v) for k, v in sorted(pts.items())),
        )
        for n, pts in sums.items()
    ]
    for n, (_, points) in newest.items():
        families.append(
            Family(
                names.by_name(n),
                namespace,
                tuple(
                    ScalarPoint({str(k): str(v) for k, v in lb.items()}, float(v))
                    for lb, v in points
                ),
            )
        )
    return families


class _MergedCache:
    """The merged aggregates of each monitor, kept while no worker's entry changes.

    Parsed aggregates are shared while their file's bytes (or the aggregates' decoded
    state) are unchanged (see :mod:`.read`), so the same objects in the same order mean
    the same sum:
    the merged aggregates are rendered again (for the new time) without rebuilding.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[Key, tuple[list[dict[str, Any]], dict[str, Any]]] = {}
        self._built: dict[Key, Built] = {}  # per monitor: aggregates of unchanged entries
        self.built = 0  # merges computed (not served from the cache): for tests

    def aggregates(
        self,
        key: Key,
        entries: list[dict[str, Any]],
        profiles: Profiles,
        on_error: Callable[[Exception], None],
    ) -> dict[str, Any]:
        with self._lock:
            hit = self._data.get(key)
        if hit is not None and _same(hit[0], entries):
            return hit[1]
        failed: list[Exception] = []

        def note(exc: Exception) -> None:
            failed.append(exc)
            on_error(exc)

        with self._lock:
            built = self._built.setdefault(key, Built())
        merged = merge_aggregates(entries, profiles, note, built)
        self.built += 1
        with self._lock:
            if failed:  # retried next time (a sidecar may appear)
                self._data.pop(key, None)
            else:
                self._data[key] = (entries, merged)
        return merged

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._built.clear()

    def after_fork(self) -> None:
        self._lock = threading.Lock()  # a parent thread may have held it at the fork


def _same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    # The aggregates only: a rewrite with a new heartbeat shares them (see read.py).
    return len(a) == len(b) and all(
        x["aggregates"] is y["aggregates"] for x, y in zip(a, b, strict=True)
    )


_MERGED = _MergedCache()


def caches_after_fork() -> None:
    """New locks for the caches kept between scrapes (in a forked child)."""
    CACHE.after_fork()
    Profiles.after_fork()
    _MERGED.after_fork()


def clear_caches() -> None:
    """Forget every parsed state, profile and merged aggregate kept between scrapes."""
    CACHE.forget(())
    forget_unchanged()
    Profiles.forget()
    _MERGED.clear()


def merged_monitor_families(
    key: Key,
    items: list[tuple[ProcessState, dict[str, Any]]],
    profiles: Profiles,
    now: float,
    on_error: Callable[[Exception], None],
) -> list[Family]:
    """Families of one monitor, merged over every process that wrote it."""
    namespace, model, version = key
    ctx = RenderContext(namespace, stable_labels({names.MODEL: model, names.VERSION: version}), now)
    merged = _MERGED.aggregates(key, [entry for _, entry in items], profiles, on_error)
    families: list[Family] = []
    for agg in merged.values():
        try:
            families.extend(agg.families(ctx))
        except Exception as exc:
            on_error(exc)
    families.extend(_merge_live(items, namespace))
    return families


def note_error(monitors: list[Monitor]) -> Callable[[Exception], None]:
    def note(exc: Exception) -> None:
        if monitors:
            monitors[0].health.error("multiprocess_merge", exc)
        else:
            logger.warning("modelmon: multi-process merge problem: %r", exc)

    return note


def collect_merged(
    monitors: list[Monitor], include_remote: bool | None = None, now: float | None = None
) -> list[Family]:
    """Families of ``monitors`` summed over every process of the directory.

    ``include_remote`` adds monitors that only other processes have (default: when one
    of ``monitors`` is exposed in the default registry). Falls back to the local
    families when multi-process mode is off.
    """
    path = directory()
    if path is None:
        return live_families(monitors)
    mark_scraped(path)
    now = time.time() if now is None else now
    states = read_directory(path, own=flush_all(path, monitors))
    if include_remote is None:
        include_remote = any(m.registry is DEFAULT_REGISTRY for m in monitors)
    by_key: dict[Key, list[tuple[ProcessState, dict[str, Any]]]] = {}
    for state in states:
        for key, entry in state.monitors.items():
            by_key.setdefault(key, []).append((state, entry))
    local = {monitor_key(m): m for m in monitors}
    keys = list(local)
    if include_remote:
        keys += [
            k
            for k, items in by_key.items()
            if k not in local and any(e.get("registry") == "default" for _, e in items)
        ]
    profiles = Profiles(path)
    note = note_error(monitors)
    families: list[Family] = []
    for key in keys:
        items = by_key.get(key)
        if not items:  # e.g. not in this process's state: show what this process has
            families.extend(local[key].collect())
            continue
        merged = merged_monitor_families(key, items, profiles, now, note)
        _LAST_MERGED[key] = merged
        families.extend(merged)
    return families


def flush_all(path: str, monitors: list[Monitor]) -> bytes | None:
    """Fold and write here, ask every other live worker to do the same (bounded wait).

    Returns this process's latest state, which stands in for its file when the
    directory refused the write.
    """
    with contextlib.suppress(Exception):  # counted and logged by write()
        WRITER.write(fold=True)
    try:
        stuck = request_flushes(path)
    except Exception as exc:
        health_of(monitors).error("multiprocess_flush", exc)
        stuck = []
    if stuck:
        health = health_of(monitors)
        with health._lock:
            health.internal_errors["multiprocess_flush_timeout"] += len(stuck)
        health.note(
            "flush_timeout",
            "modelmon: worker(s) %s did not flush within %.1f s; their last state is used",
            stuck,
            FLUSH_WAIT_S,
        )
    return WRITER.last_bytes


# The last merged families of each monitor: what a scrape shows if merging fails
# outright, so no counter ever goes back to one process's own numbers.
_LAST_MERGED: dict[Key, list[Family]] = {}


def family_source(monitors: list[Monitor]) -> list[Family]:
    """The :class:`ModelmonCollector` family source: merged in multi-process mode."""
    if directory() is None:
        return live_families(monitors)
    try:
        return collect_merged(monitors)
    except Exception as exc:  # never fail a scrape, never show less than before
        for monitor in monitors[:1]:
            monitor.health.error("multiprocess_collect", exc)
        families: list[Family] = []
        for monitor in monitors:
            last = _LAST_MERGED.get(monitor_key(monitor))
            families.extend(last if last is not None else monitor.collect())
        return families


class MultiprocessCollector:
    """A prometheus-client collector of every monitor (and HTTP metric) in the directory.

    The one line prometheus-client multiprocess users add: their ``/metrics`` builds a
    fresh registry that only holds prometheus-client's ``MultiProcessCollector``, so
    modelmon's collector (in the default registry) is never asked::

        registry = CollectorRegistry()
        prometheus_client.multiprocess.MultiProcessCollector(registry)
        modelmon.multiprocess.MultiprocessCollector(registry)  # + modelmon's series

    A scrape first folds and writes this process's state (it sees every call this
    worker made), then merges every worker's file. Also for a ``/metrics`` endpoint
    served from a process without monitors of its own.
    """

    def __init__(self, registry: Any = None, path: str | None = None) -> None:
        if registry is not None and getattr(registry, _ATTR, None) is not None:
            raise ConfigurationError(
                "this registry already exposes modelmon's series (it is the registry the "
                "monitors were created in): a MultiprocessCollector there would duplicate them"
            )
        self.path = path
        if registry is not None:
            registry.register(self)

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from ..prometheus import to_prometheus

        path = self.path or directory()
        if path is None:
            return
        if path == directory():
            with contextlib.suppress(Exception):  # counted and logged by write()
                WRITER.write(fold=True)  # read-your-writes for the scraped worker
        try:  # and for every other worker: they flush before the files are read
            request_flushes(path)
        except Exception as exc:
            HEALTH.note("flush", "modelmon: cannot ask the workers to flush: %r", exc)
        mark_scraped(path)
        states = read_directory(path)
        by_key: dict[Key, list[tuple[ProcessState, dict[str, Any]]]] = {}
        for state in states:
            for key, entry in state.monitors.items():
                by_key.setdefault(key, []).append((state, entry))
        profiles = Profiles(path)
        now = time.time()
        families: list[Family] = []
        for key, items in sorted(by_key.items()):
            families.extend(merged_monitor_families(key, items, profiles, now, note_error([])))
        families.extend(merged_http_states(states))
        yield from to_prometheus(families)


def merged_http_families(local: list[HttpMetrics]) -> list[Family]:
    """The :class:`HttpCollector` family source: HTTP metrics summed over every process."""
    path = directory()
    if path is None:
        return [f for m in local for f in m.collect()]
    try:
        with contextlib.suppress(Exception):  # counted and logged by write()
            WRITER.write(fold=False)
        return merged_http_states(read_directory(path, own=WRITER.last_bytes))
    except Exception as exc:  # never fail a scrape: fall back to this process's view
        logger.warning("modelmon: cannot merge multi-process HTTP metrics: %r", exc)
        return [f for m in local for f in m.collect()]


def merged_http_states(states: list[ProcessState]) -> list[Family]:
    """The HTTP metrics of ``states`` summed, one set per namespace."""
    return [f for m in merge_http(states).values() for f in m.collect()]
