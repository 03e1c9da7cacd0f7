"""The per-model state: configuration, the hot-path buffer, and the fold.

>>> import modelmon
>>> mon = modelmon.Monitor("iris", "1.0", registry=False)
>>> @mon
... def predict(rows):
...     return [0.9 for _ in rows]
>>> predict([[5.1, 3.5], [4.9, 3.0]])
[0.9, 0.9]
>>> mon.fold()  # scrapes fold first; here we read the aggregate directly
>>> mon.traffic.requests, mon.traffic.predictions
(1, 2)
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import operator
import os
import re
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, overload

import numpy as np

from . import names
from ._internal import registry as _registry
from ._internal.folder import FOLDER
from ._internal.health import Health, logger
from ._internal.ids import PROCESS_KEY, resolve_key, row_ids
from .aggregates.distributions import DistributionAggregate
from .aggregates.drift import DriftAggregate
from .aggregates.outcome_store import class_label, open_store
from .aggregates.outcomes import OutcomeAggregate, OutcomeError
from .aggregates.outliers import OutlierAggregate
from .aggregates.traffic import InputHealthAggregate, TrafficAggregate
from .batch import Aggregate, Batch, FeatureFrame, OutputFrame, RenderContext
from .concept_drift import Detector
from .context import OBSERVED, RECORD_WIDTH, Record, get_scope, set_last
from .drift_decision import DecisionConfig
from .errors import ConfigurationError
from .extract import (
    DEFAULT_MAX_FEATURES,
    SCALAR_OUTPUT_TYPES,
    Chunk,
    FeatureSchema,
    UnsupportedInput,
    features_frame,
    input_chunk,
    output_rows,
    outputs_frame,
    stacked_arrays,
)
from .id_scheme import IdScheme
from .points import Family, ScalarPoint
from .profile import ReferenceProfile

if TYPE_CHECKING:
    from ._signatures import Monitored

P = ParamSpec("P")
R = TypeVar("R")
Task = Literal["classification", "regression"]
ConfidenceArg = Literal["auto"] | Callable[[Any], Any] | None

_NAMESPACE_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
DEFAULT_BUFFER_SIZE = 1024
HARD_LIMIT_FACTOR = 16
_FAST_SCALARS = frozenset({float, int, bool, str})
MINT_TIMES_KEPT = 4096  # calls whose id time is remembered (ids read twice stay equal)
_SDK_VERSION = "0.1.0"


def _check_label_value(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _check_buckets(name: str, buckets: Sequence[float]) -> tuple[float, ...]:
    values = tuple(float(b) for b in buckets)
    if not values or any(b <= 0 or not np.isfinite(b) for b in values):
        raise ConfigurationError(f"{name} must be positive finite numbers, got {buckets!r}")
    if list(values) != sorted(set(values)):
        raise ConfigurationError(f"{name} must be strictly increasing, got {buckets!r}")
    return values


class Monitor:
    """Monitors one model version: wrap its predict function or feed it with ``observe``.

    Args:
        model: model name (the ``model`` label).
        version: model version (the ``version`` label); may be omitted with a
            ``models:/`` reference, whose registry version it then is.
        reference: a :class:`~modelmon.ReferenceProfile`, a path to a saved profile,
            an MLflow URI (``runs:/<run_id>/modelmon/reference.json``,
            ``models:/<name>/<version>``, ``models:/<name>@<alias>``; resolved once,
            here), ``"warmup"`` to freeze a profile from the first ``warmup_size`` rows,
            or None.
        feature_names: names of the input columns (else from the reference, the first
            dict's keys or DataFrame's columns, or ``f0``, ``f1``...).
        features: callable receiving the wrapped function's arguments and returning
            its input (for signatures where the input is not the first argument).
        prediction: callable mapping the return value to the predictions.
        confidence: ``"auto"`` (max class probability of probability outputs), a
            callable mapping the return value to per-row confidence, or None.
        task: ``"classification"`` or ``"regression"`` (inferred when None).
        registry: the prometheus-client ``CollectorRegistry`` to expose in (default:
            the global one), or ``False`` for none.
        namespace: metric name prefix.
        strict: re-raise internal errors (for tests) instead of counting them.
        drift_alpha: family-wise false-alarm rate per window of the drift decisions
            (Bonferroni over the features; see docs/drift.md).
        drift_psi_floor: smallest PSI a drift decision flags (effect-size floor).
        missing_drift_floor: smallest absolute change of a feature's missing share
            (against the reference) flagged.
        concept_detector: ``"adwin"``, ``"page_hinkley"``, a detector instance with
            your parameters (``modelmon.concept_drift.ADWIN(delta=0.01)``), or None.
        log_every_s: log :meth:`log_to_mlflow` snapshots every so many seconds from a
            background thread (to ``mlflow_run_id``, the active run, or a new run).
        distributions: opt-in, ``True`` or a list of feature names: keep all-time
            exponential histograms of those numeric features (all when ``True``) and of
            the prediction value, exported over OTLP only (see
            :mod:`modelmon.aggregates.distributions`).
        outliers: with a reference profile (not ``"warmup"``), count out-of-range
            values, outliers per feature and output, and joint outlier rows (see
            ``docs/outliers.md``).
    """

    def __init__(
        self,
        model: str,
        version: str | None = None,
        *,
        reference: Any = None,
        feature_names: Sequence[str] | None = None,
        features: Callable[..., Any] | None = None,
        prediction: Callable[[Any], Any] | None = None,
        confidence: ConfidenceArg = "auto",
        task: Task | None = None,
        registry: Any = None,
        namespace: str = names.DEFAULT_NAMESPACE,
        strict: bool = False,
        categorical: Iterable[str] | None = None,
        classes: Sequence[Any] | None = None,
        max_features: int = DEFAULT_MAX_FEATURES,
        duration_buckets: Sequence[float] = names.DURATION_BUCKETS,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        window_seconds: float = 900.0,
        min_samples: int = 100,
        warmup_size: int = 1000,
        drift_quantiles: Sequence[float] = (0.05, 0.5, 0.95),
        export_bin_edges: bool = False,
        trained_at: float | None = None,
        outcome_store: str | None = None,
        outcome_capacity: int = 100_000,
        outcome_ttl_seconds: float = 7 * 86400.0,
        max_classes: int = 20,
        positive_class: Any = None,
        concept_detector: str | Detector | None = "adwin",
        drift_alpha: float = 0.05,
        drift_psi_floor: float = 0.1,
        missing_drift_floor: float = 0.05,
        trace: Literal["attributes", "span"] | None = None,
        id_key: str | bytes | None = None,
        outcome_range: tuple[float, float] | None = None,
        log_every_s: float | None = None,
        mlflow_run_id: str | None = None,
        distributions: bool | Sequence[str] = False,
        outliers: bool = True,
    ) -> None:
        self.model = _check_label_value("model", model)
        self.reference_source = _resolve_mlflow(reference)
        if self.reference_source is not None:
            reference = self.reference_source.profile
            version = version or self.reference_source.model_version
        self.version = _check_label_value("version", version)
        if not isinstance(namespace, str) or not _NAMESPACE_RE.match(namespace):
            raise ConfigurationError(
                f"namespace must match {_NAMESPACE_RE.pattern}, got {namespace!r}"
            )
        self.namespace = namespace
        for arg_name, fn in (("features", features), ("prediction", prediction)):
            if fn is not None and not callable(fn):
                raise ConfigurationError(f"{arg_name}= must be a callable or None, got {fn!r}")
        if confidence not in ("auto", None) and not callable(confidence):
            raise ConfigurationError(
                f"confidence= must be 'auto', None or a callable, got {confidence!r}"
            )
        if task not in (None, "classification", "regression"):
            raise ConfigurationError(
                f"task must be 'classification', 'regression' or None, got {task!r}"
            )
        if not isinstance(buffer_size, int) or buffer_size < 1:
            raise ConfigurationError(f"buffer_size must be a positive int, got {buffer_size!r}")
        if not isinstance(max_features, int) or max_features < 1:
            raise ConfigurationError(f"max_features must be a positive int, got {max_features!r}")
        if window_seconds <= 0:
            raise ConfigurationError(f"window_seconds must be positive, got {window_seconds!r}")
        if trace is not None:
            from ._tracing import check_mode

            check_mode(trace)
        self.trace = trace
        self.features_fn = features
        self.prediction_fn = prediction
        self.confidence = confidence
        self.task: Task | None = task
        self.classes = tuple(str(c) for c in classes) if classes is not None else None
        self.registry = registry
        self.health = Health(strict=strict)
        self.loaded_at = time.time()
        self.trained_at = trained_at
        self.window_seconds = float(window_seconds)

        self.reference = _load_reference(reference)
        key = resolve_key(id_key)
        self.id_key_configured = key is not None
        self.ids = IdScheme(
            key if key is not None else PROCESS_KEY,
            (namespace, self.model, self.version),
            self.classes or _reference_classes(self.reference),
            max_classes=max_classes,
        )
        self.profile = self.reference if not isinstance(self.reference, str) else None
        schema_names = feature_names
        schema_categorical: Iterable[str] = categorical or ()
        if self.profile is not None:
            schema_names = schema_names or list(self.profile.features)
            schema_categorical = categorical or [
                n for n, f in self.profile.features.items() if f.kind == "categorical"
            ]
        self.schema = FeatureSchema(schema_names, schema_categorical, max_features)

        self.traffic = TrafficAggregate(
            duration_buckets=_check_buckets("duration_buckets", duration_buckets)
        )
        self.inputs = InputHealthAggregate()
        if self.schema.names is not None:  # known up front: export 0 from start-up
            self.inputs.seed(self.schema.names)
        self.aggregates: dict[str, Aggregate] = {"traffic": self.traffic, "inputs": self.inputs}
        decisions = DecisionConfig(drift_alpha, drift_psi_floor, missing_drift_floor)
        self._add_optional_aggregates(
            decisions=decisions,
            warmup_size=warmup_size,
            min_samples=min_samples,
            drift_quantiles=drift_quantiles,
            export_bin_edges=export_bin_edges,
            max_features=max_features,
            outcome_store=outcome_store,
            outcome_capacity=outcome_capacity,
            outcome_ttl_seconds=outcome_ttl_seconds,
            max_classes=max_classes,
            positive_class=positive_class,
            concept_detector=concept_detector,
            outcome_range=outcome_range,
        )

        if outliers and self.profile is not None:
            self.aggregates["outliers"] = OutlierAggregate.of(self.profile, max_features)
        if distributions is not False:
            self.aggregates["distributions"] = DistributionAggregate(
                None if distributions is True else list(distributions), max_features=max_features
            )

        # The records' fields, flat: a record is extended into the buffer, not appended,
        # so no per-call tuple stays alive until the fold (see ``context.Record``). A list:
        # extending it with a tuple and deleting a prefix are each one C call under the
        # GIL, and a prefix is taken in two memcpys where a deque pops item by item.
        self._buffer: list[Any] = []
        self._soft_items = buffer_size * RECORD_WIDTH
        self._hard_items = buffer_size * HARD_LIMIT_FACTOR * RECORD_WIDTH
        self._fold_lock = threading.RLock()
        # Readers (scrapes, in-flight reads, explicit folds) go first: callers past the
        # hard limit step aside while one waits, so /metrics answers under load.
        self._readers = 0
        self._handoff = threading.Condition(threading.Lock())
        # Set while a wrapped call of this monitor runs in this thread / async context:
        # nested calls (predict calling predict_proba) count once, as the outer call.
        self._active: ContextVar[bool] = ContextVar(f"modelmon_active_{id(self):x}", default=False)
        self._guarded = [False]
        self._wrapped_functions = 0
        self._mint_times: OrderedDict[int, float] = OrderedDict()
        self._wake_sent = False
        self._truncation_logged = False
        self._started = itertools.count(1)
        self._started_n = self._started.__next__
        self._reads = 0
        self._folded = 0
        self._mlflow_logger: Any = None
        if log_every_s is not None:  # before claiming: a failure here leaves no trace
            from .integrations.mlflow import start_periodic

            self._mlflow_logger = start_periodic(self, log_every_s, mlflow_run_id)
        self._identity = _claim_identity(self)
        FOLDER.ensure_started()
        _registry.register(self)

    # --- configuration helpers ----------------------------------------------------------
    def _add_optional_aggregates(self, **options: Any) -> None:
        """Drift (with a reference or warm-up) and ground truth aggregates."""
        self.drift: DriftAggregate | None = None
        if self.reference is not None:
            self.drift = DriftAggregate(
                self.profile,
                warmup=options["warmup_size"] if self.reference == "warmup" else None,
                window_seconds=self.window_seconds,
                min_samples=options["min_samples"],
                quantiles=tuple(options["drift_quantiles"]),
                max_features=options["max_features"],
                export_bin_edges=options["export_bin_edges"],
                decisions=options["decisions"],
            )
            self.aggregates["drift"] = self.drift
        try:
            store = open_store(
                options["outcome_store"],
                options["outcome_capacity"],
                options["outcome_ttl_seconds"],
            )
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc
        self.outcomes = OutcomeAggregate(
            self.task,
            store=store,
            max_classes=options["max_classes"],
            positive_class=options["positive_class"],
            window_seconds=self.window_seconds,
            detector=options["concept_detector"],
            ids=self.ids,
            target_range=options["outcome_range"],
        )
        self.aggregates["outcomes"] = self.outcomes

    @property
    def labels(self) -> dict[str, str]:
        return {names.MODEL: self.model, names.VERSION: self.version}

    @property
    def in_flight(self) -> int:
        """Calls currently executing (started minus finished, never negative)."""
        # Every started call ends as one record (buffered or folded). itertools.count is
        # atomic under the GIL; reading it takes a number, so reads are subtracted.
        with self._reading():
            finished = self._folded + len(self._buffer) // RECORD_WIDTH
            started = self._started_n() - 1 - self._reads
            self._reads += 1
        return max(started - finished, 0)

    # --- wrapping -----------------------------------------------------------------------
    def wrap(self, fn: Callable[P, R]) -> Monitored[P, R]:
        """Wrap ``fn`` (function, coroutine function, method, classmethod, staticmethod).

        Typed like ``fn`` plus ``.monitor`` (see :class:`~modelmon.Monitored`).
        """
        from .decorator import wrap

        return wrap(self, fn)

    __call__ = wrap

    # --- recording ----------------------------------------------------------------------
    def observe(
        self,
        inputs: Any = None,
        outputs: Any = None,
        latency_s: float = 0.0,
        error: BaseException | str | None = None,
        prediction_id: str | None = None,
    ) -> str:
        """Record one call made elsewhere (middleware, batch jobs); returns its id.

        ``inputs`` and ``outputs`` are read like a wrapped function's first argument and
        return value; a batch of N rows counts as 1 request and N predictions. The id is
        the authenticated id of the row (one row), or of the batch call, which labels
        refuse: label a batch's rows with ``modelmon.last_prediction_ids()``. A given
        ``prediction_id`` is kept as the call's id (rows ``id.0``, ``id.1``...).
        """
        err = error if error is None or isinstance(error, str) else type(error).__name__
        seq: int | str = self._started_n()
        if prediction_id is not None:
            seq = str(prediction_id)
        if type(inputs) is np.ndarray:  # a buffer the caller may reuse: read it now
            inputs = inputs.copy()
        record: Record = (inputs, OBSERVED, outputs, float(latency_s), err, seq, self)
        self._append(record)
        if err is None:
            set_last(record)
            scope = get_scope()
            if scope is not None:
                scope.append(record)
        return self.call_id(record)

    # --- prediction ids -----------------------------------------------------------------
    def format_id(self, seq: int | str) -> str:
        """The short reference of call ``seq`` for exemplars and traces (not a label id).

        Caller-supplied ids are kept as given. The reference cannot be used to post a
        label: labels need the authenticated id (:meth:`call_id`, :meth:`row_ids`).
        """
        return seq if isinstance(seq, str) else self.ids.ref(seq)

    @property
    def _id_prefix(self) -> str:
        return f"{self.ids.prefix:08x}"

    def _reseed_ids(self) -> None:
        # A random prefix per monitor and process: ids never collide across monitors,
        # replicas, or the workers a pre-forking server makes.
        self.ids.reseed()

    def call_id(self, record: Record) -> str:
        """The id of one call: its row's id for a single row, else the batch call's id.

        A batch call's id is refused as a label (``batch_id``): label the rows with
        :meth:`row_ids`. Never raises (an unusable output gives an id that scores nothing).
        """
        seq = record[5]
        if isinstance(seq, str):
            return seq
        try:
            output = self._output_of(record[1], record[2])
            n = output_rows(output) if output is not None else 0
            if n != 1:
                return self.ids.mint_call(seq, n, self._minted_at(seq))
            return self._mint_rows(seq, output)[0]
        except Exception as exc:
            self.health.error("prediction_id", exc)
            return self.ids.mint_call(seq, 0, self._minted_at(seq))

    def row_ids(self, record: Record) -> list[str]:
        """The ids of a call's rows, in row order (the ids to post labels with)."""
        seq = record[5]
        if isinstance(seq, str):
            return row_ids(seq, output_rows(record[2]))
        try:
            output = self._output_of(record[1], record[2])
            n = output_rows(output) if output is not None else 0
            if n == 0:
                return []
            ids = self._mint_rows(seq, output)
            if len(ids) == n:
                return ids
        except Exception as exc:
            self.health.error("prediction_id", exc)
            n = 1
        now = self._minted_at(seq)
        return [self.ids.mint_call(seq, 0, now) for _ in range(n)]

    def _mint_rows(self, seq: int, output: Any) -> list[str]:
        task = self.task or self.outcomes.task
        kind = type(output)
        if kind in _FAST_SCALARS:  # one scalar: no numpy round trip
            now = self._minted_at(seq)
            if (kind is float and task != "classification") or task == "regression":
                return [self.ids.mint_value(seq, float(output), now)]
            return [self.ids.mint_label(seq, 0, class_label(output), None, now)]
        frame = outputs_frame([output], task=self.task, classes=self.classes, confidence=None)
        return self.ids.mint_rows(seq, frame, task, self._minted_at(seq))

    def _minted_at(self, seq: int) -> float:
        """The prediction time put in call ``seq``'s ids: fixed when first read, so the
        response header and ``last_prediction_id()`` give the same string."""
        times = self._mint_times
        at = times.get(seq)
        if at is None:
            at = times[seq] = time.time()
            if len(times) > MINT_TIMES_KEPT:
                with contextlib.suppress(KeyError):
                    times.popitem(last=False)  # O(1), unlike next(iter(dict))
        return at

    def _append(self, record: Record) -> None:
        self._buffer.extend(record)
        if len(self._buffer) >= self._soft_items:
            self._buffer_full()

    def _pending_records(self) -> list[Record]:
        """The records buffered and not folded yet, oldest first (a copy, for tests)."""
        items = list(self._buffer)
        w = RECORD_WIDTH
        return [tuple(items[i : i + w]) for i in range(0, len(items), w)]

    def _buffer_full(self) -> None:
        """Past the soft limit: wake the background folder, once per fold; return at once.

        The fold stays off the request path. Only past the hard limit (the folder has
        not caught up) does the caller fold itself, waiting for the lock: the oldest
        pending work is folded synchronously, never dropped.
        """
        try:
            if len(self._buffer) < self._hard_items:
                if not self._wake_sent:
                    self._wake_sent = True
                    FOLDER.wake(self)
                return
            if self._readers:  # a scrape is waiting for the lock: let it in first
                with self._handoff:
                    while self._readers:
                        self._handoff.wait()
            with self._fold_lock:
                self._fold_locked(time.time())
        except Exception as exc:
            self.health.error("fold", exc)

    def _background_fold(self) -> None:
        try:
            if self._buffer:
                self.fold()
        except Exception as exc:  # the folder thread must survive anything
            self.health.error("fold", exc)

    # --- the fold -----------------------------------------------------------------------
    def fold(self, now: float | None = None) -> None:
        """Fold every pending call into the aggregates (one vectorised pass)."""
        with self._reading():
            self._fold_locked(time.time() if now is None else now)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """The fold lock for a reader, ahead of callers folding past the hard limit.

        A reader waits for at most the fold in progress: while it waits, callers past
        the hard limit wait for it (their records are already buffered, so memory
        stays bounded by the number of serving threads); callers below it never fold.
        """
        with self._handoff:
            self._readers += 1
        try:
            self._fold_lock.acquire()
        finally:
            with self._handoff:
                self._readers -= 1
                if not self._readers:
                    self._handoff.notify_all()
        try:
            yield
        finally:
            self._fold_lock.release()

    def _fold_locked(self, now: float) -> None:
        self._wake_sent = False  # calls past the soft limit from now on wake the folder again
        buffer = self._buffer
        n = len(buffer)  # a multiple of RECORD_WIDTH: list.extend of a tuple is atomic
        if n == 0:
            return
        # Calls finishing meanwhile extend past n; folds take the lock, so only this
        # thread removes items.
        items = buffer[:n]
        del buffer[:n]
        self._folded += n // RECORD_WIDTH
        batch = self._make_batch(items, now)
        for name, aggregate in self.aggregates.items():
            try:
                aggregate.fold(batch)
            except Exception as exc:
                self.health.error(f"fold_{name}", exc)
        self._after_fold()

    def _after_fold(self) -> None:
        """Extension point (the multi-process exporter writes the state file here)."""
        for hook in _AFTER_FOLD_HOOKS:
            try:
                hook(self)
            except Exception as exc:
                self.health.error("after_fold", exc)

    def _make_batch(self, items: list[Any], now: float) -> Batch:
        w = RECORD_WIDTH
        inps, calls, results = items[0::w], items[1::w], items[2::w]
        errors, seqs = items[4::w], tuple(items[5::w])
        n = len(inps)
        latencies = np.array(items[3::w], dtype=np.float64)
        failed = any(errors)
        if failed:
            ok_index = np.flatnonzero(np.fromiter((e is None for e in errors), dtype=bool, count=n))
            pick = ok_index.tolist()
            inps = [inps[i] for i in pick]
            calls = [calls[i] for i in pick]
            results = [results[i] for i in pick]
        else:
            ok_index = np.arange(n)
        outputs = self._outputs_of(calls, results)
        ok_rows = self._rows_of(outputs)
        rows = np.zeros(n, dtype=np.int64)
        rows[ok_index] = ok_rows
        feature_frame = self._features_of(inps, calls)
        output_frame = self._outputs_frame(outputs, int(ok_rows.sum()))
        return Batch(
            now=now,
            latencies=latencies,
            rows=rows,
            errors=tuple(errors),
            ended_at=np.full(n, now),
            call_ids=CallIds(self, seqs),
            features=feature_frame,
            outputs=output_frame,
            row_call=np.repeat(ok_index, ok_rows).astype(np.int64),
            seqs=seqs,
            id_prefix=self._id_prefix,
        )

    def _outputs_of(self, calls: list[Any], results: list[Any]) -> list[Any]:
        if self.prediction_fn is None:
            return results
        return [self._output_of(c, r) for c, r in zip(calls, results, strict=True)]

    def _output_of(self, call: Any, result: Any) -> Any:
        if self.prediction_fn is not None and call is not OBSERVED:
            try:
                return self.prediction_fn(result)
            except Exception as exc:
                self.health.error("extract_prediction", exc)
                return None
        return result

    def _rows_of(self, outputs: list[Any]) -> np.ndarray:
        counts = np.ones(len(outputs), dtype=np.int64)
        if set(map(type, outputs)) <= SCALAR_OUTPUT_TYPES:
            return counts
        for i, y in enumerate(outputs):
            try:
                counts[i] = output_rows(y) if y is not None else 0
            except Exception as exc:
                self.health.error("extract_rows", exc)
        return counts

    def _input_of(self, inp: Any, call: Any) -> Any:
        """The input of one record (see ``context.Record`` for its three forms)."""
        if call is None or call is OBSERVED:
            return inp
        if self.features_fn is not None:
            return self.features_fn(*inp, **call)
        return _first_input(inp, call)

    def _inputs(self, inps: list[Any], calls: list[Any]) -> list[Any] | None:
        """Every record's input, or None when a ``features=`` callable must run per call."""
        if calls.count(None) == len(calls):  # the common case: the hot path's direct form
            return inps
        if self.features_fn is not None:
            return None
        return list(map(self._input_of, inps, calls))

    def _features_of(self, inps: list[Any], calls: list[Any]) -> FeatureFrame | None:
        inputs = self._inputs(inps, calls)
        types = set(map(type, inputs)) if inputs else set()
        stacked = stacked_arrays(inputs) if inputs and types == {np.ndarray} else None
        if stacked is not None:
            chunks = [stacked]
        elif inputs is not None and types == {dict}:
            chunks = [Chunk("dicts", inputs, plain_dicts=True)]
        else:
            chunks = self._chunks(inps, calls)
        if not chunks:
            return None
        try:
            frame = features_frame(chunks, self.schema)
        except Exception as exc:
            self.health.error("extract_features", exc)
            return None
        if frame.not_exported and not self._truncation_logged:
            self._log_truncation()
        return frame

    def _log_truncation(self) -> None:
        """Say once that inputs are wider than ``max_features`` (counted in every fold)."""
        self._truncation_logged = True
        schema = self.schema
        width = len(schema.all_names or ())
        logger.warning(
            "modelmon: model %r version %r: inputs carry more values than the %d exported "
            "features (max_features=%d%s); the rest are counted in "
            "%s_features_not_exported_total, not exported per feature. Raise max_features "
            "to export them. (Logged once.)",
            self.model,
            self.version,
            len(schema.names or ()),
            schema.max_features,
            f", {width} named" if width else "",
            self.namespace,
        )

    def _chunks(self, inps: list[Any], calls: list[Any]) -> list[Chunk]:
        chunks = []
        for inp, call in zip(inps, calls, strict=True):
            try:
                chunks.append(input_chunk(self._input_of(inp, call)))
            except UnsupportedInput as exc:
                self.health.drop("unsupported_input")
                self.health.note("input", "modelmon: input not recorded: %s", exc)
            except Exception as exc:
                self.health.error("extract_features", exc)
        return chunks

    def _outputs_frame(self, outputs: list[Any], n_rows: int) -> OutputFrame | None:
        has_none = any(map(_IS_NONE, outputs))  # identity: outputs may be numpy arrays
        present = [y for y in outputs if y is not None] if has_none else outputs
        if not present:
            return None
        try:
            frame = outputs_frame(
                present, task=self.task, classes=self.classes, confidence=self.confidence
            )
        except UnsupportedInput as exc:
            self.health.drop("unsupported_output")
            self.health.note("output", "modelmon: output not recorded: %s", exc)
            return None
        except Exception as exc:
            self.health.error("extract_outputs", exc)
            return None
        return frame if frame.n_rows == n_rows else None

    # --- ground truth -------------------------------------------------------------------
    def record_outcome(self, prediction_id: str, actual: Any) -> str:
        """Feed back the true label (or value) of a prediction; returns its status.

        The status is ``"matched"`` or why the label was not scored (``invalid_id``,
        ``batch_id``, ``other_model``, ``expired``, ``duplicate``, ``unknown``,
        ``invalid``); each is counted in ``modelmon_outcomes_unmatched_total``. Never
        raises unless ``strict=True``.
        """
        return self.record_outcomes([prediction_id], [actual])[0]

    def record_outcomes(
        self,
        prediction_ids: Sequence[str],
        actuals: Sequence[Any],
        *,
        strict: bool | None = None,
    ) -> list[str]:
        """Batch form of :meth:`record_outcome`; returns one status per id, in order.

        ``strict`` (default: the monitor's) raises :class:`OutcomeError` once refused
        labels are counted; the feedback routes pass ``False`` and answer per label.
        """
        try:
            # Fold first: rows under caller-supplied ids and multiclass probabilities
            # are kept by the fold (the lookups themselves run outside the fold lock).
            self.fold()
            statuses = self.outcomes.record_detailed(
                list(prediction_ids),
                list(actuals),
                time.time(),
                strict=self.health.strict if strict is None else strict,
            )
            self._after_fold()
            return statuses
        except OutcomeError:
            raise  # strict mode only: the bad outcomes are already counted
        except Exception as exc:
            self.health.error("record_outcome", exc)
            return ["unknown"] * len(prediction_ids)

    # --- reading ------------------------------------------------------------------------
    def render_context(self, now: float | None = None) -> RenderContext:
        return RenderContext(self.namespace, self.labels, time.time() if now is None else now)

    def collect(self, now: float | None = None) -> list[Family]:
        """Fold, then render every aggregate as exporter-neutral families."""
        try:
            self.fold()
        except Exception as exc:
            self.health.error("fold", exc)
        ctx = self.render_context(now)
        families: list[Family] = []
        for name, aggregate in self.aggregates.items():
            try:
                families.extend(aggregate.families(ctx))
            except Exception as exc:
                self.health.error(f"render_{name}", exc)
        families.extend(self.live_families(ctx))
        return families

    def live_families(self, ctx: RenderContext) -> list[Family]:
        """Per-process values that are not folded: in-flight, metadata, health."""
        ns, labels = ctx.namespace, ctx.labels
        info_labels = {
            **labels,
            "task": self._task_label(),
            "sdk_version": _SDK_VERSION,
            "reference": self._reference_label(),
        }
        out = [
            Family(names.IN_FLIGHT, ns, (ScalarPoint(labels, self.in_flight),)),
            Family(names.MODEL_INFO, ns, (ScalarPoint(info_labels, 1.0),)),
            Family(names.MODEL_LOADED, ns, (ScalarPoint(labels, self.loaded_at),)),
            # Refreshed at every collection: absence alerts watch it, scraped or pushed.
            Family(names.HEARTBEAT, ns, (ScalarPoint(labels, ctx.now),)),
            Family(
                names.INTERNAL_ERRORS,
                ns,
                tuple(
                    ScalarPoint({**labels, names.STAGE: k}, v)
                    for k, v in sorted(self.health.internal_errors.items())
                ),
            ),
            Family(
                names.DROPPED,
                ns,
                tuple(
                    ScalarPoint({**labels, names.REASON: k}, v)
                    for k, v in sorted(self.health.dropped.items())
                ),
            ),
        ]
        trained = self.trained_at
        profile = self.drift.profile if self.drift is not None else self.profile
        created = profile.created_at if profile is not None else None
        if trained is None:
            trained = created
        if trained is not None:
            out.append(Family(names.MODEL_TRAINED, ns, (ScalarPoint(labels, float(trained)),)))
        if created is not None:
            out.append(Family(names.REFERENCE_CREATED, ns, (ScalarPoint(labels, float(created)),)))
        return out

    def _task_label(self) -> str:
        if self.task is not None:
            return self.task
        return self.outcomes.task or "unknown"

    def _reference_label(self) -> str:
        if self.reference is None:
            return "none"
        if self.reference == "warmup":
            return "warmup"
        return "profile"

    def restart_in_child(self, fresh: Callable[[Any], Any]) -> None:
        """After ``fork``: count only what this process does from now on.

        ``fresh(aggregate)`` returns an empty aggregate of the same configuration. Calls
        pending in the parent's buffer and the parent's folded counts stay the parent's
        (it reports them itself), so a pre-forking server never counts them twice.
        """
        self._fold_lock = threading.RLock()  # a parent thread may have held it at the fork
        self._readers = 0
        self._handoff = threading.Condition(threading.Lock())
        self._buffer.clear()
        self._wake_sent = False
        self._reads = 0
        started = self._started_n()
        self._reads = 1
        self._folded = started - 1  # the parent's in-flight calls do not exist here
        old_outcomes = self.outcomes
        for name, aggregate in list(self.aggregates.items()):
            try:
                replacement = fresh(aggregate)
            except Exception as exc:
                self.health.error("multiprocess_fork", exc)
                continue
            self.aggregates[name] = replacement
            for attr in ("traffic", "inputs", "drift", "outcomes"):
                if getattr(self, attr, None) is aggregate:
                    setattr(self, attr, replacement)
        if self.outcomes is not old_outcomes and getattr(self.outcomes, "ids", None) is None:
            # The fresh aggregate scores this monitor's ids (same key, classes, range).
            self.outcomes.ids = self.ids
            self.outcomes.target_range = old_outcomes.target_range
        self.health.reset()

    # --- views: MLflow and the HTML report -----------------------------------------------
    def log_to_mlflow(self, run_id: str | None = None, step: int | None = None) -> dict[str, float]:
        """Log a snapshot (drift, input health, outputs, performance) as MLflow metrics.

        To ``run_id`` or the active run; returns the logged ``{key: value}``. Needs the
        ``mlflow`` extra. Unlike the periodic logging of ``log_every_s``, errors raise.
        """
        from .integrations.mlflow import log_snapshot

        return log_snapshot(self, run_id, step)

    def report(self) -> str:
        """The self-contained HTML drift report of this monitor (see ``docs/report.md``)."""
        from .report import monitor_report

        return monitor_report(self)

    def _repr_html_(self) -> str:
        return self.report()

    def close(self) -> None:
        """Fold what is pending and stop exporting this monitor."""
        if self._mlflow_logger is not None:
            self._mlflow_logger.stop()
            self._mlflow_logger = None
        self.fold()
        for hook in _CLOSE_HOOKS:
            hook(self)
        _registry.unregister(self)
        _release_identity(self)
        self.outcomes.store.close()

    def __repr__(self) -> str:
        return (
            f"Monitor(model={self.model!r}, version={self.version!r}, namespace={self.namespace!r})"
        )


def _first_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A call's input: its first positional argument, else its first keyword argument."""
    if args:
        return args[0]
    return next(iter(kwargs.values()), None)


_IS_NONE = functools.partial(operator.is_, None)


class CallIds(Sequence[str]):
    """The prediction ids of a batch's calls, formatted only when read."""

    __slots__ = ("_monitor", "_seqs")

    def __init__(self, monitor: Monitor, seqs: tuple[int | str, ...]) -> None:
        self._monitor = monitor
        self._seqs = seqs

    def __len__(self) -> int:
        return len(self._seqs)

    def seq(self, i: int) -> int | str:
        """The raw sequence number of call ``i`` (a ``TracedSeq`` when it was traced)."""
        return self._seqs[i]

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self._monitor.format_id(s) for s in self._seqs[i]]
        return self._monitor.format_id(self._seqs[i])


# --- one monitor per model version and registry -------------------------------------------
_Identity = tuple[int, str, str, str]
_live: weakref.WeakValueDictionary[_Identity, Monitor] = weakref.WeakValueDictionary()
_live_lock = threading.Lock()


def _identity_key(registry: Any, namespace: str, model: str, version: str) -> _Identity | None:
    if registry is False:
        return None  # exported nowhere: nothing can be lost
    return (id(registry), namespace, model, version)


def live_monitor(registry: Any, namespace: str, model: str, version: str) -> Monitor | None:
    """The open monitor of this model version in ``registry`` (None: the global one)."""
    key = _identity_key(registry, namespace, model, version)
    if key is None:
        return None
    with _live_lock:
        return _live.get(key)


def _claim_identity(monitor: Monitor) -> Any:
    key = _identity_key(monitor.registry, monitor.namespace, monitor.model, monitor.version)
    if key is None:
        return None
    with _live_lock:
        existing = _live.get(key)
        if existing is not None and existing is not monitor:
            raise ConfigurationError(
                f"model={monitor.model!r} version={monitor.version!r} is already monitored in "
                "this registry; a second Monitor would hide the first one's calls. Wrap the "
                "other function with the same monitor (existing_monitor.wrap(fn), or "
                "@modelmon.monitored with the same arguments, which shares it), or call "
                "existing_monitor.close() first to replace it"
            )
        _live[key] = monitor
    return key


def _release_identity(monitor: Monitor) -> None:
    key = getattr(monitor, "_identity", None)
    if key is None:
        return
    with _live_lock:
        if _live.get(key) is monitor:
            del _live[key]


_AFTER_FOLD_HOOKS: list[Callable[[Monitor], None]] = []
_CLOSE_HOOKS: list[Callable[[Monitor], None]] = []


def _resolve_mlflow(reference: Any) -> Any:
    """A ``ResolvedReference`` for ``runs:/`` and ``models:/`` URIs, else None."""
    if isinstance(reference, str) and reference.startswith(("runs:/", "models:/")):
        from .integrations.mlflow import resolve_reference

        return resolve_reference(reference)
    return None


def _reference_classes(reference: Any) -> tuple[str, ...] | None:
    """The classes a reference profile saw predicted (its categorical ``prediction``)."""
    outputs = getattr(reference, "outputs", None) or {}
    prediction = outputs.get("prediction")
    if prediction is None or prediction.kind != "categorical":
        return None
    classes = tuple(c for c in prediction.categories if c != names.POOLED)
    return classes or None


def _load_reference(reference: Any) -> Any:
    """The profile object, ``"warmup"``, or None; paths are loaded now (errors raise here)."""
    if reference is None or reference == "warmup":
        return reference
    if isinstance(reference, (str, os.PathLike)):
        try:
            return ReferenceProfile.load(os.fspath(reference))
        except ConfigurationError:
            raise
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"cannot read reference profile {os.fspath(reference)!r}: {exc}"
            ) from exc
    if isinstance(reference, ReferenceProfile):
        return reference
    raise ConfigurationError(
        "reference must be a ReferenceProfile, a path to one, 'warmup' or None, "
        f"got {type(reference).__name__}"
    )
