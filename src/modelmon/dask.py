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

from collections.abc import Sequence
from typing import Any

from .errors import MissingExtraError
from .jobs import EngineRunner, JobSpec, PredictFn, partition_state
from .profile_builder import ProfileBuilder

SPLIT_EVERY = 8  # states merged per tree node


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


class _Dask(EngineRunner):
    def require(self) -> Any:
        try:
            import dask
        except ImportError as exc:
            raise MissingExtraError("dask", "dask") from exc
        return dask

    def select(self, frame: Any, columns: Sequence[str]) -> Any:
        return frame[list(columns)].to_delayed()

    def profile_pass(self, frame: Any, builder: ProfileBuilder) -> ProfileBuilder:
        dask = self.require()
        initial = builder.state()
        folded = [dask.delayed(_fold_partition)(initial, p) for p in frame]
        if not folded:
            return builder
        (merged,) = dask.compute(_tree(dask.delayed, folded))
        result: ProfileBuilder = merged
        return result

    def partition_states(
        self, frame: Any, spec: JobSpec, predict: PredictFn | None, prediction: str | None
    ) -> list[dict[str, Any]]:
        dask = self.require()
        tasks = [dask.delayed(_monitor_partition)(spec, p, predict, prediction) for p in frame]
        return list(dask.compute(*tasks))


def _monitor_partition(
    spec: JobSpec, part: Any, predict: PredictFn | None, prediction: str | None
) -> dict[str, Any]:
    batches = [part] if len(part) else []
    return partition_state(spec, batches, predict=predict, prediction_column=prediction)


_ENGINE = _Dask()
#: The reference profile of a Dask DataFrame (two passes, tree-merged on the cluster).
profile = _ENGINE.profile
#: A batch-scoring run over a Dask DataFrame as one :class:`~modelmon.jobs.BatchJob`;
#: ``predict`` runs in the workers, once per partition.
monitor = _ENGINE.monitor
