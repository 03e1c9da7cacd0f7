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

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from .errors import MissingExtraError
from .jobs import EngineRunner, JobSpec, PredictFn, decode_state, encode_state
from .profile_builder import ProfileBuilder, merge_all

STATE_SCHEMA = "state binary"
COALESCE_ROWS = 1 << 17  # rows per builder update on an executor


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


class _Spark(EngineRunner):
    def require(self) -> Any:
        try:
            import pyarrow  # noqa: F401
            import pyspark  # noqa: F401
        except ImportError as exc:
            raise MissingExtraError("pyspark", "spark") from exc

    def select(self, frame: Any, columns: Sequence[str]) -> Any:
        return frame.select(*columns)

    def profile_pass(self, frame: Any, builder: ProfileBuilder) -> ProfileBuilder:
        task = _builder_task(encode_state(builder.state()))
        rows = frame.mapInArrow(task, STATE_SCHEMA).collect()
        parts = [ProfileBuilder.from_state(decode_state(bytes(r["state"]))) for r in rows]
        return merge_all(parts or [builder])

    def partition_states(
        self, frame: Any, spec: JobSpec, predict: PredictFn | None, prediction: str | None
    ) -> list[dict[str, Any]]:
        task = _monitor_task(spec, predict, prediction)
        rows = frame.mapInArrow(task, STATE_SCHEMA).collect()
        return [decode_state(bytes(r["state"])) for r in rows]


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


_ENGINE = _Spark()
#: The reference profile of a Spark DataFrame (two Spark jobs, merged on the driver).
profile = _ENGINE.profile
#: A batch-scoring run over a Spark DataFrame as one :class:`~modelmon.jobs.BatchJob`;
#: ``predict`` runs on the executors, once per Arrow batch.
monitor = _ENGINE.monitor
