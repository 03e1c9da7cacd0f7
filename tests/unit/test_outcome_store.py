"""Pending prediction stores: matching, eviction, TTL expiry, tombstones, persistence."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modelmon.aggregates.outcome_store import (
    MemoryStore,
    PendingStore,
    Prediction,
    SqliteStore,
    open_store,
)
from modelmon.errors import ConfigurationError

StoreFactory = Callable[[int, float], PendingStore]


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    made: list[PendingStore] = []

    def make(capacity: int = 100, ttl: float = 1000.0) -> PendingStore:
        if request.param == "memory":
            store: PendingStore = MemoryStore(capacity, ttl)
        else:
            store = SqliteStore(tmp_path / f"s{len(made)}.db", capacity, ttl)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def preds(n: int) -> list[Prediction]:
    return [Prediction(label=f"c{i}", proba=(0.25, 0.75), classes=("a", "b")) for i in range(n)]


def statuses(store: PendingStore, ids: list[str], now: float) -> list[str]:
    return [lookup.status for lookup in store.take(ids, now)]


def test_match_unknown_and_duplicate(make_store: StoreFactory) -> None:
    store = make_store(100, 1000.0)
    store.put(["a", "b"], preds(2), [1.0, 2.0], now=2.0)
    assert len(store) == 2
    out = store.take(["b", "zz", "b", "a"], now=5.0)
    assert [r.status for r in out] == ["matched", "unknown", "duplicate", "matched"]
    assert out[0].prediction == preds(2)[1] and out[0].predicted_at == 2.0
    assert out[3].prediction == preds(2)[0]
    assert len(store) == 0
    assert statuses(store, ["a"], now=6.0) == ["duplicate"]


def test_capacity_evicts_oldest_and_attributes_expired(make_store: StoreFactory) -> None:
    store = make_store(3, 1000.0)
    ids = [f"p{i}" for i in range(5)]
    store.put(ids[:2], preds(2), [0.0, 1.0], now=1.0)
    store.put(ids[2:], preds(3), [2.0, 3.0, 4.0], now=4.0)
    assert len(store) == 3
    assert store.evicted == 2
    assert statuses(store, ids, now=5.0) == ["expired", "expired", "matched", "matched", "matched"]


def test_ttl_expiry_at_lookup_and_by_sweep(make_store: StoreFactory) -> None:
    store = make_store(100, 10.0)
    store.put(["old", "new"], preds(2), [0.0, 5.0], now=5.0)
    # At now=12 "old" is 12 s old (> TTL 10), "new" 7 s: only "old" expired.
    assert statuses(store, ["old", "new"], now=12.0) == ["expired", "matched"]
    store.put(["x", "y"], preds(2), [20.0, 25.0], now=25.0)
    assert store.expire(now=32.0) == 1  # x is 12 s old
    assert len(store) == 1
    assert statuses(store, ["x", "y"], now=32.0) == ["expired", "matched"]
    assert store.expired == 2


def test_prediction_exactly_at_ttl_is_still_matched(make_store: StoreFactory) -> None:
    store = make_store(10, 10.0)
    store.put(["a"], preds(1), [0.0], now=0.0)
    assert statuses(store, ["a"], now=10.0) == ["matched"]


def test_tombstones_are_bounded_then_unknown(make_store: StoreFactory) -> None:
    store = make_store(2, 1000.0)
    ids = [f"p{i}" for i in range(6)]
    store.put(ids, preds(6), [float(i) for i in range(6)], now=6.0)
    store.expire(now=7.0)  # the SQLite store trims its tombstones in the sweep
    # p0..p3 were evicted; only the last `capacity` tombstones (p2, p3) are remembered.
    assert statuses(store, ids, now=8.0) == [
        "unknown",
        "unknown",
        "expired",
        "expired",
        "matched",
        "matched",
    ]


def test_reissued_id_is_pending_again(make_store: StoreFactory) -> None:
    store = make_store(10, 1000.0)
    store.put(["a"], [Prediction(label="x")], [0.0], now=0.0)
    assert statuses(store, ["a"], now=1.0) == ["matched"]
    store.put(["a"], [Prediction(label="y")], [2.0], now=2.0)
    out = store.take(["a"], now=3.0)
    assert out[0].status == "matched" and out[0].prediction == Prediction(label="y")


def test_regression_prediction_round_trips(make_store: StoreFactory) -> None:
    store = make_store(10, 1000.0)
    store.put(["r", "n"], [Prediction(value=-2.5), Prediction(value=math.nan)], [0, 0], now=0.0)
    out = store.take(["r", "n"], now=1.0)
    assert out[0].prediction == Prediction(value=-2.5)
    assert out[1].prediction is not None and math.isnan(out[1].prediction.value or 0.0)


def test_sqlite_store_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "pending.db"
    first = SqliteStore(path, capacity=10, ttl_seconds=100.0)
    first.put(["a", "b", "c"], preds(3), [1.0, 2.0, 3.0], now=3.0)
    assert statuses(first, ["a"], now=4.0) == ["matched"]
    first.close()
    second = SqliteStore(path, capacity=10, ttl_seconds=100.0)
    assert len(second) == 2
    out = second.take(["b", "a", "c", "d"], now=5.0)
    assert [r.status for r in out] == ["matched", "duplicate", "matched", "unknown"]
    assert out[0].prediction == preds(3)[1] and out[0].predicted_at == 2.0
    second.close()
    assert len(open_store(f"sqlite://{path}", 10, 100.0)) == 0


def test_sqlite_store_is_thread_safe(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "t.db", capacity=10_000, ttl_seconds=1e6)
    matched: list[int] = []

    def work(k: int) -> None:
        ids = [f"t{k}-{i}" for i in range(200)]
        store.put(ids, [Prediction(value=float(i)) for i in range(200)], [0.0] * 200, now=0.0)
        matched.append(sum(r.status == "matched" for r in store.take(ids, now=1.0)))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert matched == [200] * 4
    store.close()


def test_large_batches_use_chunked_queries(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "big.db", capacity=5_000, ttl_seconds=1e6)
    ids = [f"id{i}" for i in range(3_000)]
    store.put(ids, [Prediction(value=float(i)) for i in range(3_000)], [0.0] * 3_000, now=0.0)
    out = store.take(ids[::-1], now=1.0)
    assert [r.prediction.value for r in out if r.prediction] == [
        float(i) for i in range(2999, -1, -1)
    ]
    store.close()


def test_open_store_specs(tmp_path: Path) -> None:
    assert isinstance(open_store(None, 5, 10.0), MemoryStore)
    memory = open_store("memory", 5, 10.0)
    assert isinstance(memory, MemoryStore) and memory.capacity == 5 and memory.ttl_seconds == 10.0
    store = open_store(f"sqlite://{tmp_path}/x.db", 7, 20.0)
    assert isinstance(store, SqliteStore) and store.path == f"{tmp_path}/x.db"
    store.close()
    for bad in ("redis://localhost", "sqlite://", "/tmp/x.db", ""):
        with pytest.raises(ValueError, match=r"outcome_store|names no file"):
            open_store(bad, 5, 10.0)
    with pytest.raises(ConfigurationError, match="cannot open outcome store"):
        open_store(f"sqlite://{tmp_path}/missing/dir/x.db", 5, 10.0)
    with pytest.raises(ConfigurationError, match="capacity"):
        open_store(None, 0, 10.0)
    with pytest.raises(ConfigurationError, match="TTL"):
        open_store(None, 5, 0.0)
