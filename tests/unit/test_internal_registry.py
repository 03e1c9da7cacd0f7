"""modelmon._internal.registry: the event API every plug point goes through."""

from __future__ import annotations

import os
import sys

import pytest

import modelmon
from modelmon._internal import registry


def test_emit_calls_subscribers_in_order_once_each() -> None:
    seen: list[str] = []

    def first(x: int) -> None:
        seen.append(f"first {x}")

    def second(x: int) -> None:
        seen.append(f"second {x}")

    registry.on("test_order", first)
    registry.on("test_order", second)
    registry.on("test_order", first)  # subscribed once however often
    registry.emit("test_order", 1)
    registry.off("test_order", first)
    registry.emit("test_order", 2)
    registry.off("test_order", second)
    registry.emit("test_order", 3)
    assert seen == ["first 1", "second 1", "second 2"]


def test_a_failing_subscriber_is_reported_or_raised() -> None:
    calls: list[str] = []

    def broken() -> None:
        raise ValueError("boom")

    def fine() -> None:
        calls.append("fine")

    registry.on("test_errors", broken)
    registry.on("test_errors", fine)
    try:
        errors: list[Exception] = []
        registry.emit("test_errors", on_error=errors.append)
        assert [str(e) for e in errors] == ["boom"] and calls == ["fine"]
        with pytest.raises(ValueError, match="boom"):
            registry.emit("test_errors")  # configuration-time events propagate
    finally:
        registry.off("test_errors", broken)
        registry.off("test_errors", fine)


def test_monitor_added_replays_live_monitors_and_closed_is_emitted() -> None:
    mon = modelmon.Monitor("events", "1", registry=None)
    added: list[object] = []
    closed: list[object] = []
    registry.on(registry.MONITOR_ADDED, added.append)
    registry.on(registry.MONITOR_CLOSED, closed.append)
    try:
        assert mon in added  # subscribed after it was made
        later = modelmon.Monitor("events", "2", registry=None)
        assert added[-1] is later
        later.close()
        assert closed == [later]
    finally:
        registry.off(registry.MONITOR_ADDED, added.append)
        registry.off(registry.MONITOR_CLOSED, closed.append)
        mon.close()


def test_after_fold_is_emitted_for_each_fold() -> None:
    mon = modelmon.Monitor("events_fold", "1", registry=None)
    folded: list[object] = []
    registry.on(registry.AFTER_FOLD, folded.append)
    try:
        mon.observe({"a": 1.0}, 0.5)
        mon.fold()
        mon.fold()  # nothing pending: no fold, no event
        assert folded.count(mon) == 1
    finally:
        registry.off(registry.AFTER_FOLD, folded.append)
        mon.close()


def test_provided_falls_back_to_the_default_or_names_what_is_missing() -> None:
    assert registry.provided("test_nothing", 7) == 7
    with pytest.raises(LookupError, match="test_nothing"):
        registry.provided("test_nothing")
    registry.provide("test_something", len)
    assert registry.provided("test_something") is len


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_after_fork_runs_in_the_child_only_and_restarts_the_monitor() -> None:
    mon = modelmon.Monitor("events_fork", "1", registry=None)
    mon.observe({"a": 1.0}, 0.5)  # pending in the parent
    parent_prefix = mon.ids.prefix
    marks: list[str] = []

    def mark() -> None:
        marks.append("child")

    registry.on(registry.AFTER_FORK, mark)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what it sees, then leave without cleanup
        try:
            os.close(read)
            state = (
                f"{marks}|{mon.buffer.pending_calls()}|{mon.ids.prefix != parent_prefix}|"
                f"{mon.in_flight}"
            )
            os.write(write, state.encode())
        finally:
            sys.stdout.flush()
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        child_state = f.read()
    os.waitpid(pid, 0)
    registry.off(registry.AFTER_FORK, mark)
    marks_in_child, pending, reseeded, in_flight = child_state.split("|")
    assert marks_in_child == "['child']"
    # The subscribers ran in order: the folder reseeded the ids, the multi-process
    # exporter restarted the monitor (the parent's pending call is the parent's).
    assert (pending, reseeded, in_flight) == ("0", "True", "0")
    assert marks == []  # never in the parent
    assert mon.buffer.pending_calls() == 1
    mon.close()
