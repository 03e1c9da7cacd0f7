"""Ground truth: keep predictions until their label arrives, join them, score them.

Each folded prediction row is kept in a bounded *pending store* under its row id
(:func:`modelmon._internal.ids.row_ids`). When the label arrives,
:meth:`OutcomeAggregate.record` takes the prediction out of the store and turns the
pair into a confusion matrix (classification) or error sums (regression), windowed
performance gauges, the label delay histogram and the concept drift detector's input.

Outcomes that cannot be joined are counted by reason, never raised (unless
``strict=True``) and never silently dropped:

* ``invalid``: the actual is of the wrong type (None, NaN, a string for regression);
  an invalid outcome never touches the store, so a corrected label can still follow;
* ``unknown``: the id was never issued (or was forgotten long ago, see below);
* ``expired``: the prediction was evicted (store full) or outlived the TTL;
* ``duplicate``: the prediction was already labelled.

Evictions and expiries are attributed when an outcome for them *arrives*: the store
keeps the ids of its last ``capacity`` evicted, expired or labelled predictions (a
bounded tombstone record). Predictions that are evicted and never labelled are not
counted as unmatched outcomes (no outcome ever came), so a service that labels only a
sample of its traffic does not see a growing ``expired`` count. An outcome arriving
after even its tombstone was forgotten counts as ``unknown``.

>>> store = MemoryStore(capacity=2, ttl_seconds=60)
>>> store.put(["a", "b", "c"], [Prediction(label="x")] * 3, [0.0, 1.0, 2.0], now=2.0)
>>> [r.status for r in store.take(["a", "b", "b", "zz"], now=3.0)]
['expired', 'matched', 'duplicate', 'unknown']
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
import sqlite3
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from . import names
from ._internal.ids import row_ids
from .aggregates import Histogram
from .batch import Batch, FloatArray, OutputFrame, RenderContext
from .concept import DEFAULT_RESET_AFTER, Detector, make_detector
from .errors import ConfigurationError
from .points import Family, Point, ScalarPoint, SummaryPoint

logger = logging.getLogger("modelmon")

Task = Literal["classification", "regression"]
Status = Literal["matched", "expired", "unknown", "duplicate"]
REASONS: tuple[str, ...] = ("expired", "unknown", "duplicate", "invalid")
TASKS: tuple[str, ...] = ("classification", "regression")
DEFAULT_CAPACITY = 100_000
DEFAULT_TTL_SECONDS = 7 * 86400.0
LOG_INTERVAL_S = 60.0
_EPS = float(np.finfo(np.float64).eps)  # scikit-learn's probability clip for log loss


class OutcomeError(ValueError):
    """Raised by ``record(..., strict=True)`` when some outcomes could not be joined."""


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


class PendingStore(Protocol):
    """Predictions waiting for their label, by row id; bounded in size and age.

    ``put`` keeps predictions (evicting the oldest beyond ``capacity`` and expiring
    those older than ``ttl_seconds``); ``take`` removes and returns them, answering
    ``expired``/``duplicate`` for ids it evicted, expired or already handed out
    (remembered for the last ``capacity`` such ids) and ``unknown`` otherwise.
    ``evicted`` and ``expired`` count the predictions dropped unlabelled.
    """

    capacity: int
    ttl_seconds: float
    evicted: int
    expired: int

    def put(
        self,
        ids: Sequence[str],
        predictions: Sequence[Prediction],
        predicted_at: Sequence[float],
        now: float,
    ) -> None: ...

    def take(self, ids: Sequence[str], now: float) -> list[Lookup]: ...

    def expire(self, now: float) -> int: ...

    def __len__(self) -> int: ...

    def close(self) -> None: ...


def _check_bounds(capacity: int, ttl_seconds: float) -> None:
    if int(capacity) < 1:
        raise ConfigurationError(f"outcome store capacity must be >= 1, got {capacity}")
    if not ttl_seconds > 0:
        raise ConfigurationError(f"outcome store TTL must be > 0 seconds, got {ttl_seconds}")


class _Block:
    """The predicted rows of one fold, kept as the fold's own arrays (no per-row objects).

    Rows are addressed by (call seq, row in call); ``start`` rows at the front have
    been evicted; ``taken`` marks rows already labelled.
    """

    __slots__ = ("classes", "labels", "offsets", "order", "predicted_at", "proba", "rows",
                 "seqs", "sorted_seqs", "start", "taken", "values")  # fmt: skip

    def __init__(self, seqs: np.ndarray, rows: np.ndarray, frame: OutputFrame, now: float) -> None:
        self.seqs = seqs
        self.rows = rows
        self.offsets = np.concatenate([[0], np.cumsum(rows)[:-1]]) if rows.size else rows
        self.order = np.argsort(seqs, kind="stable")
        self.sorted_seqs = seqs[self.order]
        self.labels = frame.labels
        self.values = frame.values
        self.proba = frame.probabilities
        self.classes = tuple(frame.classes) if frame.classes is not None else None
        self.predicted_at = now
        self.start = 0
        self.taken = np.zeros(int(rows.sum()), dtype=bool)

    @property
    def n_rows(self) -> int:
        return int(self.taken.shape[0])

    @property
    def pending(self) -> int:
        return int(self.n_rows - self.start - self.taken[self.start :].sum())

    def row(self, seq: int, index: int | None) -> int | None:
        """Row number of (seq, index), or None when this block never had it."""
        pos = int(np.searchsorted(self.sorted_seqs, seq))
        if pos >= self.sorted_seqs.shape[0] or self.sorted_seqs[pos] != seq:
            return None
        call = int(self.order[pos])
        n = int(self.rows[call])
        if (index is None) != (n == 1) or (index is not None and not 0 <= index < n):
            return None
        return int(self.offsets[call]) + (index or 0)

    def prediction(self, row: int) -> Prediction:
        raw = self.labels if self.labels is not None else self.values
        label = class_label(raw[row]) if raw is not None else None
        value = None if self.values is None else float(self.values[row])
        proba = None if self.proba is None else tuple(float(p) for p in self.proba[row])
        return Prediction(label, value, proba, self.classes if proba is not None else None)


def _parse_generated(key: str, prefix: str) -> tuple[int, int | None] | None:
    """(seq, row index) of an id made by this process's monitor, else None."""
    if not prefix or not key.startswith(prefix):
        return None
    body = key[len(prefix) :]
    seq_part, _, index_part = body.partition(".")
    try:
        seq = int(seq_part, 16)
        index = int(index_part) if index_part else None
    except ValueError:
        return None
    return seq, index


class MemoryStore:
    """The default pending store, in this process.

    Predictions folded by the monitor are kept as whole fold batches (their arrays,
    no per-row objects: the fold pays O(1) per batch), addressed by the generated id's
    sequence number; other ids (given by the caller) go in an insertion-ordered dict.
    Capacity counts rows; the oldest rows are evicted first.

    >>> store = MemoryStore(capacity=10, ttl_seconds=100)
    >>> store.put(["p1"], [Prediction(value=2.5)], [0.0], now=0.0)
    >>> store.take(["p1"], now=200.0)[0].status  # older than the TTL
    'expired'
    """

    def __init__(
        self, capacity: int = DEFAULT_CAPACITY, ttl_seconds: float = DEFAULT_TTL_SECONDS
    ) -> None:
        _check_bounds(capacity, ttl_seconds)
        self.capacity = int(capacity)
        self.ttl_seconds = float(ttl_seconds)
        self.evicted = 0
        self.expired = 0
        self._pending: OrderedDict[str, tuple[Prediction, float]] = OrderedDict()
        self._gone: OrderedDict[str, Lookup] = OrderedDict()  # tombstones, bounded
        self._blocks: deque[_Block] = deque()
        self._block_rows = 0  # rows held by blocks (pending or taken, not evicted)
        # Seq ranges of evicted / expired blocks (their taken flags too), bounded.
        self._gone_blocks: deque[_Block] = deque()
        self._gone_rows = 0
        self._prefix = ""
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._pending) + sum(b.pending for b in self._blocks)

    def put_batch(
        self, prefix: str, seqs: np.ndarray, rows: np.ndarray, frame: OutputFrame, now: float
    ) -> None:
        """Keep the rows of one fold; ``seqs[c]`` is the id sequence of call ``c``."""
        with self._lock:
            if prefix != self._prefix:  # a new process (fork): ids of the old one are gone
                self._prefix = prefix
            block = _Block(seqs, rows, frame, now)
            if block.n_rows == 0:
                return
            self._blocks.append(block)
            self._block_rows += block.n_rows
            self._expire(now)
            self._evict_overflow()

    def put(
        self,
        ids: Sequence[str],
        predictions: Sequence[Prediction],
        predicted_at: Sequence[float],
        now: float,
    ) -> None:
        with self._lock:
            pending, gone = self._pending, self._gone
            for key, pred, at in zip(ids, predictions, predicted_at, strict=True):
                if key in pending:  # a re-issued id: the newest prediction wins
                    pending.move_to_end(key)
                elif key in gone:
                    del gone[key]
                pending[key] = (pred, float(at))
            self._expire(now)
            self._evict_overflow()

    def _evict_overflow(self) -> None:
        pending = self._pending
        while len(pending) + self._held_block_rows() > self.capacity:
            oldest_block = self._blocks[0] if self._blocks else None
            oldest_key = next(iter(pending)) if pending else None
            use_block = oldest_block is not None and (
                oldest_key is None or oldest_block.predicted_at <= pending[oldest_key][1]
            )
            if use_block:
                assert oldest_block is not None
                excess = len(pending) + self._held_block_rows() - self.capacity
                self._evict_block_rows(oldest_block, excess)
            else:
                key, _ = pending.popitem(last=False)
                self._bury(key, _EXPIRED)
                self.evicted += 1

    def _held_block_rows(self) -> int:
        return self._block_rows

    def _evict_block_rows(self, block: _Block, n: int) -> None:
        """Evict up to ``n`` of the oldest rows of ``block`` (all of it if it empties)."""
        take = min(n, block.n_rows - block.start)
        self.evicted += int(take - block.taken[block.start : block.start + take].sum())
        block.start += take
        self._block_rows -= take
        if block.start >= block.n_rows:
            self._retire(self._blocks.popleft())

    def _retire(self, block: _Block) -> None:
        self._gone_blocks.append(block)
        self._gone_rows += block.n_rows
        while self._gone_blocks and self._gone_rows - self._gone_blocks[0].n_rows >= self.capacity:
            self._gone_rows -= self._gone_blocks.popleft().n_rows

    def take(self, ids: Sequence[str], now: float) -> list[Lookup]:
        cutoff = now - self.ttl_seconds
        out: list[Lookup] = []
        with self._lock:
            self._expire(now)
            for key in ids:
                parsed = _parse_generated(key, self._prefix)
                if parsed is not None:
                    out.append(self._take_generated(*parsed))
                    continue
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

    def _take_generated(self, seq: int, index: int | None) -> Lookup:
        for block in reversed(self._blocks):
            row = block.row(seq, index)
            if row is None:
                continue
            if block.taken[row]:
                return _DUPLICATE
            block.taken[row] = True
            if row < block.start:
                return _EXPIRED
            return Lookup("matched", block.prediction(row), block.predicted_at)
        for block in reversed(self._gone_blocks):
            row = block.row(seq, index)
            if row is not None:
                return _DUPLICATE if block.taken[row] else _EXPIRED
        return _UNKNOWN

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
        while self._blocks and self._blocks[0].predicted_at < cutoff:
            block = self._blocks.popleft()
            n += block.pending
            self._block_rows -= block.n_rows - block.start
            self._retire(block)
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


class SqliteStore:
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

    def __init__(
        self,
        path: str | os.PathLike[str],
        capacity: int = DEFAULT_CAPACITY,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
    ) -> None:
        _check_bounds(capacity, ttl_seconds)
        self.path = os.fspath(path)
        self.capacity = int(capacity)
        self.ttl_seconds = float(ttl_seconds)
        self.evicted = 0
        self.expired = 0
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._last_sweep = -math.inf
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

    def put(
        self,
        ids: Sequence[str],
        predictions: Sequence[Prediction],
        predicted_at: Sequence[float],
        now: float,
    ) -> None:
        rows = [
            (key, float(at), _encode(pred))
            for key, pred, at in zip(ids, predictions, predicted_at, strict=True)
        ]
        with self._lock:
            conn = self._connection()
            with conn:
                conn.executemany(
                    "INSERT OR REPLACE INTO predictions (id, predicted_at, state, record) "
                    f"VALUES (?, ?, {_PENDING}, ?)",
                    rows,
                )
                self._size += len(rows)
                self._evict_overflow(conn)
            self._maybe_sweep(now)

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
            conn = self._connection()
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


# --- the windowed statistics ------------------------------------------------------------
class _Slot:
    """Sums of the outcomes labelled during one slot of the sliding window."""

    __slots__ = ("abs", "brier", "confusion", "err", "log_loss", "n", "proba_n", "sq")

    def __init__(self) -> None:
        self.n = 0
        self.confusion: Counter[tuple[str, str]] = Counter()
        self.proba_n = 0
        self.log_loss = 0.0
        self.brier = 0.0
        self.sq = 0.0
        self.abs = 0.0
        self.err = 0.0

    def add(self, other: _Slot, relabel: Callable[[str], str]) -> None:
        self.n += other.n
        for (a, p), c in other.confusion.items():
            self.confusion[(relabel(a), relabel(p))] += c
        self.proba_n += other.proba_n
        self.log_loss += other.log_loss
        self.brier += other.brier
        self.sq += other.sq
        self.abs += other.abs
        self.err += other.err

    def state(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "confusion": [[a, p, c] for (a, p), c in self.confusion.items()],
            "proba_n": self.proba_n,
            "log_loss": self.log_loss,
            "brier": self.brier,
            "sq": self.sq,
            "abs": self.abs,
            "err": self.err,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> _Slot:
        slot = cls()
        slot.n = int(state["n"])
        slot.confusion = Counter({(str(a), str(p)): int(c) for a, p, c in state["confusion"]})
        slot.proba_n = int(state["proba_n"])
        for key in ("log_loss", "brier", "sq", "abs", "err"):
            setattr(slot, key, float(state[key]))
        return slot


def classification_metrics(
    confusion: Mapping[tuple[str, str], int], positive: str | None
) -> dict[str, float]:
    """Accuracy and macro precision/recall/F1 (scikit-learn's ``zero_division=0``).

    The classes are those present as actual or predicted label, as scikit-learn infers
    them from the same pairs; ``positive`` adds that class's precision, recall and F1.

    >>> classification_metrics({("a", "a"): 3, ("a", "b"): 1}, None)["accuracy"]
    0.75
    """
    labels = sorted({a for a, _ in confusion} | {p for _, p in confusion})
    index = {c: i for i, c in enumerate(labels)}
    m = np.zeros((len(labels), len(labels)), dtype=np.float64)
    for (a, p), c in confusion.items():
        m[index[a], index[p]] += c
    tp = np.diag(m)
    precision = _ratio(tp, m.sum(axis=0))
    recall = _ratio(tp, m.sum(axis=1))
    f1 = _ratio(2 * tp, m.sum(axis=0) + m.sum(axis=1))
    out = {
        "accuracy": float(tp.sum() / m.sum()),
        "precision": float(precision.mean()),
        "recall": float(recall.mean()),
        "f1": float(f1.mean()),
    }
    if positive is not None:
        i = index.get(positive)
        out["precision_positive"] = 0.0 if i is None else float(precision[i])
        out["recall_positive"] = 0.0 if i is None else float(recall[i])
        out["f1_positive"] = 0.0 if i is None else float(f1[i])
    return out


def _ratio(num: FloatArray, den: FloatArray) -> FloatArray:
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def probability_losses(pred: Prediction, actual: str) -> tuple[float, float] | None:
    """(log loss, Brier score) of one prediction's probabilities, as scikit-learn sums them.

    Log loss clips probabilities to ``[eps, 1 - eps]``; an actual class the model has
    no column for gets probability 0 (the clipped maximum loss). The Brier score is the
    sum of squared differences to the one-hot actual, halved for two classes (so it is
    the usual binary Brier score).
    """
    proba, classes = pred.proba, pred.classes
    if proba is None or classes is None or len(proba) != len(classes):
        return None
    # A plain loop: a handful of classes per row, where numpy's call overhead dominates.
    p_actual, brier = 0.0, 0.0
    for c, p in zip(classes, proba, strict=True):
        if c == actual:
            p_actual = p
            brier += (1.0 - p) * (1.0 - p)
        else:
            brier += p * p
    log_loss = -math.log(min(max(p_actual, _EPS), 1.0 - _EPS))
    return log_loss, brier * 0.5 if len(proba) <= 2 else brier


# --- the aggregate -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Pair:
    """One joined outcome."""

    actual: Any
    prediction: Prediction
    predicted_at: float


class OutcomeAggregate:
    """Joins delayed labels to folded predictions; renders performance and concept drift.

    Implements the :class:`~modelmon.batch.Aggregate` protocol; ``record`` is the
    ground-truth entry point. Counters (confusion matrix, error sums, unmatched
    outcomes, delays, detections) are cumulative and merge by addition; the
    performance gauges cover the last ``window_seconds``, kept in ``slots`` slots
    aligned on ``int(now // slot_seconds)`` so every process's slots line up.

    >>> import numpy as np
    >>> from modelmon.batch import Batch, OutputFrame
    >>> agg = OutcomeAggregate("regression", detector=None)
    >>> agg.fold(Batch(now=10.0, latencies=np.zeros(1), rows=np.array([2]), errors=(None,),
    ...     ended_at=np.array([10.0]), call_ids=("c1",),
    ...     outputs=OutputFrame(2, values=np.array([1.0, 3.0]))))
    >>> agg.record(["c1.0", "c1.1", "nope"], [2.0, 3.0, 1.0], now=70.0)
    2
    >>> agg.regression_count, agg.regression_squared, agg.unmatched["unknown"]
    (2, 1.0, 1)
    """

    def __init__(
        self,
        task: Task | None = None,
        *,
        store: PendingStore | None = None,
        max_classes: int = 20,
        positive_class: object = None,
        window_seconds: float = 900.0,
        slots: int = 15,
        detector: str | Detector | None = "adwin",
        delay_buckets: Sequence[float] = names.OUTCOME_DELAY_BUCKETS,
        reset_after: int = DEFAULT_RESET_AFTER,
    ) -> None:
        if task is not None and task not in TASKS:
            raise ConfigurationError(f"task must be one of {TASKS} or None, got {task!r}")
        if max_classes < 1 or slots < 1 or not window_seconds > 0:
            raise ConfigurationError(
                "need max_classes >= 1, slots >= 1 and window_seconds > 0, got "
                f"{max_classes}, {slots}, {window_seconds}"
            )
        self.task: Task | None = task
        self.store: PendingStore = store if store is not None else MemoryStore()
        self.max_classes = int(max_classes)
        self.positive_class = None if positive_class is None else class_label(positive_class)
        self.slots = int(slots)
        self.slot_seconds = float(window_seconds) / self.slots
        self.reset_after = reset_after
        self.detector = self._make_detector(detector)
        self.classes: list[str] = []
        self.confusion: Counter[tuple[str, str]] = Counter()
        self.unmatched: Counter[str] = Counter(dict.fromkeys(REASONS, 0))
        self.regression_count = 0
        self.regression_squared = 0.0
        self.regression_absolute = 0.0
        self.window: dict[int, _Slot] = {}
        self.delay = Histogram(delay_buckets)
        self._merged_detections = 0
        self._merged_in_drift = False
        self._logged: dict[str, float] = {}
        self._lock = threading.RLock()

    def _make_detector(self, detector: str | Detector | None) -> Detector | None:
        if detector is None or not isinstance(detector, str):
            return detector
        return make_detector(detector, reset_after=self.reset_after)

    # --- concept drift across processes -----------------------------------------------
    @property
    def detections(self) -> int:
        """Detections of this process's detector plus those of merged processes."""
        own = self.detector.detections if self.detector is not None else 0
        return own + self._merged_detections

    @property
    def in_drift(self) -> bool:
        own = self.detector.in_drift if self.detector is not None else False
        return own or self._merged_in_drift

    # --- fold: keep the predictions ---------------------------------------------------
    def fold(self, batch: Batch) -> None:
        """Keep every predicted row of the batch in the store under its row id."""
        frame = batch.outputs
        if frame is None or frame.n_rows == 0:
            return
        if isinstance(self.store, MemoryStore) and batch.seqs is not None:
            with self._lock:
                if self.task is None:
                    self.task = _infer_task(frame)
                self._fold_blocks(batch, frame)
            return
        keyed = _row_keys(batch, frame.n_rows)
        if keyed is None:
            self._note("rows", "modelmon: outputs do not align with calls; rows not kept")
            return
        with self._lock:
            if self.task is None:
                self.task = _infer_task(frame)
            predictions = _predictions(frame, self.task)
            if predictions is None:
                self._note("outputs", "modelmon: outputs unusable for %s; not kept", self.task)
                return
            ids, predicted_at = keyed
            self.store.put(ids, predictions, predicted_at.tolist(), batch.now)

    def _fold_blocks(self, batch: Batch, frame: OutputFrame) -> None:
        """Fast path: hand the fold's arrays to the memory store as one block."""
        usable = (
            frame.values is not None
            if self.task == "regression"
            else (frame.labels is not None or frame.values is not None)
        )
        if not usable:
            self._note("outputs", "modelmon: outputs unusable for %s; not kept", self.task)
            return
        assert isinstance(self.store, MemoryStore) and batch.seqs is not None
        calls = np.flatnonzero(batch.rows > 0)  # failed calls predicted no rows
        if int(batch.rows.sum()) != frame.n_rows:
            self._note("rows", "modelmon: outputs do not align with calls; rows not kept")
            return
        all_seqs = np.asarray(batch.seqs)
        if all_seqs.dtype.kind == "i":  # else some ids were given by the caller (str)
            seqs = all_seqs.astype(np.int64)[calls]
            self.store.put_batch(batch.id_prefix, seqs, batch.rows[calls], frame, batch.now)
            return
        # Some ids were given by the caller: keep this batch row by row.
        keyed = _row_keys(batch, frame.n_rows)
        predictions = _predictions(frame, self.task)
        if keyed is not None and predictions is not None:
            self.store.put(keyed[0], predictions, keyed[1].tolist(), batch.now)

    # --- record: join the labels --------------------------------------------------------
    def record(
        self,
        ids: Sequence[str],
        actuals: Sequence[object],
        now: float,
        *,
        strict: bool = False,
    ) -> int:
        """Join outcomes to their predictions; returns how many were matched.

        Outcomes that cannot be joined are counted in ``unmatched`` by reason and
        logged (once per reason per minute); with ``strict=True`` an
        :class:`OutcomeError` follows once the whole batch has been counted.
        """
        with self._lock:
            before = self.unmatched.copy()
            pairs = self._join(list(ids), list(actuals), now)
            if pairs:
                self._score(pairs, now)
            self._prune(now)
            fresh = self.unmatched - before
        for reason, n in fresh.items():
            self._note(
                reason,
                "modelmon: %d outcome(s) not joined (reason=%s), counted in "
                "outcomes_unmatched_total; further ones logged at most once a minute",
                n,
                reason,
            )
        if strict and fresh:
            raise OutcomeError(f"outcomes not joined: {dict(fresh)}")
        return len(pairs)

    def _join(self, ids: list[Any], actuals: list[Any], now: float) -> list[_Pair]:
        n = min(len(ids), len(actuals))
        self.unmatched["invalid"] += max(len(ids), len(actuals)) - n
        raw = self.task is None  # normalised once a stored prediction tells the task
        keys: list[str] = []
        values: list[Any] = []
        for key, actual in zip(ids[:n], actuals[:n], strict=True):
            value = self._normalise(actual)
            if value is None:
                self.unmatched["invalid"] += 1
            elif not isinstance(key, str):
                self.unmatched["unknown"] += 1
            else:
                keys.append(key)
                values.append(value)
        pairs: list[_Pair] = []
        for lookup, actual in zip(self.store.take(keys, now), values, strict=True):
            if lookup.status != "matched" or lookup.prediction is None:
                self.unmatched[lookup.status] += 1
                continue
            pair = self._pair(lookup, actual, raw)
            if pair is None:
                self.unmatched["invalid"] += 1
            else:
                pairs.append(pair)
        return pairs

    def _normalise(self, actual: object) -> object:
        """The actual as the task compares it (None when invalid); kept raw if no task."""
        try:
            if self.task == "classification":
                return class_label(actual)
            if self.task == "regression":
                return target_value(actual)
            return actual
        except Exception:  # an exotic object whose conversion raised: invalid
            return None

    def _pair(self, lookup: Lookup, actual: object, raw: bool) -> _Pair | None:
        pred = lookup.prediction
        assert pred is not None
        if self.task is None:  # predictions from a store persisted by an earlier process
            self.task = "classification" if pred.label is not None else "regression"
        if raw:
            actual = self._normalise(actual)
        if actual is None:
            return None
        if self.task == "classification" and pred.label is None:
            return None
        if self.task == "regression" and (pred.value is None or not math.isfinite(pred.value)):
            return None
        return _Pair(actual, pred, lookup.predicted_at)

    def _score(self, pairs: list[_Pair], now: float) -> None:
        slot = self.window.setdefault(self._slot_key(now), _Slot())
        slot.n += len(pairs)
        if self.task == "classification":
            errors = [self._score_class(p, slot) for p in pairs]
        else:
            errors = [self._score_value(p, slot) for p in pairs]
        delays = np.fromiter((now - p.predicted_at for p in pairs), np.float64, len(pairs))
        self.delay.add(np.maximum(delays, 0.0))
        if self.detector is not None:
            self.detector.update_many(np.asarray(errors, dtype=np.float64))

    def _score_class(self, pair: _Pair, slot: _Slot) -> float:
        actual, pred = str(pair.actual), pair.prediction
        predicted = str(pred.label)
        cell = (self._cap(actual), self._cap(predicted))
        self.confusion[cell] += 1
        slot.confusion[cell] += 1
        losses = probability_losses(pred, actual)
        if losses is not None:
            slot.proba_n += 1
            slot.log_loss += losses[0]
            slot.brier += losses[1]
        return float(actual != predicted)

    def _score_value(self, pair: _Pair, slot: _Slot) -> float:
        predicted = pair.prediction.value
        assert predicted is not None  # _pair keeps only finite predicted values
        error = predicted - float(pair.actual)
        self.regression_count += 1
        self.regression_squared += error * error
        self.regression_absolute += abs(error)
        slot.sq += error * error
        slot.abs += abs(error)
        slot.err += error
        return abs(error)

    def _cap(self, label: str) -> str:
        if label == names.POOLED or label in self.classes:
            return label
        if len(self.classes) < self.max_classes:
            self.classes.append(label)
            return label
        return names.POOLED

    def _slot_key(self, now: float) -> int:
        return int(now // self.slot_seconds)

    def _prune(self, now: float) -> None:
        oldest = self._slot_key(now) - self.slots
        for key in [k for k in self.window if k <= oldest]:
            del self.window[key]

    def _note(self, key: str, message: str, *args: object) -> None:
        t = time.monotonic()
        last = self._logged.get(key)
        if last is not None and t - last < LOG_INTERVAL_S:
            return
        self._logged[key] = t
        logger.warning(message, *args)

    # --- reading ------------------------------------------------------------------------
    def windowed(self, now: float) -> _Slot:
        """The sums over the window ending at ``now``."""
        total, oldest = _Slot(), self._slot_key(now) - self.slots
        with self._lock:
            for key, slot in self.window.items():
                if key > oldest:
                    total.add(slot, str)
        return total

    def performance(self, now: float) -> dict[str, float]:
        """The windowed performance gauges by metric name (empty until one outcome)."""
        w = self.windowed(now)
        if w.n == 0:
            return {}
        if self.task == "regression":
            return {"rmse": math.sqrt(w.sq / w.n), "mae": w.abs / w.n, "bias": w.err / w.n}
        out = classification_metrics(w.confusion, self._positive())
        if w.proba_n:
            out["log_loss"] = w.log_loss / w.proba_n
            out["brier"] = w.brier / w.proba_n
        return out

    def _positive(self) -> str | None:
        """The positive class, for binary tasks only (given, or "1" when it is a class)."""
        if len(self.classes) > 2:
            return None
        if self.positive_class is not None:
            return self.positive_class
        return "1" if "1" in self.classes else None

    def families(self, ctx: RenderContext) -> Iterable[Family]:
        with self._lock:
            return list(self._families(ctx))

    def _families(self, ctx: RenderContext) -> Iterator[Family]:
        ns, labels = ctx.namespace, ctx.labels
        if self.task == "classification":
            yield Family(names.OUTCOMES, ns, self._confusion_points(labels))
        if self.task == "regression":
            yield from self._regression_families(ns, labels)
        yield Family(
            names.OUTCOMES_UNMATCHED,
            ns,
            tuple(ScalarPoint({**labels, names.REASON: r}, self.unmatched[r]) for r in REASONS),
        )
        perf = self.performance(ctx.now)
        if perf:
            yield Family(
                names.PERFORMANCE,
                ns,
                tuple(ScalarPoint({**labels, names.METRIC: k}, v) for k, v in perf.items()),
            )
        yield Family(names.OUTCOME_DELAY, ns, (self.delay.point(labels),))
        if self.detector is not None:
            detector = {**labels, names.DETECTOR: self.detector.name}
            yield Family(
                names.CONCEPT_DRIFT_DETECTED, ns, (ScalarPoint(detector, self.detections),)
            )
            yield Family(names.CONCEPT_DRIFT, ns, (ScalarPoint(detector, float(self.in_drift)),))

    def _confusion_points(self, labels: Mapping[str, str]) -> tuple[Point, ...]:
        return tuple(
            ScalarPoint({**labels, names.ACTUAL: a, names.PREDICTED: p}, c)
            for (a, p), c in sorted(self.confusion.items())
        )

    def _regression_families(self, ns: str, labels: Mapping[str, str]) -> Iterator[Family]:
        n = self.regression_count
        yield Family(
            names.REGRESSION_SQUARED_ERROR, ns, (SummaryPoint(labels, n, self.regression_squared),)
        )
        yield Family(
            names.REGRESSION_ABSOLUTE_ERROR,
            ns,
            (SummaryPoint(labels, n, self.regression_absolute),),
        )
        yield Family(names.REGRESSION_OUTCOMES, ns, (ScalarPoint(labels, n),))

    # --- merging and state --------------------------------------------------------------
    def merge(self, other: OutcomeAggregate) -> None:
        """Add another process's aggregate: counts and sums add, windows add slot-wise.

        Detectors are per process: their detections add and ``in_drift`` is OR-ed.
        """
        with self._lock:
            if self.task is None:
                self.task = other.task
            for (a, p), c in other.confusion.items():
                self.confusion[(self._cap(a), self._cap(p))] += c
            self.unmatched.update(other.unmatched)
            self.regression_count += other.regression_count
            self.regression_squared += other.regression_squared
            self.regression_absolute += other.regression_absolute
            for key, slot in other.window.items():
                self.window.setdefault(key, _Slot()).add(slot, self._cap)
            self.delay.merge(other.delay)
            self._merged_detections += other.detections
            self._merged_in_drift = self._merged_in_drift or other.in_drift

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "task": self.task or "",
                "classes": list(self.classes),
                "confusion": [[a, p, c] for (a, p), c in self.confusion.items()],
                "unmatched": dict(self.unmatched),
                "regression": [
                    self.regression_count,
                    self.regression_squared,
                    self.regression_absolute,
                ],
                "slot_seconds": self.slot_seconds,
                "window": [[k, s.state()] for k, s in self.window.items()],
                "delay": self.delay.state(),
                "detections": self.detections,
                "in_drift": self.in_drift,
            }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Replace this aggregate's counts with ``state``; the detector starts afresh."""
        with self._lock:
            self.task = _as_task(state["task"])
            self.classes = [str(c) for c in state["classes"]]
            self.confusion = Counter({(str(a), str(p)): int(c) for a, p, c in state["confusion"]})
            self.unmatched = Counter(dict.fromkeys(REASONS, 0))
            self.unmatched.update({str(k): int(v) for k, v in state["unmatched"].items()})
            count, squared, absolute = state["regression"]
            self.regression_count = int(count)
            self.regression_squared = float(squared)
            self.regression_absolute = float(absolute)
            if float(state["slot_seconds"]) != self.slot_seconds:
                raise ValueError("cannot load outcome windows of a different slot length")
            self.window = {int(k): _Slot.from_state(s) for k, s in state["window"]}
            self.delay.load_state(state["delay"])
            if self.detector is not None:
                self.detector = make_detector(self.detector.name, reset_after=self.reset_after)
            self._merged_detections = int(state["detections"])
            self._merged_in_drift = bool(state["in_drift"])


# --- fold helpers -------------------------------------------------------------------------
def _row_keys(batch: Batch, n_rows: int) -> tuple[list[str], FloatArray] | None:
    """Row ids and prediction times of the batch's output rows (None if misaligned)."""
    ok = np.fromiter((e is None for e in batch.errors), dtype=bool, count=batch.n_calls)
    calls = np.flatnonzero(ok & (batch.rows > 0))
    ids = [key for c in calls.tolist() for key in row_ids(batch.call_ids[c], int(batch.rows[c]))]
    if len(ids) != n_rows:
        return None
    row_call = batch.row_call
    if row_call is None or row_call.shape[0] != n_rows:
        row_call = np.repeat(calls, batch.rows[calls])
    return ids, batch.ended_at[row_call].astype(np.float64)


def _as_task(value: object) -> Task | None:
    if value == "classification":
        return "classification"
    if value == "regression":
        return "regression"
    return None


def _infer_task(frame: OutputFrame) -> Task | None:
    if frame.labels is not None or frame.probabilities is not None:
        return "classification"
    if frame.values is not None:
        return "regression"
    return None


def _predictions(frame: OutputFrame, task: Task | None) -> list[Prediction] | None:
    if task == "regression":
        if frame.values is None:
            return None
        return [Prediction(value=v) for v in frame.values.tolist()]
    if task != "classification":
        return None
    raw = frame.labels if frame.labels is not None else frame.values
    if raw is None:
        return None
    labels = [class_label(x) for x in raw.tolist()]
    if frame.probabilities is None or frame.classes is None:
        return [Prediction(label=label) for label in labels]
    classes = tuple(frame.classes)
    return [
        Prediction(label=label, proba=tuple(row), classes=classes)
        for label, row in zip(labels, frame.probabilities.tolist(), strict=True)
    ]
