"""The fold: a monitor's buffered calls turned into one :class:`~modelmon.batch.Batch`.

The hot path only buffers records (see :mod:`modelmon.buffer`). A fold takes every
pending record under the monitor's fold lock, extracts inputs and outputs in one
vectorised pass, hands the batch to every aggregate, then emits
``registry.AFTER_FOLD`` (the multi-process exporter writes its state file there).

Folds run in the background folder (woken past the buffer's soft limit, and every
second), in readers (scrapes, explicit :meth:`Monitor.fold`), and in callers only past
the hard limit. The functions here take the monitor: its configuration
(``features_fn``, ``prediction_fn``, ``schema``, ``task``...) is read at fold time.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from . import fold_parts
from ._internal import registry
from ._internal.folder import FOLDER
from ._internal.health import logger
from ._internal.ids import MARK
from .batch import Batch, FeatureFrame, OutputFrame
from .buffer import OBSERVED, RECORD_WIDTH, SEQ, RawRecord
from .extract import (
    SCALAR_OUTPUT_TYPES,
    Chunk,
    UnsupportedInput,
    features_frame,
    input_chunk,
    output_rows,
    outputs_frame,
    stacked_arrays,
)
from .fold_parts import PartQueue
from .schema_learning import learned_chunks

if TYPE_CHECKING:
    from .monitor import Monitor


class FoldLock:
    """The fold lock of one monitor, with readers served ahead of callers.

    A reader (scrape, in-flight read, explicit fold) waits for at most the fold in
    progress: while it waits, callers past the hard limit wait for it (their records
    are already buffered, so memory stays bounded by the number of serving threads);
    callers below the hard limit never fold.
    """

    def __init__(self) -> None:
        self.truncation_logged = False  # wider inputs than max_features: logged once
        self.restart()

    def restart(self) -> None:
        """New locks (after ``fork``: a parent thread may have held them)."""
        self.lock = threading.RLock()
        self.readers = 0
        self.handoff = threading.Condition(threading.Lock())
        self.parts = PartQueue()  # folds run in parts of bounded rows (fold_parts)

    def let_readers_in(self) -> None:
        """Between fold parts: hand the lock to the readers waiting for it, take it back."""
        if not self.readers:
            return
        lock: Any = self.lock
        state = lock._release_save()  # fully, even when held recursively (batch jobs)
        try:
            with self.handoff:
                while self.readers:
                    self.handoff.wait()
        finally:
            lock._acquire_restore(state)

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Hold the fold lock as a reader (ahead of callers folding past the hard limit)."""
        with self.handoff:
            self.readers += 1
        try:
            self.lock.acquire()
        finally:
            with self.handoff:
                self.readers -= 1
                if not self.readers:
                    self.handoff.notify_all()
        try:
            yield
        finally:
            self.lock.release()

    def wait_for_readers(self) -> None:
        """Let a waiting reader take the lock first (a caller about to fold inline)."""
        if self.readers:
            with self.handoff:
                while self.readers:
                    self.handoff.wait()


def fold(monitor: Monitor, now: float | None = None, *, fresh: bool = True) -> None:
    """Fold every pending call of ``monitor`` into its aggregates, as a reader.

    ``fresh`` (an explicit fold): the next read of the drift statistics shows every row
    folded so far, not the background folder's last refresh.
    """
    with monitor.folding.reading():
        fold_locked(monitor, time.time() if now is None else now)
        if fresh:
            require_fresh(monitor)


def require_fresh(monitor: Monitor) -> None:
    """The next read of the drift statistics shows every row folded so far."""
    for aggregate in list(monitor.aggregates.values()):
        require = getattr(aggregate, "require_fresh_statistics", None)
        if require is not None:
            require()


def fold_for_scrape(monitor: Monitor) -> None:
    """Fold for a scrape: the later slices of a huge call go to the background folder.
    Never raises (a failure is counted: the scrape renders what was folded)."""
    try:
        with monitor.folding.reading():
            fold_locked(monitor, time.time(), whole=False)
    except Exception as exc:
        monitor.health.error("fold", exc)
    if monitor.folding.parts.todo:
        FOLDER.wake(monitor)


def fold_for_labels(
    monitor: Monitor, prediction_ids: Sequence[object], actuals: Sequence[object]
) -> None:
    """Fold before label lookups, only when the fold can change their answers.

    A caller-supplied id is found only in the rows the fold keeps: it needs a fold while
    a pending call carries such an id. A generated id (``~...``) carries its prediction:
    a fold matters for it only while calls are pending and the class set is not settled
    (more than two classes, whose probabilities the fold keeps, or an actual class the
    fold may still learn). So a POST of junk labels never folds nor waits for the fold
    lock, and a binary model's labels do not fold one request at a time.
    """
    # One C call: calls finishing meanwhile are not this POST's predictions.
    seqs = monitor.buffer.items[SEQ::RECORD_WIDTH]
    for records in monitor.folding.parts.pending():  # taken by a fold, not folded yet
        seqs.extend(records[SEQ::RECORD_WIDTH])
    if seqs and _may_join_pending(monitor, prediction_ids, actuals, seqs):
        fold(monitor)
    else:  # as after a fold (read-your-writes), without waiting for the fold lock
        require_fresh(monitor)


def _may_join_pending(
    monitor: Monitor, ids: Sequence[object], actuals: Sequence[object], seqs: list[Any]
) -> bool:
    if str in set(map(type, seqs)):  # a pending call under a caller-supplied id
        return True
    generated = [
        a for i, a in zip(ids, actuals, strict=False) if isinstance(i, str) and i.startswith(MARK)
    ]
    return bool(generated) and not _settled(monitor, generated)


def _settled(monitor: Monitor, actuals: list[object]) -> bool:
    """Whether folding pending calls cannot change how these actuals are scored."""
    task, scheme = monitor.outcomes.task, monitor.outcomes.ids
    if task == "regression":
        return True  # the id carries the value; nothing is kept for it
    return task == "classification" and scheme is not None and scheme.settled(actuals)


def buffer_full(monitor: Monitor) -> None:
    """Past the soft limit: wake the background folder, once per fold; return at once.

    The fold stays off the request path. Only past the hard limit (the folder has not
    caught up) does the caller fold itself, waiting for the lock: the oldest pending
    work is folded synchronously, never dropped. Never raises.
    """
    buffer = monitor.buffer
    try:
        if len(buffer.items) < buffer.hard_items:
            if not buffer.wake_sent:  # callers check the hard limit only until the fold
                buffer.woken()
                FOLDER.wake(monitor)
            return
        monitor.folding.wait_for_readers()
        with monitor.folding.lock:
            fold_locked(monitor, time.time())
    except Exception as exc:
        monitor.health.error("fold", exc)


def append(monitor: Monitor, record: RawRecord) -> None:
    """Buffer one record outside the hot path (observed and failed calls)."""
    buffer = monitor.buffer
    buffer.extend(record)
    if len(buffer.items) >= buffer.limit[0]:
        buffer_full(monitor)


def background_fold(monitor: Monitor) -> None:
    """The folder thread's fold of one monitor: never raises."""
    try:
        if monitor.buffer.items or monitor.folding.parts.todo:
            fold(monitor, fresh=False)
    except Exception as exc:  # the folder thread must survive anything
        monitor.health.error("fold", exc)


def fold_locked(monitor: Monitor, now: float, whole: bool = True) -> None:
    """Fold what is pending, in parts (the caller holds the fold lock).

    ``whole=False`` (a scrape) leaves the later slices of a huge call queued.
    """
    items = monitor.buffer.take()
    parts = monitor.folding.parts
    if not items and not parts.todo:
        return
    output_of_ = functools.partial(output_of, monitor) if monitor.prediction_fn else None
    input_of = functools.partial(_input_of, monitor)
    rows = fold_parts.part_rows(len(monitor.schema.names or ()))  # parts of a few ms each
    parts.add(items, fold_parts.plan(items, output_of_, input_of, rows), now)
    fold_part = functools.partial(_fold_part, monitor)
    if parts.run(fold_part, monitor.folding.let_readers_in, whole):
        after_fold(monitor)


def _fold_part(monitor: Monitor, part: fold_parts.Part, now: float) -> None:
    batch = make_batch(monitor, part.records(), now, part)
    for name, aggregate in monitor.aggregates.items():
        try:
            aggregate.fold(batch)
        except Exception as exc:
            monitor.health.error(f"fold_{name}", exc)


def after_fold(monitor: Monitor) -> None:
    """Emit ``AFTER_FOLD``; a subscriber's failure is counted, never raised."""
    registry.emit(
        registry.AFTER_FOLD, monitor, on_error=lambda exc: monitor.health.error("after_fold", exc)
    )


# --- one batch from the buffered items -------------------------------------------------


def make_batch(
    monitor: Monitor, items: list[Any], now: float, part: fold_parts.Part | None = None
) -> Batch:
    w = RECORD_WIDTH
    inps, calls, results = items[0::w], items[1::w], items[2::w]
    errors, seqs = items[4::w], tuple(items[5::w])
    n = len(inps)
    latencies = np.fromiter(items[3::w], np.float64, count=n)  # one pass (np.array: two)
    given = part.outputs if part is not None else None  # ``prediction=`` already applied
    if any(errors):
        ok_index = np.flatnonzero(np.fromiter((e is None for e in errors), dtype=bool, count=n))
        pick = ok_index.tolist()
        inps = [inps[i] for i in pick]
        calls = [calls[i] for i in pick]
        results = [results[i] for i in pick]
        given = [given[i] for i in pick] if given is not None else None
    else:
        ok_index = np.arange(n)
    outputs = given if given is not None else _outputs_of(monitor, calls, results)
    output_types = set(map(type, outputs))  # read once: rows, None check, row index
    single = output_types <= SCALAR_OUTPUT_TYPES  # one row per call, none missing
    ok_rows = np.ones(len(outputs), dtype=np.int64) if single else _rows_of(monitor, outputs)
    rows = np.zeros(n, dtype=np.int64)
    rows[ok_index] = ok_rows
    feature_frame = _features_of(monitor, inps, calls)
    has_none = type(None) in output_types
    output_frame = _outputs_frame(monitor, outputs, int(ok_rows.sum()), has_none)
    row_call = ok_index if single else np.repeat(ok_index, ok_rows)
    return Batch(
        now=now,
        latencies=latencies,
        rows=rows,
        errors=tuple(errors),
        ended_at=np.full(n, now),
        call_ids=CallIds(monitor, seqs),
        features=feature_frame,
        outputs=output_frame,
        row_call=row_call.astype(np.int64, copy=False),
        seqs=seqs,
        id_prefix=f"{monitor.ids.prefix:08x}",
        call_rows=part.call_rows if part is not None else None,
        row_offset=part.row_offset if part is not None else 0,
    )


def output_of(monitor: Monitor, call: Any, result: Any) -> Any:
    """The predictions of one record: ``prediction=`` applied to wrapped calls' results."""
    if monitor.prediction_fn is not None and call is not OBSERVED:
        try:
            return monitor.prediction_fn(result)
        except Exception as exc:
            monitor.health.error("extract_prediction", exc)
            return None
    return result


def _outputs_of(monitor: Monitor, calls: list[Any], results: list[Any]) -> list[Any]:
    if monitor.prediction_fn is None:
        return results
    return [output_of(monitor, c, r) for c, r in zip(calls, results, strict=True)]


def _rows_of(monitor: Monitor, outputs: list[Any]) -> np.ndarray:
    counts = np.ones(len(outputs), dtype=np.int64)
    for i, y in enumerate(outputs):
        try:
            counts[i] = output_rows(y) if y is not None else 0
        except Exception as exc:
            monitor.health.error("extract_rows", exc)
    return counts


def _first_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A call's input: its first positional argument, else its first keyword argument."""
    if args:
        return args[0]
    return next(iter(kwargs.values()), None)


def _input_of(monitor: Monitor, inp: Any, call: Any) -> Any:
    """The input of one record (see ``buffer.Record`` for its three forms)."""
    if call is None or call is OBSERVED:
        return inp
    if monitor.features_fn is not None:
        return monitor.features_fn(*inp, **call)
    return _first_input(inp, call)


def _inputs(monitor: Monitor, inps: list[Any], calls: list[Any]) -> list[Any] | None:
    """Every record's input, or None when a ``features=`` callable must run per call."""
    if calls.count(None) == len(calls):  # the common case: the hot path's direct form
        return inps
    if monitor.features_fn is not None:
        return None
    return [_input_of(monitor, inp, call) for inp, call in zip(inps, calls, strict=True)]


def _features_of(monitor: Monitor, inps: list[Any], calls: list[Any]) -> FeatureFrame | None:
    inputs = _inputs(monitor, inps, calls)
    types = set(map(type, inputs)) if inputs else set()
    stacked = stacked_arrays(inputs) if inputs and types == {np.ndarray} else None
    if stacked is not None:
        chunks = [stacked]
    elif inputs is not None and types == {dict}:
        chunks = [Chunk("dicts", inputs, plain_dicts=True)]
    else:
        chunks = _chunks(monitor, inps, calls)
    ready = learned_chunks(monitor.learner, chunks, monitor.health)
    if not ready:
        return None
    try:
        frame = features_frame(ready, monitor.schema, coded=True)  # under the fold lock
    except Exception as exc:
        monitor.health.error("extract_features", exc)
        return None
    if frame.not_exported and not monitor.folding.truncation_logged:
        _log_truncation(monitor)
    return frame


def _log_truncation(monitor: Monitor) -> None:
    """Say once that inputs are wider than ``max_features`` (counted in every fold)."""
    monitor.folding.truncation_logged = True
    schema = monitor.schema
    width = len(schema.all_names or ())
    logger.warning(
        "modelmon: model %r version %r: inputs carry more values than the %d exported "
        "features (max_features=%d%s); the rest are counted in "
        "%s_features_not_exported_total, not exported per feature. Raise max_features "
        "to export them. (Logged once.)",
        monitor.model,
        monitor.version,
        len(schema.names or ()),
        schema.max_features,
        f", {width} named" if width else "",
        monitor.namespace,
    )


def _chunks(monitor: Monitor, inps: list[Any], calls: list[Any]) -> list[Chunk]:
    chunks = []
    for inp, call in zip(inps, calls, strict=True):
        try:
            chunks.append(input_chunk(_input_of(monitor, inp, call)))
        except UnsupportedInput as exc:
            monitor.health.drop("unsupported_input")
            monitor.health.note("input", "modelmon: input not recorded: %s", exc)
        except Exception as exc:
            monitor.health.error("extract_features", exc)
    return chunks


def _outputs_frame(
    monitor: Monitor, outputs: list[Any], n_rows: int, has_none: bool
) -> OutputFrame | None:
    present = [y for y in outputs if y is not None] if has_none else outputs
    if not present:
        return None
    try:
        frame = outputs_frame(
            present, task=monitor.task, classes=monitor.classes, confidence=monitor.confidence
        )
    except UnsupportedInput as exc:
        monitor.health.drop("unsupported_output")
        monitor.health.note("output", "modelmon: output not recorded: %s", exc)
        return None
    except Exception as exc:
        monitor.health.error("extract_outputs", exc)
        return None
    return frame if frame.n_rows == n_rows else None


class CallIds(Sequence[str]):
    """The prediction ids of a batch's calls, formatted only when read."""

    __slots__ = ("_monitor", "_seqs")

    def __init__(self, monitor: Monitor, seqs: tuple[int | str, ...]) -> None:
        self._monitor = monitor
        self._seqs = seqs

    def __len__(self) -> int:
        return len(self._seqs)

    def seq(self, i: int) -> int | str:
        """The raw sequence number of call ``i`` (a ``TracedSeq`` when it was traced)."""
        return self._seqs[i]

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self._monitor.format_id(s) for s in self._seqs[i]]
        return self._monitor.format_id(self._seqs[i])
