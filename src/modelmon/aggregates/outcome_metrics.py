"""Ground-truth metrics: the windowed sums of joined outcomes and the scores read from them.

Split by job from :mod:`modelmon.aggregates.outcomes` (which re-exports the public names):
a window slot's confusion counts and error sums, classification metrics from a confusion
matrix, and the log loss and Brier score of one probability prediction.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..batch import FloatArray
from .outcome_store import (
    Prediction,
)

_EPS = float(np.finfo(np.float64).eps)  # scikit-learn's probability clip for log loss
_SUMS = ("log_loss", "brier", "sq", "abs", "err")  # a slot's float sums


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
        for key in _SUMS:
            setattr(self, key, getattr(self, key) + getattr(other, key))

    def state(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "confusion": [[a, p, c] for (a, p), c in self.confusion.items()],
            "proba_n": self.proba_n,
            **{key: getattr(self, key) for key in _SUMS},
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> _Slot:
        slot = cls()
        slot.n = int(state["n"])
        slot.confusion = Counter({(str(a), str(p)): int(c) for a, p, c in state["confusion"]})
        slot.proba_n = int(state["proba_n"])
        for key in _SUMS:
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
