"""Ground truth: join delayed labels to their predictions, and score them.

A generated prediction id carries its row's prediction, authenticated
(:mod:`modelmon.id_scheme`): :meth:`OutcomeAggregate.record` verifies it and scores
the pair, in any process holding the key. Only what an id cannot carry is kept here:
rows predicted under a caller-supplied id wait in a bounded *pending store* (by row id,
one dict access a lookup), and multiclass probabilities (for log loss and Brier) in a
bounded map sized from the labels received. The pair becomes a confusion matrix
(classification) or error sums (regression), windowed performance gauges, the label
delay histogram and the concept drift detector's input.

Outcomes that cannot be joined are counted by reason, never raised (unless
``strict=True``) and never silently dropped:

* ``invalid_id``: a forged, altered or truncated id, another key, another model, or a
  batch call's id (label its rows);
* ``invalid``: the actual is not valid for the task (None, NaN, a string for
  regression, a class outside the class set, too long, out of ``outcome_range``); a
  refused label leaves its id usable, so a corrected label can still follow;
* ``unknown``: the id was never issued here (or was forgotten long ago);
* ``expired``: the prediction outlived the TTL (or was evicted from a full store);
* ``duplicate``: the prediction was already labelled in this process.

>>> store = MemoryStore(capacity=2, ttl_seconds=60)
>>> store.put(["a", "b", "c"], [Prediction(label="x")] * 3, [0.0, 1.0, 2.0], now=2.0)
>>> [r.status for r in store.take(["a", "b", "b", "zz"], now=3.0)]
['expired', 'matched', 'duplicate', 'unknown']
"""

from __future__ import annotations

import copy
import logging
import math
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .. import names
from .._internal.ids import MARK, PredictionKey
from ..batch import Batch, OutputFrame, RenderContext
from ..concept_drift import DEFAULT_RESET_AFTER, Detector, make_detector
from ..errors import ConfigurationError
from ..id_scheme import COUNTED_AS, MAX_LABEL_CHARS, IdScheme
from ..points import Family

# private: the window slot, split by job into .outcome_metrics (one owner)
from .outcome_metrics import _Slot, classification_metrics, probability_losses
from .outcome_render import REASONS, outcome_families, performance

# private: the fold helpers and the joined pair, split by job into .outcome_rows
from .outcome_rows import (
    TASKS,
    Task,
    _as_task,
    _infer_task,
    _Pair,
    _predictions,
    _row_calls,
    _row_keys,
    _with_proba,
)
from .outcome_store import MemoryStore, PendingStore, Prediction, class_label, target_value
from .traffic import Histogram

__all__ = [
    "DEFAULT_TARGET_RANGE",
    "EXTRAS_FLOOR",
    "LOG_INTERVAL_S",
    "MAX_CALLER_ID_CHARS",
    "REASONS",
    "TASKS",
    "OutcomeAggregate",
    "OutcomeError",
    "Prediction",
    "Task",
    "classification_metrics",
    "probability_losses",
]

logger = logging.getLogger("modelmon")


LOG_INTERVAL_S = 60.0
# Regression labels beyond this are refused: a 1e200 label would make the squared-error
# sum +Inf for good. Override with ``outcome_range=``.
DEFAULT_TARGET_RANGE = (-1e100, 1e100)
EXTRAS_FLOOR = 1024
MAX_CALLER_ID_CHARS = 256  # longer ids are refused before any lookup (invalid_id)


class OutcomeError(ValueError):
    """Raised by ``record(..., strict=True)`` when some outcomes could not be joined."""


# --- the aggregate -----------------------------------------------------------------------


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
        ids: IdScheme | None = None,
        target_range: tuple[float, float] | None = None,
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
        # A fresh copy of the configured detector (parameters kept) for load_state.
        self._detector_template = copy.deepcopy(self.detector)
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
        self.ids = ids
        lo, hi = target_range if target_range is not None else DEFAULT_TARGET_RANGE
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ConfigurationError(
                f"outcome_range must be two finite numbers lo < hi, got {target_range!r}"
            )
        self.target_range = (float(lo), float(hi))
        self.labels_received = 0
        # Keys of labelled generated ids (duplicates) and multiclass probabilities kept
        # for log loss: both grow with the feedback received, bounded by the capacity.
        self._labelled: OrderedDict[str, None] = OrderedDict()
        self._extras: OrderedDict[str, tuple[tuple[float, ...], tuple[str, ...] | None]] = (
            OrderedDict()
        )

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

    # --- fold: keep what an id cannot carry --------------------------------------------
    def fold(self, batch: Batch) -> None:
        """Learn the predicted classes; keep what ids cannot carry.

        Generated ids carry their prediction, so nothing is kept for them except the
        probabilities of multiclass rows (for log loss and Brier when the label comes
        back to this process), bounded in rows and sized from the labels received.
        Rows of calls made under a caller-supplied id go to the pending store.
        """
        frame = batch.outputs
        if frame is None or frame.n_rows == 0:
            return
        with self._lock:
            if self.task is None:
                self.task = _infer_task(frame)
        if self.ids is not None and self.task == "classification":
            if frame.classes is not None:
                self.ids.learn(frame.classes)
            if frame.labels is not None:
                # A set, not np.unique: hashing beats sorting an object array (huge batches).
                self.ids.learn(set(frame.labels.tolist()) - {None})
        # One C-level pass over the calls' types (not a Python loop per call).
        if batch.seqs is None or str in set(map(type, batch.seqs)):
            self._keep_caller_rows(batch, frame)
        if (
            frame.probabilities is not None
            and frame.probabilities.shape[1] > 2
            and batch.seqs is not None
            and self.ids is not None
        ):
            self._keep_multiclass(batch, frame)

    def _keep_caller_rows(self, batch: Batch, frame: OutputFrame) -> None:
        keyed = _row_keys(batch, frame.n_rows)
        if keyed is None:
            self._note("rows", "modelmon: outputs do not align with calls; rows not kept")
            return
        ids, predicted_at = keyed
        mine = np.arange(len(ids))
        if batch.seqs is not None:  # only rows of calls with a caller-supplied id
            seqs = batch.seqs
            caller = np.fromiter((isinstance(x, str) for x in seqs), dtype=bool, count=len(seqs))
            mine = mine[caller[_row_calls(batch, frame.n_rows)]]
        # Bounded in rows, whatever the batch: the rows a full store would evict at once
        # are never built (they count "unknown" rather than "expired" if labelled).
        mine = mine[-2 * self.store.capacity :]
        predictions = _predictions(frame, self.task, mine)
        if predictions is None:
            self._note("outputs", "modelmon: outputs unusable for %s; not kept", self.task)
            return
        if predictions:
            picked = mine.tolist()
            self.store.put(
                [ids[i] for i in picked], predictions, predicted_at[mine].tolist(), batch.now
            )

    def _keep_multiclass(self, batch: Batch, frame: OutputFrame) -> None:
        assert frame.probabilities is not None and batch.seqs is not None and self.ids is not None
        calls = _row_calls(batch, frame.n_rows)
        cap = self._extras_cap()
        first = max(0, frame.n_rows - cap)
        offsets = np.concatenate([[0], np.cumsum(batch.rows)[:-1]])
        prefix = self.ids.prefix
        classes = tuple(frame.classes) if frame.classes is not None else None
        seqs = batch.seqs
        rows = frame.probabilities[first:].tolist()
        with self._lock:
            extras = self._extras
            for r, proba in enumerate(rows, start=first):
                c = int(calls[r])
                seq = seqs[c]
                if isinstance(seq, str):
                    continue
                row = r - int(offsets[c]) + batch.row_offset  # within the (split) call
                extras[PredictionKey(prefix, int(seq), row).text()] = (
                    tuple(proba),
                    classes,
                )
            while len(extras) > cap:
                extras.popitem(last=False)

    def _extras_cap(self) -> int:
        # Sized from the feedback actually received: a monitor that never gets a label
        # keeps at most EXTRAS_FLOOR rows, one that gets many keeps up to capacity.
        return min(self.store.capacity, max(EXTRAS_FLOOR, 2 * self.labels_received))

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
        statuses = self.record_detailed(ids, actuals, now, strict=strict)
        return statuses.count("matched")

    def record_detailed(
        self,
        ids: Sequence[str],
        actuals: Sequence[object],
        now: float,
        *,
        strict: bool = False,
    ) -> list[str]:
        """Like :meth:`record`, returning each outcome's status (``"matched"`` or why not).

        Ids are verified and looked up (O(1) each) before the aggregate's lock is
        taken; only the duplicate check and the scoring run under it.
        """
        ids, actuals = list(ids), list(actuals)
        n = max(len(ids), len(actuals))
        statuses = ["invalid"] * n
        resolved = self._resolve(ids[: len(actuals)], actuals[: len(ids)], now, statuses)
        pairs: list[_Pair] = []
        with self._lock:
            self.labels_received += n
            for i, pair, key in resolved:
                checked = self._check(pair)  # first: a refused label leaves the id usable
                if checked is None:
                    statuses[i] = "invalid"
                    continue
                if key is not None:
                    if key in self._labelled:
                        statuses[i] = "duplicate"
                        continue
                    self._mark_labelled(key)
                    extra = self._extras.pop(key, None)
                    if extra is not None and checked.prediction.proba is None:
                        checked = _with_proba(checked, extra)
                statuses[i] = "matched"
                pairs.append(checked)
            if pairs:
                self._score(pairs, now)
            self._prune(now)
            fresh: Counter[str] = Counter()
            for status in statuses:
                if status != "matched":
                    fresh[COUNTED_AS.get(status, "invalid")] += 1
            self.unmatched.update(fresh)
        for reason, count in fresh.items():
            self._note(
                reason,
                "modelmon: %d outcome(s) not joined (reason=%s), counted in "
                "outcomes_unmatched_total; further ones logged at most once a minute",
                count,
                reason,
            )
        if strict and fresh:
            raise OutcomeError(f"outcomes not joined: {dict(fresh)}")
        return statuses

    def _resolve(
        self, ids: list[Any], actuals: list[Any], now: float, statuses: list[str]
    ) -> list[tuple[int, _Pair, str | None]]:
        """Verify or look up every id (no aggregate lock); fills refusals into ``statuses``."""
        out: list[tuple[int, _Pair, str | None]] = []
        stored: list[tuple[int, str, Any]] = []
        ttl = self.store.ttl_seconds
        for i, (key, actual) in enumerate(zip(ids, actuals, strict=True)):
            value = self._normalise(actual)
            if value is None:
                statuses[i] = "invalid"
            elif not isinstance(key, str) or not key or len(key) > MAX_CALLER_ID_CHARS:
                statuses[i] = "invalid_id" if isinstance(key, str) and key else "unknown"
            elif key.startswith(MARK):
                if self.ids is None:
                    statuses[i] = "invalid_id"
                    continue
                r = self.ids.decode(key, now, ttl)
                if r.prediction is None:
                    statuses[i] = r.status
                else:
                    out.append((i, _Pair(value, r.prediction, r.predicted_at), r.key))
            else:
                stored.append((i, key, value))
        if stored:
            lookups = self.store.take([key for _, key, _ in stored], now)
            for (i, _, value), lookup in zip(stored, lookups, strict=True):
                if lookup.status != "matched" or lookup.prediction is None:
                    statuses[i] = lookup.status
                else:
                    out.append((i, _Pair(value, lookup.prediction, lookup.predicted_at), None))
        return out

    def _mark_labelled(self, key: str) -> None:
        labelled = self._labelled
        labelled[key] = None
        if len(labelled) > self.store.capacity:
            labelled.popitem(last=False)

    def _check(self, pair: _Pair) -> _Pair | None:
        """The pair as scored (its actual normalised for the task), or None if refused."""
        pred = pair.prediction
        if self.task is None:  # predictions from an id or a store of an earlier process
            self.task = "classification" if pred.label is not None else "regression"
        actual = self._normalise(pair.actual)
        if actual is None:
            return None
        if self.task == "classification":
            if pred.label is None or not isinstance(actual, str):
                return None
            if len(actual) > MAX_LABEL_CHARS or (
                self.ids is not None and not self.ids.is_class(actual)
            ):
                return None
        else:
            value = pred.value
            if value is None or not math.isfinite(value) or not isinstance(actual, float):
                return None
            lo, hi = self.target_range
            error = value - actual
            if not lo <= actual <= hi or not math.isfinite(error * error):
                return None
        return _Pair(actual, pred, pair.predicted_at)

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
        return performance(self, now)

    def families(self, ctx: RenderContext) -> Iterable[Family]:
        with self._lock:
            return list(outcome_families(self, ctx))

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
                self.detector = copy.deepcopy(self._detector_template)
            self._merged_detections = int(state["detections"])
            self._merged_in_drift = bool(state["in_drift"])
