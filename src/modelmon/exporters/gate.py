"""Scrape coalescing: a scrape flood costs at most one collection per interval.

:class:`GatedRegistry` wraps a prometheus-client registry for an exposition endpoint.
Concurrent scrapes share one collection, and collections start at most every
``min_interval`` seconds, so a flood of scrapes (49 a second in the hostile-traffic
probe cut a service from 420 to 8 predictions a second) cannot starve predictions.
Freshness is kept: a scrape is answered by a collection that *started after it
arrived*, so it still sees every call that completed before it (read-your-writes). A
scrape waits at most ``min_interval`` plus one collection.

>>> from prometheus_client import CollectorRegistry, Counter, generate_latest
>>> reg = CollectorRegistry()
>>> c = Counter("hits", "Hits.", registry=reg)
>>> c.inc()
>>> b"hits_total 1.0" in generate_latest(GatedRegistry(reg, min_interval=0.0))
True
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from . import exposition

DEFAULT_MIN_INTERVAL_S = 0.25


class ScrapeGate:
    """Single-flight computation of one value, at most one start per ``min_interval``."""

    def __init__(self, min_interval: float = DEFAULT_MIN_INTERVAL_S) -> None:
        if not min_interval >= 0:
            raise ValueError(f"min_interval must be >= 0, got {min_interval!r}")
        self.min_interval = float(min_interval)
        self._cond = threading.Condition()
        self._computing = False
        self._started = 0  # collections started so far
        self._done = 0  # the number of the collection ``_result`` came from
        self._result: Any = None
        self._last_start = float("-inf")

    def get(self, compute: Any) -> Any:
        """The result of a ``compute()`` that started after this call began."""
        with self._cond:
            need = self._started + 1
            while True:
                if self._done >= need:
                    return self._result
                if not self._computing:
                    delay = self._last_start + self.min_interval - time.monotonic()
                    if delay <= 0:
                        break
                    self._cond.wait(delay)
                    continue
                self._cond.wait()
            self._computing = True
            self._started += 1
            mine = self._started
            self._last_start = time.monotonic()
        try:
            result = compute()
        except BaseException:
            with self._cond:
                self._computing = False
                self._cond.notify_all()
            raise
        with self._cond:
            self._computing = False
            self._result, self._done = result, mine
            self._cond.notify_all()
        return result


class GatedRegistry:
    """A registry view whose ``collect()`` goes through a :class:`ScrapeGate`.

    The shared collection is made for :func:`~modelmon.exporters.exposition.generate_text`
    (modelmon's series left to its renderer); other consumers get plain metrics.
    """

    def __init__(self, registry: Any, min_interval: float = DEFAULT_MIN_INTERVAL_S) -> None:
        self.registry = registry
        self.gate = ScrapeGate(min_interval)

    def _collect_for_text(self) -> list[Any]:
        with exposition.fast():
            return list(self.registry.collect())

    def collect(self) -> Iterator[Any]:
        items = self.gate.get(self._collect_for_text)
        if exposition.fast_mode():
            yield from items
        else:
            yield from exposition.expand(items)

    def restricted_registry(self, names: Iterable[str]) -> _Restricted:
        return _Restricted(self, frozenset(names))


class _Restricted:
    """The samples with the given names (prometheus-client's ``name[]`` filter)."""

    def __init__(self, source: GatedRegistry, names: frozenset[str]) -> None:
        self.source = source
        self.names = names

    def collect(self) -> Iterator[Any]:
        from prometheus_client.metrics_core import Metric

        for metric in exposition.expand(self.source.collect()):
            samples = [s for s in metric.samples if s.name in self.names]
            if samples:
                kept = Metric(metric.name, metric.documentation, metric.type, metric.unit)
                kept.samples = samples
                yield kept
