"""modelmon.fold: buffered records become one batch; subscribers never break a fold."""

from __future__ import annotations

import numpy as np

import modelmon
from modelmon import fold
from modelmon._internal import registry
from modelmon.buffer import OBSERVED


def test_a_batch_has_one_entry_per_call_and_rows_of_the_successful_ones() -> None:
    mon = modelmon.Monitor("fold_batch", "1", registry=None, strict=True)
    mon.observe({"a": 1.0}, 0.5, latency_s=0.01)
    mon.observe({"a": 2.0}, None, latency_s=0.02, error="ValueError")
    mon.observe([{"a": 3.0}, {"a": 4.0}], [0.1, 0.2], latency_s=0.03)
    items = mon.buffer.take()
    batch = fold.make_batch(mon, items, now=100.0)
    assert batch.latencies.tolist() == [0.01, 0.02, 0.03]
    assert batch.errors == (None, "ValueError", None)
    assert batch.rows.tolist() == [1, 0, 2]
    assert batch.row_call.tolist() == [0, 2, 2]
    assert batch.features is not None and batch.features.n_rows == 3
    assert len(batch.call_ids) == 3 and batch.call_ids[0] == mon.format_id(batch.seqs[0])
    mon.close()


def test_a_failing_after_fold_subscriber_is_counted_not_raised() -> None:
    mon = modelmon.Monitor("fold_sub", "1", registry=None)

    def broken(m: modelmon.Monitor) -> None:
        raise RuntimeError("subscriber")

    registry.on(registry.AFTER_FOLD, broken)
    try:
        mon.observe({"a": 1.0}, 0.5)
        mon.fold()
    finally:
        registry.off(registry.AFTER_FOLD, broken)
    assert mon.traffic.requests == 1
    assert mon.health.internal_errors["after_fold"] == 1
    mon.close()


def test_prediction_callable_applies_to_wrapped_calls_not_observed_ones() -> None:
    mon = modelmon.Monitor("fold_pred", "1", registry=None, prediction=lambda r: r["y"])
    assert fold.output_of(mon, None, {"y": 0.5}) == 0.5
    assert fold.output_of(mon, {}, {"y": 0.5}) == 0.5

    assert fold.output_of(mon, OBSERVED, 0.25) == 0.25
    assert fold.output_of(mon, None, np.float64(1.0)) is None  # not subscriptable: counted
    assert mon.health.internal_errors["extract_prediction"] == 1
    mon.close()
