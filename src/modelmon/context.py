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
from typing import Any

from ._internal.ids import row_ids
from .extract import output_rows

# A record is the tuple the hot path appends: (args, kwargs, result, latency, error, seq,
# monitor). Kept as a plain tuple: building it is the cheapest thing the hot path can do.
# ``kwargs is None`` marks a record made by ``Monitor.observe`` (inputs given as args[0]).
Record = tuple[Any, Any, Any, float, "str | None", "int | str", Any]

_last: ContextVar[Record | None] = ContextVar("modelmon_last_prediction", default=None)
_scope: ContextVar[list[Record] | None] = ContextVar("modelmon_prediction_scope", default=None)

set_last = _last.set
get_scope = _scope.get


def record_id(record: Record) -> str:
    return str(record[6].format_id(record[5]))


def record_row_ids(record: Record) -> list[str]:
    return row_ids(record_id(record), output_rows(record[2]))


def last_prediction_id() -> str | None:
    """Id of the latest prediction made in this thread / async context, or ``None``."""
    record = _last.get()
    return None if record is None else record_id(record)


def last_prediction_ids() -> list[str]:
    """Row ids of the latest call in this context, in row order (one per predicted row)."""
    record = _last.get()
    return [] if record is None else record_row_ids(record)


@contextlib.contextmanager
def prediction_scope() -> Iterator[list[Record]]:
    """Collect every prediction made inside the block, across threads it hands work to.

    Middleware uses it to put ``X-Prediction-Id`` on the response: the list is shared
    by reference, so a sync endpoint run in a thread pool (with a copied context) still
    appends to it.
    """
    records: list[Record] = []
    token = _scope.set(records)
    try:
        yield records
    finally:
        _scope.reset(token)
