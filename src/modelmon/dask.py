"""Dask: reference profiles and batch-scoring monitoring on the user's Dask cluster.

Each partition of a Dask DataFrame is folded by a task into a small mergeable state
(``to_delayed`` + one task per partition), and the states are merged by a tree of
tasks on the cluster (:func:`profile`) or on the client (:func:`monitor`, whose states
are small). Whatever scheduler is active is used: a ``distributed.Client`` when one is
connected, else Dask's default. Install with ``pip install 'modelmon[dask]'``.

The profile equals the one built from the same rows on one machine or on Spark, byte
for byte (see :mod:`modelmon.profile_builder`).

Example::

    import dask.dataframe as dd
    from modelmon import dask as mm_dask
    train = dd.read_parquet("s3://bucket/train/")
    ref = mm_dask.profile(train, prediction="score", exclude=["id", "label"])
    job = mm_dask.monitor(batch, model="churn", version="7", reference=ref,
                          predict=model.predict, pushgateway="pushgateway:9091")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .errors import MissingExtraError
from .jobs import DEFAULT_JOB, BatchJob, JobSpec, PredictFn, make_job, partition_state
from .profile import ReferenceProfile
from .profile_builder import ProfileBuilder, ProfileSpec

SPLIT_EVERY = 8  # states merged per tree node


def _require() -> Any:
    try:
        import dask
    except ImportError as exc:
        raise MissingExtraError("dask", "dask") from exc
    return dask


def _fold_partition(initial: dict[str, Any], part: Any) -> ProfileBuilder:
    builder = ProfileBuilder.from_state(initial)
    if len(part):
        builder.update(part)
    return builder


def _merge(*builders: ProfileBuilder) -> ProfileBuilder:
    first = builders[0]
    for other in builders[1:]:
        first.merge(other)
    return first


def _tree(delayed: Any, items: list[Any]) -> Any:
    """Merge delayed builders as a tree of tasks, ``SPLIT_EVERY`` at a time."""
    while len(items) > 1:
        items = [
            delayed(_merge)(*items[i : i + SPLIT_EVERY]) for i in range(0, len(items), SPLIT_EVERY)
        ]
    return items[0]


def _run_pass(parts: list[Any], builder: ProfileBuilder) -> ProfileBuilder:
    dask = _require()
    initial = builder.state()
    folded = [dask.delayed(_fold_partition)(initial, p) for p in parts]
    if not folded:
        return builder
    (merged,) = dask.compute(_tree(dask.delayed, folded))
    result: ProfileBuilder = merged
    return result


def profile(
    ddf: Any,
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
    """The reference profile of a Dask DataFrame (two passes, tree-merged on the cluster).

    Arguments as :class:`~modelmon.profile_builder.ProfileSpec`.
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
    parts = ddf[list(spec.roles(list(ddf.columns)))].to_delayed()
    first = _run_pass(parts, ProfileBuilder(spec))
    second = _run_pass(parts, first.second_pass())
    return second.finish(created_at)


def _monitor_partition(
    spec: JobSpec, part: Any, predict: PredictFn | None, prediction: str | None
) -> dict[str, Any]:
    batches = [part] if len(part) else []
    return partition_state(spec, batches, predict=predict, prediction_column=prediction)


def monitor(
    ddf: Any,
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
    """Monitor a batch-scoring run over ``ddf``; as :func:`modelmon.spark.monitor`.

    ``predict(pandas_frame_of_features)`` runs in the workers, once per partition.
    """
    dask = _require()
    own = job is None
    if job is None:
        job = make_job(
            model, version, reference, features, now, options, pushgateway, job_name, grouping_key
        )
        job.start()
    columns = list(job.spec.feature_columns() or ddf.columns)
    if prediction is not None and prediction not in columns:
        columns.append(prediction)
    spec = job.spec
    tasks = [
        dask.delayed(_monitor_partition)(spec, p, predict, prediction)
        for p in ddf[columns].to_delayed()
    ]
    job.merge_states(list(dask.compute(*tasks)))
    if own:
        job.finish()
    return job
