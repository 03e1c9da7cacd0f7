"""modelmon.buffer: the call record's layout and the buffer's limits and counts."""

from __future__ import annotations

import modelmon
from modelmon import buffer
from modelmon.buffer import RECORD_WIDTH, CallBuffer, NestingGuard, Record


def test_field_positions_match_the_named_record() -> None:
    assert len(Record._fields) == RECORD_WIDTH
    positions = [getattr(buffer, f.upper()) for f in Record._fields]
    assert positions == list(range(RECORD_WIDTH))


def test_a_wrapped_call_is_buffered_with_named_fields() -> None:
    mon = modelmon.Monitor("buf", "1", registry=None, strict=True)

    @mon
    def predict(row: dict[str, float]) -> float:
        return row["a"] * 2

    predict({"a": 1.5})
    (record,) = mon.buffer.pending()
    assert record.inp == {"a": 1.5} and record.call is None and record.result == 3.0
    assert record.error is None and record.monitor is mon and record.latency >= 0.0
    assert isinstance(record.seq, int)
    mon.close()


def test_soft_limit_calls_on_full_and_take_empties_in_order() -> None:
    full: list[int] = []
    buf = CallBuffer(buffer_size=2)
    buf.on_full = lambda: full.append(len(buf.items))
    for i in range(3):
        buf.append((i, None, i, 0.0, None, buf.next_seq(), None))
    assert full == [2 * RECORD_WIDTH, 3 * RECORD_WIDTH]  # from the soft limit on
    assert buf.hard_items == 2 * 16 * RECORD_WIDTH and not buf.past_hard_limit()
    items = buf.take()
    assert items[0::RECORD_WIDTH] == [0, 1, 2] and buf.items == [] and buf.folded == 3
    assert buf.take() == []


def test_in_flight_counts_started_calls_not_recorded() -> None:
    buf = CallBuffer(buffer_size=8)
    seqs = [buf.next_seq() for _ in range(3)]  # three calls started
    buf.append((None, None, None, 0.0, None, seqs[0], None))  # one finished
    assert buf.in_flight() == 2
    assert buf.in_flight() == 2  # reading takes a number: not a call
    buf.take()
    assert buf.in_flight() == 2


def test_restart_forgets_the_parents_pending_and_in_flight_calls() -> None:
    buf = CallBuffer(buffer_size=8)
    for _ in range(4):
        buf.next_seq()
    buf.append((None, None, None, 0.0, None, 1, None))
    buf.woken()  # the parent had woken its folder: the child's must be woken again
    buf.restart()
    assert buf.items == [] and buf.in_flight() == 0
    assert not buf.wake_sent and buf.limit == [buf.soft_items]
    seq = buf.next_seq()
    buf.append((None, None, None, 0.0, None, seq, None))
    assert buf.in_flight() == 0 and buf.pending_calls() == 1


def test_nesting_guard_switches_on_at_the_second_function() -> None:
    guard = NestingGuard("test_nesting")
    guard.add_function()
    assert guard.on == [False]
    guard.add_function()
    assert guard.on == [True]
    assert guard.active.get() is False
