"""Prediction ids of the current thread / async context.

``last_prediction_id()`` returns the id of the latest prediction made in the current
context, so serving code can hand it to the client and later join ground truth:

>>> import modelmon
>>> @modelmon.monitored(model="doc", version="1", registry=False)
... def predict(x):
...     return 0.5
>>> _ = predict({"a": 1.0})
>>> modelmon.last_prediction_id() is not None
True
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from .buffer import MONITOR, RawRecord, collecting

# The hot path's raw records (see ``buffer.Record``); kept under this name for the
# integrations that type the records of a prediction scope.
Record = RawRecord

_last: ContextVar[Record | None] = ContextVar("modelmon_last_prediction", default=None)
_scope: ContextVar[list[Record] | None] = ContextVar("modelmon_prediction_scope", default=None)

set_last = _last.set
get_scope = _scope.get


def record_id(record: Record) -> str:
    """The id of a recorded call (for a batch call, an id that names its rows)."""
    return str(record[MONITOR].call_id(record))


def record_row_ids(record: Record) -> list[str]:
    """The ids of a recorded call's rows, in row order."""
    return list(record[MONITOR].row_ids(record))


def last_prediction_id() -> str | None:
    """Id of the latest prediction made in this thread / async context, or ``None``.

    For a single-row call this is the id to post its label with. For a batch call it
    is the call's id, which the feedback route refuses (``batch_id``): label each row
    with :func:`last_prediction_ids`. Ids are authenticated (see ``docs/ground-truth.md``).
    """
    record = _last.get()
    return None if record is None else record_id(record)


def last_prediction_ids() -> list[str]:
    """Row ids of the latest call in this context, in row order (one per predicted row).

    Each id carries its row's prediction, so any process holding the same id key
    (``MODELMON_ID_KEY``) scores its label.
    """
    record = _last.get()
    return [] if record is None else record_row_ids(record)


@contextlib.contextmanager
def prediction_scope() -> Iterator[list[Record]]:
    """Collect every prediction made inside the block, across threads it hands work to.

    Middleware uses it to put ``X-Prediction-Id`` on the response: the list is shared
    by reference, so a sync endpoint run in a thread pool (with a copied context) still
    appends to it.
    """
    with collecting(_scope) as records:
        yield records
