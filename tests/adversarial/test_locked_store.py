"""A SQLite outcome store locked by another process: the fold neither stalls nor loses rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import modelmon
from modelmon.aggregates.outcome_store import SqliteStore


def test_a_locked_store_neither_stalls_the_fold_nor_loses_its_predictions(
    tmp_path: Path,
) -> None:
    path = tmp_path / "pending.db"
    mon = modelmon.Monitor(
        "locked", "1", registry=False, outcome_store=f"sqlite:///{path}", classes=["a", "b"],
        task="classification",
    )  # fmt: skip
    store = mon.outcomes.store
    assert isinstance(store, SqliteStore)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    try:
        for i in range(20):
            mon.observe({"x": float(i)}, "a" if i % 2 else "b", prediction_id=f"order-{i}")
        mon.fold()  # used to wait 10 s under the fold lock, then drop these rows
        assert sum(mon.health.internal_errors.values()) == 0
        assert getattr(store, "write_retries", 0) >= 1  # put off, not dropped
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    statuses = mon.record_outcomes([f"order-{i}" for i in range(20)], ["a"] * 20)
    assert statuses == ["matched"] * 20
    # The fold's write waits at most this long for another process's lock.
    assert store.write_wait_s <= 0.1
    mon.close()
