"""A monitor's prediction ids: minting them from predictions, scoring labels from them.

The byte layout and the HMAC live in :mod:`modelmon._internal.ids`; this module knows
what a prediction is. A classification id carries a *class code*: the index in the
configured ``classes=`` (the same list on every replica, it is part of the model's
fingerprint), else the label itself when it is an integer in 0..65534 (``0``/``1``, or
``0..k-1`` as most scikit-learn models predict), else an index into the classes this
process has seen predicted (such an id scores only in the process that minted it:
configure ``classes=`` for string labels in a fleet).

The class set labels are checked against is the configured one, else the classes the
model has predicted (seen in this process's folds or in authenticated ids, and the
columns of its probability outputs), capped at ``max_classes``, plus the integer labels
``0 .. max_classes - 1``: an ``actual`` outside it is refused (``invalid``), so junk
labels never take class slots.

>>> scheme = IdScheme(b"k" * 32, ("modelmon", "m", "1"), None, max_classes=20)
>>> from modelmon.batch import OutputFrame
>>> import numpy as np
>>> frame = OutputFrame(2, labels=np.array(["1", "0"], dtype=object))
>>> ids = scheme.mint_rows(5, frame, "classification", now=100.0)
>>> [scheme.decode(i, now=101.0, ttl_seconds=60.0).prediction.label for i in ids]
['1', '0']
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from . import names
from ._internal import ids as _ids
from ._internal.ids import DecodedId, IdCodec, PredictionKey
from .aggregates.outcome_store import Prediction, class_label
from .batch import OutputFrame

MAX_INT_CODE = 0xFFFE
MAX_LABEL_CHARS = 256

# Per-item statuses of a label, and the unmatched reason each is counted under.
COUNTED_AS: dict[str, str] = {
    "expired": "expired",
    "unknown": "unknown",
    "duplicate": "duplicate",
    "invalid": "invalid",
    "invalid_id": "invalid_id",
    "batch_id": "invalid_id",
    "other_model": "invalid_id",
}


@dataclass(frozen=True, slots=True)
class Resolved:
    """A label's id resolved: the prediction to score, or the status saying why not."""

    status: str
    prediction: Prediction | None = None
    predicted_at: float = 0.0
    key: str | None = None
    segment: int = 0  # the segment code the id carries (0: none)


class IdScheme:
    """Mints a monitor's row ids and turns them back into predictions.

    Thread-safe; after ``fork`` call :meth:`reseed` so workers never share a prefix.
    """

    def __init__(
        self,
        key: bytes,
        identity: Sequence[str],
        classes: Sequence[str] | None,
        *,
        max_classes: int = 20,
    ) -> None:
        self.classes = tuple(classes) if classes is not None else None
        self._class_index = {c: i for i, c in enumerate(self.classes or ())}
        self.codec = IdCodec(key, _ids.fingerprint(identity, self.classes))
        self.max_classes = int(max_classes)
        self._learned: list[str] = []
        self._learned_index: dict[str, int] = {}
        self._lock = threading.Lock()
        self.prefix = _ids.random_prefix()

    def reseed(self) -> None:
        """A new prefix (a forked worker): its calls never share an id with the parent's."""
        self.prefix = _ids.random_prefix()
        self._lock = threading.Lock()

    def ref(self, seq: int) -> str:
        """The short unauthenticated reference of call ``seq`` (exemplars, traces)."""
        return f"{self.prefix:08x}{seq:x}"

    # --- the class set ------------------------------------------------------------------
    def learn(self, labels: Iterable[object]) -> None:
        """Add predicted classes to the class set (no-op when classes are configured)."""
        if self.classes is not None:
            return
        index = self._learned_index
        fresh = [x for x in set(labels) if isinstance(x, str) and x not in index]
        if not fresh:
            return
        with self._lock:
            for label in sorted(fresh):
                if len(self._learned) >= self.max_classes:
                    break
                if label not in index and len(label) <= MAX_LABEL_CHARS:
                    index[label] = len(self._learned)
                    self._learned.append(label)

    def settled(self, actuals: Iterable[object]) -> bool:
        """Whether every actual is a class of a set of at most two (configured or learned).

        Then folding pending predictions cannot change how labels with generated ids are
        scored: no multiclass probabilities are kept, no class is left to learn.
        """
        if len(self.classes if self.classes is not None else self._learned) > 2:
            return False
        try:
            labels = [class_label(a) for a in actuals]
        except Exception:  # an exotic actual: let the fold and the lookup decide
            return False
        return all(x is not None and self.is_class(x) for x in labels)

    def is_class(self, label: str) -> bool:
        """Whether an actual label belongs to the class set (configured, else predicted)."""
        if self.classes is not None:
            return label in self._class_index
        if label in self._learned_index or label == names.POOLED:
            return True
        # The scikit-learn convention 0..k-1: a class the model has not predicted yet
        # (a binary model that only said "1" so far) may still be the truth. At most
        # max_classes such labels exist, so they never push real classes into the pool.
        return _is_int_code(label) and int(label) < self.max_classes

    # --- minting --------------------------------------------------------------------------
    def mint_call(self, seq: int, n_rows: int, now: float) -> str:
        """The id of a batch call (``n_rows`` != 1): refused as a label, names the rows."""
        return self.codec.mint(PredictionKey(self.prefix, seq, 0), now, n_rows=n_rows)

    def mint_rows(
        self,
        seq: int,
        frame: OutputFrame,
        task: str | None,
        now: float,
        segments: Sequence[int] | None = None,
    ) -> list[str]:
        """The ids of the rows of one call's output frame, in row order.

        ``segments`` gives each row's segment code (see :mod:`modelmon.segments`).
        """
        prefix, codec = self.prefix, self.codec
        n = frame.n_rows
        segs = segments if segments is not None and len(segments) == n else [0] * n
        if task is None:
            task = "classification" if frame.labels is not None else "regression"
        values = frame.values
        if task == "regression":
            if values is None:
                return [self.mint_call(seq, 0, now) for _ in range(n)]
            return [
                codec.mint(PredictionKey(prefix, seq, i), now, value=v, segment=segs[i])
                for i, v in enumerate(values.tolist())
            ]
        if frame.labels is not None:
            labels: list[object] = frame.labels.tolist()
        elif values is not None:  # numeric class labels (1.0 is class "1")
            labels = [class_label(v) for v in values.tolist()]
        else:
            return [self.mint_call(seq, 0, now) for _ in range(n)]
        if frame.classes is not None:
            self.learn(frame.classes)
        proba = None
        if frame.probabilities is not None and frame.probabilities.shape[1] == 2:
            proba = frame.probabilities[:, 1].tolist()
        return [
            self.mint_label(seq, i, label, proba[i] if proba is not None else None, now, segs[i])
            for i, label in enumerate(labels)
        ]

    def mint_value(self, seq: int, value: float, now: float, segment: int = 0) -> str:
        """The id of a one-row regression call (the fast path for scalar outputs)."""
        key = PredictionKey(self.prefix, seq, 0)
        return self.codec.mint(key, now, value=value, segment=segment)

    def mint_label(
        self,
        seq: int,
        row: int,
        label: object,
        proba: float | None,
        now: float,
        segment: int = 0,
    ) -> str:
        """The id of one classified row (``proba``: the positive-class probability)."""
        key = PredictionKey(self.prefix, seq, row)
        if isinstance(label, str):
            self.learn((label,))
        code, local = self._code(label)
        if code is None:
            return self.codec.mint(key, now, n_rows=0)
        return self.codec.mint(key, now, code=code, proba=proba, local=local, segment=segment)

    def _code(self, label: object) -> tuple[int | None, bool]:
        if not isinstance(label, str):
            return None, False
        if self.classes is not None:
            index = self._class_index.get(label)
            if index is not None:
                return index, False
        elif _is_int_code(label):
            return int(label), False
        index = self._learned_index.get(label)
        return (index if index is not None else _ids.POOLED_CODE), True

    # --- decoding -------------------------------------------------------------------------
    def decode(self, token: str, now: float, ttl_seconds: float) -> Resolved:
        """The prediction an authenticated id carries, or why it cannot be scored."""
        decoded = self.codec.verify(token)
        if decoded.reason is not None:
            return Resolved(decoded.reason)
        assert decoded.key is not None
        key = decoded.key.text()
        if decoded.kind == _ids.KIND_CALL:
            return Resolved("batch_id" if decoded.n_rows else "unknown", key=key)
        if now - decoded.predicted_at > ttl_seconds:
            return Resolved("expired", key=key)
        prediction = self._prediction(decoded)
        if prediction is None:
            return Resolved("unknown", key=key)
        return Resolved("matched", prediction, decoded.predicted_at, key, decoded.segment)

    def _prediction(self, d: DecodedId) -> Prediction | None:
        if d.kind == _ids.KIND_VALUE:
            return Prediction(value=d.value)
        assert d.code is not None and d.key is not None
        label = self._label(d.code, d.kind == _ids.KIND_LOCAL_CLASS, d.key.prefix)
        if label is None:
            return None
        if d.kind == _ids.KIND_LOCAL_CLASS:
            return Prediction(label=label)
        self.learn((label,))  # a class the model predicted somewhere in the fleet
        if d.kind == _ids.KIND_CLASS_PROBA and d.proba is not None and math.isfinite(d.proba):
            classes = self.classes if self.classes is not None and len(self.classes) == 2 else None
            return Prediction(
                label=label, proba=(1.0 - d.proba, d.proba), classes=classes or ("0", "1")
            )
        return Prediction(label=label)

    def _label(self, code: int, local: bool, prefix: int) -> str | None:
        if local:
            if prefix != self.prefix:
                return None  # another process's learned classes: not known here
            if code == _ids.POOLED_CODE:
                return names.POOLED
            return self._learned[code] if code < len(self._learned) else None
        if self.classes is not None:
            return self.classes[code] if code < len(self.classes) else None
        return str(code)


def _is_int_code(label: str) -> bool:
    """A canonical non-negative integer label small enough to travel as a class code."""
    return (
        0 < len(label) <= 5
        and label.isascii()
        and label.isdigit()
        and str(int(label)) == label
        and int(label) <= MAX_INT_CODE
    )
