"""Batch jobs as one monitored run: partitions fold, the driver merges, metrics go out once.

A :class:`BatchJob` is the engine-neutral half of :func:`modelmon.spark.monitor` and
:func:`modelmon.dask.monitor`. Each partition (a Spark task, a Dask task) builds a
private :class:`~modelmon.Monitor` from the job's :class:`JobSpec`, observes its batches
(calling the model when a ``predict`` function is given, else reading a prediction
column), and returns the monitor's aggregate states as plain data. The driver merges those
states into the job's monitor (counts add, sketches merge exactly) and exports once: to a
Prometheus Pushgateway, with the job's labels.

Every partition folds at the job's start time (``JobSpec.now``) and the job renders at
that time, so all its rows are in one window slot: the drift gauges describe the whole
run, and merged counts, sketches and drift scores equal those of one process observing
every row (only ``requests``, one per batch, and latencies depend on the partitioning).

Pushgateway semantics: :meth:`BatchJob.start` pushes the job's series at zero (every
reference bin counter exists from the start), :meth:`BatchJob.finish` pushes the totals,
both replacing the group ``{job, model, version, **grouping_key}``. Prometheus scraping
the gateway (``honor_labels: true``) then sees each run's bin counters rise from 0 to the
run's totals, so ``increase()`` and the bundled fleet drift rules see the run as one more
replica, provided Prometheus scrapes the gateway at least once during the run.

>>> import numpy as np
>>> from modelmon import ReferenceProfile
>>> ref = ReferenceProfile.from_data(np.arange(200.0).reshape(-1, 1), feature_names=["x"])
>>> spec = JobSpec("m", "1", ref.dumps(), now=1000.0)
>>> rows = {"x": np.arange(50.0), "prediction": np.ones(50)}
>>> state = partition_state(spec, [rows], prediction_column="prediction")
>>> job = BatchJob(spec)
>>> job.merge_state(state)
>>> job.monitor.traffic.predictions
50
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigurationError
from .monitor import Monitor
from .profile import ReferenceProfile
from .profile_builder import ProfileBuilder, ProfileSpec

STATE_FORMAT = "modelmon-job-state"
DEFAULT_JOB = "modelmon_batch"
# A partition's monitor never folds on its own: one record per batch, folded at once.
_BUFFER = 1 << 20
PredictFn = Callable[[Any], Any]


@dataclass(frozen=True)
class JobSpec:
    """Everything a partition needs to monitor its rows (plain data, cheap to ship).

    ``profile``: the reference profile's JSON text (:meth:`ReferenceProfile.dumps`).
    ``features``: feature columns (default: the profile's features). ``now``: the job's
    start time, the fold and render time of every partition. ``options``: further
    :class:`~modelmon.Monitor` keyword arguments (JSON-able: task, classes,
    min_samples, drift_quantiles, window_seconds...).
    """

    model: str
    version: str
    profile: str | None
    features: tuple[str, ...] | None = None
    now: float = field(default_factory=time.time)
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            json.dumps(dict(self.options))
        except TypeError as exc:
            raise ConfigurationError(f"monitor options must be plain data: {exc}") from exc

    @property
    def reference(self) -> ReferenceProfile | None:
        return None if self.profile is None else ReferenceProfile.loads(self.profile)

    def feature_columns(self) -> tuple[str, ...] | None:
        if self.features is not None:
            return self.features
        ref = self.reference
        return None if ref is None else tuple(ref.features)

    def new_monitor(self, *, registry: Any = None) -> Monitor:
        """A monitor of this job's configuration (not exported unless ``registry``)."""
        return Monitor(
            self.model,
            self.version,
            reference=self.reference,
            registry=registry,
            buffer_size=_BUFFER,
            **dict(self.options),
        )


def _pandas(batch: Any) -> Any:
    """A pandas DataFrame of an Arrow batch, a DataFrame, or a mapping of columns."""
    module = type(batch).__module__
    if module.startswith("pyarrow"):
        return batch.to_pandas()
    if module.startswith("pandas"):
        return batch
    import pandas as pd

    return pd.DataFrame(dict(batch))


def observe_batch(
    monitor: Monitor,
    spec: JobSpec,
    batch: Any,
    *,
    predict: PredictFn | None = None,
    prediction_column: str | None = None,
) -> None:
    """Observe one batch in ``monitor`` and fold it at ``spec.now``."""
    frame = _pandas(batch)
    columns = spec.feature_columns()
    inputs = frame if columns is None else frame[list(columns)]
    started = time.perf_counter()
    error: BaseException | None = None
    outputs: Any = None
    try:
        if predict is not None:
            outputs = predict(inputs)
        elif prediction_column is not None:
            outputs = frame[prediction_column].to_numpy()
    except Exception as exc:  # a failing model call is a counted error, like a served one
        error = exc
    latency = time.perf_counter() - started
    # The lock keeps the background folder from folding this record at wall-clock time.
    with monitor.folding.lock:
        monitor.observe(inputs, outputs, latency_s=latency if predict else 0.0, error=error)
        monitor.fold(spec.now)


def monitor_state(monitor: Monitor) -> dict[str, Any]:
    """The monitor's aggregates and health as plain data (see :meth:`BatchJob.merge_state`)."""
    from .exporters.multiprocess import describe

    monitor.fold()
    aggregates = {}
    for name, agg in monitor.aggregates.items():
        entry = describe(agg)
        if entry is not None:
            aggregates[name] = entry["state"]
    return {
        "format": STATE_FORMAT,
        "aggregates": aggregates,
        "errors": dict(monitor.health.internal_errors),
        "dropped": dict(monitor.health.dropped),
    }


def partition_state(
    spec: JobSpec,
    batches: Iterable[Any],
    *,
    predict: PredictFn | None = None,
    prediction_column: str | None = None,
) -> dict[str, Any]:
    """Monitor one partition's batches in a private monitor; return its state."""
    monitor = spec.new_monitor()
    try:
        for batch in batches:
            observe_batch(
                monitor,
                spec,
                batch,
                predict=predict,
                prediction_column=prediction_column,
            )
        return monitor_state(monitor)
    finally:
        monitor.close()


def encode_state(state: Mapping[str, Any]) -> bytes:
    """Bytes of a state (JSON with raw numpy buffers; never pickled)."""
    from .exporters.multiprocess import encode

    return encode(state)


def decode_state(data: bytes) -> dict[str, Any]:
    from .exporters.multiprocess import decode

    state: dict[str, Any] = decode(data)
    return state


class BatchJob:
    """One monitored batch run: a driver-side monitor that partition states merge into.

    ``pushgateway``: ``host:port`` or URL of a Prometheus Pushgateway (None: no push).
    ``job`` and ``grouping_key``: the Pushgateway group (``model`` and ``version`` are
    always part of it). ``registry``: also expose the job's monitor there (default: not).
    """

    def __init__(
        self,
        spec: JobSpec,
        *,
        pushgateway: str | None = None,
        job: str = DEFAULT_JOB,
        grouping_key: Mapping[str, str] | None = None,
        registry: Any = None,
        push_timeout: float = 30.0,
    ) -> None:
        self.spec = spec
        self.monitor = spec.new_monitor(registry=registry)
        self.pushgateway = pushgateway
        self.job = job
        self.grouping_key = {
            **dict(grouping_key or {}),
            "model": spec.model,
            "version": spec.version,
        }
        self.push_timeout = push_timeout
        self.partitions = 0

    def merge_state(self, state: Mapping[str, Any]) -> None:
        """Add one partition's :func:`monitor_state` into the job's monitor."""
        from .exporters.multiprocess import fresh_like

        if state.get("format") != STATE_FORMAT:
            raise ConfigurationError("not a modelmon job state")
        for name, agg_state in state["aggregates"].items():
            mine = self.monitor.aggregates.get(name)
            if mine is None:
                continue
            theirs = fresh_like(mine)
            theirs.load_state(agg_state)
            mine.merge(theirs)
        self.monitor.health.internal_errors.update(state["errors"])
        self.monitor.health.dropped.update(state["dropped"])
        self.partitions += 1

    def merge_states(self, states: Sequence[Mapping[str, Any]]) -> None:
        for state in states:
            self.merge_state(state)

    # --- export -------------------------------------------------------------------------
    def registry(self) -> Any:
        """A fresh prometheus-client registry holding the job's metrics at ``spec.now``."""
        from prometheus_client import CollectorRegistry

        from .exporters.prometheus import to_prometheus

        monitor, now = self.monitor, self.spec.now

        class _JobCollector:
            def collect(self) -> Any:
                return to_prometheus(monitor.collect(now))

            def describe(self) -> list[Any]:
                return []

        registry = CollectorRegistry()
        registry.register(_JobCollector())
        return registry

    def push(self) -> None:
        """Replace the job's group on the Pushgateway with the current values."""
        if self.pushgateway is None:
            return
        from prometheus_client import push_to_gateway

        push_to_gateway(
            self.pushgateway,
            job=self.job,
            registry=self.registry(),
            grouping_key=self.grouping_key,
            timeout=self.push_timeout,
        )

    def start(self) -> BatchJob:
        """Push the job's series at zero (so ``increase()`` sees the run start from 0)."""
        self.push()
        return self

    def finish(self) -> BatchJob:
        """Push the merged totals; the job's monitor stays readable."""
        self.push()
        return self

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.monitor.close()


def make_job(
    model: str | None,
    version: str | None,
    reference: ReferenceProfile | None,
    features: Sequence[str] | None,
    now: float | None,
    options: Mapping[str, Any],
    pushgateway: str | None,
    job_name: str,
    grouping_key: Mapping[str, str] | None,
) -> BatchJob:
    """A :class:`BatchJob` from the engine adapters' ``monitor()`` arguments."""
    if model is None or version is None:
        raise ConfigurationError("monitor() needs model= and version= (or job=)")
    spec = JobSpec(
        model,
        version,
        None if reference is None else reference.dumps(),
        None if features is None else tuple(features),
        time.time() if now is None else float(now),
        dict(options),
    )
    return BatchJob(spec, pushgateway=pushgateway, job=job_name, grouping_key=grouping_key)


class EngineRunner:
    """The engine-neutral halves of ``profile()`` and ``monitor()`` of a cluster engine.

    :mod:`modelmon.spark` and :mod:`modelmon.dask` subclass it with four hooks (which
    package to require, the frame's columns, a column selection, and how partitions run)
    and export an instance's bound :meth:`profile` and :meth:`monitor`.
    """

    def require(self) -> Any:
        """Import the engine (raise :class:`~modelmon.errors.MissingExtraError` if absent)."""
        raise NotImplementedError

    def columns(self, frame: Any) -> list[str]:
        return [str(c) for c in frame.columns]

    def select(self, frame: Any, columns: Sequence[str]) -> Any:
        raise NotImplementedError

    def profile_pass(self, frame: Any, builder: ProfileBuilder) -> ProfileBuilder:
        """Fold every partition of ``frame`` into a copy of ``builder``; merge them all."""
        raise NotImplementedError

    def partition_states(
        self, frame: Any, spec: JobSpec, predict: PredictFn | None, prediction: str | None
    ) -> list[dict[str, Any]]:
        """The :func:`partition_state` of every partition of ``frame``."""
        raise NotImplementedError

    def profile(
        self,
        frame: Any,
        *,
        features: Sequence[str] | None = None,
        prediction: str | None = None,
        confidence: str | None = None,
        exclude: Sequence[str] = (),
        categorical: Sequence[str] = (),
        bins: int = 10,
        max_categories: int = 20,
        task: str | None = None,
        created_at: float | None = None,
    ) -> ReferenceProfile:
        """The reference profile of a DataFrame (two passes over its partitions).

        Arguments as :class:`~modelmon.profile_builder.ProfileSpec`; ``created_at`` fixes
        the profile's timestamp (default: now).
        """
        self.require()
        spec = ProfileSpec(
            features=None if features is None else tuple(features),
            prediction=prediction,
            confidence=confidence,
            exclude=tuple(exclude),
            categorical=tuple(categorical),
            bins=bins,
            max_categories=max_categories,
            task=task,  # type: ignore[arg-type]
        )
        selected = self.select(frame, list(spec.roles(self.columns(frame))))
        first = self.profile_pass(selected, ProfileBuilder(spec))
        second = self.profile_pass(selected, first.second_pass())
        return second.finish(created_at)

    def monitor(
        self,
        frame: Any,
        *,
        model: str | None = None,
        version: str | None = None,
        reference: ReferenceProfile | None = None,
        predict: PredictFn | None = None,
        prediction: str | None = None,
        features: Sequence[str] | None = None,
        job: BatchJob | None = None,
        pushgateway: str | None = None,
        job_name: str = DEFAULT_JOB,
        grouping_key: Mapping[str, str] | None = None,
        now: float | None = None,
        **options: Any,
    ) -> BatchJob:
        """Monitor a batch-scoring run over ``frame``; return the merged :class:`BatchJob`.

        ``predict(pandas_frame_of_features)`` returns the predictions of one batch (it
        runs in the workers); or ``prediction`` names a column already holding them.
        Without ``job``, a job is made from ``model``, ``version``, ``reference`` and
        ``options`` (further :class:`~modelmon.Monitor` keyword arguments), started (a push
        of zeros) and finished (a push of the totals) here. With ``job``, the states are
        merged into it and the caller calls :meth:`BatchJob.finish`.
        """
        self.require()
        own = job is None
        if job is None:
            job = make_job(
                model,
                version,
                reference,
                features,
                now,
                options,
                pushgateway,
                job_name,
                grouping_key,
            )
            job.start()
        columns = list(job.spec.feature_columns() or self.columns(frame))
        if prediction is not None and prediction not in columns:
            columns.append(prediction)
        selected = self.select(frame, columns)
        job.merge_states(self.partition_states(selected, job.spec, predict, prediction))
        if own:
            job.finish()
        return job
