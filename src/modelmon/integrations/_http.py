"""What the ASGI and WSGI middleware share: the HTTP collector, id headers, feedback.

The HTTP metrics themselves (:class:`~modelmon.aggregates.http.HttpMetrics`) are an
aggregate, below the exporters: multi-process mode merges them without importing an
integration.
"""

from __future__ import annotations

import hmac
import re
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Generic, TypedDict, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.metrics_core import Metric

from .. import names
from ..aggregates.http import HttpMetrics, check_buckets, normalise_method
from ..errors import ConfigurationError
from ..exporters.prometheus import UndeclaredCollector, target_registry, to_prometheus
from ..points import Family

PREDICTION_ID_HEADER = "X-Prediction-Id"
PREDICTION_COUNT_HEADER = "X-Prediction-Count"
# The response header lists at most this many ids; more are given as "<first>..<last>"
# with the count in X-Prediction-Count (the ids of the rows between are in the body or
# ``last_prediction_ids()``). Ids outside SAFE_ID (a caller's own ids with CR/LF, spaces,
# non-ASCII or over 128 characters) are left out of the header, never sent.
MAX_HEADER_IDS = 16
SAFE_ID = re.compile(r"^[A-Za-z0-9._~:+/=-]{1,128}$")


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


class HttpCollector(UndeclaredCollector):
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
            elif metrics.bounds != check_buckets(buckets):
                raise ConfigurationError(
                    f"HTTP metrics of namespace {namespace!r} already use buckets "
                    f"{metrics.bounds!r} in this registry, got {tuple(buckets)!r}"
                )
            return metrics

    @property
    def metrics(self) -> list[HttpMetrics]:
        with self._lock:
            return list(self._metrics.values())

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


def exposed_registry(registry: Any) -> CollectorRegistry:
    """The registry an exposition serves: ``registry``, or the global one for None
    (HTTP metrics registered nowhere: the monitors' metrics are still in ``REGISTRY``)."""
    return REGISTRY if registry is None or registry is False else registry


def side_server(port: int, addr: str, registry: Any, min_interval: float) -> Any:
    """The exposition served on its own ``addr:port`` by a server thread (the server)."""
    from ..exporters.prometheus import start_http_server

    return start_http_server(port, addr, exposed_registry(registry), min_interval)[0]


# --- what the ASGI and WSGI middleware share --------------------------------------------
AppT = TypeVar("AppT")


class InstrumentOptions(TypedDict, total=False):
    """The middleware options ``instrument()`` passes on (defaults in :class:`HttpMiddleware`)."""

    namespace: str
    excluded_routes: Iterable[str] | None
    buckets: Sequence[float]


class HttpMiddlewareOptions(InstrumentOptions, total=False):
    """The keyword options of :class:`HttpMiddleware` (defaults there)."""

    registry: Any
    metrics_path: str


def check_instrument_options(options: Mapping[str, object]) -> None:
    """An unknown keyword of ``instrument()`` fails when it is called, not at app start-up."""
    known = InstrumentOptions.__optional_keys__
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigurationError(
            f"instrument() got an unknown option {unknown[0]!r} (known: {', '.join(sorted(known))})"
        )


class HttpMiddleware(Generic[AppT]):
    """The wrapped app, its HTTP metrics, and the paths or route templates not counted.

    The base of the ASGI and WSGI ``MetricsMiddleware`` (their docstrings list the options).
    """

    def __init__(
        self,
        app: AppT,
        *,
        registry: Any = REGISTRY,
        namespace: str = names.DEFAULT_NAMESPACE,
        excluded_routes: Iterable[str] | None = None,
        metrics_path: str = "/metrics",
        buckets: Sequence[float] = names.DURATION_BUCKETS,
    ) -> None:
        self.app = app
        self.registry = registry
        self.metrics: HttpMetrics = http_metrics_for(registry, namespace, buckets)
        self.excluded = frozenset([metrics_path] if excluded_routes is None else excluded_routes)
        self.metrics_path = metrics_path

    def count(self, route: Callable[[], str], method: str, status: int, seconds: float) -> None:
        """Count one finished request unless its ``route()`` is excluded (never raises)."""
        try:
            template = route()
            if template in self.excluded:
                return
            self.metrics.record(normalise_method(method), template, str(status), seconds)
        except Exception as exc:  # never break the response over metrics
            self.metrics.health.error("http_record", exc)


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
