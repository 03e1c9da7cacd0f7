"""Spark: reference profiles and batch-scoring monitoring on the user's cluster.

Both functions run modelmon on the executors with ``DataFrame.mapInArrow`` (Arrow batches,
no shuffle of raw rows): each task folds its partition into a small mergeable state, the
driver collects one state per partition and merges them. Install with
``pip install 'modelmon[spark]'``.

* :func:`profile`: the two passes of a :class:`~modelmon.profile_builder.ProfileBuilder`
  (two Spark jobs over ``df``; cache ``df`` first if it is expensive to recompute). The
  profile equals the one built from the same rows on one machine or on Dask, byte for byte.
* :func:`monitor`: a batch-scoring run as one :class:`~modelmon.jobs.BatchJob`, pushed
  to a Prometheus Pushgateway once the run is merged.

Example (``spark`` a ``SparkSession``)::

    from modelmon import spark as mm_spark
    ref = mm_spark.profile(train_df, prediction="score", exclude=["id", "label"])
    ref.save("reference.json")
    job = mm_spark.monitor(batch_df, model="churn", version="7", reference=ref,
                           predict=model.predict, pushgateway="pushgateway:9091")
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from .errors import MissingExtraError
from .jobs import DEFAULT_JOB, BatchJob, JobSpec, PredictFn, decode_state, encode_state, make_job
from .profile import ReferenceProfile
from .profile_builder import ProfileBuilder, ProfileSpec, merge_all

STATE_SCHEMA = "state binary"
COALESCE_ROWS = 1 << 17  # rows per builder update on an executor


def _require() -> None:
    try:
        import pyarrow  # noqa: F401
        import pyspark  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError("pyspark", "spark") from exc


def _state_batch(data: bytes) -> Any:
    import pyarrow as pa

    return pa.RecordBatch.from_arrays([pa.array([data], type=pa.binary())], names=["state"])


def _builder_task(initial: bytes) -> Any:
    """The ``mapInArrow`` function of one pass: fold every batch, yield one state."""

    def run(batches: Iterable[Any]) -> Iterator[Any]:
        from .jobs import decode_state, encode_state
        from .profile_builder import ProfileBuilder

        builder = ProfileBuilder.from_state(decode_state(initial))
        for table in _coalesced(batches):
            builder.update(table)
        yield _state_batch(encode_state(builder.state()))

    return run


def _coalesced(batches: Iterable[Any], rows: int = COALESCE_ROWS) -> Iterator[Any]:
    """Spark's Arrow batches (10,000 rows by default) joined into tables of ``rows`` rows:
    the builder's work per update is per column, so fewer, larger updates cost less."""
    import pyarrow as pa

    pending: list[Any] = []
    held = 0
    for batch in batches:
        if batch.num_rows:
            pending.append(batch)
            held += batch.num_rows
        if held >= rows:
            yield pa.Table.from_batches(pending)
            pending, held = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


def _run_pass(frame: Any, builder: ProfileBuilder) -> ProfileBuilder:
    rows = frame.mapInArrow(_builder_task(encode_state(builder.state())), STATE_SCHEMA).collect()
    parts = [ProfileBuilder.from_state(decode_state(bytes(r["state"]))) for r in rows]
    return merge_all(parts or [builder])


def profile(
    df: Any,
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
    """The reference profile of a Spark DataFrame (two passes, merged on the driver).

    Arguments as :class:`~modelmon.profile_builder.ProfileSpec`; ``created_at`` fixes
    the profile's timestamp (default: now).
    """
    _require()
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
    frame = df.select(*spec.roles(list(df.columns)))
    first = _run_pass(frame, ProfileBuilder(spec))
    second = _run_pass(frame, first.second_pass())
    return second.finish(created_at)


def _monitor_task(spec: JobSpec, predict: PredictFn | None, prediction: str | None) -> Any:
    def run(batches: Iterable[Any]) -> Iterator[Any]:
        from .jobs import encode_state, partition_state

        state = partition_state(
            spec,
            (b for b in batches if b.num_rows),
            predict=predict,
            prediction_column=prediction,
        )
        yield _state_batch(encode_state(state))

    return run


def monitor(
    df: Any,
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
    """Monitor a batch-scoring run over ``df``; return the merged :class:`BatchJob`.

    ``predict(pandas_frame_of_features)`` returns the predictions of one Arrow batch
    (it runs on the executors); or ``prediction`` names a column already holding them.
    Without ``job``, a job is made from ``model``, ``version``, ``reference`` and
    ``options`` (further :class:`~modelmon.Monitor` keyword arguments), started (a push
    of zeros) and finished (a push of the totals) here. With ``job``, the states are
    merged into it and the caller calls :meth:`BatchJob.finish`.
    """
    _require()
    own = job is None
    if job is None:
        job = make_job(
            model, version, reference, features, now, options, pushgateway, job_name, grouping_key
        )
        job.start()
    columns = list(job.spec.feature_columns() or df.columns)
    if prediction is not None and prediction not in columns:
        columns.append(prediction)
    task = _monitor_task(job.spec, predict, prediction)
    rows = df.select(*columns).mapInArrow(task, STATE_SCHEMA).collect()
    job.merge_states([decode_state(bytes(r["state"])) for r in rows])
    if own:
        job.finish()
    return job
