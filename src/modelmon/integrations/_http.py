"""HTTP metrics shared by the ASGI and WSGI middleware: requests and durations by route.

The middleware hot path only looks up a series index and appends ``(index, seconds)``
to a list; folds (on every read, and when the list fills) count them with numpy.
Every label value is bounded: methods outside the standard set become ``other``,
routes are templates (or :data:`~modelmon.names.UNMATCHED_ROUTE`), statuses are
three-digit codes.

>>> from modelmon.integrations._http import HttpMetrics
>>> m = HttpMetrics()
>>> m.record("GET", "/predict/{model_id}", "200", 0.003)
>>> [f.name for f in m.collect()]
['modelmon_http_requests', 'modelmon_http_request_duration_seconds']
>>> m.collect()[0].points[0].value
1
"""

from __future__ import annotations

import hmac
import re
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from .. import names
from .._internal import registry as monitor_registry
from .._internal.health import Health
from ..aggregates.traffic import Histogram
from ..errors import ConfigurationError
from ..exporters.prometheus import target_registry, to_prometheus
from ..points import Family, HistogramPoint, ScalarPoint

STANDARD_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
MAX_PENDING = 4096
PREDICTION_ID_HEADER = "X-Prediction-Id"
PREDICTION_COUNT_HEADER = "X-Prediction-Count"
# The response header lists at most this many ids; more are given as "<first>..<last>"
# with the count in X-Prediction-Count (the ids of the rows between are in the body or
# ``last_prediction_ids()``). Ids outside SAFE_ID (a caller's own ids with CR/LF, spaces,
# non-ASCII or over 128 characters) are left out of the header, never sent.
MAX_HEADER_IDS = 16
SAFE_ID = re.compile(r"^[A-Za-z0-9._~:+/=-]{1,128}$")
_NAMESPACE_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

SeriesKey = tuple[str, str, str]  # method, route, status
RouteKey = tuple[str, str]  # method, route


def prediction_id_headers(ids: Sequence[str]) -> list[tuple[str, str]]:
    """The ``X-Prediction-Id`` (and, when shortened, ``X-Prediction-Count``) headers.

    Bounded whatever the request did: at most :data:`MAX_HEADER_IDS` ids, each one
    checked against :data:`SAFE_ID` (unsafe ones are left out).

    >>> prediction_id_headers(["a1", "a2"])
    [('X-Prediction-Id', 'a1,a2')]
    >>> prediction_id_headers([f"a{i}" for i in range(100)])
    [('X-Prediction-Id', 'a0..a99'), ('X-Prediction-Count', '100')]
    >>> prediction_id_headers(["ok", "bad\\r\\nSet-Cookie: x", "caf\\u00e9"])
    [('X-Prediction-Id', 'ok')]
    """
    safe = [i for i in ids if isinstance(i, str) and SAFE_ID.match(i)]
    if not safe:
        return []
    if len(safe) <= MAX_HEADER_IDS:
        return [(PREDICTION_ID_HEADER, ",".join(safe))]
    return [
        (PREDICTION_ID_HEADER, f"{safe[0]}..{safe[-1]}"),
        (PREDICTION_COUNT_HEADER, str(len(safe))),
    ]


def normalise_method(method: str) -> str:
    """``method`` if it is a standard HTTP method (any case), else ``"other"``."""
    if method in STANDARD_METHODS:
        return method
    upper = method.upper()
    return upper if upper in STANDARD_METHODS else names.OTHER


def _check_buckets(buckets: Sequence[float]) -> tuple[float, ...]:
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
    ) -> None:
        if not isinstance(namespace, str) or not _NAMESPACE_RE.match(namespace):
            raise ConfigurationError(
                f"namespace must match {_NAMESPACE_RE.pattern}, got {namespace!r}"
            )
        self.namespace = namespace
        self.bounds = _check_buckets(buckets)
        self.health = Health()
        self._lock = threading.Lock()
        # Only fold() removes from the front of this list (under the lock) and record()
        # only appends: slicing and ``del`` are atomic, so the hot path needs no lock.
        self._pending: list[tuple[int, float]] = []
        self.reset()
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
        bounds = _check_buckets(np.asarray(state["bounds"], dtype=np.float64).tolist())
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


# --- Prometheus: one collector per registry ------------------------------------------


def _live_families(metrics: list[HttpMetrics]) -> list[Family]:
    families: list[Family] = []
    for m in metrics:
        families.extend(m.collect())
    return families


def _families(metrics: list[HttpMetrics]) -> list[Family]:
    """This process's HTTP metrics, or every worker's in multi-process mode."""
    from ..exporters import multiprocess

    if multiprocess.directory() is None:
        return _live_families(metrics)
    return multiprocess.merged_http_families(metrics)


class HttpCollector:
    """Renders the HTTP metrics of one registry (every namespace used with it).

    ``family_source`` merges every worker's state files in multi-process mode (the
    monitors' collector gets the same from ``registry.provided(FAMILY_SOURCE)``).
    """

    family_source: ClassVar[Callable[[list[HttpMetrics]], list[Family]]] = staticmethod(_families)

    def __init__(self) -> None:
        self._metrics: dict[str, HttpMetrics] = {}
        self._lock = threading.Lock()

    def metrics_for(
        self, namespace: str, buckets: Sequence[float] = names.DURATION_BUCKETS
    ) -> HttpMetrics:
        """The :class:`HttpMetrics` of ``namespace`` (created on first use)."""
        with self._lock:
            metrics = self._metrics.get(namespace)
            if metrics is None:
                metrics = self._metrics[namespace] = HttpMetrics(namespace, buckets)
            elif metrics.bounds != _check_buckets(buckets):
                raise ConfigurationError(
                    f"HTTP metrics of namespace {namespace!r} already use buckets "
                    f"{metrics.bounds!r} in this registry, got {tuple(buckets)!r}"
                )
            return metrics

    @property
    def metrics(self) -> list[HttpMetrics]:
        with self._lock:
            return list(self._metrics.values())

    def describe(self) -> list[Metric]:
        # Like ModelmonCollector: declare nothing, so registration does not collect.
        return []

    def collect(self) -> Iterator[Metric]:
        yield from to_prometheus(type(self).family_source(self.metrics))


_collectors: weakref.WeakKeyDictionary[CollectorRegistry, HttpCollector] = (
    weakref.WeakKeyDictionary()
)
_collectors_lock = threading.Lock()


def http_collector_for(registry: CollectorRegistry) -> HttpCollector:
    """The HTTP collector of ``registry`` (created and registered on first use)."""
    with _collectors_lock:
        collector = _collectors.get(registry)
        if collector is None:
            collector = HttpCollector()
            registry.register(collector)
            _collectors[registry] = collector
        return collector


def http_metrics_for(
    registry: Any,
    namespace: str = names.DEFAULT_NAMESPACE,
    buckets: Sequence[float] = names.DURATION_BUCKETS,
) -> HttpMetrics:
    """The HTTP metrics exposed in ``registry``; ``None`` (or the deprecated ``False``):
    registered nowhere (as in prometheus-client), read them yourself."""
    target = target_registry(registry)
    if target is None:
        return HttpMetrics(namespace, buckets)
    return http_collector_for(target).metrics_for(namespace, buckets)


# --- the feedback route (ground truth), shared by the FastAPI and Flask integrations ---
MAX_FEEDBACK_ITEMS = 10_000
FEEDBACK_TOKEN_HEADER = "Authorization"

# HTTP status of a single label refused for each reason (a batch answers per item).
FEEDBACK_STATUS: dict[str, int] = {
    "matched": 202,
    "invalid_id": 422,
    "batch_id": 422,
    "other_model": 422,
    "invalid": 422,
    "unknown": 404,
    "expired": 410,
    "duplicate": 409,
}
FEEDBACK_MESSAGES: dict[str, str] = {
    "invalid_id": "the id is not one this service issued (forged, altered, truncated, "
    "or signed with another key: every replica needs the same MODELMON_ID_KEY)",
    "batch_id": "this is the id of a batch call: post one label per row, with the row ids "
    "(modelmon.last_prediction_ids())",
    "other_model": "the id belongs to another model or version (or another class set)",
    "invalid": "the actual value is not valid for this model (a known class, or a finite "
    "number in range)",
    "unknown": "no prediction with this id is known here",
    "expired": "the prediction is older than the outcome TTL",
    "duplicate": "this prediction was already labelled",
}


def check_token(expected: str | None, header: str | None) -> bool:
    """Whether a request's ``Authorization`` header carries the feedback token.

    Accepts ``Bearer <token>`` or the bare token; compared in constant time. With no
    expected token every request passes.
    """
    if expected is None:
        return True
    if not header:
        return False
    value = header[7:] if header[:7].lower() == "bearer " else header
    return hmac.compare_digest(value.strip().encode(), expected.encode())


def check_feedback_token(token: str | None) -> str | None:
    """The configured route token (at least 16 characters), or a ConfigurationError."""
    if token is None:
        return None
    if not isinstance(token, str) or len(token) < 16:
        raise ConfigurationError("feedback token must be a string of at least 16 characters")
    return token


def handle_feedback(monitor: Any, body: Any) -> tuple[int, dict[str, Any]]:
    """Score the labels in a feedback body; returns (HTTP status, JSON body).

    ``body`` is ``{"prediction_id": ..., "actual": ...}`` or a list of them. One label:
    202 when scored, else the reason's 4xx status and ``{"error": reason, "detail": ...}``.
    A list: 202 when every label was scored, 207 when some were, 422 when none was, with
    ``{"accepted": n, "results": [{"prediction_id", "status"[, "detail"]}...]}`` in order.
    A malformed body is 422 and a list longer than ``MAX_FEEDBACK_ITEMS`` is 413, before
    any label is looked at.
    """
    single = isinstance(body, dict)
    items = [body] if single else body
    if not isinstance(items, list) or not items:
        return 422, {"error": "malformed", "detail": "expected an object or a non-empty list"}
    if len(items) > MAX_FEEDBACK_ITEMS:
        return 413, {"error": "too_many", "detail": f"at most {MAX_FEEDBACK_ITEMS} labels a call"}
    ids: list[Any] = []
    actuals: list[Any] = []
    for item in items:
        if not isinstance(item, dict) or "prediction_id" not in item or "actual" not in item:
            return 422, {
                "error": "malformed",
                "detail": "each label needs 'prediction_id' and 'actual'",
            }
        ids.append(item["prediction_id"])
        actuals.append(item["actual"])
    statuses = monitor.record_outcomes(ids, actuals, strict=False)  # answered per label
    accepted = statuses.count("matched")
    if single:
        status = statuses[0]
        if status == "matched":
            return 202, {"accepted": 1}
        return FEEDBACK_STATUS.get(status, 422), {
            "error": status,
            "detail": FEEDBACK_MESSAGES.get(status, status),
        }
    results = []
    for key, status in zip(ids, statuses, strict=True):
        entry: dict[str, Any] = {"prediction_id": key if isinstance(key, str) else None}
        entry["status"] = status
        if status != "matched":
            entry["detail"] = FEEDBACK_MESSAGES.get(status, status)
        results.append(entry)
    code = 202 if accepted == len(items) else (207 if accepted else 422)
    return code, {"accepted": accepted, "results": results}
