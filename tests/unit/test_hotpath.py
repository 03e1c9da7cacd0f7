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

    async def apredict(self, rows: Any) -> list[float]:
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
    kinds = ("plain", "method", "async", "async_method")
    for kind in kinds:
        mon = modelmon.Monitor(f"hot_{kind}", "1", registry=None, strict=True, trace=trace)
        model = Model()
        if kind == "plain":  # untraced: the inlined sync body
            mon.wrap(_plain_predict)(rows)
        elif kind == "method":  # wrapt + the shared recorder
            model.predict = mon.wrap(model.predict)  # type: ignore[method-assign]
            model.predict(rows)
        elif kind == "async":  # untraced: the inlined async body
            asyncio.run(mon.wrap(_async_predict)(rows))
        else:  # wrapt + the shared recorder, awaited
            asyncio.run(mon.wrap(model.apredict)(rows))
        (record,) = mon.buffer.pending()
        assert record.monitor is mon and record.latency >= 0.0
        records.append(_fields(record))
        mon.close()
    assert len(set(map(repr, records))) == 1, dict(zip(kinds, records, strict=True))
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


def test_the_inlined_async_body_nests_fails_and_copies_like_the_shared_one() -> None:
    """A plain ``async def`` takes the inlined body: same nesting, failures and copies."""
    mon = modelmon.Monitor("hot_async_body", "1", registry=None, strict=True)

    async def inner(rows: Any) -> float:
        await asyncio.sleep(0)
        return 0.5

    async def outer(rows: Any) -> float:
        if rows.shape[1] == 3:
            raise ValueError("bad width")
        return await winner(rows)  # nested in a call of the same monitor: counted once

    winner, wouter = mon.wrap(inner), mon.wrap(outer)
    rows = np.ones((1, 2))
    assert asyncio.run(wouter(rows)) == 0.5
    rows[:] = 7.0  # the caller reuses its buffer: the record kept a copy
    with pytest.raises(ValueError, match="bad width"):
        asyncio.run(wouter(np.ones((1, 3))))
    assert asyncio.run(winner(rows)) == 0.5
    ok, failed, direct = mon.buffer.pending()  # 4 calls: the nested one is its outer one
    assert (ok.inp.tolist(), ok.call, ok.result, ok.error) == ([[1.0, 1.0]], None, 0.5, None)
    assert failed.error == "ValueError" and failed.call == {} and failed.result is None
    assert direct.inp.tolist() == [[7.0, 7.0]] and direct.error is None
    mon.fold()
    assert mon.traffic.requests == 3 and mon.traffic.errors == {"ValueError": 1}
    mon.close()
