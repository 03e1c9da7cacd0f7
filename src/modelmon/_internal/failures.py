"""Whose fault a failed call is: the model's, the client's, or nobody's (a cancellation).

``modelmon_request_errors_total`` counts the model's own failures only. A call that
ends in a ``BaseException`` that is not an ``Exception`` (``asyncio.CancelledError``,
``KeyboardInterrupt``, ``SystemExit``, ``GeneratorExit``) was cancelled; a call that
raised while serving an HTTP request answered with a 4xx status failed on the
client's input. Both are counted in ``modelmon_requests_aborted_total{reason}``.

The HTTP middleware opens :func:`deferred_failures` around a request: failed calls
made inside it are held until the status is known, then classified and buffered by
:func:`settle`. Outside a request, failures are buffered at once.

>>> error_name(ValueError("bad"))
'ValueError'
>>> error_name(KeyboardInterrupt()) == CANCELLED
True
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from .. import fold
from ..buffer import ERROR, MONITOR, collecting

# Error markers (a leading NUL: no exception class name starts with one).
CANCELLED = "\x00cancelled"
CLIENT_ERROR = "\x00client_error"
REASON_CANCELLED = "cancelled"
REASON_CLIENT_ERROR = "client_error"

_deferred: ContextVar[list[Any] | None] = ContextVar("modelmon_deferred_failures", default=None)


def error_name(exc: BaseException) -> str:
    """What a failed call's record says: the exception class name, or :data:`CANCELLED`."""
    if isinstance(exc, Exception):
        return type(exc).__name__
    return CANCELLED


def abort_reason(error: str) -> str | None:
    """``"cancelled"`` or ``"client_error"`` for a marked error, None for a model error."""
    if not error.startswith("\x00"):
        return None
    return REASON_CANCELLED if error == CANCELLED else REASON_CLIENT_ERROR


def record_failure(record: tuple[Any, ...]) -> None:
    """Buffer a failed call's record now, or hold it until its request's status is known."""
    held = _deferred.get()
    if held is not None:
        held.append(record)
    else:
        fold.append(record[MONITOR], record)


@contextlib.contextmanager
def deferred_failures() -> Iterator[list[Any]]:
    """Hold the failed calls made inside the block (shared with threads it hands work to)."""
    with collecting(_deferred) as held:
        yield held


def settle(held: list[Any], status: int) -> None:
    """Buffer held failures: a 4xx response makes them client errors. Never raises."""
    client = 400 <= status < 500
    while held:
        record = held.pop(0)
        try:
            if client and record[ERROR] != CANCELLED:
                record = (*record[:4], CLIENT_ERROR, *record[5:])
            fold.append(record[MONITOR], record)
        except Exception:  # a monitor closed meanwhile: nothing to count it in
            continue
