"""HTTP traffic as an aggregate: requests and durations by route, mergeable across processes.

The ASGI/WSGI middleware (``modelmon.integrations``) records here; multi-process mode
writes and merges its :meth:`HttpMetrics.state`. The hot path only looks up a series
index and appends ``(index, seconds)`` to a list; folds (on every read, and when the
list fills) count them with numpy. Every label value is bounded: methods outside the
standard set become ``other``, routes are templates (or
:data:`~modelmon.names.UNMATCHED_ROUTE`), statuses are three-digit codes.

>>> m = HttpMetrics()
>>> m.record("GET", "/predict/{model_id}", "200", 0.003)
>>> [f.name for f in m.collect()]
['modelmon_http_requests', 'modelmon_http_request_duration_seconds']
>>> m.collect()[0].points[0].value
1
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .. import names
from .._internal import registry as monitor_registry
from .._internal.health import Health
from ..errors import ConfigurationError
from ..points import Family, HistogramPoint, ScalarPoint
from .traffic import Histogram

STANDARD_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
MAX_PENDING = 4096
_NAMESPACE_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

SeriesKey = tuple[str, str, str]  # method, route, status
RouteKey = tuple[str, str]  # method, route


def normalise_method(method: str) -> str:
    """``method`` if it is a standard HTTP method (any case), else ``"other"``."""
    if method in STANDARD_METHODS:
        return method
    upper = method.upper()
    return upper if upper in STANDARD_METHODS else names.OTHER


def check_buckets(buckets: Sequence[float]) -> tuple[float, ...]:
    """``buckets`` as a tuple of positive, finite, strictly increasing bounds (else raises)."""
    values = tuple(float(b) for b in buckets)
    if not values or any(not b > 0 or b == float("inf") for b in values):
        raise ConfigurationError(f"buckets must be positive finite numbers, got {buckets!r}")
    if list(values) != sorted(set(values)):
        raise ConfigurationError(f"buckets must be strictly increasing, got {buckets!r}")
    return values


class HttpMetrics:
    """Requests by (method, route, status) and a duration histogram by (method, route).

    Thread-safe: :meth:`record` may be called from any thread; reads fold first, so
    they see every request recorded before them. Mergeable through :meth:`state`,
    :meth:`load_state` and :meth:`merge` (plain types and numpy arrays), for
    multi-process servers.

    >>> a, b = HttpMetrics(), HttpMetrics()
    >>> a.record("GET", "/a", "200", 0.01)
    >>> b.record("GET", "/a", "200", 0.02)
    >>> a.merge(b)
    >>> a.collect()[1].points[0].count
    2
    """

    def __init__(
        self,
        namespace: str = names.DEFAULT_NAMESPACE,
        buckets: Sequence[float] = names.DURATION_BUCKETS,
        *,
        live: bool = True,
    ) -> None:
        if not isinstance(namespace, str) or not _NAMESPACE_RE.match(namespace):
            raise ConfigurationError(
                f"namespace must match {_NAMESPACE_RE.pattern}, got {namespace!r}"
            )
        self.namespace = namespace
        self.bounds = check_buckets(buckets)
        self.health = Health()
        self._lock = threading.Lock()
        # Only fold() removes from the front of this list (under the lock) and record()
        # only appends: slicing and ``del`` are atomic, so the hot path needs no lock.
        self._pending: list[tuple[int, float]] = []
        self.reset()
        if live:  # not a merged view: this process's own requests
            _LIVE.add(self)
            monitor_registry.add_source(self)  # push exporters (OTLP) collect it too

    def reset(self) -> None:
        """Forget everything recorded (a forked worker starts from zero)."""
        with self._lock:
            del self._pending[:]
            self._series: dict[SeriesKey, int] = {}
            self._series_keys: list[SeriesKey] = []
            self._series_route: list[int] = []
            self._routes: dict[RouteKey, int] = {}
            self._route_keys: list[RouteKey] = []
            self._histograms: list[Histogram] = []
            self._counts = np.zeros(0, dtype=np.int64)
            self._folded = 0

    # --- recording ------------------------------------------------------------------
    def record(self, method: str, route: str, status: str, seconds: float) -> None:
        """Count one request; labels must already be bounded (see :func:`normalise_method`)."""
        key = (method, route, status)
        index = self._series.get(key)
        if index is None:
            index = self._add_series(key)
        pending = self._pending
        pending.append((index, seconds))
        if len(pending) >= MAX_PENDING:
            self._fold_if_free()

    def _add_series(self, key: SeriesKey) -> int:
        with self._lock:
            return self._series_index(key)

    def _series_index(self, key: SeriesKey) -> int:
        """Index of ``key``, registering it (and its route) on first sight; lock held."""
        index = self._series.get(key)
        if index is not None:
            return index
        route = self._route_index((key[0], key[1]))
        index = len(self._series_keys)
        self._series_keys.append(key)
        self._series_route.append(route)
        self._series[key] = index
        return index

    def _fold_if_free(self) -> None:
        # Past the limit another thread may be folding already: then it takes ours too.
        if self._lock.acquire(blocking=len(self._pending) >= 4 * MAX_PENDING):
            try:
                self._fold_locked()
            except Exception as exc:
                self.health.error("http_fold", exc)
            finally:
                self._lock.release()

    @property
    def recorded(self) -> int:
        """Requests recorded since the last reset (a state-file writer polls it for change)."""
        return self._folded + len(self._pending)

    # --- the fold -------------------------------------------------------------------
    def fold(self) -> None:
        """Count every pending request (one vectorised pass)."""
        with self._lock:
            self._fold_locked()

    def _fold_locked(self) -> None:
        pending = self._pending
        n = len(pending)
        if n == 0:
            return
        items = pending[:n]
        del pending[:n]
        self._folded += n
        data = np.array(items, dtype=np.float64).reshape(n, 2)
        index = data[:, 0].astype(np.int64)
        seconds = data[:, 1]
        self._grow_counts()
        self._counts += np.bincount(index, minlength=self._counts.size)
        route_of = np.asarray(self._series_route, dtype=np.int64)[index]
        for route in np.unique(route_of):
            self._histograms[int(route)].add(seconds[route_of == route])

    def _grow_counts(self) -> None:
        missing = len(self._series_keys) - self._counts.size
        if missing > 0:
            self._counts = np.concatenate([self._counts, np.zeros(missing, dtype=np.int64)])

    # --- reading --------------------------------------------------------------------
    def collect(self) -> list[Family]:
        """Fold, then render both HTTP metrics as exporter-neutral families."""
        with self._lock:
            self._fold_locked()
            self._grow_counts()
            requests = [
                ScalarPoint({names.HTTP_METHOD: m, names.ROUTE: r, names.STATUS: s}, int(c))
                for (m, r, s), c in zip(self._series_keys, self._counts, strict=True)
            ]
            durations = [
                h.point({names.HTTP_METHOD: m, names.ROUTE: r})
                for (m, r), h in zip(self._route_keys, self._histograms, strict=True)
            ]
        requests.sort(key=_label_order)
        durations.sort(key=_label_order)
        return [
            Family(names.HTTP_REQUESTS, self.namespace, tuple(requests)),
            Family(names.HTTP_DURATION, self.namespace, tuple(durations)),
        ]

    # --- merging --------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything recorded, as plain types and numpy arrays (see :meth:`load_state`)."""
        with self._lock:
            self._fold_locked()
            self._grow_counts()
            width = len(self.bounds) + 1
            buckets = [h.counts for h in self._histograms]
            return {
                "namespace": self.namespace,
                "bounds": np.asarray(self.bounds, dtype=np.float64),
                "series": [list(k) for k in self._series_keys],
                "counts": self._counts.copy(),
                "routes": [list(k) for k in self._route_keys],
                "buckets": np.stack(buckets) if buckets else np.zeros((0, width), np.int64),
                "sums": np.array([h.sum for h in self._histograms], dtype=np.float64),
            }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Replace everything with ``state`` (from :meth:`state`, maybe of another process)."""
        bounds = check_buckets(np.asarray(state["bounds"], dtype=np.float64).tolist())
        self.reset()
        self.bounds = bounds
        self.namespace = str(state.get("namespace", self.namespace))
        self.merge_state(state)

    def merge(self, other: HttpMetrics) -> None:
        """Add ``other``'s counts to these (buckets must be the same)."""
        self.merge_state(other.state())

    def merge_state(self, state: Mapping[str, Any]) -> None:
        """Add the counts of a :meth:`state` to these (buckets must be the same)."""
        bounds = np.asarray(state["bounds"], dtype=np.float64)
        if not np.array_equal(bounds, np.asarray(self.bounds, dtype=np.float64)):
            raise ValueError("cannot merge HTTP metrics with different duration buckets")
        series = [_key3(k) for k in state["series"]]
        counts = np.asarray(state["counts"], dtype=np.int64)
        routes = [_key2(k) for k in state["routes"]]
        width = len(self.bounds) + 1
        buckets = np.asarray(state["buckets"], dtype=np.int64).reshape(len(routes), width)
        sums = np.asarray(state["sums"], dtype=np.float64)
        if counts.shape != (len(series),) or sums.shape != (len(routes),):
            raise ValueError("malformed HTTP metrics state: lengths do not match")
        with self._lock:
            self._fold_locked()
            index = np.array([self._series_index(k) for k in series], dtype=np.int64)
            self._grow_counts()
            np.add.at(self._counts, index, counts)
            for key, row, total in zip(routes, buckets, sums, strict=True):
                histogram = self._histograms[self._route_index(key)]
                histogram.counts += row
                histogram.sum += float(total)

    def _route_index(self, key: RouteKey) -> int:
        """Index of the duration histogram of ``key`` (created on first sight); lock held."""
        route = self._routes.get(key)
        if route is None:
            route = len(self._route_keys)
            self._route_keys.append(key)
            self._histograms.append(Histogram(self.bounds))
            self._routes[key] = route
        return route


def _label_order(point: ScalarPoint | HistogramPoint) -> tuple[str, ...]:
    return tuple(point.labels.values())


def _key3(key: Sequence[Any]) -> SeriesKey:
    method, route, status = key
    return (str(method), str(route), str(status))


def _key2(key: Sequence[Any]) -> RouteKey:
    method, route = key
    return (str(method), str(route))


_LIVE: weakref.WeakSet[HttpMetrics] = weakref.WeakSet()


def live_http_metrics() -> list[HttpMetrics]:
    """Every :class:`HttpMetrics` alive in this process (for multi-process state files)."""
    return list(_LIVE)
