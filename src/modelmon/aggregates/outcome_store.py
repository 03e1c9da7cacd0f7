"""Pending predictions waiting for their label: a bounded in-memory store and a SQLite one.

Rows predicted under a caller-supplied id (``observe(..., prediction_id=...)``) wait
here until their label arrives (:meth:`modelmon.aggregates.outcomes.OutcomeAggregate.record`);
generated ids carry their prediction and need no store. ``take`` answers ``matched``,
``expired`` (evicted from a full store or older than the TTL), ``duplicate`` (already
labelled) or ``unknown`` (never issued, or forgotten long ago): see
:mod:`modelmon.aggregates.outcomes` for how these become ``modelmon_outcomes_unmatched_total``.

>>> store = MemoryStore(capacity=2, ttl_seconds=60)
>>> store.put(["a", "b", "c"], [Prediction(label="x")] * 3, [0.0, 1.0, 2.0], now=2.0)
>>> [r.status for r in store.take(["a", "b", "b", "zz"], now=3.0)]
['expired', 'matched', 'duplicate', 'unknown']
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import ConfigurationError

Status = Literal["matched", "expired", "unknown", "duplicate"]
DEFAULT_CAPACITY = 100_000
DEFAULT_TTL_SECONDS = 7 * 86400.0


# --- the pending store -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Prediction:
    """What is kept of one predicted row until its label arrives."""

    label: str | None = None
    value: float | None = None
    proba: tuple[float, ...] | None = None
    classes: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Lookup:
    """The store's answer for one id: matched (with its prediction) or why not."""

    status: Status
    prediction: Prediction | None = None
    predicted_at: float = 0.0


_UNKNOWN = Lookup("unknown")
_EXPIRED = Lookup("expired")
_DUPLICATE = Lookup("duplicate")


Row = tuple[str, Prediction, float]  # (id, prediction, predicted_at)


class PendingStore:
    """Predictions waiting for their label, by row id; bounded in size and age.

    ``put`` keeps predictions (evicting the oldest beyond ``capacity`` and expiring
    those older than ``ttl_seconds``); ``take`` removes and returns them, answering
    ``expired``/``duplicate`` for ids it evicted, expired or already handed out
    (remembered for the last ``capacity`` such ids) and ``unknown`` otherwise.
    ``evicted`` and ``expired`` count the predictions dropped unlabelled. A store
    implements ``put_rows``, ``take``, ``expire``, ``__len__`` and ``close``.
    """

    def __init__(
        self, capacity: int = DEFAULT_CAPACITY, ttl_seconds: float = DEFAULT_TTL_SECONDS
    ) -> None:
        if int(capacity) < 1:
            raise ConfigurationError(f"outcome store capacity must be >= 1, got {capacity}")
        if not ttl_seconds > 0:
            raise ConfigurationError(f"outcome store TTL must be > 0 seconds, got {ttl_seconds}")
        self.capacity = int(capacity)
        self.ttl_seconds = float(ttl_seconds)
        self.evicted = 0
        self.expired = 0

    def put(
        self,
        ids: Sequence[str],
        predictions: Sequence[Prediction],
        predicted_at: Sequence[float],
        now: float,
    ) -> None:
        """Keep ``predictions[i]`` made at ``predicted_at[i]`` under ``ids[i]``."""
        rows = [
            (key, pred, float(at))
            for key, pred, at in zip(ids, predictions, predicted_at, strict=True)
        ]
        self.put_rows(rows, now)

    def put_rows(self, rows: list[Row], now: float) -> None:
        raise NotImplementedError

    def take(self, ids: Sequence[str], now: float) -> list[Lookup]:
        raise NotImplementedError

    def expire(self, now: float) -> int:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class MemoryStore(PendingStore):
    """The default pending store, in this process: an insertion-ordered dict by id.

    It holds only what an id cannot carry: predictions made under a caller-supplied id
    (generated ids carry their prediction). Bounded in rows: beyond ``capacity`` the
    oldest rows are evicted; every lookup is one dict access (no scan), and nothing is
    allocated until a prediction arrives.

    >>> store = MemoryStore(capacity=10, ttl_seconds=100)
    >>> store.put(["p1"], [Prediction(value=2.5)], [0.0], now=0.0)
    >>> store.take(["p1"], now=200.0)[0].status  # older than the TTL
    'expired'
    """

    def __init__(
        self, capacity: int = DEFAULT_CAPACITY, ttl_seconds: float = DEFAULT_TTL_SECONDS
    ) -> None:
        super().__init__(capacity, ttl_seconds)
        self._pending: OrderedDict[str, tuple[Prediction, float]] = OrderedDict()
        self._gone: OrderedDict[str, Lookup] = OrderedDict()  # tombstones, bounded
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._pending)

    def put_rows(self, rows: list[Row], now: float) -> None:
        with self._lock:
            pending, gone = self._pending, self._gone
            for key, pred, at in rows:
                if key in pending:  # a re-issued id: the newest prediction wins
                    pending.move_to_end(key)
                elif key in gone:
                    del gone[key]
                pending[key] = (pred, at)
            self._expire(now)
            while len(pending) > self.capacity:
                key, _ = pending.popitem(last=False)
                self._bury(key, _EXPIRED)
                self.evicted += 1

    def take(self, ids: Sequence[str], now: float) -> list[Lookup]:
        cutoff = now - self.ttl_seconds
        out: list[Lookup] = []
        with self._lock:
            self._expire(now)
            for key in ids:
                entry = self._pending.pop(key, None)
                if entry is None:
                    out.append(self._gone.get(key, _UNKNOWN))
                elif entry[1] < cutoff:
                    self.expired += 1
                    self._bury(key, _EXPIRED)
                    out.append(_EXPIRED)
                else:
                    self._bury(key, _DUPLICATE)
                    out.append(Lookup("matched", entry[0], entry[1]))
        return out

    def expire(self, now: float) -> int:
        """Drop predictions older than the TTL (oldest first); returns how many."""
        with self._lock:
            return self._expire(now)

    def _expire(self, now: float) -> int:
        cutoff, pending, n = now - self.ttl_seconds, self._pending, 0
        while pending:
            key = next(iter(pending))
            if pending[key][1] >= cutoff:
                break
            del pending[key]
            self._bury(key, _EXPIRED)
            n += 1
        self.expired += n
        return n

    def _bury(self, key: str, tombstone: Lookup) -> None:
        gone = self._gone
        gone[key] = tombstone
        gone.move_to_end(key)
        if len(gone) > self.capacity:
            gone.popitem(last=False)

    def close(self) -> None:
        """Nothing to release (kept for the protocol)."""


_PENDING, _LABELLED, _GONE = 0, 1, 2
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS predictions (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        predicted_at REAL NOT NULL,
        state INTEGER NOT NULL,
        record TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS predictions_by_state ON predictions (state, seq)",
)
_SQL_CHUNK = 500  # ids per IN (...) query: far below SQLite's parameter limit


class SqliteStore(PendingStore):
    """The pending store persisted in a local SQLite file, so a restart keeps it.

    One table (``predictions``: id, insertion sequence, predicted_at, state, the
    prediction as JSON); state 0 is pending, 1 labelled and 2 evicted/expired (the
    latter two are the tombstones, payload dropped, trimmed to ``capacity``). WAL mode,
    batched writes, one lock per store object; after ``fork`` the child opens its own
    connection. Several processes may share one file (ids are unique per process):
    a label posted to any of them then finds the prediction.

    Expiry sweeps run at most once a minute of the ``now`` passed in; a lookup checks
    the TTL of each entry itself, so an old prediction is never matched in between.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "pending.db")
    >>> SqliteStore(path).put(["p1"], [Prediction(label="cat")], [0.0], now=0.0)
    >>> SqliteStore(path).take(["p1"], now=1.0)[0].prediction.label
    'cat'
    """

    sweep_interval_s = 60.0
    # A fold's write waits at most this long for a lock another process holds; the rows
    # then wait in memory (at most ``capacity``) and go in with the next write or lookup.
    write_wait_s = 0.05
    lookup_wait_s = 10.0

    def __init__(
        self,
        path: str | os.PathLike[str],
        capacity: int = DEFAULT_CAPACITY,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
    ) -> None:
        super().__init__(capacity, ttl_seconds)
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._last_sweep = -math.inf
        self._backlog: list[tuple[str, float, str]] = []
        self.write_retries = 0  # writes put off because the file was locked
        with self._lock:
            self._size = self._count(_PENDING)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            conn = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            with conn:
                for statement in _SCHEMA:
                    conn.execute(statement)
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def _count(self, state: int) -> int:
        row = (
            self._connection()
            .execute("SELECT COUNT(*) FROM predictions WHERE state = ?", (state,))
            .fetchone()
        )
        return int(row[0])

    def __len__(self) -> int:
        with self._lock:
            return self._count(_PENDING)

    def put_rows(self, rows: list[Row], now: float) -> None:
        encoded = [(key, at, _encode(pred)) for key, pred, at in rows]
        with self._lock:
            self._backlog.extend(encoded)
            if self._flush(self.write_wait_s):
                with contextlib.suppress(sqlite3.OperationalError):  # locked: next time
                    self._maybe_sweep(now)

    def _flush(self, wait_s: float) -> bool:
        """Write the waiting rows; False (rows kept, bounded) while the file is locked."""
        if not self._backlog:
            return True
        conn = self._connection()
        conn.execute(f"PRAGMA busy_timeout = {int(wait_s * 1000)}")
        try:
            with conn:
                conn.executemany(
                    "INSERT OR REPLACE INTO predictions (id, predicted_at, state, record) "
                    f"VALUES (?, ?, {_PENDING}, ?)",
                    self._backlog,
                )
                self._size += len(self._backlog)
                self._evict_overflow(conn)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                self._backlog = []
                raise
            self.write_retries += 1
            overflow = len(self._backlog) - self.capacity
            if overflow > 0:  # the oldest go, as a full store would evict them
                del self._backlog[:overflow]
                self.evicted += overflow
            return False
        self._backlog = []
        return True

    def _evict_overflow(self, conn: sqlite3.Connection) -> None:
        # _size is an upper bound (replaced ids, other processes); recount only when
        # it says the store may be over capacity.
        if self._size <= self.capacity:
            return
        self._size = self._count(_PENDING)
        excess = self._size - self.capacity
        if excess <= 0:
            return
        cur = conn.execute(
            f"UPDATE predictions SET state = {_GONE}, record = NULL WHERE seq IN ("
            f"SELECT seq FROM predictions WHERE state = {_PENDING} ORDER BY seq LIMIT ?)",
            (excess,),
        )
        self.evicted += cur.rowcount
        self._size -= cur.rowcount

    def take(self, ids: Sequence[str], now: float) -> list[Lookup]:
        cutoff = now - self.ttl_seconds
        with self._lock:
            self._flush(self.lookup_wait_s)  # a lookup (never under the fold lock) may wait
            conn = self._connection()
            conn.execute(f"PRAGMA busy_timeout = {int(self.lookup_wait_s * 1000)}")
            found = self._select(conn, ids)
            out: list[Lookup] = []
            labelled: list[tuple[str]] = []
            expired: list[tuple[str]] = []
            for key in ids:
                row = found.get(key)
                if row is None:
                    out.append(_UNKNOWN)
                    continue
                at, state, record = row
                if state == _LABELLED:
                    out.append(_DUPLICATE)
                elif state == _GONE or at < cutoff:
                    out.append(_EXPIRED)
                    if state == _PENDING:
                        expired.append((key,))
                else:
                    out.append(Lookup("matched", _decode(record), at))
                    labelled.append((key,))
                found[key] = (at, _GONE if out[-1] is _EXPIRED else _LABELLED, None)
            with conn:
                self._mark(conn, labelled, _LABELLED)
                self._mark(conn, expired, _GONE)
            self.expired += len(expired)
            self._size -= len(labelled) + len(expired)
            self._maybe_sweep(now)
        return out

    @staticmethod
    def _select(
        conn: sqlite3.Connection, ids: Sequence[str]
    ) -> dict[str, tuple[float, int, str | None]]:
        unique = list(dict.fromkeys(ids))
        found: dict[str, tuple[float, int, str | None]] = {}
        for start in range(0, len(unique), _SQL_CHUNK):
            chunk = unique[start : start + _SQL_CHUNK]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT id, predicted_at, state, record FROM predictions WHERE id IN ({marks})"
            for key, at, state, record in conn.execute(query, chunk):
                found[key] = (float(at), int(state), record)
        return found

    @staticmethod
    def _mark(conn: sqlite3.Connection, keys: list[tuple[str]], state: int) -> None:
        if keys:
            conn.executemany(
                f"UPDATE predictions SET state = {state}, record = NULL WHERE id = ?", keys
            )

    def expire(self, now: float) -> int:
        """Expire predictions older than the TTL and trim the tombstones; returns how many."""
        with self._lock:
            return self._sweep(now)

    def _maybe_sweep(self, now: float) -> None:
        if now - self._last_sweep >= min(self.sweep_interval_s, self.ttl_seconds):
            self._sweep(now)

    def _sweep(self, now: float) -> int:
        self._last_sweep = now
        conn = self._connection()
        with conn:
            cur = conn.execute(
                f"UPDATE predictions SET state = {_GONE}, record = NULL "
                f"WHERE state = {_PENDING} AND predicted_at < ?",
                (now - self.ttl_seconds,),
            )
            n = max(cur.rowcount, 0)
            conn.execute(
                f"DELETE FROM predictions WHERE seq IN (SELECT seq FROM predictions "
                f"WHERE state != {_PENDING} ORDER BY seq DESC LIMIT -1 OFFSET ?)",
                (self.capacity,),
            )
        self.expired += n
        self._size -= n
        return n

    def close(self) -> None:
        """Close this process's connection (the file stays)."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None


def _encode(pred: Prediction) -> str:
    return json.dumps([pred.label, pred.value, pred.proba, pred.classes])


def _decode(record: str | None) -> Prediction:
    label, value, proba, classes = json.loads(record or "[null, null, null, null]")
    return Prediction(
        label,
        None if value is None else float(value),
        None if proba is None else tuple(float(p) for p in proba),
        None if classes is None else tuple(str(c) for c in classes),
    )


def open_store(
    spec: str | None,
    capacity: int = DEFAULT_CAPACITY,
    ttl_seconds: float = DEFAULT_TTL_SECONDS,
) -> PendingStore:
    """The pending store named by ``spec``: ``None``/``"memory"`` or ``"sqlite:///abs/path.db"``.

    Everything after ``sqlite://`` is the file path, so three slashes give an
    absolute path. Raises :class:`~modelmon.errors.ConfigurationError` (a ValueError)
    for anything else or a file that cannot be opened.

    >>> type(open_store(None)).__name__
    'MemoryStore'
    """
    if spec is None or spec == "memory":
        return MemoryStore(capacity, ttl_seconds)
    if not isinstance(spec, str) or not spec.startswith("sqlite://"):
        raise ConfigurationError(
            f"outcome_store must be None, 'memory' or 'sqlite:///absolute/path.db', got {spec!r}"
        )
    path = spec[len("sqlite://") :]
    if not path:
        raise ConfigurationError(f"outcome_store {spec!r} names no file (sqlite:///path.db)")
    try:
        return SqliteStore(path, capacity, ttl_seconds)
    except sqlite3.Error as exc:
        raise ConfigurationError(f"cannot open outcome store {path!r}: {exc}") from exc


# --- normalising labels ------------------------------------------------------------------
def class_label(x: object) -> str | None:
    """A class label as the string modelmon compares, or None if ``x`` is not one.

    Booleans become "1"/"0" and integral numbers their integer string (as predicted
    labels are formatted), so ``1``, ``1.0``, ``True`` and ``"1"`` are one class.

    >>> [class_label(v) for v in (1, 1.0, True, "cat", 0.5, float("nan"), None)]
    ['1', '1', '1', 'cat', '0.5', None, None]
    """
    if isinstance(x, str):
        return str(x)
    if isinstance(x, (bool, np.bool_)):
        return "1" if x else "0"
    if isinstance(x, (numbers.Integral, np.integer)):
        return str(int(x))
    if isinstance(x, (numbers.Real, np.floating)):
        v = float(x)
        if not math.isfinite(v):
            return None
        return str(int(v)) if v.is_integer() else repr(v)
    if isinstance(x, bytes):
        return x.decode("utf-8", errors="replace")
    return None


def target_value(x: object) -> float | None:
    """A regression target as a finite float, or None (strings, bools, NaN, inf, None)."""
    if isinstance(x, (bool, np.bool_, str, bytes)):
        return None
    if not isinstance(x, (numbers.Real, np.integer, np.floating)):
        return None
    v = float(x)
    return v if math.isfinite(v) else None
