"""modelmon._hotpath: every wrapper records the same call the same way."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

import modelmon
from modelmon.buffer import Record


class Model:
    def predict(self, rows: Any) -> list[float]:
        return [0.5] * len(rows)


def _fields(record: Record) -> tuple[Any, ...]:
    """What a record says about the call (not its timing nor its sequence number)."""
    inp = record.inp.tolist() if isinstance(record.inp, np.ndarray) else record.inp
    return (inp, record.call, record.result, record.error)


def _plain_predict(rows: Any) -> list[float]:
    return [0.5] * len(rows)


async def _async_predict(rows: Any) -> list[float]:
    return [0.5] * len(rows)


@pytest.mark.parametrize("trace", [None, "attributes"])
def test_plain_inlined_wrapt_and_async_wrappers_record_the_same_call(trace: Any) -> None:
    rows = np.array([[1.0, 2.0], [3.0, 4.0]])
    records = []
    for kind in ("plain", "method", "async"):
        mon = modelmon.Monitor(f"hot_{kind}", "1", registry=None, strict=True, trace=trace)
        if kind == "plain":
            mon.wrap(_plain_predict)(rows)
        elif kind == "method":
            model = Model()
            model.predict = mon.wrap(model.predict)  # type: ignore[method-assign]
            model.predict(rows)
        else:
            asyncio.run(mon.wrap(_async_predict)(rows))
        (record,) = mon.buffer.pending()
        assert record.monitor is mon and record.latency >= 0.0
        records.append(_fields(record))
        mon.close()
    assert records[0] == records[1] == records[2]
    assert records[0] == ([[1.0, 2.0], [3.0, 4.0]], None, [0.5, 0.5], None)


@pytest.mark.parametrize("trace", [None, "span"])
def test_numpy_inputs_are_copied_at_call_time(trace: Any) -> None:
    mon = modelmon.Monitor("hot_copy", "1", registry=None, strict=True, trace=trace)
    predict = mon.wrap(Model().predict)
    rows = np.ones((1, 2))
    predict(rows)
    rows[:] = 7.0  # the caller reuses its buffer
    (record,) = mon.buffer.pending()
    assert record.inp.tolist() == [[1.0, 1.0]]
    mon.close()


@pytest.mark.parametrize("trace", [None, "span"])
def test_a_cancelled_call_counts_as_aborted_traced_or_not(trace: Any) -> None:
    mon = modelmon.Monitor("hot_cancel", "1", registry=None, strict=True, trace=trace)

    async def predict(rows: Any) -> float:
        raise asyncio.CancelledError

    wrapped = mon.wrap(predict)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(wrapped([[1.0]]))
    mon.fold()
    assert mon.traffic.aborted == {"cancelled": 1}
    assert mon.traffic.errors == {}
    mon.close()


def test_features_callable_keeps_the_call_whole() -> None:
    mon = modelmon.Monitor(
        "hot_features", "1", registry=None, strict=True, features=lambda _, rows: rows
    )
    predict = mon.wrap(lambda tag, rows: [0.5] * len(rows))
    predict("tag", [[1.0]])
    (record,) = mon.buffer.pending()
    assert record.inp == ("tag", [[1.0]]) and record.call == {}
    mon.close()
