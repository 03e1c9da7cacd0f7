"""The per-model state: configuration, the call buffer, the aggregates, the ids.

The hot path (:mod:`modelmon._hotpath`) fills the buffer (:mod:`modelmon.buffer`); the
fold (:mod:`modelmon.fold`) turns it into batches for the aggregates; exporters render
:meth:`Monitor.collect` and subscribe to the events of :mod:`modelmon._internal.registry`.

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
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar

import numpy as np

from . import _setup, fold, live, names
from ._hotpath import wrap
from ._internal import identity
from ._internal import registry as _registry
from ._internal.folder import FOLDER
from ._internal.health import Health
from ._internal.identity import live_monitor
from ._internal.ids import PROCESS_KEY, resolve_key, row_ids
from ._tracing import check_mode
from .aggregates.distributions import DistributionAggregate
from .aggregates.drift import DriftAggregate
from .aggregates.outcome_store import class_label, open_store
from .aggregates.outcomes import OutcomeAggregate, OutcomeError
from .aggregates.outliers import OutlierAggregate
from .aggregates.segments import SegmentAggregate, build_segments
from .aggregates.series_memo import stable_labels
from .aggregates.traffic import InputHealthAggregate, TrafficAggregate
from .batch import Aggregate, RenderContext
from .buffer import (
    CALL,
    DEFAULT_BUFFER_SIZE,
    OBSERVED,
    RESULT,
    SEQ,
    CallBuffer,
    NestingGuard,
    RawRecord,
    Record,
)
from .concept_drift import Detector
from .context import get_scope, set_last
from .drift_decision import DecisionConfig
from .errors import ConfigurationError
from .extract import DEFAULT_MAX_FEATURES, FeatureSchema, output_rows, outputs_frame
from .id_scheme import IdScheme
from .points import Family
from .schema_learning import SchemaLearner
from .segments import DEFAULT_MAX_SERIES, DEFAULT_TOP_K, SegmentArg, segment_schema

if TYPE_CHECKING:
    from ._signatures import Monitored

P = ParamSpec("P")
R = TypeVar("R")
Task = Literal["classification", "regression"]
ConfidenceArg = Literal["auto"] | Callable[[Any], Any] | None

_FAST_SCALARS = frozenset({float, int, bool, str})
MINT_TIMES_KEPT = 4096  # calls whose id time is remembered (ids read twice stay equal)
# ``registry.provided`` names of the upper layers' views (see ``modelmon._extensions``).
MLFLOW_START_PERIODIC = "mlflow.start_periodic"
MLFLOW_LOG_SNAPSHOT = "mlflow.log_snapshot"
HTML_REPORT = "report.html"
__all__ = ["DEFAULT_REGISTRY", "Monitor", "live_monitor"]


class _DefaultRegistry:
    """``registry=``'s default: prometheus-client's ``REGISTRY``, which the exporter resolves."""

    def __repr__(self) -> str:
        return "DEFAULT_REGISTRY"


DEFAULT_REGISTRY: Any = _DefaultRegistry()


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
        registry: the prometheus-client ``CollectorRegistry`` to expose in; the default,
            :data:`DEFAULT_REGISTRY`, is the global ``prometheus_client.REGISTRY``;
            ``None`` registers nowhere (as in prometheus-client; push exporters such as
            OTLP still export it). ``False`` is a deprecated alias of ``None``.
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
        segment, segments, segment_top_k, max_series: traffic, drift and labels per
            segment, within a series budget (docs/segments.md).
        outliers: with a reference profile, count out-of-range values, outliers per
            feature and output, and joint outlier rows (docs/outliers.md).
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
        registry: Any = DEFAULT_REGISTRY,
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
        segment: SegmentArg = None,
        segments: Sequence[Any] | None = None,
        segment_top_k: int = DEFAULT_TOP_K,
        max_series: int = DEFAULT_MAX_SERIES,
        outliers: bool = True,
    ) -> None:
        self.model = _setup.check_label_value("model", model)
        self.reference_source = _setup.resolve_mlflow(reference)
        if self.reference_source is not None:
            reference = self.reference_source.profile
            version = version or self.reference_source.model_version
        self.version = _setup.check_label_value("version", version)
        self.namespace = _setup.check_namespace(namespace)
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
        _setup.check_positive_int("buffer_size", buffer_size)
        _setup.check_positive_int("max_features", max_features)
        if window_seconds <= 0:
            raise ConfigurationError(f"window_seconds must be positive, got {window_seconds!r}")
        if trace is not None:
            check_mode(trace)
        self.trace = trace
        self.features_fn = features
        self.prediction_fn = prediction
        self.confidence = confidence
        self.task: Task | None = task
        self.classes = tuple(str(c) for c in classes) if classes is not None else None
        self.registry = None if registry is False else registry
        # The arguments of the ``@monitored`` / ``instrument`` call that made this
        # monitor: a later call with the same ones shares it.
        self.shared_config: Mapping[str, Any] | None = None
        self.health = Health(strict=strict)
        self.loaded_at = time.time()
        self.trained_at = trained_at
        self.window_seconds = float(window_seconds)

        self.reference = _setup.load_reference(reference)
        key = resolve_key(id_key)
        self.id_key_configured = key is not None
        self.ids = IdScheme(
            key if key is not None else PROCESS_KEY,
            (namespace, self.model, self.version),
            self.classes or _setup.reference_classes(self.reference),
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
        schema_categorical = segment_schema(segment, schema_names, schema_categorical, self.profile)
        self.schema = FeatureSchema(schema_names, schema_categorical, max_features)
        self.learner = SchemaLearner(self.schema) if schema_names is None else None

        self.traffic = TrafficAggregate(
            duration_buckets=_setup.check_buckets("duration_buckets", duration_buckets)
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
        self.segments: SegmentAggregate | None = None
        if segment is not None:
            seg = (segment, segments, segment_top_k, max_series)
            self.segments = build_segments(*seg, self.drift, self.health, self.ids)
            self.aggregates["segments"] = self.segments
        if outliers and self.profile is not None:
            self.aggregates["outliers"] = OutlierAggregate.of(self.profile, max_features)
        if distributions is not False:
            self.aggregates["distributions"] = DistributionAggregate(
                None if distributions is True else list(distributions), max_features=max_features
            )

        self.buffer = CallBuffer(buffer_size)
        # Readers (scrapes, in-flight reads, explicit folds) go first: callers past the
        # hard limit step aside while one waits, so /metrics answers under load.
        self.folding = fold.FoldLock()
        # Set while a wrapped call of this monitor runs in this thread / async context:
        # nested calls (predict calling predict_proba) count once, as the outer call.
        self.nesting = NestingGuard(f"modelmon_active_{id(self):x}")
        self._mint_times: OrderedDict[int, float] = OrderedDict()
        self._mlflow_logger: Any = None
        if log_every_s is not None:  # before claiming: a failure here leaves no trace
            start_periodic = _registry.provided(MLFLOW_START_PERIODIC)
            self._mlflow_logger = start_periodic(self, log_every_s, mlflow_run_id)
        self._identity = identity.claim(self)
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
        # Every started call ends as one record (buffered or folded).
        with self.folding.reading():
            return self.buffer.in_flight()

    # --- wrapping -----------------------------------------------------------------------
    def wrap(self, fn: Callable[P, R]) -> Monitored[P, R]:
        """Wrap ``fn`` (function, coroutine function, method, classmethod, staticmethod).

        Typed like ``fn`` plus ``.monitor`` (see :class:`~modelmon.Monitored`).
        """
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
        seq: int | str = self.buffer.next_seq()  # every call takes one, even with an id
        seq = seq if prediction_id is None else str(prediction_id)
        if type(inputs) is np.ndarray:  # a buffer the caller may reuse: read it now
            inputs = inputs.copy()
        record: RawRecord = (inputs, OBSERVED, outputs, float(latency_s), err, seq, self)
        fold.append(self, record)
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

    def call_id(self, record: RawRecord | Record) -> str:
        """The id of one call: its row's id for a single row, else the batch call's id.

        A batch call's id is refused as a label (``batch_id``): label the rows with
        :meth:`row_ids`. Never raises (an unusable output gives an id that scores nothing).
        """
        seq = record[SEQ]
        if isinstance(seq, str):
            return seq
        try:
            output = fold.output_of(self, record[CALL], record[RESULT])
            n = output_rows(output) if output is not None else 0
            if n != 1:
                return self.ids.mint_call(seq, n, self._minted_at(seq))
            return self._mint_rows(seq, output, record)[0]
        except Exception as exc:
            self.health.error("prediction_id", exc)
            return self.ids.mint_call(seq, 0, self._minted_at(seq))

    def row_ids(self, record: RawRecord | Record) -> list[str]:
        """The ids of a call's rows, in row order (the ids to post labels with)."""
        seq = record[SEQ]
        if isinstance(seq, str):
            return row_ids(seq, output_rows(record[RESULT]))
        try:
            output = fold.output_of(self, record[CALL], record[RESULT])
            n = output_rows(output) if output is not None else 0
            if n == 0:
                return []
            ids = self._mint_rows(seq, output, record)
            if len(ids) == n:
                return ids
        except Exception as exc:
            self.health.error("prediction_id", exc)
            n = 1
        now = self._minted_at(seq)
        return [self.ids.mint_call(seq, 0, now) for _ in range(n)]

    def _mint_rows(self, seq: int, output: Any, record: Record | RawRecord) -> list[str]:
        task = self.task or self.outcomes.task
        kind = type(output)
        codes = self._segment_codes(record) if self.segments is not None else None
        if kind in _FAST_SCALARS:  # one scalar: no numpy round trip
            now = self._minted_at(seq)
            seg = codes[0] if codes else 0
            if (kind is float and task != "classification") or task == "regression":
                return [self.ids.mint_value(seq, float(output), now, seg)]
            return [self.ids.mint_label(seq, 0, class_label(output), None, now, seg)]
        frame = outputs_frame([output], task=self.task, classes=self.classes, confidence=None)
        return self.ids.mint_rows(seq, frame, task, self._minted_at(seq), codes)

    def _segment_codes(self, record: Record | RawRecord) -> list[int] | None:
        """The segment code of each row of a call, for its ids (the fold recomputes them)."""
        assert self.segments is not None
        try:
            inp = fold._input_of(self, record[0], record[CALL])  # private: read as the fold does
            return self.segments.id_codes(inp, self.schema)
        except Exception as exc:
            self.health.error("segment", exc)
            return None

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

    # --- the fold (see modelmon.fold) ----------------------------------------------------
    def fold(self, now: float | None = None) -> None:
        """Fold every pending call into the aggregates (one vectorised pass)."""
        fold.fold(self, now)

    def background_fold(self) -> None:
        """The background folder's fold of this monitor (never raises)."""
        fold.background_fold(self)

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
            # Fold first when it matters: rows under caller-supplied ids and multiclass
            # probabilities are kept by the fold (lookups run outside the fold lock).
            fold.fold_for_labels(self, prediction_ids, actuals)
            statuses = self.outcomes.record_detailed(
                list(prediction_ids),
                list(actuals),
                time.time(),
                strict=self.health.strict if strict is None else strict,
            )
            if self.segments is not None:
                self.segments.score(prediction_ids, actuals, statuses, time.time())
            fold.after_fold(self)
            return statuses
        except OutcomeError:
            raise  # strict mode only: the bad outcomes are already counted
        except Exception as exc:
            self.health.error("record_outcome", exc)
            return ["unknown"] * len(prediction_ids)

    # --- reading ------------------------------------------------------------------------
    def render_context(self, now: float | None = None) -> RenderContext:
        labels = stable_labels(self.labels)  # kept mappings: the renderer keeps their text
        return RenderContext(self.namespace, labels, time.time() if now is None else now)

    def collect(self, now: float | None = None) -> list[Family]:
        """Fold, then render every aggregate as exporter-neutral families, as a reader of
        the fold lock (no fold changes a window while its statistics are computed)."""
        with self.folding.reading():
            fold.fold_for_scrape(self)  # never raises
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
        return live.families(self, ctx)

    def restart_in_child(self, fresh: Callable[[Any], Any]) -> None:
        """After ``fork``: count only what this process does from now on.

        ``fresh(aggregate)`` returns an empty aggregate of the same configuration. Calls
        pending in the parent's buffer and the parent's folded counts stay the parent's
        (it reports them itself), so a pre-forking server never counts them twice.
        """
        self.folding.restart()  # a parent thread may have held the locks at the fork
        self.buffer.restart()  # the parent's pending and in-flight calls are not ours
        old_outcomes = self.outcomes
        for name, aggregate in list(self.aggregates.items()):
            try:
                replacement = fresh(aggregate)
            except Exception as exc:
                self.health.error("multiprocess_fork", exc)
                continue
            self.aggregates[name] = replacement
            for attr in ("traffic", "inputs", "drift", "outcomes", "segments"):
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
        log_snapshot = _registry.provided(MLFLOW_LOG_SNAPSHOT)
        return log_snapshot(self, run_id, step)  # type: ignore[no-any-return]

    def report(self) -> str:
        """The self-contained HTML drift report of this monitor (see ``docs/report.md``)."""
        return _registry.provided(HTML_REPORT)(self)  # type: ignore[no-any-return]

    def _repr_html_(self) -> str:
        return self.report()

    def close(self) -> None:
        """Fold what is pending and stop exporting this monitor."""
        if self._mlflow_logger is not None:
            self._mlflow_logger.stop()
            self._mlflow_logger = None
        self.fold()
        _registry.unregister(self)  # emits MONITOR_CLOSED: exporters detach it
        identity.release(self, self._identity)
        self.outcomes.store.close()

    def __repr__(self) -> str:
        return (
            f"Monitor(model={self.model!r}, version={self.version!r}, namespace={self.namespace!r})"
        )
